//! The Unified Inbox over the API: the thread list with its filters, sorts
//! and search, one conversation with its messages and the channels a reply
//! can take, replies, and assign, resolve and reopen. Handlers parse, call
//! the inbox service and render; its refusals become problem+json in one
//! place (`From<InboxError> for AppError`). An API key acts for the member
//! who created it where the list needs a member (`unread`, `mine`), and
//! signs its replies with its own name.
//!
//! Between agents and people: an agent asks for a human (`handoff`), a
//! member takes a conversation over from its agent (`takeover`) and gives
//! it back (`handback`); the agent hears each on its event stream. An
//! agent's key may not write in a conversation a member holds, one that
//! waits for a human, or another agent's (409 saying why).

use super::{rfc3339, ApiJson, Id};
use crate::auth::keys::ApiPrincipal;
use crate::error::{ApiResult, AppError};
use crate::params::{inbox_query, InboxFilters};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bos_core::inbox::Channel;
use bos_core::Scope;
use bos_engine::inbox::{KeyedReply, Reply, ReplyBy, ReplyChannel};
use bos_store::inbox::{ConversationSummary, Message, SearchHit, SearchIn};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

fn require(p: &ApiPrincipal, what: &str) -> Result<(), AppError> {
    if p.has(Scope::Admin) || p.has(Scope::Agent) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "{what} needs an API key with the 'agent' or 'admin' scope."
        )))
    }
}

/// The member an API key acts for: the one who created it.
fn member_of(p: &ApiPrincipal) -> Option<Uuid> {
    p.key.created_by
}

#[derive(Serialize, ToSchema)]
pub struct ConversationDto {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    pub customer_email: String,
    pub customer_phone: String,
    pub customer_ltv_cents: i64,
    /// `open` or `resolved`.
    pub status: String,
    /// The member (user id) it is assigned to.
    pub assignee_id: Option<Uuid>,
    /// `urgent`, `high`, `normal` or `low`.
    pub priority: String,
    /// Why, in words (tone, VIP, intent).
    pub priority_reason: String,
    pub last_message_at: String,
    pub last_inbound_at: Option<String>,
    /// The customer's oldest unanswered message, when one waits.
    pub waiting_since: Option<String>,
    pub last_preview: String,
    pub last_channel: String,
    /// `customer`, `member`, `agent` or `automation`.
    pub last_author: String,
    /// Every channel the conversation's messages travelled on.
    pub channels: Vec<String>,
    /// An AI agent took part.
    pub ai_involved: bool,
    pub message_count: i64,
    /// The customer wrote since the key's member last read it.
    pub unread: bool,
    pub created_at: String,
}

