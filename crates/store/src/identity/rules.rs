//! The tenant's identity rules, and profiles seeded in bulk for the
//! benchmarks.

use crate::engine::{read, write};
use crate::{new_id, StoreError};
use bos_core::identity::IdentityRules;
use sqlx::Connection;
use uuid::Uuid;

impl crate::Store {
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
