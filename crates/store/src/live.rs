//! Live notifications between server processes on one PostgreSQL database:
//! the transport of the engine's live bus. A process sends short payloads
//! on one channel with `NOTIFY`; every process keeps one `LISTEN`
//! connection and hands what it hears to its own subscribers. What a
//! payload says is the bus's business; this module only carries text.
//!
//! SQLite has one server process per database file, so there is nothing to
//! carry: sending does nothing and there is no listener.

use crate::engine::Engine;
use crate::StoreError;

/// The channel every process listens on.
pub const LIVE_CHANNEL: &str = "bos_live";

/// The longest payload PostgreSQL accepts is 7,999 bytes (it refuses 8,000
/// and more with an error, which would lose the whole flush).
pub const MAX_PAYLOAD: usize = 7_999;

impl crate::Store {
    /// Sends each payload as one notification on [`LIVE_CHANNEL`], in order,
    /// in one statement (one round trip for a burst). Nothing on SQLite.
    /// Payloads over [`MAX_PAYLOAD`] bytes are a caller's bug: refused
    /// before anything is sent.
    pub async fn notify_live(&self, payloads: Vec<String>) -> Result<(), StoreError> {
        let Engine::Postgres(p) = &*self.engine else {
            return Ok(());
        };
        if payloads.is_empty() {
            return Ok(());
        }
        if let Some(big) = payloads.iter().find(|s| s.len() > MAX_PAYLOAD) {
            return Err(StoreError::Invalid(format!(
                "a live notification of {} bytes is over the {MAX_PAYLOAD}-byte limit",
                big.len()
            )));
        }
        let mut c = p.acquire().await?;
        // A function scan yields the array in order, so the notifications
        // are queued (and delivered) in the order given.
        sqlx::query("select pg_notify($1, p) from unnest($2::text[]) as p")
            .bind(LIVE_CHANNEL)
            .bind(payloads)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// This process's listener for live notifications (PostgreSQL only).
    pub async fn listen_live(&self) -> Result<Option<LiveListener>, StoreError> {
        match &*self.engine {
            Engine::Sqlite(_) => Ok(None),
            Engine::Postgres(p) => {
                let mut inner = sqlx::postgres::PgListener::connect_with(p).await?;
                inner.listen(LIVE_CHANNEL).await?;
                Ok(Some(LiveListener { inner }))
            }
        }
    }
}

/// One `LISTEN` connection on [`LIVE_CHANNEL`].
pub struct LiveListener {
    inner: sqlx::postgres::PgListener,
}

/// What a [`LiveListener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSignal {
    /// A notification's payload, as sent.
    Payload(String),
    /// The connection dropped and is listening again: whatever was sent
    /// meanwhile is lost, so readers should look at the data again.
    Reconnected,
}

impl LiveListener {
    /// Waits for the next signal. A lost connection is re-established
    /// (and listening again) before `Reconnected` is returned; an error
    /// means it could not be, and the next call tries again.
    pub async fn recv(&mut self) -> Result<LiveSignal, StoreError> {
        match self.inner.try_recv().await? {
            Some(n) => Ok(LiveSignal::Payload(n.payload().to_string())),
            None => Ok(LiveSignal::Reconnected),
        }
    }
}
