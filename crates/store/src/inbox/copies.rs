//! The inbox copies other parts write: a submitted form's message and a
//! sent nudge become messages in the customer's conversation after the
//! form's event or the nudge's send is committed. So that the copy is
//! never lost, the commit that makes it due also sets a timer job (in the
//! same transaction): the engine writes the copy at once and cancels the
//! timer; when that write fails (or the process stops before it), the
//! timer runs after [`INBOX_COPY_GRACE_MS`] and is retried with the
//! scheduler's backoff until the copy is written. Both copies are keyed
//! (the form's event id, the nudge's execution), so writing one twice
//! stores one message.

use bos_core::Millis;
use serde_json::json;
use uuid::Uuid;

use crate::sql::Db;
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

impl crate::Store {
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