impl From<&ConversationSummary> for ConversationDto {
    fn from(c: &ConversationSummary) -> Self {
        ConversationDto {
            id: c.id,
            customer_id: c.profile_id,
            customer_name: c.customer_name.clone(),
            customer_email: c.customer_email.clone(),
            customer_phone: c.customer_phone.clone(),
            customer_ltv_cents: c.customer_ltv_cents,
            status: c.status.as_str().into(),
            assignee_id: c.assignee_id,
            priority: c.priority.as_str().into(),
            priority_reason: c.priority_reason.clone(),
            last_message_at: rfc3339(c.last_message_at),
            last_inbound_at: c.last_inbound_at.map(rfc3339),
            waiting_since: c.waiting_since.map(rfc3339),
            last_preview: c.last_preview.clone(),
            last_channel: c.last_channel.as_str().into(),
            last_author: c.last_author.as_str().into(),
            channels: c.channels.iter().map(|c| c.as_str().to_string()).collect(),
            ai_involved: c.ai_involved,
            message_count: c.message_count,
            unread: c.unread,
            created_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageDto {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// `sms`, `email`, `instagram`, `facebook`, `form` or `voice`.
    pub channel: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `customer`, `member`, `agent` or `automation`.
    pub author_kind: String,
    pub author_id: Option<String>,
    pub author_name: String,
    pub text: String,
    /// E-mail HTML, sanitized (remote images held back).
    pub html: Option<String>,
    pub subject: Option<String>,
    /// Attachment metadata (names, types, sizes).
    #[schema(value_type = Vec<Object>)]
    pub attachments: serde_json::Value,
    /// `received`, `pending`, `sent`, `delivered`, `read`, `failed` or
    /// `unknown` (the provider may have sent it; it is never sent again).
    pub status: String,
    /// Why it failed or is unknown.
    pub status_detail: Option<String>,
    pub email_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub created_at: String,
}

impl From<&Message> for MessageDto {
    fn from(m: &Message) -> Self {
        MessageDto {
            id: m.id,
            conversation_id: m.conversation_id,
            channel: m.channel.as_str().into(),
            direction: m.direction.as_str().into(),
            author_kind: m.author_kind.as_str().into(),
            author_id: m.author_id.clone(),
            author_name: m.author_name.clone(),
            text: m.text.clone(),
            html: m.html.clone(),
            subject: m.subject.clone(),
            attachments: m.attachments.clone(),
            status: m.status.as_str().into(),
            status_detail: m.status_detail.clone(),
            email_message_id: m.email_message_id.clone(),
            in_reply_to: m.in_reply_to.clone(),
            references: m.references.clone(),
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReplyChannelDto {
    pub channel: String,
    /// The customer's address there, masked; empty when they have none.
    pub to: String,
    pub available: bool,
    /// Why a reply cannot go there now, in a sentence to show.
    pub why_not: Option<String>,
}

impl From<&ReplyChannel> for ReplyChannelDto {
    fn from(r: &ReplyChannel) -> Self {
        ReplyChannelDto {
            channel: r.channel.as_str().into(),
            to: r.to.clone(),
            available: r.available,
            why_not: r.why_not.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SnippetPartDto {
    pub text: String,
    /// This part matched a word of the query.
    pub matched: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SearchHitDto {
    pub conversation_id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    /// `message` or `customer` (name, e-mail or phone).
    pub found_in: String,
    pub message_id: Option<Uuid>,
    pub channel: Option<String>,
    /// Plain text around the first match, in parts; matched parts marked.
    pub snippet: Vec<SnippetPartDto>,
    pub at: String,
}

impl From<&SearchHit> for SearchHitDto {
    fn from(h: &SearchHit) -> Self {
        SearchHitDto {
            conversation_id: h.conversation_id,
            customer_id: h.profile_id,
            customer_name: h.customer_name.clone(),
            found_in: match h.found_in {
                SearchIn::Message => "message",
                SearchIn::Customer => "customer",
            }
            .into(),
            message_id: h.message_id,
            channel: h.channel.map(|c| c.as_str().to_string()),
            snippet: h
                .snippet
                .iter()
                .map(|p| SnippetPartDto {
                    text: p.text.clone(),
                    matched: p.matched,
                })
                .collect(),
            at: rfc3339(h.at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationDto>,
    /// Pass as `cursor` for the next page; absent on the last page and for
    /// a search.
    pub next_cursor: Option<String>,
    /// With `q`: the matches, best first, with highlighted snippets;
    /// `conversations` are then theirs, in the order of their first match.
    pub hits: Option<Vec<SearchHitDto>>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationDetailDto {
    pub conversation: ConversationDto,
    /// The latest messages, oldest first.
    pub messages: Vec<MessageDto>,
    /// Older messages exist beyond those listed.
    pub truncated: bool,
    /// Where a reply can go now, and why not elsewhere.
    pub reply_channels: Vec<ReplyChannelDto>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// Only conversations with messages on this channel: `sms`, `email`,
    /// `instagram`, `facebook`, `form`.
    channel: Option<String>,
    /// `open`, `unread`, `mine` (assigned to the key's member),
    /// `unassigned` or `resolved`. `unread` and `mine` need a key created
    /// by a member.
    status: Option<String>,
    /// `ai` (an AI agent took part) or `human`.
    author: Option<String>,
    /// `urgent`, `high`, `normal` or `low`.
    priority: Option<String>,
    /// Words to find in messages and in customers' names, e-mails and
    /// phones (each word as a prefix, all required). With `q` the answer
    /// holds `hits`; `sort`, `cursor` and `limit` do not apply.
    q: Option<String>,
    /// `recent` (default), `oldest_unread`, `priority` or `value`.
    sort: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1–200, default 50.
    limit: Option<u32>,
}

/// Conversations, filtered and sorted, a page at a time; or, with `q`, the
/// messages and customers matching the words.
#[utoipa::path(get, path = "/conversations", tag = "inbox", params(ConversationParams),
    responses((status = 200, body = ConversationPage), (status = 422, body = crate::error::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Query(params): Query<ConversationParams>,
) -> ApiResult<Json<ConversationPage>> {
    require(&p, "Reading conversations")?;
    let query = inbox_query(&InboxFilters {
        channel: params.channel.as_deref(),
        status: params.status.as_deref(),
        author: params.author.as_deref(),
        priority: params.priority.as_deref(),
        sort: params.sort.as_deref(),
        cursor: params.cursor.as_deref(),
        limit: params.limit,
    })?;
    let member = member_of(&p);
    if let Some(words) = params.q.as_deref().filter(|q| !q.trim().is_empty()) {
        let found = st.inbox.find(p.org.id, member, query, words).await?;
        return Ok(Json(ConversationPage {
            conversations: found.conversations.iter().map(Into::into).collect(),
            next_cursor: None,
            hits: Some(found.hits.iter().map(Into::into).collect()),
        }));
    }
    let page = st.inbox.list(p.org.id, member, query).await?;
    Ok(Json(ConversationPage {
        conversations: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        hits: None,
    }))
}

async fn detail(
    st: &AppState,
    org: Uuid,
    id: Uuid,
    member: Option<Uuid>,
) -> Result<ConversationDetailDto, AppError> {
    let d = st.inbox.get(org, id, member).await?;
    let channels = st.inbox.reply_channels(org, id, st.now(), false).await?;
    Ok(ConversationDetailDto {
        conversation: (&d.conversation).into(),
        messages: d.messages.iter().map(Into::into).collect(),
        truncated: d.truncated,
        reply_channels: channels.iter().map(Into::into).collect(),
    })
}

/// One conversation with its latest messages and the channels a reply
/// can take now (and why not the others).
#[utoipa::path(get, path = "/conversations/{conversation_id}", tag = "inbox",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = ConversationDetailDto), (status = 404, body = crate::error::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<ConversationDetailDto>> {
    let d = detail(&st, p.org.id, id, member_of(&p)).await?;
    require(&p, "Reading conversations")?;
    Ok(Json(d))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// `sms`, `email`, `instagram` or `facebook`: one the conversation's
    /// `reply_channels` lists as available.
    pub channel: String,
    pub text: String,
    /// E-mail only: left out, the reply keeps "Re: " and the thread's
    /// subject, or, when the customer never e-mailed, is "A message from"
    /// and the organization's name.
    pub subject: Option<String>,
}

const REPLY_SHAPE: &str =
    "Send {\"channel\": \"sms\" | \"email\" | \"instagram\" | \"facebook\", \"text\": \"…\", \"subject\"?: \"…\"}.";

/// The header a client sets so that retrying a reply sends it once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Replies in the conversation on one channel. The message is stored
/// before the provider is called and sent at most once: the answer is the
/// message as it stands afterwards, so check its `status` (`failed` with
/// `status_detail` when the provider refused; `unknown` when it did not
/// answer, and it is then never sent again). A channel that cannot take a
/// reply now (no address, opted out, not connected, Meta's window over) is
/// 409 with the reason, and nothing is sent.
///
/// Send an `Idempotency-Key` (1–255 visible ASCII characters; a UUID) to
/// retry safely: a repeat of the same request with the same key by the same
/// API key within 24 hours gets the first answer again (same status and
/// body, with `Idempotent-Replayed: true`) and sends nothing; the same key
/// with a different request is 422; a repeat while the first is still
/// being sent is 409 (retry it shortly).
#[utoipa::path(post, path = "/conversations/{conversation_id}/messages", tag = "inbox", request_body = ReplyRequest,
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Makes retries safe: the same key and request within 24 hours get the first answer and send nothing again.")),
    responses((status = 201, body = MessageDto,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer of an earlier request with the same key"))),
        (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem,
            description = "The channel cannot take a reply now, or the first request with this Idempotency-Key is still being sent"),
        (status = 422, body = crate::error::Problem,
            description = "The request is not acceptable, or its Idempotency-Key was used for a different request")))]
pub async fn reply(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    headers: HeaderMap,
    raw: Result<ApiJson<serde_json::Value>, AppError>,
) -> ApiResult<Response> {
    let org = p.org.id;
    // Another organization's conversation is 404 whatever the key or body.
    st.inbox.summary(org, id, None).await?;
    require(&p, "Replying")?;
    let ApiJson(raw) = raw?;
    let body: ReplyRequest = serde_json::from_value(raw).map_err(|e| AppError::Invalid {
        field: None,
        detail: format!("{e}. {REPLY_SHAPE}"),
    })?;
    let channel = Channel::parse(body.channel.trim()).ok_or_else(|| {
        AppError::invalid(
            "channel",
            format!(
                "unknown channel '{}': reply on sms, email, instagram or facebook",
                body.channel
            ),
        )
    })?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    AppError::invalid(
                        "Idempotency-Key",
                        "An idempotency key is visible ASCII characters (a UUID is a good one).",
                    )
                })?
                .trim()
                .to_string(),
        ),
    };
    // A key made for an agent writes as that agent, and not while it is
    // paused (409 saying who paused it).
    let by = match p.key.agent_id {
        Some(agent) => {
            let a = st.agents.ensure_active(org, agent).await?;
            ReplyBy::Agent {
                id: a.id,
                name: a.name,
            }
        }
        None => ReplyBy::ApiKey {
            id: p.key.id,
            name: p.key.name.clone(),
        },
    };
    if let ReplyBy::Agent { id: agent, .. } = &by {
        agent_may_write(&st, org, id, *agent).await?;
    }
    let reply = Reply {
        channel,
        text: body.text,
        subject: body.subject,
    };
    let Some(key) = key else {
        let sent = st.inbox.reply_as(org, by, id, reply, st.now()).await?;
        agent_handles(&st, org, &p, id).await?;
        return Ok((StatusCode::CREATED, Json(MessageDto::from(&sent))).into_response());
    };
    match st
        .inbox
        .claim_reply_key(org, &by, &key, id, &reply, st.now())
        .await?
    {
        KeyedReply::Replay { status, body } => Ok(stored_answer(status, body, true)),
        KeyedReply::InFlight { .. } => Err(AppError::Conflict(
            "The first request with this Idempotency-Key is still being sent: retry shortly \
             to get its answer. Nothing was sent again."
                .into(),
        )),
        KeyedReply::Send => {
            let (status, body) = match st
                .inbox
                .reply_as(org, by.clone(), id, reply, st.now())
                .await
            {
                Ok(sent) => {
                    // The message is sent: its answer must be kept whatever happens here.
                    if let Err(e) = agent_handles(&st, org, &p, id).await {
                        tracing::warn!(%org, error = ?e, "agent's reply sent but not counted on its card");
                    }
                    (
                        StatusCode::CREATED,
                        serde_json::to_string(&MessageDto::from(&sent)).unwrap_or_default(),
                    )
                }
                Err(e) => AppError::from(e).status_and_body(),
            };
            // The answer is kept for repeats; if keeping it fails the
            // key stays claimed, so a repeat is told to wait rather than
            // sending again.
            if let Err(e) = st
                .inbox
                .answer_reply_key(org, &by, &key, status.as_u16(), &body)
                .await
            {
                tracing::warn!(%org, error = %e, "reply answered but its idempotency answer was not kept");
            }
            Ok(stored_answer(status.as_u16(), body, false))
        }
    }
}

/// A reply written with an agent's key: the agent is now handling the
/// thread, and its card counts it.
async fn agent_handles(st: &AppState, org: Uuid, p: &ApiPrincipal, id: Uuid) -> ApiResult<()> {
    if let Some(agent) = p.key.agent_id {
        st.agents.handles(org, agent, id).await?;
    }
    Ok(())
}

/// An answer as stored for an idempotency key: JSON for a message,
/// problem+json for a refusal.
fn stored_answer(status: u16, body: String, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if replayed {
        res.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    res
}

async fn summary(
    st: &AppState,
    org: Uuid,
    id: Uuid,
    member: Option<Uuid>,
) -> ApiResult<Json<ConversationDto>> {
    Ok(Json((&st.inbox.summary(org, id, member).await?).into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A member's user id, or null to unassign.
    pub member_id: Option<Uuid>,
}

/// Assigns the conversation to a member of the organization, or to nobody
/// (`{"member_id": null}`). The customer's timeline says who took it.
#[utoipa::path(post, path = "/conversations/{conversation_id}/assign", tag = "inbox", request_body = AssignRequest,
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = ConversationDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)))]
pub async fn assign(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    raw: Result<ApiJson<serde_json::Value>, AppError>,
) -> ApiResult<Json<ConversationDto>> {
    let org = p.org.id;
    st.inbox.summary(org, id, None).await?;
    require(&p, "Assigning conversations")?;
    let ApiJson(raw) = raw?;
    // `member_id` must be there: null unassigns, but leaving it out is a
    // mistake, not a request to unassign.
    if raw.get("member_id").is_none() {
        return Err(AppError::invalid(
            "member_id",
            "Send {\"member_id\": \"<a member's user id>\"}, or {\"member_id\": null} to unassign.",
        ));
    }
    let body: AssignRequest = serde_json::from_value(raw).map_err(|e| AppError::Invalid {
        field: Some("member_id"),
        detail: format!(
            "{e}. Send {{\"member_id\": \"<a member's user id>\"}}, or null to unassign."
        ),
    })?;
    st.inbox.assign(org, id, body.member_id, st.now()).await?;
    summary(&st, org, id, member_of(&p)).await
}

/// Marks the conversation resolved; 409 when it already is. The next
/// message from the customer opens it again.
#[utoipa::path(post, path = "/conversations/{conversation_id}/resolve", tag = "inbox",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = ConversationDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn resolve(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<ConversationDto>> {
    let org = p.org.id;
    st.inbox.summary(org, id, None).await?;
    require(&p, "Resolving conversations")?;
    st.inbox.resolve(org, id, st.now()).await?;
    summary(&st, org, id, member_of(&p)).await
}

/// Opens a resolved conversation again; 409 when it is open.
#[utoipa::path(post, path = "/conversations/{conversation_id}/reopen", tag = "inbox",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = ConversationDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn reopen(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<ConversationDto>> {
    let org = p.org.id;
    st.inbox.summary(org, id, None).await?;
    require(&p, "Reopening conversations")?;
    st.inbox.reopen(org, id, st.now()).await?;
    summary(&st, org, id, member_of(&p)).await
}

/// 409 when the conversation is not an agent's to answer now: a member
/// holds it, it waits for a human, or another agent handles it.
async fn agent_may_write(st: &AppState, org: Uuid, id: Uuid, agent: Uuid) -> ApiResult<()> {
    let h = st.agents.hands(org, id).await?;
    if h.assignee_id.is_some() {
        return Err(AppError::Conflict(
            "A member has taken this conversation over: the agent may answer it again once a \
             member hands it back."
                .into(),
        ));
    }
    if h.handoff_at.is_some() {
        return Err(AppError::Conflict(
            "This conversation was handed to a human and waits for one: the agent may answer \
             it again once a member hands it back."
                .into(),
        ));
    }
    if h.agent_id.is_some_and(|a| a != agent) {
        return Err(AppError::Conflict(
            "Another agent is handling this conversation.".into(),
        ));
    }
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub struct HandsDto {
    pub conversation: ConversationDto,
    /// The AI agent of the conversation. It stays after a hand-off and a
    /// takeover: it is the one a member hands the conversation back to.
    pub agent_id: Option<Uuid>,
    /// An agent asked for a human and none has taken it over yet.
    pub needs_human: bool,
    pub handoff_at: Option<String>,
    /// The agent's reason, in its words.
    pub handoff_reason: Option<String>,
    /// False when it already was so: nothing changed and nobody was told.
    pub changed: bool,
}

async fn hands_dto(
    st: &AppState,
    org: Uuid,
    id: Uuid,
    p: &ApiPrincipal,
    moved: bos_engine::agents::HandsMoved,
) -> ApiResult<Json<HandsDto>> {
    let c = st.inbox.summary(org, id, member_of(p)).await?;
    let h = moved.hands;
    Ok(Json(HandsDto {
        conversation: (&c).into(),
        agent_id: h.agent_id,
        needs_human: h.handoff_at.is_some(),
        handoff_at: h.handoff_at.map(rfc3339),
        handoff_reason: h.handoff_reason,
        changed: moved.changed,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffRequest {
    /// Why a human is needed, in a sentence a member reads (1–1000 characters).
    pub reason: String,
}

/// An agent asks for a human. With the agent's own key, for a
/// conversation it handles or nobody has claimed; with an admin key, for
/// the conversation's agent. The conversation waits for a human (at least
/// `high` priority, the reason as the priority's reason, waiting since
/// now), the customer's timeline says the agent asked and why, and the
/// agent's stream says `handed_off`; the agent stays on it to be handed it
/// back. Asking again changes nothing (`changed: false`). 409 when a
/// member or another agent has the conversation, when no agent does, or
/// when the agent is paused. Record the interaction as `handed_off` with
/// `POST /agents/{agent_id}/interactions`.
#[utoipa::path(post, path = "/conversations/{conversation_id}/handoff", tag = "inbox", request_body = HandoffRequest,
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = HandsDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn handoff(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
    body: Result<ApiJson<HandoffRequest>, AppError>,
) -> ApiResult<Json<HandsDto>> {
    let org = p.org.id;
    st.inbox.summary(org, id, None).await?;
    require(&p, "Handing a conversation to a human")?;
    let ApiJson(b) = body?;
    let moved = st
        .agents
        .hand_off(org, id, p.key.agent_id, &b.reason, st.now())
        .await?;
    hands_dto(&st, org, id, &p, moved).await
}

/// The member an admin key acts for, for a takeover or a hand-back.
fn acting_member(p: &ApiPrincipal, what: &str) -> Result<Uuid, AppError> {
    p.require(Scope::Admin)?;
    member_of(p).ok_or_else(|| {
        AppError::Forbidden(format!(
            "{what} is done by a member: use an API key a member created in Settings → API keys \
             (this key belongs to no member)."
        ))
    })
}

/// A member takes the conversation over from its agent: it is assigned to
/// the member the admin key acts for (its creator), no longer waits for a
/// human, and the agent's stream says `takeover` (its replies there are
/// 409 until a member hands it back). Already theirs: `changed: false`.
/// 409 when another member has it.
#[utoipa::path(post, path = "/conversations/{conversation_id}/takeover", tag = "inbox",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = HandsDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn takeover(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<HandsDto>> {
    let org = p.org.id;
    st.inbox.summary(org, id, None).await?;
    let member = acting_member(&p, "Taking a conversation over")?;
    let moved = st.agents.take_over(org, id, member, st.now()).await?;
    hands_dto(&st, org, id, &p, moved).await
}

/// Gives the conversation back to its agent: no member holds it, it no
/// longer waits for a human, and the agent's stream says `handed_back`.
/// Already the agent's: `changed: false`. 409 when no agent ever had it.
#[utoipa::path(post, path = "/conversations/{conversation_id}/handback", tag = "inbox",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id")),
    responses((status = 200, body = HandsDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
pub async fn handback(
    State(st): State<AppState>,
    p: ApiPrincipal,
    Id(id): Id,
) -> ApiResult<Json<HandsDto>> {
    let org = p.org.id;
    st.inbox.summary(org, id, None).await?;
    let member = acting_member(&p, "Handing a conversation back")?;
    let name = st.agents.member_name(org, member).await?;
    let moved = st.agents.hand_back(org, id, &name, st.now()).await?;
    hands_dto(&st, org, id, &p, moved).await
}
