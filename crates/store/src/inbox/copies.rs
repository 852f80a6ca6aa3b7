//! The inbox copies other parts write: a submitted form's message and a
//! sent nudge become messages in the customer's conversation. A form's
//! copy is written after its event is committed; so that it is never
//! lost, the commit that makes it due also sets a timer job (in the same
//! transaction): the engine writes the copy at once and cancels the
//! timer; when that write fails (or the process stops before it), the
//! timer runs after [`INBOX_COPY_GRACE_MS`] and is retried with the
//! scheduler's backoff until the copy is written. A sent nudge's copy is
//! written in the very transaction that records the send, inside a
//! savepoint ([`show_nudge_tx`]): a second write per nudge would halve
//! how many nudges a second the one writer records. Only when the inbox
//! refuses it is the savepoint undone and the same kind of timer set in
//! its place, so the send still commits. Both copies are keyed (the
//! form's event id, the nudge's execution), so writing one twice stores
//! one message.

use bos_core::inbox::{AuthorKind, Channel, DeliveryStatus};
use bos_core::Millis;
use serde_json::json;
use uuid::Uuid;

use super::write::{record_outbound_tx, OutboundMessage, Recorded};
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::StoreError;

/// The job that copies a submitted form's message into the inbox.
pub const INBOX_FORM_JOB: &str = "inbox.form";
/// The job that shows a sent nudge in the customer's conversation.
pub const INBOX_NUDGE_JOB: &str = "inbox.nudge";
/// How long the timer waits for the direct write before it writes the
/// copy itself: far longer than the direct write takes.
pub const INBOX_COPY_GRACE_MS: Millis = 60_000;

/// The timer's key for a form's event.
pub fn form_copy_key(event: Uuid) -> String {
    format!("form:{event}")
}

/// The timer's key for a nudge's execution.
pub fn nudge_copy_key(execution: Uuid) -> String {
    format!("nudge:{execution}")
}

/// Sets the timer that writes a form's message into the inbox, inside
/// the caller's transaction; returns when it is due.
pub(crate) async fn form_copy_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    event: Uuid,
    profile: Uuid,
    text: &str,
    now: Millis,
) -> Result<Millis, StoreError> {
    let due = now + INBOX_COPY_GRACE_MS;
    // `at`: the message keeps the time the form was applied, not the
    // time a late retry wrote it.
    let payload =
        json!({"event_id": event, "profile_id": profile, "text": text, "at": now}).to_string();
    crate::timers::set(
        db,
        org,
        INBOX_FORM_JOB,
        &form_copy_key(event),
        payload,
        due,
        now,
    )
    .await?;
    Ok(due)
}

/// Sets the timer that shows a sent nudge in the inbox, inside the
/// caller's transaction; returns when it is due.
pub(crate) async fn nudge_copy_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    execution: Uuid,
    now: Millis,
) -> Result<Millis, StoreError> {
    let due = now + INBOX_COPY_GRACE_MS;
    let payload = json!({"execution_id": execution}).to_string();
    crate::timers::set(
        db,
        org,
        INBOX_NUDGE_JOB,
        &nudge_copy_key(execution),
        payload,
        due,
        now,
    )
    .await?;
    Ok(due)
}

/// Where a sent nudge's copy went, from [`show_nudge_tx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NudgeCopy {
    /// Written in the send's transaction, in this conversation (`None`
    /// when the execution has not gone out, so there is nothing to show).
    Shown(Option<Uuid>),
    /// The inbox refused it: the timer set in its place is due then.
    Later(Millis),
}

