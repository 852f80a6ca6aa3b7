//! Intake storage: the sources a tenant sends events from,
//! and the raw inbound events, written before an endpoint answers 2xx.
//!
//! Dedupe lives in the schema, not in a read-then-write: each event carries
//! its provider's key (`messageId`, `webhook-id`) and the insert says
//! `on conflict do nothing` against the unique `(org_id, source_id,
//! external_id)`. A retried delivery — even two copies racing each other —
//! therefore leaves exactly one row and still answers 2xx.
//! All events of one request go in one transaction, so a request is either
//! wholly stored or not at all, and its 2xx means it is durable.

use crate::engine::{read, write, write_db};
use crate::secrets::source_context;
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Where events come from: each kind has its public endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Segment,
    Webhook,
    Shopify,
    Form,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Segment => "segment",
            SourceKind::Webhook => "webhook",
            SourceKind::Shopify => "shopify",
            SourceKind::Form => "form",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        Some(match s {
            "segment" => SourceKind::Segment,
            "webhook" => SourceKind::Webhook,
            "shopify" => SourceKind::Shopify,
            "form" => SourceKind::Form,
            _ => return None,
        })
    }
}

/// One source. `secret` is the Standard Webhooks secret of a `webhook`
/// source, or the Shopify app's client secret of a `shopify` source (both
/// needed to verify), or the public form key (`fk_…`) of a `form` source
/// (it is in the landing page's HTML); a Segment write key is only kept as
/// a hash and never appears here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: SourceKind,
    pub name: String,
    pub secret: Option<String>,
    /// Settings as a JSON object (a form's `thank_you_url`); see
    /// [`Source::thank_you_url`].
    pub config: Option<String>,
    pub created_at: i64,
}

impl Source {
    /// A form source's thank-you page, where a classic form post is sent
    /// after it was stored.
    pub fn thank_you_url(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.config.as_deref()?).ok()?;
        v.get("thank_you_url")?.as_str().map(str::to_owned)
    }
}

/// A source's settings JSON with a thank-you page.
pub fn form_config(thank_you_url: Option<&str>) -> Option<String> {
    thank_you_url.map(|u| serde_json::json!({ "thank_you_url": u }).to_string())
}

/// What `create_source` needs: the credential in the form it is stored.
#[derive(Debug, Clone)]
pub struct NewSource {
    pub kind: SourceKind,
    pub name: String,
    pub secret: Option<String>,
    /// SHA-256 of a write key or form key.
    pub key_hash: Option<Vec<u8>>,
    /// Settings as a JSON object, see [`Source::config`].
    pub config: Option<String>,
}

/// One event to store: its dedupe key, its type and its raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInbound {
    pub external_id: String,
    pub kind: String,
    pub payload: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    pub org_id: Uuid,
    pub id: Uuid,
    pub source_id: Uuid,
    pub external_id: String,
    pub kind: String,
    pub received_at: i64,
    pub payload: String,
    pub status: String,
}

/// What one `ingest` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ingested {
    pub inserted: u64,
    /// Events already stored (or repeated within the request): unchanged.
    pub duplicates: u64,
}

#[derive(sqlx::FromRow)]
struct SourceRow {
    org_id: Uuid,
    id: Uuid,
    kind: String,
    name: String,
    secret: Option<String>,
    config: Option<String>,
    created_at: i64,
}

