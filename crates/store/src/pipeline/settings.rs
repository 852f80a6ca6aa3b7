//! A tenant's intake settings (identity rules, intent rules, lead
//! settings, the abandonment window) and the accounts Segment `group`
//! calls name.

use super::{PipelineSettings, DEFAULT_ABANDON_AFTER_MS};
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::intent::IntentRules;
use bos_core::leads::LeadSettings;
use bos_core::Millis;
use uuid::Uuid;

/// An account as a `group` call left it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CustomerGroup {
    pub group_id: String,
    pub traits: serde_json::Value,
    pub last_profile_id: Option<Uuid>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl crate::Store {
    /// One account of the organization, by its group id.
    pub async fn customer_group(
        &self,
        org: Uuid,
        group_id: &str,
    ) -> Result<Option<CustomerGroup>, StoreError> {
        let r = crate::sql::read_rows(
            self,
            q("select group_id, traits, last_profile_id, created_at, updated_at from customer_groups \
               where org_id = $1 and group_id = $2")
            .bind(org)
            .bind(group_id),
        )
        .await?;
        r.first()
            .map(|r| {
                Ok(CustomerGroup {
                    group_id: r.text("group_id")?,
                    traits: serde_json::from_str(&r.text("traits")?).unwrap_or_default(),
                    last_profile_id: r.opt_uuid("last_profile_id")?,
                    created_at: r.i64("created_at")?,
                    updated_at: r.i64("updated_at")?,
                })
            })
            .transpose()
    }
}

impl crate::Store {
    /// The tenant's intake settings, defaults where none were saved.
    pub async fn pipeline_settings(&self, org: Uuid) -> Result<PipelineSettings, StoreError> {
        let identity = self.identity_rules(org).await?;
        let r = crate::sql::read_rows(
            self,
            q("select intent_rules, lead_settings, abandon_after_ms from intake_settings where org_id = $1").bind(org),
        )
        .await?;
        let mut s = PipelineSettings {
            identity,
            intent: IntentRules::default(),
            leads: LeadSettings::default(),
            abandon_after_ms: DEFAULT_ABANDON_AFTER_MS,
        };
        if let Some(r) = r.first() {
            if let Some(t) = r.opt_text("intent_rules")? {
                s.intent = serde_json::from_str(&t)
                    .map_err(|e| StoreError::Other(format!("stored intent rules: {e}")))?;
            }
            if let Some(t) = r.opt_text("lead_settings")? {
                s.leads = serde_json::from_str(&t)
                    .map_err(|e| StoreError::Other(format!("stored lead settings: {e}")))?;
            }
            if let Some(ms) = r.opt_i64("abandon_after_ms")? {
                s.abandon_after_ms = ms;
            }
        }
        Ok(s)
    }

    /// Saves the tenant's intent rules (validated by the caller).
    pub async fn set_intent_rules(
        &self,
        org: Uuid,
        rules: &IntentRules,
        now: Millis,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(rules).map_err(|e| StoreError::Other(e.to_string()))?;
        write_db!(self, |db| async move {
            db.exec(
                q("insert into intake_settings (org_id, intent_rules, updated_at) values ($1, $2, $3) \
                   on conflict (org_id) do update set intent_rules = excluded.intent_rules, updated_at = excluded.updated_at")
                .bind(org)
                .bind(text)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }

    /// Saves the tenant's lead settings and abandonment window.
    pub async fn set_lead_settings(
        &self,
        org: Uuid,
        s: &LeadSettings,
        abandon_after_ms: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(s).map_err(|e| StoreError::Other(e.to_string()))?;
        write_db!(self, |db| async move {
            db.exec(
                q("insert into intake_settings (org_id, lead_settings, abandon_after_ms, updated_at) values ($1, $2, $3, $4) \
                   on conflict (org_id) do update set lead_settings = excluded.lead_settings, \
                   abandon_after_ms = excluded.abandon_after_ms, updated_at = excluded.updated_at")
                .bind(org)
                .bind(text)
                .bind(abandon_after_ms)
                .bind(now),
            )
            .await?;
            Ok(())
        })
    }
}
