//! The customer's lifetime value as the inbox keeps it: a copy on the
//! conversation row (`customer_ltv_cents`), so the "highest value first"
//! list walks an index instead of joining every profile and sorting. The
//! writes that change a profile's value (an order, a merge, an unmerge)
//! call [`refresh_value`] in the same transaction, and a new conversation
//! starts with its profile's value, so the copy is never behind.

use uuid::Uuid;

use crate::sql::{q, Db};
use crate::StoreError;

/// Copies the current lifetime value of each of `profiles` onto its
/// conversation, if it has one. Cheap: one indexed update per profile
/// (`(org_id, profile_id)` is unique on conversations).
pub(crate) async fn refresh_value<D: Db>(
    db: &mut D,
    org: Uuid,
    profiles: &[Uuid],
) -> Result<(), StoreError> {
    for profile in profiles {
        db.exec(
            q("update conversations set customer_ltv_cents = \
               coalesce((select p.ltv_cents from profiles p where p.org_id = $1 and p.id = $2), 0) \
               where org_id = $1 and profile_id = $2")
            .bind(org)
            .bind(*profile),
        )
        .await?;
    }
    Ok(())
}
