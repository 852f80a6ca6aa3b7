//! Merging two clusters and undoing a merge inside the caller's
//! transaction (rewriting `root_id`, never moving rows), the merge and
//! unmerge a person asks for, and erasing a customer.

use super::fields::*;
use super::*;
use crate::engine::{write, write_db};
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use bos_core::identity::{Identifier, IdentifierKind};
use sqlx::Connection;
use uuid::Uuid;

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
    // The inbox's copy of the survivor's value moves in the same write.
    crate::inbox::refresh_value(db, org, &[survivor]).await?;
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
        .bind(merge_summary(&a_name, reason, via))
        .bind(data.to_string()),
    )
    .await?;
    Ok(merge_id)
}

/// The timeline's words for a merge: what the two customers shared, or,
/// for a merge a person chose, just that ("same manual chosen by a person"
/// is what the identifier would read as).
pub fn merge_summary(other: &str, reason: &str, via: &Identifier) -> String {
    if reason == "manual" {
        format!("Merged with {other} by hand")
    } else {
        format!(
            "Merged with {other} — same {} {}",
            via.kind.as_str().replace('_', " "),
            via.value
        )
    }
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
    let (survivor_id, absorbed_id) = (m.uuid("survivor_id")?, m.uuid("absorbed_id")?);
    let filled: Vec<String> = serde_json::from_str(&m.text("filled")?).unwrap_or_default();
    if m.opt_i64("undone_at")?.is_some() {
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
            .opt_uuid("merged_into")?;
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
    crate::inbox::refresh_value(db, org, &ancestors).await?;
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
}
