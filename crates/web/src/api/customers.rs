//! God View over the API: identify, customers (search, one, timeline),
//! merge and unmerge, possible duplicates, export and erase, identity rules.
//! Storage calls a customer a profile (the `profiles` table); the API says
//! customer, and answers its first paths, `/profiles/...`, as deprecated
//! aliases ([`deprecated_aliases`]).

use super::{rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::params::{
    customer_cursor, parse_customer_cursor, parse_sort, parse_time, timeline_cursor, timeline_query,
};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use bos_core::identity::{traits, IdentityRules};
use bos_core::Scope;
use bos_engine::identity;
use bos_store::identity::{
    IdentityLink, MergeRecord, NewEvent, Profile, ProfileQuery, TimelineEntry, Traits,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

fn require_read(p: &ApiPrincipal) -> Result<(), AppError> {
    if p.has(Scope::Admin) || p.has(Scope::Agent) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Reading customers needs an API key with the 'agent' or 'admin' scope.".into(),
        ))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyTraits {
    /// At most 200 characters, no control characters (as `last_name` and
    /// `company`); longer is a 422.
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub company: String,
    /// Custom traits, e.g. `{"plan": "gold", "timezone": "Europe/Paris"}`:
    /// strings, numbers or booleans under names of letters, digits and `_`.
    /// Laid over the profile's (given names win); templates read them as
    /// `{{ traits.plan }}`, and `timezone` and `preferred_channel` steer nudges.
    /// At most 64, each string at most 500 characters, 16 KiB together.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyEvent {
    /// The timeline kind, e.g. `page_view`, `cart_add`, `purchase`, `message_in`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One line shown on the timeline.
    #[serde(default)]
    pub summary: String,
    /// RFC 3339 time of the event; default now.
    pub occurred_at: Option<String>,
    /// Your id for the event: sending it twice changes nothing.
    pub id: Option<String>,
    /// Revenue in minor units (cents) that this event adds to lifetime value.
    #[serde(default)]
    pub revenue_cents: i64,
    /// Free-form details kept with the entry.
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// Identifier kind → value, e.g. `{"email": "a@b.com", "instagram_id": "1784…"}`.
    pub identifiers: BTreeMap<String, String>,
    #[serde(default = "default_traits")]
    pub traits: IdentifyTraits,
    pub event: Option<IdentifyEvent>,
}

fn default_traits() -> IdentifyTraits {
    IdentifyTraits {
        first_name: String::new(),
        last_name: String::new(),
        company: String::new(),
        custom: Default::default(),
    }
}

/// The API's custom traits, or a 422 naming the first one that cannot be
/// kept: a caller who names a trait expects it kept, so nothing is dropped
/// quietly here (the Segment intake, by contrast, skips objects it is sent).
fn custom_traits(
    m: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, serde_json::Value>, AppError> {
    if let Some(k) = m.keys().find(|k| traits::is_reserved(k)) {
        return Err(AppError::invalid(
            "traits.custom",
            format!("'{k}' is not a custom trait: send names in traits.first_name/last_name/company and e-mail or phone in identifiers"),
        ));
    }
    let (kept, problems) = traits::custom_traits(m);
    match problems.first() {
        Some(p) => Err(AppError::invalid(
            "traits.custom",
            format!("'{}': {}", p.name, p.reason),
        )),
        None => Ok(kept),
    }
}

#[derive(Serialize, ToSchema)]
pub struct MergedInto {
    pub profile_id: Uuid,
    pub via_kind: String,
    pub via_value: String,
}

#[derive(Serialize, ToSchema)]
pub struct DroppedDto {
    pub kind: String,
    pub value: String,
    pub reason: String,
}

/// A raw identifier that could not be used, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejected {
    pub kind: String,
    pub value: String,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct IdentifyResponse {
    pub profile_id: Uuid,
    /// `created`, `attached`, `merged` or `replayed`.
    pub action: String,
    pub merged: Vec<MergedInto>,
    pub linked: Vec<IdentityDto>,
    pub dropped: Vec<DroppedDto>,
    pub rejected: Vec<Rejected>,
    pub explanation: String,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityDto {
    pub kind: String,
    pub value: String,
}

/// Resolves identifiers (and optionally records an event) to one profile:
/// creates, attaches or merges, and says why.
#[utoipa::path(post, path = "/identify", tag = "customers", request_body = IdentifyRequest,
    responses((status = 200, body = IdentifyResponse), (status = 422, body = crate::error::Problem)))]
pub async fn identify(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<IdentifyRequest>, AppError>,
) -> ApiResult<Json<IdentifyResponse>> {
    if !(p.has(Scope::Ingest) || p.has(Scope::Admin)) {
        return Err(AppError::Forbidden(
            "Identify needs an API key with the 'ingest' scope.".into(),
        ));
    }
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let raw: Vec<(String, String)> = body.identifiers.into_iter().collect();
    let now = st.now();
    let event = match body.event {
        None => None,
        Some(e) => {
            if !identity::is_known_kind(&e.kind) {
                return Err(AppError::invalid(
                    "event.type",
                    format!(
                        "unknown event type '{}': use one of {}",
                        e.kind,
                        identity::TIMELINE_KINDS.join(", ")
                    ),
                ));
            }
            let occurred_at = match &e.occurred_at {
                None => now,
                Some(t) => parse_time("event.occurred_at", t)?,
            };
            if e.revenue_cents < 0 {
                return Err(AppError::invalid(
                    "event.revenue_cents",
                    "revenue cannot be negative",
                ));
            }
            let summary = if e.summary.trim().is_empty() {
                identity::kind_label(&e.kind).to_string()
            } else {
                e.summary.chars().take(300).collect()
            };
            Some(NewEvent {
                is_order: e.kind == "purchase",
                kind: e.kind,
                summary,
                occurred_at,
                data: serde_json::Value::Object(e.properties).to_string(),
                key: e
                    .id
                    .map(|k| format!("api:{}", k.chars().take(200).collect::<String>())),
                revenue_cents: e.revenue_cents,
            })
        }
    };
    let name = |field: &'static str, v: &str| {
        traits::check_person_name(v)
            .map_err(|why| AppError::invalid(field, format!("{field}: {why}")))
    };
    let traits = Traits {
        custom: custom_traits(&body.traits.custom)?,
        first_name: name("traits.first_name", &body.traits.first_name)?,
        last_name: name("traits.last_name", &body.traits.last_name)?,
        company: name("traits.company", &body.traits.company)?,
    };
    let r = identity::resolve(&st.store, p.org.id, &raw, traits, "api", event, now).await?;
    let o = r.outcome;
    Ok(Json(IdentifyResponse {
        profile_id: o.profile_id,
        action: serde_json::to_value(o.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        merged: o
            .merged
            .iter()
            .map(|(id, via)| MergedInto {
                profile_id: *id,
                via_kind: via.kind.to_string(),
                via_value: via.value.clone(),
            })
            .collect(),
        linked: o
            .linked
            .iter()
            .map(|i| IdentityDto {
                kind: i.kind.to_string(),
                value: i.value.clone(),
            })
            .collect(),
        dropped: o
            .dropped
            .iter()
            .map(|d| DroppedDto {
                kind: d.identifier.kind.to_string(),
                value: d.identifier.value.clone(),
                reason: identity::dropped_text(d),
            })
            .collect(),
        rejected: r
            .rejected
            .into_iter()
            .map(|r| Rejected {
                kind: r.kind,
                value: r.value,
                reason: r.reason,
            })
            .collect(),
        explanation: r.explanation,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct CustomerDto {
    pub id: Uuid,
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub email: String,
    pub phone: String,
    pub lifetime_value_cents: i64,
    pub currency: String,
    pub order_count: i64,
    pub lead_state: String,
    pub status: String,
    pub last_active_at: String,
    pub created_at: String,
    /// Custom traits (`POST /identify` `traits.custom`, Segment `identify`).
    #[schema(value_type = Object)]
    pub traits: serde_json::Map<String, serde_json::Value>,
}

impl From<&Profile> for CustomerDto {
    fn from(p: &Profile) -> Self {
        CustomerDto {
            id: p.id,
            display_name: p.display_name.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            company: p.company.clone(),
            email: p.primary_email.clone(),
            phone: p.primary_phone.clone(),
            lifetime_value_cents: p.ltv_cents,
            currency: p.currency.clone(),
            order_count: p.order_count,
            lead_state: p.lead_state.clone(),
            status: p.status.clone(),
            last_active_at: rfc3339(p.last_active_at),
            created_at: rfc3339(p.created_at),
            traits: serde_json::from_str(&p.traits).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Name prefix, e-mail prefix, or a phone number or its start, as
    /// dialed nationally (default region) or internationally.
    #[serde(default)]
    pub q: String,
    /// `last_active` (default), `ltv`, `created` or `name`.
    #[serde(default)]
    pub sort: String,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    pub profiles: Vec<CustomerDto>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Customers, searched and sorted.
#[utoipa::path(get, path = "/customers", tag = "customers", params(ListParams),
    responses((status = 200, body = CustomerPage), (status = 422, body = crate::error::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<CustomerPage>> {
    require_read(&p)?;
    let sort = parse_sort(&q.sort)?;
    let after = q.cursor.as_deref().map(parse_customer_cursor).transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let rows = st
        .store
        .list_profiles(
            p.org.id,
            &ProfileQuery {
                q: q.q,
                sort: Some(sort),
                after,
                limit,
            },
        )
        .await?;
    let next_cursor = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| customer_cursor(r, sort)))
        .flatten();
    Ok(Json(CustomerPage {
        profiles: rows.iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct IdentityLinkDto {
    pub kind: String,
    pub value: String,
    /// The profile this identifier was first linked to (it stays with it on unmerge).
    pub profile_id: Uuid,
    pub source: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
}

impl From<&IdentityLink> for IdentityLinkDto {
    fn from(l: &IdentityLink) -> Self {
        IdentityLinkDto {
            kind: l.kind.clone(),
            value: l.value.clone(),
            profile_id: l.profile_id,
            source: l.source.clone(),
            first_seen_at: rfc3339(l.first_seen_at),
            last_seen_at: rfc3339(l.last_seen_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MergeDto {
    pub id: Uuid,
    pub survivor_id: Uuid,
    pub absorbed_id: Uuid,
    /// The identifier both profiles shared (`manual` for a merge by hand).
    pub via_kind: String,
    pub via_value: String,
    /// `auto` (by resolution) or `manual`.
    pub reason: String,
    pub actor: String,
    pub created_at: String,
    pub undone_at: Option<String>,
}

impl From<&MergeRecord> for MergeDto {
    fn from(m: &MergeRecord) -> Self {
        MergeDto {
            id: m.id,
            survivor_id: m.survivor_id,
            absorbed_id: m.absorbed_id,
            via_kind: m.via_kind.clone(),
            via_value: m.via_value.clone(),
            reason: m.reason.clone(),
            actor: m.actor.clone(),
            created_at: rfc3339(m.created_at),
            undone_at: m.undone_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub profile: CustomerDto,
    /// Set when the id asked for was merged into this profile.
    pub resolved_from: Option<Uuid>,
    pub identities: Vec<IdentityLinkDto>,
    /// The profiles that make up this person (this one and those merged into it).
    pub member_ids: Vec<Uuid>,
    /// Why these profiles are one person, and past merges that were undone.
    pub merges: Vec<MergeDto>,
}

/// One customer with identities and merge history. An absorbed profile's id
/// resolves to the profile it was merged into.
#[utoipa::path(get, path = "/customers/{customer_id}", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id (old ids of merged customers resolve)")),
    responses((status = 200, body = CustomerDetail), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<CustomerDetail>> {
    let prof = st.store.profile(p.org.id, id).await?;
    require_read(&p)?;
    let org = p.org.id;
    Ok(Json(CustomerDetail {
        resolved_from: (prof.id != id).then_some(id),
        identities: st
            .store
            .profile_identities(org, prof.id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
        member_ids: st
            .store
            .cluster_members(org, prof.id)
            .await?
            .iter()
            .map(|m| m.id)
            .collect(),
        merges: st
            .store
            .profile_merges(org, prof.id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
        profile: (&prof).into(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Comma-separated kinds, e.g. `purchase,cart_add`.
    #[serde(default)]
    pub kind: String,
    /// RFC 3339 lower bound (inclusive).
    pub from: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct TimelineEntryDto {
    pub id: Uuid,
    pub kind: String,
    pub label: String,
    pub summary: String,
    pub source: String,
    pub occurred_at: String,
    /// The profile the entry was first recorded on.
    pub profile_id: Uuid,
    pub data: serde_json::Value,
}

impl From<&TimelineEntry> for TimelineEntryDto {
    fn from(e: &TimelineEntry) -> Self {
        TimelineEntryDto {
            id: e.id,
            kind: e.kind.clone(),
            label: identity::kind_label(&e.kind).into(),
            summary: e.summary.clone(),
            source: e.source.clone(),
            occurred_at: rfc3339(e.occurred_at),
            profile_id: e.profile_id,
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TimelinePage {
    pub entries: Vec<TimelineEntryDto>,
    pub next_cursor: Option<String>,
}

/// The customer's journey, newest first.
#[utoipa::path(get, path = "/customers/{customer_id}/timeline", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id"), TimelineParams),
    responses((status = 200, body = TimelinePage), (status = 404, body = crate::error::Problem)))]
pub async fn timeline(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    Query(q): Query<TimelineParams>,
) -> ApiResult<Json<TimelinePage>> {
    let prof = st.store.profile(p.org.id, id).await?;
    require_read(&p)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let tq = timeline_query(
        &q.kind,
        q.from.as_deref(),
        q.to.as_deref(),
        q.cursor.as_deref(),
        limit,
    )?;
    let rows = st.store.timeline(p.org.id, prof.id, &tq).await?;
    let next_cursor = (rows.len() as u32 == limit)
        .then(|| rows.last().map(timeline_cursor))
        .flatten();
    Ok(Json(TimelinePage {
        entries: rows.iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The profile to merge into this one.
    pub other_profile_id: Uuid,
}

/// Merges another profile into this one by hand (e.g. a possible duplicate).
#[utoipa::path(post, path = "/customers/{customer_id}/merge", tag = "customers", request_body = MergeRequest,
    params(("customer_id" = Uuid, Path, description = "The customer that survives")),
    responses((status = 200, body = MergeDto), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn merge(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<MergeRequest>, AppError>,
) -> ApiResult<Json<MergeDto>> {
    // Another organization's profile is 404 whatever else is wrong.
    let a = st.store.profile(p.org.id, id).await?;
    p.require(Scope::Admin)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let actor = format!("api key {}", p.key.name);
    let mid = identity::merge(
        &st.store,
        p.org.id,
        a.id,
        body.other_profile_id,
        &actor,
        st.now(),
    )
    .await?;
    Ok(Json((&st.store.merge_record(p.org.id, mid).await?).into()))
}

/// Undoes a merge: both profiles come back with their own identities and events.
#[utoipa::path(post, path = "/merges/{merge_id}/undo", tag = "customers",
    params(("merge_id" = Uuid, Path, description = "The merge to undo")),
    responses((status = 200, body = MergeDto), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn unmerge(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<MergeDto>> {
    st.store.merge_record(p.org.id, id).await?;
    p.require(Scope::Admin)?;
    let actor = format!("api key {}", p.key.name);
    identity::unmerge(&st.store, p.org.id, id, &actor, st.now()).await?;
    Ok(Json((&st.store.merge_record(p.org.id, id).await?).into()))
}

/// Profiles with the same name and company but no shared identifier:
/// suggestions, never merged automatically.
#[utoipa::path(get, path = "/customers/{customer_id}/duplicates", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id")),
    responses((status = 200, body = Vec<CustomerDto>), (status = 404, body = crate::error::Problem)))]
pub async fn duplicates(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<Vec<CustomerDto>>> {
    let prof = st.store.profile(p.org.id, id).await?;
    require_read(&p)?;
    Ok(Json(
        st.store
            .possible_duplicates(p.org.id, prof.id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Everything stored about one customer, as JSON (data portability).
#[utoipa::path(get, path = "/customers/{customer_id}/export", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id")),
    responses((status = 200, description = "The customer's data"), (status = 404, body = crate::error::Problem)))]
pub async fn export(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<serde_json::Value>> {
    st.store.profile(p.org.id, id).await?;
    p.require(Scope::Admin)?;
    let e = st.store.export_profile(p.org.id, id).await?;
    Ok(Json(
        serde_json::to_value(e).map_err(|e| AppError::Internal(e.to_string()))?,
    ))
}

/// Erases one customer: the profile, everything merged into it, identities and timeline.
#[utoipa::path(delete, path = "/customers/{customer_id}", tag = "customers",
    params(("customer_id" = Uuid, Path, description = "The customer's id")),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub async fn erase(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    st.store.profile(p.org.id, id).await?;
    p.require(Scope::Admin)?;
    let n = st.store.erase_profile(p.org.id, id).await?;
    tracing::info!(org = %p.org.id, rows = n, key = %p.key.id, "customer erased");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RuleDto {
    pub kind: String,
    pub priority: u32,
    pub max_per_profile: u32,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesDto {
    pub kinds: Vec<RuleDto>,
    /// `kind:value` entries never used for matching, e.g. `email:test@test.com`.
    pub blocklist: Vec<String>,
    /// Two-letter region for phone numbers without a country code.
    pub default_region: String,
}

impl From<&IdentityRules> for RulesDto {
    fn from(r: &IdentityRules) -> Self {
        RulesDto {
            kinds: r
                .kinds
                .iter()
                .map(|(k, v)| RuleDto {
                    kind: k.to_string(),
                    priority: v.priority,
                    max_per_profile: v.max_per_profile,
                })
                .collect(),
            blocklist: r.blocklist.iter().map(|i| i.to_string()).collect(),
            default_region: r.default_region.clone(),
        }
    }
}

impl From<RulesDto> for identity::RulesInput {
    fn from(d: RulesDto) -> Self {
        identity::RulesInput {
            kinds: d
                .kinds
                .into_iter()
                .map(|k| identity::KindRuleInput {
                    kind: k.kind,
                    priority: k.priority,
                    max_per_profile: k.max_per_profile,
                })
                .collect(),
            blocklist: d.blocklist,
            default_region: d.default_region,
        }
    }
}

/// The organization's identity rules.
#[utoipa::path(get, path = "/identity-rules", tag = "customers", responses((status = 200, body = RulesDto)))]
pub async fn get_rules(State(st): State<AppState>, p: ApiPrincipal) -> ApiResult<Json<RulesDto>> {
    require_read(&p)?;
    Ok(Json((&st.store.identity_rules(p.org.id).await?).into()))
}

/// Replaces the organization's identity rules (applies to new events).
#[utoipa::path(put, path = "/identity-rules", tag = "customers", request_body = RulesDto,
    responses((status = 200, body = RulesDto), (status = 422, body = crate::error::Problem)))]
pub async fn put_rules(
    State(st): State<AppState>,
    p: ApiPrincipal,
    body: Result<ApiJson<RulesDto>, AppError>,
) -> ApiResult<Json<RulesDto>> {
    p.require(Scope::Admin)?;
    // The scope before the body: a key without it is 403 whatever it sent.
    let ApiJson(body) = body?;
    let rules = identity::save_rules(&st.store, p.org.id, &body.into(), st.now()).await?;
    Ok(Json((&rules).into()))
}

/// An account (Segment `group` call) as the organization's customers' calls
/// left it.
#[derive(Serialize, ToSchema)]
pub struct GroupDto {
    pub group_id: String,
    /// The account's own traits, each call's names laid over the last.
    #[schema(value_type = Object)]
    pub traits: serde_json::Value,
    /// The customer of the last `group` call naming it.
    pub last_profile_id: Option<Uuid>,
    pub created_at: String,
    pub updated_at: String,
}

/// One account by the `groupId` Segment `group` calls give it. Its members
/// carry it as the trait `group_id`.
#[utoipa::path(get, path = "/groups/{group_id}", tag = "customers",
    params(("group_id" = String, Path, description = "The groupId the calls sent")),
    responses((status = 200, body = GroupDto), (status = 404, body = crate::error::Problem)))]
pub async fn group(
    State(st): State<AppState>,
    p: ApiPrincipal,
    axum::extract::Path(group_id): axum::extract::Path<String>,
) -> ApiResult<Json<GroupDto>> {
    let g = st
        .store
        .customer_group(p.org.id, &group_id)
        .await?
        .ok_or(AppError::NotFound)?;
    require_read(&p)?;
    Ok(Json(GroupDto {
        group_id: g.group_id,
        traits: g.traits,
        last_profile_id: g.last_profile_id,
        created_at: rfc3339(g.created_at),
        updated_at: rfc3339(g.updated_at),
    }))
}

/// The paths the API answered before it said "customer": `/profiles`,
/// `/profiles/{id}` and the routes under it, answering exactly as their
/// `/customers` counterparts so existing integrations keep working. They
/// are left out of the OpenAPI document (one operation per concept, so
/// generated clients and conformance runs see only the new paths).
pub fn deprecated_aliases() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/profiles", get(list))
        .route("/profiles/{customer_id}", get(get_one).delete(erase))
        .route("/profiles/{customer_id}/timeline", get(timeline))
        .route("/profiles/{customer_id}/merge", post(merge))
        .route("/profiles/{customer_id}/duplicates", get(duplicates))
        .route("/profiles/{customer_id}/export", get(export))
        .route(
            "/profiles/{customer_id}/nudges",
            get(super::campaigns::customer_nudges),
        )
}