impl TryFrom<SourceRow> for Source {
    type Error = StoreError;
    fn try_from(r: SourceRow) -> Result<Source, StoreError> {
        Ok(Source {
            org_id: r.org_id,
            id: r.id,
            kind: SourceKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown source kind {:?}", r.kind)))?,
            name: r.name,
            secret: r.secret,
            config: r.config,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    org_id: Uuid,
    id: Uuid,
    source_id: Uuid,
    external_id: String,
    kind: String,
    received_at: i64,
    payload: String,
    status: String,
}

impl From<EventRow> for InboundEvent {
    fn from(r: EventRow) -> Self {
        InboundEvent {
            org_id: r.org_id,
            id: r.id,
            source_id: r.source_id,
            external_id: r.external_id,
            kind: r.kind,
            received_at: r.received_at,
            payload: r.payload,
            status: r.status,
        }
    }
}

const SOURCE_COLS: &str = "org_id, id, kind, name, secret, config, created_at";
const EVENT_COLS: &str = "org_id, id, source_id, external_id, kind, received_at, payload, status";

impl crate::Store {
    /// A source row with its credential opened.
    fn open_source(&self, row: SourceRow) -> Result<Source, StoreError> {
        let mut s = Source::try_from(row)?;
        if let Some(v) = &s.secret {
            s.secret = Some(self.keyring().open(&source_context(s.org_id, s.id), v)?);
        }
        Ok(s)
    }

    pub async fn create_source(
        &self,
        org: Uuid,
        n: NewSource,
        now: i64,
    ) -> Result<Source, StoreError> {
        let src = Source {
            org_id: org,
            id: new_id(),
            kind: n.kind,
            name: n.name,
            secret: n.secret,
            config: n.config,
            created_at: now,
        };
        let mut s = src.clone();
        // The credential is sealed for this row (see `secrets`).
        s.secret = s
            .secret
            .map(|v| self.keyring().seal(&source_context(s.org_id, s.id), &v));
        let key_hash = n.key_hash;
        write!(self, |c| {
            sqlx::query(
                "insert into sources (org_id, id, kind, name, secret, key_hash, config, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s.org_id)
            .bind(s.id)
            .bind(s.kind.as_str())
            .bind(&s.name)
            .bind(&s.secret)
            .bind(&key_hash)
            .bind(&s.config)
            .bind(s.created_at)
            .execute(&mut *c)
            .await?;
            Ok(())
        })?;
        Ok(src)
    }

    /// The organization's sources, oldest first.
    pub async fn sources(&self, org: Uuid) -> Result<Vec<Source>, StoreError> {
        let sql = format!("select {SOURCE_COLS} from sources where org_id = $1 order by id");
        let rows: Vec<SourceRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql).bind(org).fetch_all(&mut *c).await?)
        })?;
        rows.into_iter().map(|r| self.open_source(r)).collect()
    }

