//! Resolving one event's identifiers to a profile inside the caller's
//! transaction: create, attach or merge, with the event's timeline entry.

use super::fields::*;
use super::*;
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use bos_core::identity::{
    plan, traits, Decision, Identifier, IdentifierKind, IdentityRules, ProfileView,
};
use std::collections::BTreeMap;
use uuid::Uuid;

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
                profile_id: row.uuid("root_id")?,
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
            if let Ok(kind) = IdentifierKind::parse(&row.text("kind")?) {
                let id = Identifier::new(kind, row.text("value")?);
                seen_at.insert(id.clone(), row.i64("last_seen_at")?);
                owners.insert(id, row.uuid("root_id")?);
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
            let f = fields_row(&row)?;
            if f.merged_into.is_some() {
                // Merged concurrently since we read the link: the caller retries.
                return Err(StoreError::Conflict("profile merged concurrently".into()));
            }
            let id = row.uuid("id")?;
            views.insert(
                id,
                ProfileView {
                    id,
                    created_at: row.i64("created_at")?,
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
                    IdentifierKind::parse(&row.text("kind")?),
                    views.get_mut(&row.uuid("root_id")?),
                ) {
                    view.identifiers
                        .push(Identifier::new(kind, row.text("value")?));
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
    if revenue != 0 {
        // The inbox's copy of the value moves in the same write.
        crate::inbox::refresh_value(db, org, &[root]).await?;
    }
    Ok(IdentifyOutcome {
        profile_id: root,
        action,
        merged,
        linked: p.link,
        dropped: p.dropped,
    })
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
