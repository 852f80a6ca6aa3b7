//! Nudge campaigns and the nudge settings, for every caller (the campaign
//! builder and Settings → Nudges, and the API): a campaign is checked
//! against the organization's custom traits before it is stored, status
//! moves keep an archived campaign archived and wake the scheduler for the
//! step timers a resume sets, and settings are checked (a known time zone,
//! attribution windows in range) before they are saved.

use crate::rules::sentence;
use crate::scheduler::Scheduler;
use bos_core::nudge::{Campaign, QuietHours};
use bos_store::nudge::{CampaignStatus, NudgeSettings};
use bos_store::nudge_admin::CampaignRow;
use bos_store::{Store, StoreError};
use uuid::Uuid;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Attribution windows a tenant may choose.
pub const EMAIL_WINDOW_DAYS: std::ops::RangeInclusive<i64> = 1..=30;
pub const SMS_WINDOW_HOURS: std::ops::RangeInclusive<i64> = 1..=168;

/// Why a campaign or the nudge settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// An input is not acceptable; the text says what to change.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, detail: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        field,
        detail: detail.into(),
    }
}

/// The first problem of a campaign, with the builder's sentence.
pub fn invalid_campaign(e: &bos_core::nudge::CampaignError) -> CampaignError {
    invalid("campaign", sentence(&e.to_string()))
}

/// Validates a campaign against the tenant's custom trait names.
pub async fn check(store: &Store, org: Uuid, c: &Campaign) -> Result<(), CampaignError> {
    let names = store.custom_trait_names(org).await?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    c.validate(&refs).map_err(|e| invalid_campaign(&e))
}

/// Parses a status a person or script may set.
pub fn parse_status(s: &str) -> Result<CampaignStatus, CampaignError> {
    CampaignStatus::parse(s.trim()).ok_or_else(|| {
        invalid(
            "status",
            "Status must be one of draft, active, paused or archived.",
        )
    })
}

/// Moves a campaign to `to` and wakes the scheduler for the step timers a
/// resume set. An archived campaign stays archived.
pub async fn change_status(
    store: &Store,
    scheduler: &Scheduler,
    org: Uuid,
    row: &CampaignRow,
    to: CampaignStatus,
    now: i64,
) -> Result<(), CampaignError> {
    if row.status == CampaignStatus::Archived && to != CampaignStatus::Archived {
        return Err(invalid(
            "status",
            "This campaign is archived and stays so; create a new campaign (its definition can be copied over the API).",
        ));
    }
    let timers = store.set_campaign_status(org, row.id, to, now).await?;
    for at in timers {
        scheduler.wake(at);
    }
    Ok(())
}

/// Saves a new campaign after validating it.
pub async fn create(
    store: &Store,
    org: Uuid,
    c: &Campaign,
    status: CampaignStatus,
    now: i64,
) -> Result<Uuid, CampaignError> {
    if status == CampaignStatus::Archived {
        return Err(invalid(
            "status",
            "A new campaign starts as draft, active or paused.",
        ));
    }
    check(store, org, c).await?;
    Ok(store.create_campaign(org, c, status, now).await?)
}

/// Saves an edited campaign after validating it.
pub async fn update(
    store: &Store,
    org: Uuid,
    id: Uuid,
    c: &Campaign,
    now: i64,
) -> Result<(), CampaignError> {
    check(store, org, c).await?;
    Ok(store.update_campaign(org, id, c, now).await?)
}

/// Looks a campaign up in the caller's tenant: not found otherwise.
pub async fn find(store: &Store, org: Uuid, id: Uuid) -> Result<CampaignRow, CampaignError> {
    store
        .campaign(org, id)
        .await?
        .ok_or(CampaignError::Store(StoreError::NotFound))
}

/// Checks nudge settings; the sentence says what to change.
pub fn check_settings(s: &NudgeSettings) -> Result<(), CampaignError> {
    let tz = s.timezone.trim();
    let quiet = QuietHours {
        start_minute: 0,
        end_minute: 1,
    };
    if tz.is_empty() || bos_core::nudge::next_allowed(0, tz, &quiet).is_err() {
        return Err(invalid(
            "timezone",
            format!(
                "\u{201c}{tz}\u{201d} is not a time zone this server knows; use an IANA name such as Europe/Berlin or America/New_York."
            ),
        ));
    }
    let (e, m) = (s.windows.email_ms, s.windows.sms_ms);
    if !(EMAIL_WINDOW_DAYS.start() * DAY_MS..=EMAIL_WINDOW_DAYS.end() * DAY_MS).contains(&e) {
        return Err(invalid(
            "email_window",
            "The email attribution window runs from 1 to 30 days.",
        ));
    }
    if !(SMS_WINDOW_HOURS.start() * HOUR_MS..=SMS_WINDOW_HOURS.end() * HOUR_MS).contains(&m) {
        return Err(invalid(
            "sms_window",
            "The SMS attribution window runs from 1 to 168 hours (7 days).",
        ));
    }
    if let Err(e) = s.cap.validate() {
        let field = match e {
            bos_core::nudge::cap::CapError::OutOfRange { channel: "SMS", .. } => "sms_cap_per_day",
            _ => "email_cap_per_day",
        };
        return Err(invalid(field, format!("{e}.")));
    }
    Ok(())
}

/// Saves validated settings.
pub async fn save_settings(
    store: &Store,
    org: Uuid,
    s: &NudgeSettings,
    now: i64,
) -> Result<(), CampaignError> {
    check_settings(s)?;
    Ok(store.set_nudge_settings(org, s, now).await?)
}
