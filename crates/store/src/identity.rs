//! The God View store: profiles, identity links, merges and the journey
//! timeline, and the transactional application of a merge plan.
//!
//! Merges never move rows. Every profile, link and timeline entry keeps the
//! profile it was first recorded on (`profile_id`) and carries the root of
//! its cluster (`root_id`); a merge rewrites `root_id` from the absorbed
//! cluster to the survivor, and an unmerge rewrites it back for exactly the
//! absorbed profile's subtree. That is what makes every merge reversible
//! with both profiles' events intact, and lets old ids keep resolving.
//!
//! The transactional bodies are written once in `identity_tx!` and expanded
//! for each engine's connection type (the only difference is the row lock,
//! `for update`, which SQLite's single writer does not need).

use crate::engine::{read, write, write_db};
use crate::sql::{q, Db, Row};
use crate::{new_id, StoreError};
use bos_core::identity::phone_search::{looks_like_phone, prefix_upper_bound};
use bos_core::identity::{
    phone_search, plan, traits, Decision, Dropped, Identifier, IdentifierKind, IdentityRules,
    PhoneSearch, ProfileView,
};
use serde::Serialize;
use sqlx::Connection;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Profile {
    pub id: Uuid,
    pub root_id: Uuid,
    pub merged_into: Option<Uuid>,
    pub first_name: String,
    pub last_name: String,
    pub display_name: String,
    pub company: String,
    pub primary_email: String,
    pub primary_phone: String,
    pub ltv_cents: i64,
    pub order_count: i64,
    pub currency: String,
    pub last_active_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: String,
    pub lead_state: String,
    pub tags: String,
    pub traits: String,
}

impl Profile {
    /// The lowercase name the customers list sorts and searches by.
    pub fn name_lc(&self) -> String {
        self.display_name.to_lowercase()
    }
}