    /// One source of `org`; NotFound for another organization's id.
    pub async fn source(&self, org: Uuid, id: Uuid) -> Result<Source, StoreError> {
        let sql = format!("select {SOURCE_COLS} from sources where org_id = $1 and id = $2");
        let row: SourceRow = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(id)
                .fetch_one(&mut *c)
                .await?)
        })?;
        self.open_source(row)
    }

    /// A system lookup for a public endpoint: the source whose write key or
    /// form key hashes to `hash`. This is how the tenant of a Segment call
    /// or a form post is found.
    pub async fn source_by_key_hash(&self, hash: &[u8]) -> Result<Option<Source>, StoreError> {
        if let Some(s) = self.source_cache.by_key(hash) {
            return Ok(Some(s));
        }
        let sql = format!("select {SOURCE_COLS} from sources where key_hash = $1");
        let key = hash.to_vec();
        let row: Option<SourceRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(&key)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        let src = row.map(|r| self.open_source(r)).transpose()?;
        if let Some(s) = &src {
            self.source_cache.keep_key(hash.to_vec(), s.clone());
        }
        Ok(src)
    }

    /// A system lookup for a public endpoint: the source named by the id in
    /// its URL, whatever its organization. The caller
    /// still has to prove it holds the source's secret.
    pub async fn source_by_id(&self, id: Uuid) -> Result<Option<Source>, StoreError> {
        if let Some(s) = self.source_cache.by_id(id) {
            return Ok(Some(s));
        }
        let sql = format!("select {SOURCE_COLS} from sources where id = $1");
        let row: Option<SourceRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        let src = row.map(|r| self.open_source(r)).transpose()?;
        if let Some(s) = &src {
            self.source_cache.keep_id(s.clone());
        }
        Ok(src)
    }

    /// Stores the events of one request in one transaction. An event whose
    /// key is already stored for this source changes nothing and counts as
    /// a duplicate. Returns only after the commit.
    pub async fn ingest(
        &self,
        org: Uuid,
        source: Uuid,
        events: Vec<NewInbound>,
        now: i64,
    ) -> Result<Ingested, StoreError> {
        if events.is_empty() {
            return Ok(Ingested::default());
        }
        // On the writer thread's own connection (prepared statements, no
        // thread hop per statement): this is the hottest write of intake.
        write_db!(self, |db| async move {
            let mut out = Ingested::default();
            for e in events {
                let n = db
                    .exec(
                        q("insert into inbound_events (org_id, id, source_id, external_id, kind, received_at, payload, status) \
                           values ($1, $2, $3, $4, $5, $6, $7, 'pending') on conflict do nothing")
                        .bind(org)
                        .bind(new_id())
                        .bind(source)
                        .bind(e.external_id)
                        .bind(e.kind)
                        .bind(now)
                        .bind(e.payload),
                    )
                    .await?;
                if n == 1 {
                    out.inserted += 1;
                } else {
                    out.duplicates += 1;
                }
            }
            Ok(out)
        })
    }

    /// How many events a source has stored.
    pub async fn inbound_count(&self, org: Uuid, source: Uuid) -> Result<u64, StoreError> {
        let n: i64 = read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select count(*) from inbound_events where org_id = $1 and source_id = $2",
            )
            .bind(org)
            .bind(source)
            .fetch_one(&mut *c)
            .await?)
        })?;
        Ok(n as u64)
    }

    /// A source's most recent events, newest first.
    pub async fn recent_inbound(
        &self,
        org: Uuid,
        source: Uuid,
        limit: u32,
    ) -> Result<Vec<InboundEvent>, StoreError> {
        let sql = format!(
            "select {EVENT_COLS} from inbound_events where org_id = $1 and source_id = $2 \
             order by received_at desc, id desc limit $3"
        );
        let rows: Vec<EventRow> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(source)
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?)
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl crate::Store {
    /// Replaces a source's write-key hash (a rotated Segment key: the old
    /// key stops working at once).
    pub async fn set_source_key_hash(
        &self,
        org: Uuid,
        id: Uuid,
        key_hash: Vec<u8>,
    ) -> Result<(), StoreError> {
        let n = write!(self, |c| {
            Ok(
                sqlx::query("update sources set key_hash = $3 where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(&key_hash)
                    .execute(&mut *c)
                    .await?
                    .rows_affected(),
            )
        })?;
        // The old key must stop working now, not when its entry expires.
        self.source_cache.clear();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// How long a looked-up source is reused. Sources never change except a
/// rotated write key, which clears this process's cache at once; another
/// replica (PostgreSQL) sees a rotation within this time.
const SOURCE_TTL: Duration = Duration::from_secs(1);

/// The sources public endpoints looked up in the last [`SOURCE_TTL`], by
/// write-key hash and by id. Every Segment call and webhook names its
/// source, and on SQLite the lookup was a round trip to a read
/// connection's thread — a quarter of the CPU of ingest under load. Only
/// sources that exist are kept, so unknown keys cannot grow it.
#[derive(Default)]
pub(crate) struct SourceCache {
    by_key: Mutex<HashMap<Vec<u8>, (Source, Instant)>>,
    by_id: Mutex<HashMap<Uuid, (Source, Instant)>>,
}

impl SourceCache {
    fn by_key(&self, hash: &[u8]) -> Option<Source> {
        let m = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        live(m.get(hash))
    }

    fn by_id(&self, id: Uuid) -> Option<Source> {
        let m = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        live(m.get(&id))
    }

    fn keep_key(&self, hash: Vec<u8>, s: Source) {
        let mut m = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(hash, (s, Instant::now()));
    }

    fn keep_id(&self, s: Source) {
        let mut m = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(s.id, (s, Instant::now()));
    }

    pub(crate) fn clear(&self) {
        self.by_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.by_id.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn live(e: Option<&(Source, Instant)>) -> Option<Source> {
    e.filter(|(_, at)| at.elapsed() < SOURCE_TTL)
        .map(|(s, _)| s.clone())
}
