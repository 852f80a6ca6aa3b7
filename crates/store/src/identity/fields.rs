//! The profile fields a resolution or a merge decides on: reading them,
//! choosing each field between two profiles, and writing them back with
//! the derived name columns and the custom traits.

use super::*;
use crate::sql::{q, Db, Row};
use crate::StoreError;
use uuid::Uuid;

#[derive(sqlx::FromRow, Clone)]
pub(super) struct FieldsRow {
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) company: String,
    pub(super) primary_email: String,
    pub(super) primary_phone: String,
    pub(super) ltv_cents: i64,
    pub(super) order_count: i64,
    pub(super) last_active_at: i64,
    pub(super) merged_into: Option<Uuid>,
    /// The custom traits as stored (a JSON object).
    pub(super) traits: String,
}

pub(super) const FIELDS: &str =
    "first_name, last_name, company, primary_email, primary_phone, ltv_cents, order_count, last_active_at, merged_into, traits";

/// Recursive subtree of a profile through `merged_into` (portable CTE).
pub(super) const SUBTREE: &str = "with recursive sub(id) as (select cast($2 as {uuid}) union all \
    select p.id from profiles p join sub on p.merged_into = sub.id where p.org_id = $1) select id from sub";

/// Reads the fields a resolution or merge decides on (the `FIELDS` columns).
pub(super) fn fields_row(r: &Row) -> Result<FieldsRow, StoreError> {
    Ok(FieldsRow {
        first_name: r.text("first_name")?,
        last_name: r.text("last_name")?,
        company: r.text("company")?,
        primary_email: r.text("primary_email")?,
        primary_phone: r.text("primary_phone")?,
        ltv_cents: r.i64("ltv_cents")?,
        order_count: r.i64("order_count")?,
        last_active_at: r.i64("last_active_at")?,
        merged_into: r.opt_uuid("merged_into")?,
        traits: r.text("traits")?,
    })
}

/// The five fields a merge fills and an unmerge gives back, each decided
/// by `rule(column, survivor's value, absorbed's value)`, in the order
/// first name, last name, company, e-mail, phone.
pub(super) fn each_field(
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
pub(super) async fn set_fields<D: Db>(
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
pub(super) fn trait_map(stored: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(stored).unwrap_or_default()
}

pub(super) async fn set_traits<D: Db>(
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

pub(super) async fn fields_of<D: Db>(
    db: &mut D,
    org: Uuid,
    id: Uuid,
) -> Result<FieldsRow, StoreError> {
    let sql = format!(
        "select {FIELDS} from profiles where org_id = $1 and id = $2{}",
        D::LOCK
    );
    fields_row(&db.one(q(sql).bind(org).bind(id)).await?)
}