/// The profile columns qualified by a table alias (`p.id, p.root_id, …`).
pub(crate) fn profile_cols(alias: &str) -> String {
    PROFILE_COLS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const PROFILE_COLS: &str = "id, root_id, merged_into, first_name, last_name, display_name, company, primary_email, \
    primary_phone, ltv_cents, order_count, currency, last_active_at, created_at, updated_at, status, lead_state, tags, traits";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct IdentityLink {
    pub kind: String,
    pub value: String,
    pub profile_id: Uuid,
    pub root_id: Uuid,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MergeRecord {
    pub id: Uuid,
    pub survivor_id: Uuid,
    pub absorbed_id: Uuid,
    pub via_kind: String,
    pub via_value: String,
    pub event_key: Option<String>,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
    pub undone_at: Option<i64>,
    pub undone_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TimelineEntry {
    pub id: Uuid,
    pub profile_id: Uuid,
    pub root_id: Uuid,
    pub occurred_at: i64,
    pub kind: String,
    pub source: String,
    pub summary: String,
    pub data: String,
}

/// Profile fields an event may carry. Empty means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traits {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    /// Custom traits laid over the profile's (`bos_core::identity::traits`):
    /// given names win, the rest stay.
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// A touchpoint to put on the timeline together with the resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: String,
    pub summary: String,
    pub occurred_at: i64,
    /// JSON object with the event's details.
    pub data: String,
    /// Idempotency key: the same key twice is a replay and changes nothing.
    pub key: Option<String>,
    /// Revenue this event adds to lifetime value (a purchase), in cents.
    pub revenue_cents: i64,
    pub is_order: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyInput {
    /// Normalized identifiers, at least one not blocklisted.
    pub identifiers: Vec<Identifier>,
    pub traits: Traits,
    /// Where the identifiers came from (`api`, `import`, `shopify`, …).
    pub source: String,
    pub event: Option<NewEvent>,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifyAction {
    Created,
    Attached,
    Merged,
    /// The event's key was seen before: nothing changed.
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentifyOutcome {
    pub profile_id: Uuid,
    pub action: IdentifyAction,
    /// Profiles absorbed into `profile_id`, with the identifier that joined each.
    pub merged: Vec<(Uuid, Identifier)>,
    pub linked: Vec<Identifier>,
    pub dropped: Vec<Dropped>,
}

/// Sort orders of the customers list (an allowlist: never raw SQL from input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileSort {
    LastActive,
    Ltv,
    Created,
    Name,
}

impl ProfileSort {
    pub fn parse(s: &str) -> Option<ProfileSort> {
        Some(match s {
            "last_active" | "" => ProfileSort::LastActive,
            "ltv" => ProfileSort::Ltv,
            "created" => ProfileSort::Created,
            "name" => ProfileSort::Name,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileSort::LastActive => "last_active",
            ProfileSort::Ltv => "ltv",
            ProfileSort::Created => "created",
            ProfileSort::Name => "name",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProfileQuery {
    /// Name prefix, e-mail prefix (contains `@`), or phone digits.
    pub q: String,
    pub sort: Option<ProfileSort>,
    /// Keyset cursor: the last row of the previous page.
    pub after: Option<(i64, String, Uuid)>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct TimelineQuery {
    pub kinds: Vec<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Keyset cursor: (occurred_at, id) of the last entry seen.
    pub before: Option<(i64, Uuid)>,
    pub limit: u32,
}

/// What one customer's export holds.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileExport {
    pub profile: Profile,
    pub members: Vec<Profile>,
    pub identities: Vec<IdentityLink>,
    pub merges: Vec<MergeRecord>,
    pub timeline: Vec<TimelineEntry>,
}

pub(crate) fn display_name(first: &str, last: &str, email: &str, phone: &str) -> String {
    let n = format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_string();
    if !n.is_empty() {
        n
    } else if !email.is_empty() {
        email.to_string()
    } else {
        phone.to_string()
    }
}

/// The normalized name + company used to suggest duplicates.
pub fn name_key(first: &str, last: &str, company: &str) -> String {
    let name = format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_lowercase();
    if name.is_empty() || !name.contains(' ') {
        return String::new();
    }
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    format!("{}|{}", norm(&name), norm(company))
}

#[derive(sqlx::FromRow, Clone)]
struct FieldsRow {
    first_name: String,
    last_name: String,
    company: String,
    primary_email: String,
    primary_phone: String,
    ltv_cents: i64,
    order_count: i64,
    last_active_at: i64,
    merged_into: Option<Uuid>,
    /// The custom traits as stored (a JSON object).
    traits: String,
}

const FIELDS: &str =
    "first_name, last_name, company, primary_email, primary_phone, ltv_cents, order_count, last_active_at, merged_into, traits";

/// Recursive subtree of a profile through `merged_into` (portable CTE).
const SUBTREE: &str = "with recursive sub(id) as (select cast($2 as {uuid}) union all \
    select p.id from profiles p join sub on p.merged_into = sub.id where p.org_id = $1) select id from sub";

/// Reads the fields a resolution or merge decides on, from `FIELDS` at `off`.
fn fields_at(r: &Row, off: usize) -> Result<FieldsRow, StoreError> {
    Ok(FieldsRow {
        first_name: r.text(off)?,
        last_name: r.text(off + 1)?,
        company: r.text(off + 2)?,
        primary_email: r.text(off + 3)?,
        primary_phone: r.text(off + 4)?,
        ltv_cents: r.i64(off + 5)?,
        order_count: r.i64(off + 6)?,
        last_active_at: r.i64(off + 7)?,
        merged_into: r.opt_uuid(off + 8)?,
        traits: r.text(off + 9)?,
    })
}

/// The five fields a merge fills and an unmerge gives back, each decided
/// by `rule(column, survivor's value, absorbed's value)`, in the order
/// first name, last name, company, e-mail, phone.
fn each_field(
    s: &FieldsRow,
    a: &FieldsRow,
    mut rule: impl FnMut(&'static str, &str, &str) -> String,
) -> [String; 5] {
    [
        rule("first_name", &s.first_name, &a.first_name),
        rule("last_name", &s.last_name, &a.last_name),
        rule("company", &s.company, &a.company),
        rule("primary_email", &s.primary_email, &a.primary_email),
        rule("primary_phone", &s.primary_phone, &a.primary_phone),
    ]
}

/// Writes a profile's five fields (in `each_field` order) and the columns
/// derived from them (display name, its lowercase, the duplicate key).
/// Returns the display name.
async fn set_fields<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    [first, last, company, email, phone]: [String; 5],
    now: i64,
) -> Result<String, StoreError> {
    let dn = display_name(&first, &last, &email, &phone);
    let nk = name_key(&first, &last, &company);
    db.exec(
        q("update profiles set first_name = $3, last_name = $4, company = $5, primary_email = $6, primary_phone = $7,
           display_name = $8, name_lc = $9, name_key = $10, updated_at = $11 where org_id = $1 and id = $2")
        .bind(org)
        .bind(id)
        .bind(first)
        .bind(last)
        .bind(company)
        .bind(email)
        .bind(phone)
        .bind(dn.clone())
        .bind(dn.to_lowercase())
        .bind(nk)
        .bind(now),
    )
    .await?;
    Ok(dn)
}

/// A stored traits column as a map; anything unreadable counts as none
/// (the column is only ever written from a map).
fn trait_map(stored: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(stored).unwrap_or_default()
}

async fn set_traits<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    traits: serde_json::Map<String, serde_json::Value>,
) -> Result<(), StoreError> {
    db.exec(
        q("update profiles set traits = $3 where org_id = $1 and id = $2")
            .bind(org)
            .bind(id)
            .bind(serde_json::Value::Object(traits).to_string()),
    )
    .await?;
    Ok(())
}

async fn fields_of<D: Db>(db: &mut D, org: Uuid, id: Uuid) -> Result<FieldsRow, StoreError> {
    let sql = format!(
        "select {FIELDS} from profiles where org_id = $1 and id = $2{}",
        D::LOCK
    );
    fields_at(&db.one(q(sql).bind(org).bind(id)).await?, 0)
}

/// Resolves one event inside the caller's transaction: the body of
/// `Store::identify`, of the import's non-trivial rows, and of the intake
/// pipeline. Written once over [`Db`] for both engines.
pub(crate) async fn identify_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    rules: &IdentityRules,
    input: &IdentifyInput,
) -> Result<IdentifyOutcome, StoreError> {
    let out = resolve_tx(db, org, rules, input).await?;
    if let Some(e) = input
        .event
        .as_ref()
        .filter(|_| out.action != IdentifyAction::Replayed)
    {
        insert_entry(db, org, new_id(), out.profile_id, &input.source, e).await?;
    }
    Ok(out)
}

/// Writes an event's timeline entry on `profile` (a current profile: its
/// own root).
pub(crate) async fn insert_entry<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
    profile: Uuid,
    source: &str,
    e: &NewEvent,
) -> Result<(), StoreError> {
    db.exec(
        q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data, event_key)
           values ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9)")
        .bind(org)
        .bind(id)
        .bind(profile)
        .bind(e.occurred_at)
        .bind(&e.kind)
        .bind(source)
        .bind(&e.summary)
        .bind(&e.data)
        .bind(e.key.as_deref()),
    )
    .await?;
    Ok(())
}

/// Identifiers whose links one statement reads on SQLite.
const LINKS_PER_READ: usize = 64;

/// The statement that reads the links of `n` identifiers: the organization
/// bound as `$1`, then each identifier's kind and value.
///
/// On SQLite, a union of one primary-key seek per identifier. Given an
/// `or` of three or more (kind, value) pairs, its planner (which has no
/// statistics on these tables) reads every link of the organization
/// through the key's `org_id` prefix instead: a scan of a million links
/// for each event that carries an e-mail, a phone and a platform id.
/// PostgreSQL plans the `or` as index seeks, and cannot lock the rows of
/// a union (`for update`).
fn links_of_sql(n: usize, sqlite: bool, lock: &str) -> String {
    debug_assert!(!sqlite || n <= LINKS_PER_READ);
    const COLS: &str = "select kind, value, root_id, last_seen_at from identity_links";
    let pair = |i: usize| format!("kind = ${} and value = ${}", 2 + 2 * i, 3 + 2 * i);
    if sqlite {
        (0..n)
            .map(|i| format!("{COLS} where org_id = $1 and {}", pair(i)))
            .collect::<Vec<_>>()
            .join(" union all ")
    } else {
        let terms: Vec<String> = (0..n).map(|i| format!("({})", pair(i))).collect();
        format!(
            "{COLS} where org_id = $1 and ({}){lock}",
            terms.join(" or ")
        )
    }
}

/// [`identify_tx`] without writing the event's timeline entry: everything
/// the event does to identities and the profile, for a caller that writes
/// the entry itself once it knows more (the intake pipeline adds the
/// intent score, which needs the resolved profile, without writing the
/// row twice). A replayed event (its key already on the timeline) changes
/// nothing.
pub(crate) async fn resolve_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    rules: &IdentityRules,
    input: &IdentifyInput,
) -> Result<IdentifyOutcome, StoreError> {
    let now = input.now;
    // A replayed event changes nothing.
    if let Some(key) = input.event.as_ref().and_then(|e| e.key.as_deref()) {
        let seen = db
            .opt(
                q("select root_id from timeline where org_id = $1 and event_key = $2")
                    .bind(org)
                    .bind(key),
            )
            .await?;
        if let Some(row) = seen {
            return Ok(IdentifyOutcome {
                profile_id: row.uuid(0)?,
                action: IdentifyAction::Replayed,
                merged: vec![],
                linked: vec![],
                dropped: vec![],
            });
        }
    }
    // Every incoming identifier: one statement on PostgreSQL, one per
    // `LINKS_PER_READ` on SQLite.
    let mut owners: BTreeMap<Identifier, Uuid> = BTreeMap::new();
    let mut seen_at: BTreeMap<Identifier, i64> = BTreeMap::new();
    // (SQLite caps a compound select at 500 parts.)
    let chunk = if D::SQLITE {
        LINKS_PER_READ
    } else {
        usize::MAX
    };
    for ids in input.identifiers.chunks(chunk) {
        let sql = links_of_sql(ids.len(), D::SQLITE, D::LOCK);
        let mut query = q(sql).bind(org);
        for id in ids {
            query = query.bind(id.kind.as_str()).bind(&id.value);
        }
        for row in db.rows(query).await? {
            if let Ok(kind) = IdentifierKind::parse(&row.text(0)?) {
                let id = Identifier::new(kind, row.text(1)?);
                seen_at.insert(id.clone(), row.i64(3)?);
                owners.insert(id, row.uuid(2)?);
            }
        }
    }
    let mut roots: Vec<Uuid> = owners.values().copied().collect();
    roots.sort();
    roots.dedup();
    let mut views: BTreeMap<Uuid, ProfileView<Uuid>> = BTreeMap::new();
    let mut fields: BTreeMap<Uuid, FieldsRow> = BTreeMap::new();
    if !roots.is_empty() {
        let ph: Vec<String> = (0..roots.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "select id, created_at, {FIELDS} from profiles where org_id = $1 and id in ({}){}",
            ph.join(", "),
            D::LOCK
        );
        let mut query = q(sql).bind(org);
        for r in &roots {
            query = query.bind(*r);
        }
        for row in db.rows(query).await? {
            let f = fields_at(&row, 2)?;
            if f.merged_into.is_some() {
                // Merged concurrently since we read the link: the caller retries.
                return Err(StoreError::Conflict("profile merged concurrently".into()));
            }
            let id = row.uuid(0)?;
            views.insert(
                id,
                ProfileView {
                    id,
                    created_at: row.i64(1)?,
                    identifiers: Vec::new(),
                },
            );
            fields.insert(id, f);
        }
        // The profiles' other identifiers only matter to the plan when
        // something would be added to them (a new identifier, a second
        // profile): the limits count them. An event whose every usable
        // identifier already belongs to one profile — most events of a
        // known customer — attaches with nothing to link or drop whatever
        // that profile holds, so they are not read.
        let attach_only = roots.len() == 1
            && input
                .identifiers
                .iter()
                .all(|id| rules.blocked(id) || owners.contains_key(id));
        if !attach_only {
            let sql = format!(
                "select kind, value, root_id from identity_links where org_id = $1 and root_id in ({})",
                ph.join(", ")
            );
            let mut query = q(sql).bind(org);
            for r in &roots {
                query = query.bind(*r);
            }
            for row in db.rows(query).await? {
                if let (Ok(kind), Some(view)) = (
                    IdentifierKind::parse(&row.text(0)?),
                    views.get_mut(&row.uuid(2)?),
                ) {
                    view.identifiers.push(Identifier::new(kind, row.text(1)?));
                }
            }
        }
    }
    let p = plan(rules, &input.identifiers, &owners, &views)
        .map_err(|e| StoreError::Other(format!("identify planned nothing: {e}")))?;
    let (root, action, merged, f) = match &p.decision {
        Decision::Create => {
            let id = new_id();
            let created = input
                .event
                .as_ref()
                .map(|e| e.occurred_at.min(now))
                .unwrap_or(now);
            db.exec(
                q("insert into profiles (org_id, id, root_id, last_active_at, created_at, updated_at)
                   values ($1, $2, $2, $3, $3, $4)")
                .bind(org)
                .bind(id)
                .bind(created)
                .bind(now),
            )
            .await?;
            let f = FieldsRow {
                first_name: String::new(),
                last_name: String::new(),
                company: String::new(),
                primary_email: String::new(),
                primary_phone: String::new(),
                ltv_cents: 0,
                order_count: 0,
                last_active_at: created,
                merged_into: None,
                traits: "{}".into(),
            };
            (id, IdentifyAction::Created, vec![], f)
        }
        Decision::Attach { profile } => {
            let f = fields.remove(profile).ok_or(StoreError::NotFound)?;
            (*profile, IdentifyAction::Attached, vec![], f)
        }
        Decision::Merge { survivor, absorbed } => {
            let key = input.event.as_ref().and_then(|e| e.key.as_deref());
            for (a, via) in absorbed {
                merge_tx(db, org, *survivor, *a, via, key, "auto", &input.source, now).await?;
            }
            // The merges changed the survivor's fields: read them again.
            let f = fields_of(db, org, *survivor).await?;
            (*survivor, IdentifyAction::Merged, absorbed.clone(), f)
        }
    };
    if !p.link.is_empty() {
        let rows: Vec<String> = (0..p.link.len())
            .map(|i| format!("($1, ${}, ${}, $2, $2, $3, $3, $4)", 5 + 2 * i, 6 + 2 * i))
            .collect();
        let sql = format!(
            "insert into identity_links (org_id, kind, value, profile_id, root_id, first_seen_at, last_seen_at, source) values {}",
            rows.join(", ")
        );
        let mut query = q(sql).bind(org).bind(root).bind(now).bind(&input.source);
        for id in &p.link {
            query = query.bind(id.kind.as_str()).bind(&id.value);
        }
        db.exec(query).await?;
    }
    // Last-seen to the minute is enough; skipping fresh ones saves a write per event.
    for id in p
        .seen
        .iter()
        .filter(|i| seen_at.get(*i).is_none_or(|t| now - t > 60_000))
    {
        db.exec(
            q("update identity_links set last_seen_at = $4 where org_id = $1 and kind = $2 and value = $3")
                .bind(org)
                .bind(id.kind.as_str())
                .bind(&id.value)
                .bind(now),
        )
        .await?;
    }
    // Fields: given traits win; primary e-mail and phone fill when empty.
    let pick = |given: &str, cur: &str| {
        if given.trim().is_empty() {
            cur.to_string()
        } else {
            given.trim().to_string()
        }
    };
    let first = pick(&input.traits.first_name, &f.first_name);
    let last = pick(&input.traits.last_name, &f.last_name);
    let company = pick(&input.traits.company, &f.company);
    let accepted = || p.link.iter().chain(p.seen.iter());
    let first_of = |k: IdentifierKind| {
        accepted()
            .find(|i| i.kind == k)
            .map(|i| i.value.clone())
            .unwrap_or_default()
    };
    let email = if f.primary_email.is_empty() {
        first_of(IdentifierKind::Email)
    } else {
        f.primary_email.clone()
    };
    let phone = if f.primary_phone.is_empty() {
        first_of(IdentifierKind::Phone)
    } else {
        f.primary_phone.clone()
    };
    let (revenue, orders, active) = match &input.event {
        Some(e) => (
            e.revenue_cents,
            i64::from(e.is_order),
            f.last_active_at.max(e.occurred_at.min(now)),
        ),
        None => (0, 0, f.last_active_at.max(now)),
    };
    // Only the columns that change: SQLite rewrites the entries of every
    // index on a column an UPDATE sets, even to the same value, and the
    // profile indexes (name, name key, LTV, last active) are most of the
    // cost of an event that only attaches.
    let mut set = vec!["updated_at = $3".to_string()];
    let mut query = q(String::new()).bind(org).bind(root).bind(now);
    let mut n = 3;
    let mut col = |set: &mut Vec<String>, expr: &str| {
        n += 1;
        set.push(expr.replace("$N", &format!("${n}")));
    };
    if (&first, &last, &company, &email, &phone)
        != (
            &f.first_name,
            &f.last_name,
            &f.company,
            &f.primary_email,
            &f.primary_phone,
        )
        || matches!(p.decision, Decision::Create | Decision::Merge { .. })
    {
        let dn = display_name(&first, &last, &email, &phone);
        let nk = name_key(&first, &last, &company);
        for (expr, v) in [
            ("first_name = $N", first),
            ("last_name = $N", last),
            ("company = $N", company),
            ("primary_email = $N", email),
            ("primary_phone = $N", phone),
            ("name_lc = $N", dn.to_lowercase()),
            ("display_name = $N", dn),
            ("name_key = $N", nk),
        ] {
            col(&mut set, expr);
            query = query.bind(v);
        }
    }
    if revenue != 0 {
        col(
            &mut set,
            "own_ltv_cents = own_ltv_cents + $N, ltv_cents = ltv_cents + $N",
        );
        query = query.bind(revenue);
    }
    if orders != 0 {
        col(
            &mut set,
            "own_order_count = own_order_count + $N, order_count = order_count + $N",
        );
        query = query.bind(orders);
    }
    if active != f.last_active_at {
        col(&mut set, "last_active_at = $N");
        query = query.bind(active);
    }
    if !input.traits.custom.is_empty() {
        let (traits, changed) = traits::overlay(&trait_map(&f.traits), &input.traits.custom);
        if changed {
            col(&mut set, "traits = $N");
            query = query.bind(serde_json::Value::Object(traits).to_string());
        }
    }
    query.sql = format!(
        "update profiles set {} where org_id = $1 and id = $2",
        set.join(", ")
    );
    db.exec(query).await?;
    Ok(IdentifyOutcome {
        profile_id: root,
        action,
        merged,
        linked: p.link,
        dropped: p.dropped,
    })
}

/// Joins `absorbed`'s cluster to `survivor`'s inside the caller's
/// transaction, and records how. Returns the merge id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn merge_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    survivor: Uuid,
    absorbed: Uuid,
    via: &Identifier,
    event_key: Option<&str>,
    reason: &str,
    actor: &str,
    now: i64,
) -> Result<Uuid, StoreError> {
    if survivor == absorbed {
        return Err(StoreError::Conflict(
            "a profile cannot be merged into itself".into(),
        ));
    }
    let s = fields_of(db, org, survivor).await?;
    let a = fields_of(db, org, absorbed).await?;
    if s.merged_into.is_some() || a.merged_into.is_some() {
        return Err(StoreError::Conflict(
            "only current profiles can be merged".into(),
        ));
    }
    db.exec(
        q("update profiles set merged_into = $3 where org_id = $1 and id = $2")
            .bind(org)
            .bind(absorbed)
            .bind(survivor),
    )
    .await?;
    for table in ["profiles", "identity_links", "timeline"] {
        db.exec(
            q(format!(
                "update {table} set root_id = $3 where org_id = $1 and root_id = $2"
            ))
            .bind(org)
            .bind(absorbed)
            .bind(survivor),
        )
        .await?;
    }
    // Fill the survivor's empty fields from the absorbed profile; remember which.
    let mut filled: Vec<String> = Vec::new();
    let mut take = |name: &'static str, sv: &str, av: &str| -> String {
        if sv.is_empty() && !av.is_empty() {
            filled.push(name.to_string());
            av.to_string()
        } else {
            sv.to_string()
        }
    };
    let fields = each_field(&s, &a, &mut take);
    set_fields(db, org, survivor, fields, now).await?;
    // Custom traits the survivor lacks come from the absorbed side too,
    // remembered as `traits.<name>` so an unmerge can give them back.
    let mut s_traits = trait_map(&s.traits);
    let mut traits_filled = false;
    for (k, v) in trait_map(&a.traits) {
        if !s_traits.contains_key(&k) {
            filled.push(format!("traits.{k}"));
            s_traits.insert(k, v);
            traits_filled = true;
        }
    }
    if traits_filled {
        set_traits(db, org, survivor, s_traits).await?;
    }
    db.exec(
        q("update profiles set ltv_cents = ltv_cents + $3, order_count = order_count + $4, last_active_at = $5
           where org_id = $1 and id = $2")
        .bind(org)
        .bind(survivor)
        .bind(a.ltv_cents)
        .bind(a.order_count)
        .bind(s.last_active_at.max(a.last_active_at)),
    )
    .await?;
    let merge_id = new_id();
    let filled_json = serde_json::to_string(&filled).unwrap_or_else(|_| "[]".into());
    db.exec(
        q("insert into merges (org_id, id, survivor_id, absorbed_id, via_kind, via_value, event_key, reason, actor, filled, created_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(org)
        .bind(merge_id)
        .bind(survivor)
        .bind(absorbed)
        .bind(via.kind.as_str())
        .bind(&via.value)
        .bind(event_key)
        .bind(reason)
        .bind(actor)
        .bind(filled_json)
        .bind(now),
    )
    .await?;
    let a_name = display_name(
        &a.first_name,
        &a.last_name,
        &a.primary_email,
        &a.primary_phone,
    );
    let data = serde_json::json!({
        "merge_id": merge_id, "absorbed_id": absorbed, "via_kind": via.kind.as_str(),
        "via_value": via.value, "reason": reason
    });
    db.exec(
        q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data)
           values ($1, $2, $3, $3, $4, 'merge', $5, $6, $7)")
        .bind(org)
        .bind(new_id())
        .bind(survivor)
        .bind(now)
        .bind(actor)
        .bind(format!("Merged with {a_name} — same {} {}", via.kind, via.value))
        .bind(data.to_string()),
    )
    .await?;
    Ok(merge_id)
}

/// Undoes a merge inside the caller's transaction: both sides come back
/// with their own identities and events. Returns the restored profile.
pub(crate) async fn unmerge_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    merge_id: Uuid,
    actor: &str,
    now: i64,
) -> Result<Uuid, StoreError> {
    let m = db
        .one(q("select survivor_id, absorbed_id, undone_at, filled from merges where org_id = $1 and id = $2")
            .bind(org)
            .bind(merge_id))
        .await?;
    let (survivor_id, absorbed_id) = (m.uuid(0)?, m.uuid(1)?);
    let filled: Vec<String> = serde_json::from_str(&m.text(3)?).unwrap_or_default();
    if m.opt_i64(2)?.is_some() {
        return Err(StoreError::Conflict("this merge was already undone".into()));
    }
    let a = fields_of(db, org, absorbed_id).await?;
    if a.merged_into != Some(survivor_id) {
        return Err(StoreError::Conflict(
            "the profiles were changed since this merge".into(),
        ));
    }
    // Ancestors of the absorbed profile: the survivor up to the current root.
    let mut ancestors = vec![survivor_id];
    loop {
        let up = db
            .one(
                q("select merged_into from profiles where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(ancestors[ancestors.len() - 1]),
            )
            .await?
            .opt_uuid(0)?;
        match up {
            Some(u) if !ancestors.contains(&u) && ancestors.len() < 10_000 => ancestors.push(u),
            _ => break,
        }
    }
    let root = ancestors[ancestors.len() - 1];
    db.exec(
        q("update profiles set merged_into = null where org_id = $1 and id = $2")
            .bind(org)
            .bind(absorbed_id),
    )
    .await?;
    let subtree = SUBTREE.replace("{uuid}", D::UUID);
    db.exec(
        q(format!(
            "update profiles set root_id = $2 where org_id = $1 and id in ({subtree})"
        ))
        .bind(org)
        .bind(absorbed_id),
    )
    .await?;
    // Every row of the subtree still carries the cluster's root: the root
    // index finds them (there is no index on profile_id).
    for table in ["identity_links", "timeline"] {
        db.exec(
            q(format!(
                "update {table} set root_id = $2 where org_id = $1 and root_id = $3 and profile_id in ({subtree})"
            ))
            .bind(org)
            .bind(absorbed_id)
            .bind(root),
        )
        .await?;
    }
    for anc in &ancestors {
        db.exec(
            q("update profiles set ltv_cents = ltv_cents - $3, order_count = order_count - $4 where org_id = $1 and id = $2")
                .bind(org)
                .bind(*anc)
                .bind(a.ltv_cents)
                .bind(a.order_count),
        )
        .await?;
    }
    // Give back the fields the merge filled in, where they still hold the absorbed values.
    let s = fields_of(db, org, survivor_id).await?;
    let back = |name: &str, sv: &str, av: &str| {
        if filled.iter().any(|f| f == name) && sv == av {
            String::new()
        } else {
            sv.to_string()
        }
    };
    let dn = set_fields(db, org, survivor_id, each_field(&s, &a, back), now).await?;
    let (mut s_traits, a_traits) = (trait_map(&s.traits), trait_map(&a.traits));
    let before = s_traits.len();
    for name in filled.iter().filter_map(|f| f.strip_prefix("traits.")) {
        if s_traits
            .get(name)
            .is_some_and(|v| a_traits.get(name) == Some(v))
        {
            s_traits.remove(name);
        }
    }
    if s_traits.len() != before {
        set_traits(db, org, survivor_id, s_traits).await?;
    }
    // Last activity of both sides, from their own timelines now.
    for p in [root, absorbed_id] {
        db.exec(
            q("update profiles set last_active_at = coalesce(
                (select max(occurred_at) from timeline where org_id = $1 and root_id = $2 and kind <> 'merge' and kind <> 'unmerge'),
                created_at) where org_id = $1 and id = $2")
            .bind(org)
            .bind(p),
        )
        .await?;
    }
    db.exec(
        q("update merges set undone_at = $3, undone_by = $4 where org_id = $1 and id = $2")
            .bind(org)
            .bind(merge_id)
            .bind(now)
            .bind(actor),
    )
    .await?;
    let a_name = display_name(
        &a.first_name,
        &a.last_name,
        &a.primary_email,
        &a.primary_phone,
    );
    let data = serde_json::json!({"merge_id": merge_id, "absorbed_id": absorbed_id, "survivor_id": survivor_id});
    for (p, r, summary) in [
        (survivor_id, root, format!("Unmerged {a_name} (by {actor})")),
        (
            absorbed_id,
            absorbed_id,
            format!("Split back out of {dn} (by {actor})"),
        ),
    ] {
        db.exec(
            q("insert into timeline (org_id, id, profile_id, root_id, occurred_at, kind, source, summary, data)
               values ($1, $2, $3, $4, $5, 'unmerge', $6, $7, $8)")
            .bind(org)
            .bind(new_id())
            .bind(p)
            .bind(r)
            .bind(now)
            .bind(actor)
            .bind(summary)
            .bind(data.to_string()),
        )
        .await?;
    }
    Ok(absorbed_id)
}

impl crate::Store {
    /// Resolves one event's identifiers to a profile: create, attach
    /// or merge, in one transaction. Retries a few times when a concurrent
    /// resolution on PostgreSQL got there first (two events for one new
    /// person make one profile, not two).
    pub async fn identify(
        &self,
        org: Uuid,
        rules: &IdentityRules,
        input: &IdentifyInput,
    ) -> Result<IdentifyOutcome, StoreError> {
        let mut attempt = 0;
        loop {
            let (rules_c, input_c) = (rules.clone(), input.clone());
            let r = write_db!(self, |db| identify_tx(db, org, &rules_c, &input_c));
            match r {
                Err(StoreError::Conflict(_)) if attempt < 4 => attempt += 1,
                other => return other,
            }
        }
    }

    /// Merges `absorbed` into `survivor` by hand.
    pub async fn merge_profiles(
        &self,
        org: Uuid,
        survivor: Uuid,
        absorbed: Uuid,
        actor: &str,
        now: i64,
    ) -> Result<Uuid, StoreError> {
        let actor = actor.to_string();
        let via = Identifier::new(
            IdentifierKind::Custom("manual".into()),
            "chosen by a person",
        );
        write_db!(self, |db| merge_tx(
            db, org, survivor, absorbed, &via, None, "manual", &actor, now
        ))
    }

    /// Undoes a merge: both profiles come back with their own identities and
    /// events. Returns the restored profile's id.
    pub async fn unmerge(
        &self,
        org: Uuid,
        merge_id: Uuid,
        actor: &str,
        now: i64,
    ) -> Result<Uuid, StoreError> {
        let actor = actor.to_string();
        write_db!(self, |db| unmerge_tx(db, org, merge_id, &actor, now))
    }

    /// A profile by id; an absorbed profile's id resolves to its current root.
    pub async fn profile(&self, org: Uuid, id: Uuid) -> Result<Profile, StoreError> {
        let sql = format!(
            "select {} from profiles r join profiles p on p.org_id = r.org_id and p.root_id = r.id \
             where p.org_id = $1 and p.id = $2",
            profile_cols("r")
        );
        read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(id)
                .fetch_one(&mut *c)
                .await?)
        })
    }

    /// The profile row itself, merged or not.
    pub async fn profile_row(&self, org: Uuid, id: Uuid) -> Result<Profile, StoreError> {
        let sql = format!("select {PROFILE_COLS} from profiles where org_id = $1 and id = $2");
        read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(id)
                .fetch_one(&mut *c)
                .await?)
        })
    }

    /// Every identity linked to the cluster rooted at `root`.
    pub async fn profile_identities(
        &self,
        org: Uuid,
        root: Uuid,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select kind, value, profile_id, root_id, first_seen_at, last_seen_at, source from identity_links
                 where org_id = $1 and root_id = $2",
            )
            .bind(org)
            .bind(root)
            .fetch_all(&mut *c)
            .await?)
        })
        .map(|mut v: Vec<IdentityLink>| {
            // Sorted here: an ORDER BY kind tempts SQLite's planner (without
            // statistics) into walking the primary key over every link of the org.
            v.sort_by(|a, b| (a.kind.as_str(), a.first_seen_at).cmp(&(b.kind.as_str(), b.first_seen_at)));
            v
        })
    }

    /// The profiles in a cluster (the root and everything merged into it).
    pub async fn cluster_members(&self, org: Uuid, root: Uuid) -> Result<Vec<Profile>, StoreError> {
        let sql = format!("select {PROFILE_COLS} from profiles where org_id = $1 and root_id = $2");
        let mut v: Vec<Profile> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(root)
                .fetch_all(&mut *c)
                .await?)
        })?;
        v.sort_by_key(|p| (p.created_at, p.id));
        Ok(v)
    }

    /// Merges that involve the cluster: live ones explain why its members
    /// are one person; undone ones are history.
    pub async fn profile_merges(
        &self,
        org: Uuid,
        root: Uuid,
    ) -> Result<Vec<MergeRecord>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select m.id, m.survivor_id, m.absorbed_id, m.via_kind, m.via_value, m.event_key, m.reason, m.actor,
                        m.created_at, m.undone_at, m.undone_by
                 from merges m where m.org_id = $1 and m.survivor_id in (select id from profiles where org_id = $1 and root_id = $2)
                 union
                 select m.id, m.survivor_id, m.absorbed_id, m.via_kind, m.via_value, m.event_key, m.reason, m.actor,
                        m.created_at, m.undone_at, m.undone_by
                 from merges m where m.org_id = $1 and m.absorbed_id in (select id from profiles where org_id = $1 and root_id = $2)",
            )
            .bind(org)
            .bind(root)
            .fetch_all(&mut *c)
            .await?)
        })
        .map(|mut v: Vec<MergeRecord>| {
            // Newest first; two indexed lookups joined by UNION, sorted here.
            v.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));
            v
        })
    }

    pub async fn merge_record(&self, org: Uuid, id: Uuid) -> Result<MergeRecord, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select id, survivor_id, absorbed_id, via_kind, via_value, event_key, reason, actor, created_at, undone_at, undone_by
                 from merges where org_id = $1 and id = $2",
            )
            .bind(org)
            .bind(id)
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// The journey timeline of a cluster, newest first, by keyset pages.
    pub async fn timeline(
        &self,
        org: Uuid,
        root: Uuid,
        q: &TimelineQuery,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut sql = String::from(
            "select id, profile_id, root_id, occurred_at, kind, source, summary, data from timeline where org_id = $1 and root_id = $2",
        );
        let mut n = 2;
        let mut next = || {
            n += 1;
            n
        };
        let kinds_at: Vec<usize> = q.kinds.iter().map(|_| next()).collect();
        if !kinds_at.is_empty() {
            let ph: Vec<String> = kinds_at.iter().map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" and kind in ({})", ph.join(", ")));
        }
        let from_at = q.from.map(|_| next());
        if let Some(i) = from_at {
            sql.push_str(&format!(" and occurred_at >= ${i}"));
        }
        let to_at = q.to.map(|_| next());
        if let Some(i) = to_at {
            sql.push_str(&format!(" and occurred_at < ${i}"));
        }
        let before_at = q.before.map(|_| (next(), next()));
        if let Some((t, i)) = before_at {
            sql.push_str(&format!(
                " and (occurred_at < ${t} or (occurred_at = ${t} and id < ${i}))"
            ));
        }
        sql.push_str(&format!(
            " order by occurred_at desc, id desc limit {}",
            q.limit.clamp(1, 500)
        ));
        let q = q.clone();
        read!(self, |c| {
            let mut query = sqlx::query_as(&sql).bind(org).bind(root);
            for k in &q.kinds {
                query = query.bind(k);
            }
            if let Some(f) = q.from {
                query = query.bind(f);
            }
            if let Some(t) = q.to {
                query = query.bind(t);
            }
            if let Some((t, i)) = q.before {
                query = query.bind(t).bind(i);
            }
            Ok(query.fetch_all(&mut *c).await?)
        })
    }

    /// The customers list: current profiles, searched and sorted by an
    /// allowlisted order, paged by keyset.
    pub async fn list_profiles(
        &self,
        org: Uuid,
        q: &ProfileQuery,
    ) -> Result<Vec<Profile>, StoreError> {
        let sort = q.sort.unwrap_or(ProfileSort::LastActive);
        let (col, dir) = match sort {
            ProfileSort::LastActive => ("last_active_at", "desc"),
            ProfileSort::Ltv => ("ltv_cents", "desc"),
            ProfileSort::Created => ("created_at", "desc"),
            ProfileSort::Name => ("name_lc", "asc"),
        };
        let cols = profile_cols("p");
        let term = q.q.trim().to_lowercase();
        let mut binds: Vec<String> = Vec::new();
        // A search by e-mail or phone reads ranges of the identity links'
        // primary key and drives the query from the roots it finds (each
        // looked up by the profiles' primary key), rather than walking every
        // profile of the organization to test it against the links.
        let mut roots: Option<String> = None;
        let mut filter = String::new();
        if !term.is_empty() {
            if term.contains('@') {
                roots = Some(
                    "select distinct l.root_id from identity_links l where l.org_id = $1 and l.kind = 'email' \
                     and l.value >= $2 and l.value < $3"
                        .into(),
                );
                binds.push(term.clone());
                binds.push(format!("{term}\u{10ffff}"));
            } else if looks_like_phone(&term) {
                let region = self.identity_rules(org).await?.default_region;
                let search = phone_search(&term, &region).unwrap_or(PhoneSearch {
                    prefixes: Vec::new(),
                    suffix: None,
                });
                match self.phone_roots(org, &search, &mut binds).await? {
                    Some(r) => roots = Some(r),
                    None => filter.push_str(" and 1 = 0"),
                }
            } else {
                filter.push_str(" and p.name_lc >= $2 and p.name_lc < $3");
                binds.push(term.clone());
                binds.push(format!("{term}\u{10ffff}"));
            }
        }
        let mut sql = match roots {
            // `cross join` makes SQLite's planner keep the roots as the
            // outer loop; PostgreSQL plans it as the plain join it is.
            Some(r) => format!(
                "select {cols} from ({r}) m cross join profiles p \
                 where p.org_id = $1 and p.id = m.root_id and p.merged_into is null{filter}"
            ),
            None => format!(
                "select {cols} from profiles p where p.org_id = $1 and p.merged_into is null{filter}"
            ),
        };
        let after = q.after.clone();
        if after.is_some() {
            let (a, b) = (binds.len() + 2, binds.len() + 3);
            let cmp = if dir == "desc" { "<" } else { ">" };
            let value = if sort == ProfileSort::Name {
                format!("${a}")
            } else {
                format!("cast(${a} as bigint)")
            };
            sql.push_str(&format!(
                " and (p.{col} {cmp} {value} or (p.{col} = {value} and p.id {cmp} ${b}))"
            ));
        }
        sql.push_str(&format!(
            " order by p.{col} {dir}, p.id {dir} limit {}",
            q.limit.clamp(1, 200)
        ));
        read!(self, |c| {
            let mut query = sqlx::query_as(&sql).bind(org);
            for b in &binds {
                query = query.bind(b);
            }
            if let Some((num, text, id)) = &after {
                query = if sort == ProfileSort::Name {
                    query.bind(text.clone())
                } else {
                    query.bind(*num)
                };
                query = query.bind(*id);
            }
            Ok(query.fetch_all(&mut *c).await?)
        })
    }

    /// The roots a phone search finds, as a subquery: the phones in the
    /// search's E.164 prefix ranges, each a range of the links' primary key
    /// (org_id, kind, value) — a few index seeks however many phones the
    /// organization has. Only when no phone starts with the typed digits,
    /// and they could be the end of a number, does it fall back to matching
    /// the end of every phone (a scan). Binds are pushed to `binds`
    /// (numbered from $2). `None` when nothing can match.
    async fn phone_roots(
        &self,
        org: Uuid,
        search: &PhoneSearch,
        binds: &mut Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        let ranges: Vec<(String, Option<String>)> = search
            .prefixes
            .iter()
            .map(|p| (p.clone(), prefix_upper_bound(p)))
            .collect();
        let range_sql = |lo: usize, hi: Option<usize>| {
            let upper = hi
                .map(|h| format!(" and l.value < ${h}"))
                .unwrap_or_default();
            format!(
                "select l.root_id from identity_links l where l.org_id = $1 and l.kind = 'phone' and l.value >= ${lo}{upper}"
            )
        };
        let mut use_ranges = !ranges.is_empty();
        if let (Some(_), true) = (&search.suffix, use_ranges) {
            // Whether anything starts with the digits decides for every
            // page alike (a cursor must not flip the meaning midway).
            let mut any = false;
            for (lo, hi) in &ranges {
                let sql = format!("{} limit 1", range_sql(2, hi.as_ref().map(|_| 3)));
                let (lo, hi) = (lo.clone(), hi.clone());
                let found: Option<Uuid> = read!(self, |c| {
                    let mut q = sqlx::query_scalar(&sql).bind(org).bind(&lo);
                    if let Some(h) = &hi {
                        q = q.bind(h);
                    }
                    Ok(q.fetch_optional(&mut *c).await?)
                })?;
                if found.is_some() {
                    any = true;
                    break;
                }
            }
            use_ranges = any;
        }
        if use_ranges {
            let mut parts = Vec::new();
            for (lo, hi) in ranges {
                let lo_n = binds.len() + 2;
                binds.push(lo);
                let hi_n = hi.map(|h| {
                    binds.push(h);
                    binds.len() + 1
                });
                parts.push(range_sql(lo_n, hi_n));
            }
            // `union` (not `all`): a customer with two phones in range is one row.
            return Ok(Some(parts.join(" union ")));
        }
        Ok(search.suffix.as_ref().map(|digits| {
            binds.push(format!("%{digits}"));
            format!(
                "select distinct l.root_id from identity_links l where l.org_id = $1 and l.kind = 'phone' \
                 and l.value like ${}",
                binds.len() + 1
            )
        }))
    }

    /// How many current profiles, counted up to `cap` (a list header needs
    /// "100,000+", not a full scan of a million rows). Returns (count, capped).
    pub async fn count_profiles_capped(
        &self,
        org: Uuid,
        cap: i64,
    ) -> Result<(i64, bool), StoreError> {
        let n: i64 = read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select count(*) from (select 1 from profiles where org_id = $1 and merged_into is null limit $2) t",
            )
            .bind(org)
            .bind(cap + 1)
            .fetch_one(&mut *c)
            .await?)
        })?;
        Ok((n.min(cap), n > cap))
    }

    /// How many current profiles the organization has.
    pub async fn count_profiles(&self, org: Uuid) -> Result<i64, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select count(*) from profiles where org_id = $1 and merged_into is null",
            )
            .bind(org)
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// Possible duplicates: other current profiles with the same
    /// normalized name and company. They share no identifier (else they
    /// would be one profile already) and are never merged automatically.
    pub async fn possible_duplicates(
        &self,
        org: Uuid,
        root: Uuid,
    ) -> Result<Vec<Profile>, StoreError> {
        let sql = format!(
            "select {} from profiles p \
             where p.org_id = $1 and p.merged_into is null and p.id <> $2 \
             and p.name_key = (select name_key from profiles where org_id = $1 and id = $2 and name_key <> '') \
             limit 50",
            profile_cols("p")
        );
        read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(root)
                .fetch_all(&mut *c)
                .await?)
        })
    }

    /// Everything stored about one customer (the export).
    pub async fn export_profile(&self, org: Uuid, id: Uuid) -> Result<ProfileExport, StoreError> {
        let profile = self.profile(org, id).await?;
        let root = profile.id;
        let mut timeline = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .timeline(
                    org,
                    root,
                    &TimelineQuery {
                        before,
                        limit: 500,
                        ..Default::default()
                    },
                )
                .await?;
            let done = page.len() < 500;
            before = page.last().map(|e| (e.occurred_at, e.id));
            timeline.extend(page);
            if done {
                break;
            }
        }
        Ok(ProfileExport {
            members: self.cluster_members(org, root).await?,
            identities: self.profile_identities(org, root).await?,
            merges: self.profile_merges(org, root).await?,
            timeline,
            profile,
        })
    }

    /// Erases one customer: the whole cluster, its identities, merges
    /// and timeline. Returns the number of rows deleted.
    pub async fn erase_profile(&self, org: Uuid, id: Uuid) -> Result<u64, StoreError> {
        let root = self.profile(org, id).await?.id;
        write!(self, |c| {
            let mut tx = c.begin().await?;
            let mut n = 0;
            for sql in [
                "delete from timeline where org_id = $1 and root_id = $2",
                "delete from identity_links where org_id = $1 and root_id = $2",
                "delete from merges where org_id = $1 and (survivor_id in (select id from profiles where org_id = $1 and root_id = $2)
                    or absorbed_id in (select id from profiles where org_id = $1 and root_id = $2))",
                "delete from profiles where org_id = $1 and root_id = $2",
            ] {
                n += sqlx::query(sql).bind(org).bind(root).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// The organization's identity rules, or the defaults.
    pub async fn identity_rules(&self, org: Uuid) -> Result<IdentityRules, StoreError> {
        let raw: Option<String> = read!(self, |c| {
            Ok(
                sqlx::query_scalar("select rules from identity_rules where org_id = $1")
                    .bind(org)
                    .fetch_optional(&mut *c)
                    .await?,
            )
        })?;
        match raw {
            Some(r) => serde_json::from_str(&r)
                .map_err(|e| StoreError::Other(format!("stored identity rules unreadable: {e}"))),
            None => Ok(IdentityRules::default()),
        }
    }

    pub async fn set_identity_rules(
        &self,
        org: Uuid,
        rules: &IdentityRules,
        now: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(rules).map_err(|e| StoreError::Other(e.to_string()))?;
        write!(self, |c| {
            sqlx::query(
                "insert into identity_rules (org_id, rules, updated_at) values ($1, $2, $3)
                 on conflict (org_id) do update set rules = excluded.rules, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(&json)
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }
}

impl crate::Store {
    /// Benchmark and load-test support: inserts `n` synthetic customers
    /// (`bench{i}@example.com`, `+1555{i:07}`) with their two identity links
    /// in large multi-row batches, bypassing resolution (they share nothing).
    /// Returns the number of profiles inserted.
    pub async fn bulk_seed_profiles(
        &self,
        org: Uuid,
        start: u64,
        n: u64,
        now: i64,
    ) -> Result<u64, StoreError> {
        const CHUNK: u64 = 500;
        let mut done = 0;
        while done < n {
            let count = CHUNK.min(n - done);
            let first = start + done;
            write!(self, |c| {
                let mut tx = c.begin().await?;
                let ids: Vec<Uuid> = (0..count).map(|_| new_id()).collect();
                let mut sql = String::from(
                    "insert into profiles (org_id, id, root_id, first_name, last_name, display_name, name_lc, primary_email, primary_phone, last_active_at, created_at, updated_at) values ",
                );
                for k in 0..count as usize {
                    let b = k * 6;
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!(
                        "($1, ${}, ${}, 'Bench', ${}, ${}, ${}, ${}, ${}, $2, $2, $2)",
                        b + 3,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7,
                        b + 8
                    ));
                }
                let mut q = sqlx::query(&sql).bind(org).bind(now);
                for (k, id) in ids.iter().enumerate() {
                    let i = first + k as u64;
                    let last = format!("Customer{i}");
                    let name = format!("Bench {last}");
                    q = q
                        .bind(*id)
                        .bind(last)
                        .bind(name.clone())
                        .bind(name.to_lowercase())
                        .bind(format!("bench{i}@example.com"))
                        .bind(format!("+1555{:07}", i % 10_000_000));
                }
                q.execute(&mut *tx).await?;
                let mut sql = String::from(
                    "insert into identity_links (org_id, kind, value, profile_id, root_id, first_seen_at, last_seen_at, source) values ",
                );
                for k in 0..(count as usize * 2) {
                    let b = k * 3;
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!(
                        "($1, ${}, ${}, ${}, ${}, $2, $2, 'bench')",
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 5
                    ));
                }
                let mut q = sqlx::query(&sql).bind(org).bind(now);
                for (k, id) in ids.iter().enumerate() {
                    let i = first + k as u64;
                    q = q
                        .bind("email")
                        .bind(format!("bench{i}@example.com"))
                        .bind(*id);
                    q = q
                        .bind("phone")
                        .bind(format!("+1555{:07}", i % 10_000_000))
                        .bind(*id);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            })?;
            done += count;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::links_of_sql;

    /// Every identifier of an event is found by a seek of the links'
    /// primary key, however many the event carries; an `or` of three
    /// pairs made SQLite read the whole organization's links.
    #[test]
    fn links_of_several_identifiers_are_seeks_on_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for m in crate::migrate::SQLITE {
            conn.execute_batch(m.sql).unwrap();
        }
        for n in [1, 2, 3, 4, 6, super::LINKS_PER_READ] {
            let sql = links_of_sql(n, true, "");
            let mut st = conn.prepare(&format!("explain query plan {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; st.parameter_count()];
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let seeks = plan
                .iter()
                .filter(|l| l.contains("(org_id=? AND kind=? AND value=?)"))
                .count();
            assert_eq!(seeks, n, "{n} identifiers planned as {plan:?}");
        }
    }
}