/// Writes a sent nudge's message in the customer's conversation, as
/// automation, inside the caller's transaction; `None` before the
/// execution has gone out (`sent` or `delivered`) or for another
/// organization's id. Writing it twice stores one message: the
/// provider's id (or, for the development sink, the execution's) keys it.
pub(crate) async fn nudge_message_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    execution: Uuid,
    now: Millis,
) -> Result<Option<Recorded>, StoreError> {
    let Some(r) = db
        .opt(
            q(
                "select r.id as root_id, r.display_name, r.primary_email, r.primary_phone, \
               e.channel, e.subject, e.body, e.provider_id, e.message_id, e.status, \
               c.name as campaign_name from nudge_executions e \
               join profiles p on p.org_id = e.org_id and p.id = e.profile_id \
               join profiles r on r.org_id = p.org_id and r.id = p.root_id \
               left join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               where e.org_id = $1 and e.id = $2 and e.status in ('sent', 'delivered')",
            )
            .bind(org)
            .bind(execution),
        )
        .await?
    else {
        return Ok(None);
    };
    let channel = match crate::nudge::parse_channel(&r.text("channel")?)? {
        bos_core::nudge::Channel::Sms => Channel::Sms,
        _ => Channel::Email,
    };
    let campaign = r.opt_text("campaign_name")?.unwrap_or_default();
    let message = OutboundMessage {
        profile_id: r.uuid("root_id")?,
        channel,
        author: AuthorKind::Automation,
        author_id: None,
        author_name: if campaign.is_empty() {
            "Nudge".to_string()
        } else {
            format!("Nudge: {campaign}")
        },
        text: r.text("body")?,
        html: None,
        subject: r.opt_text("subject")?,
        attachments: serde_json::Value::Array(Vec::new()),
        // The provider's id lets its receipts find the message; without
        // one (the development sink) the execution's id keeps it to one.
        provider_message_id: Some(
            r.opt_text("provider_id")?
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| format!("nudge:{execution}")),
        ),
        status: if r.text("status")? == "delivered" {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Sent
        },
        // Without angle brackets, so a reply quoting it threads.
        email_message_id: (channel == Channel::Email)
            .then(|| r.text("message_id"))
            .transpose()?
            .map(|m| m.trim_matches(['<', '>']).to_string()),
        in_reply_to: None,
        references: Vec::new(),
        people: super::people_text(
            &r.text("display_name")?,
            &r.text("primary_email")?,
            &r.text("primary_phone")?,
        ),
        at: now,
    };
    record_outbound_tx(db, org, &message).await.map(Some)
}

/// Shows a nudge whose send this transaction records: its message in
/// a savepoint, or, when the inbox refuses it, the timer that writes it
/// later (the savepoint undone, the send kept).
pub(crate) async fn show_nudge_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    execution: Uuid,
    now: Millis,
) -> Result<NudgeCopy, StoreError> {
    db.exec(q("savepoint nudge_copy")).await?;
    match nudge_message_tx(db, org, execution, now).await {
        Ok(shown) => {
            db.exec(q("release savepoint nudge_copy")).await?;
            Ok(NudgeCopy::Shown(shown.map(|r| r.conversation_id())))
        }
        Err(e) => {
            tracing::warn!(%org, %execution, error = %e, "sent nudge not shown in the inbox yet; its timer will retry");
            db.exec(q("rollback to savepoint nudge_copy")).await?;
            db.exec(q("release savepoint nudge_copy")).await?;
            Ok(NudgeCopy::Later(
                nudge_copy_tx(db, org, execution, now).await?,
            ))
        }
    }
}

impl crate::Store {
    /// Shows a sent nudge in the customer's conversation (the timer's
    /// retry, see [`NudgeCopy::Later`]); `None` before it has gone out.
    pub async fn show_nudge(
        &self,
        org: Uuid,
        execution: Uuid,
        now: Millis,
    ) -> Result<Option<Recorded>, StoreError> {
        write_db!(self, |db| nudge_message_tx(db, org, execution, now))
    }

    /// Makes every message insert fail (`broken`) or work again, to test
    /// that a failed inbox copy is retried to success. Tests only.
    #[doc(hidden)]
    pub async fn break_inbox_writes_for_test(&self, broken: bool) -> Result<(), StoreError> {
        use crate::engine::write_db;
        use crate::sql::q;
        let sqlite = matches!(self.kind(), crate::EngineKind::Sqlite);
        let statements: Vec<&'static str> = match (sqlite, broken) {
            (true, true) => vec![
                "create trigger test_inbox_outage before insert on messages \
                 begin select raise(abort, 'inbox outage (test)'); end",
            ],
            (true, false) => vec!["drop trigger if exists test_inbox_outage"],
            (false, true) => vec![
                "create or replace function test_inbox_outage() returns trigger language plpgsql \
                 as 'begin raise exception ''inbox outage (test)''; end'",
                "create trigger test_inbox_outage before insert on messages \
                 for each row execute function test_inbox_outage()",
            ],
            (false, false) => vec!["drop trigger if exists test_inbox_outage on messages"],
        };
        write_db!(self, |db| async move {
            for s in statements {
                db.exec(q(s)).await?;
            }
            Ok(())
        })
    }
}
