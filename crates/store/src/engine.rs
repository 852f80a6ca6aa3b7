//! Connecting to an engine and the two dispatch macros every repository uses.
//!
//! `read!` runs a body on a pooled read connection; `write!` runs it on the
//! SQLite writer (inside a group commit) or on a PostgreSQL connection. The
//! body is the same tokens for both engines, so SQL and binds are written
//! once; the macro only picks the connection type.

use crate::{migrate, writer::Writer, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    /// Read connections for SQLite; total connections for PostgreSQL.
    pub max_connections: u32,
}

pub(crate) struct SqliteEngine {
    pub(crate) writer: Writer,
    pub(crate) read: SqlitePool,
    pub(crate) path: PathBuf,
}

pub(crate) enum Engine {
    Sqlite(SqliteEngine),
    Postgres(PgPool),
}

/// The one handle to storage. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) engine: std::sync::Arc<Engine>,
    /// Sources the public endpoints looked up recently (see `intake`).
    pub(crate) source_cache: std::sync::Arc<crate::intake::SourceCache>,
    /// The keys provider secrets are sealed with (see `secrets`). Random
    /// until [`Store::set_secret_keys`]: `bos` always sets the configured
    /// ones before it serves.
    pub(crate) secrets: std::sync::Arc<std::sync::RwLock<std::sync::Arc<crate::secrets::Keyring>>>,
}

/// Runs `$body` (which must evaluate to `Result<T, StoreError>`) with `$c`
/// bound to a `&mut` read connection of whichever engine is in use.
macro_rules! read {
    ($store:expr, |$c:ident| $body:block) => {
        match &*$store.engine {
            $crate::engine::Engine::Sqlite(s) => {
                let mut conn = s.read.acquire().await?;
                let $c: &mut sqlx::SqliteConnection = &mut conn;
                let fut: $crate::writer::BoxFut<'_, Result<_, $crate::StoreError>> = Box::pin(async move $body);
                fut.await
            }
            $crate::engine::Engine::Postgres(p) => {
                let mut conn = p.acquire().await?;
                let $c: &mut sqlx::PgConnection = &mut conn;
                let fut: $crate::writer::BoxFut<'_, Result<_, $crate::StoreError>> = Box::pin(async move $body);
                fut.await
            }
        }
    };
}

/// Runs `$body` on the write path: the SQLite writer (group commit) or a
/// PostgreSQL connection. Captured values must be owned (`'static`) because
/// the SQLite body runs on the writer task.
macro_rules! write {
    ($store:expr, |$c:ident| $body:block) => {
        match &*$store.engine {
            $crate::engine::Engine::Sqlite(s) => {
                s.writer.run(move |$c: &mut sqlx::SqliteConnection| Box::pin(async move $body)).await
            }
            $crate::engine::Engine::Postgres(p) => {
                let mut conn = p.acquire().await?;
                let $c: &mut sqlx::PgConnection = &mut conn;
                let fut: $crate::writer::BoxFut<'_, Result<_, $crate::StoreError>> = Box::pin(async move $body);
                fut.await
            }
        }
    };
}
/// Runs a body written over [`crate::sql::Db`] on the SQLite writer
/// thread's own connection (`$sqlite`: a `SqliteEngine`), synchronously,
/// inside the next group commit. Captured values must be owned.
macro_rules! lite_db {
    ($sqlite:expr, |$db:ident| $body:expr) => {
        $sqlite
            .writer
            .run_raw(move |c| {
                let mut lite = $crate::sql::Lite(c);
                let $db = &mut lite;
                $crate::sql::run_ready($body)
            })
            .await
    };
}

/// Runs a body written over [`crate::sql::Db`] on the write path: on SQLite
/// synchronously on the writer thread's own connection, inside the next
/// group commit; on PostgreSQL in a transaction of its own, committed when
/// the body succeeds. Captured values must be owned, as for `write!`.
macro_rules! write_db {
    ($store:expr, |$db:ident| $body:expr) => {
        match &*$store.engine {
            $crate::engine::Engine::Sqlite(s) => $crate::engine::lite_db!(s, |$db| $body),
            $crate::engine::Engine::Postgres(p) => {
                let mut tx = p.begin().await?;
                let r = {
                    let $db: &mut sqlx::PgConnection = &mut *tx;
                    $body.await
                };
                match r {
                    Ok(v) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    // Dropping the transaction rolls it back.
                    Err(e) => Err(e),
                }
            }
        }
    };
}
/// Like `write_db!`, for one bulk write of thousands of rows (an import
/// batch). On SQLite it runs alone in its transaction with foreign keys
/// not enforced (`Writer::run_raw_bulk` says why): the body checks that
/// the parent rows it writes under exist, inside the write.
macro_rules! bulk_db {
    ($store:expr, |$db:ident| $body:expr) => {
        match &*$store.engine {
            $crate::engine::Engine::Sqlite(s) => {
                s.writer
                    .run_raw_bulk(move |c| {
                        let mut lite = $crate::sql::Lite(c);
                        let $db = &mut lite;
                        $crate::sql::run_ready($body)
                    })
                    .await
            }
            $crate::engine::Engine::Postgres(_) => $crate::engine::write_db!($store, |$db| $body),
        }
    };
}
pub(crate) use {bulk_db, lite_db, read, write, write_db};

impl Store {
    /// Connects, checks durability settings, and runs pending migrations.
    pub async fn open(opts: &StoreOptions) -> Result<Store, StoreError> {
        let store = Self::connect(opts).await?;
        store.migrate().await?;
        store.optimize().await?;
        Ok(store)
    }

    /// Refreshes the query planner's statistics where they are stale
    /// (SQLite's `PRAGMA optimize`, bounded work), and merges a bounded
    /// piece of the inbox's search indexes: FTS5 writes each transaction's
    /// words as a small segment of its own and merges them only a few at a
    /// time, and a prefix search reads every segment's list of a word, so
    /// fewer segments make a common word's search cheaper. PostgreSQL's
    /// autovacuum does both by itself.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        if let Engine::Sqlite(_) = &*self.engine {
            write!(self, |c| {
                sqlx::query("pragma analysis_limit = 1000")
                    .execute(&mut *c)
                    .await?;
                sqlx::query("pragma optimize = 0x10002")
                    .execute(&mut *c)
                    .await?;
                // At most about 500 pages (2 MB) written per call, across
                // levels (the negative count), so housekeeping stays short.
                for t in ["messages_fts", "conversations_fts"] {
                    sqlx::query(&format!(
                        "insert into {t}({t}, rank) values ('merge', -500)"
                    ))
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Copies the whole write-ahead log into the database file and empties
    /// it (SQLite; nothing to do on PostgreSQL). A running server does this
    /// in the background by itself; benchmarks call it after seeding so that
    /// they measure steady traffic, not the tail of the bulk load.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Engine::Sqlite(s) = &*self.engine {
            let path = s.path.clone();
            tokio::task::spawn_blocking(move || {
                let c = open_raw_writer(&path)?;
                c.query_row("pragma wal_checkpoint(truncate)", [], |_| Ok(()))?;
                Ok::<_, StoreError>(())
            })
            .await
            .map_err(|e| StoreError::Other(format!("checkpoint task failed: {e}")))??;
        }
        Ok(())
    }

    /// Makes every write committed so far durable. Every write is durable
    /// when it returns except import batches on SQLite
    /// ([`Store::import_prepared`]), which are once a later write commits or
    /// this returns: an import calls it when its file ends.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &*self.engine {
            Engine::Sqlite(s) => s.writer.flush().await,
            Engine::Postgres(_) => Ok(()),
        }
    }

    /// Connects without migrating (for `bos migrate`, which reports counts).
    pub async fn connect(opts: &StoreOptions) -> Result<Store, StoreError> {
        let url = opts.url.as_str();
        let engine = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let co = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Other(format!("bad DATABASE_URL: {e}")))?
                .log_statements(tracing::log::LevelFilter::Trace);
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.max(2))
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(co)
                .await?;
            // A reported commit must survive a crash: an acknowledged event is never lost.
            let sc: String = sqlx::query_scalar("show synchronous_commit")
                .fetch_one(&pool)
                .await?;
            if sc == "off" {
                return Err(StoreError::Other(
                    "PostgreSQL has synchronous_commit=off: acknowledged data could be lost; set it to on".into(),
                ));
            }
            Engine::Postgres(pool)
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = PathBuf::from(path.split('?').next().unwrap_or(path));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Other(format!(
                        "cannot create the data directory {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            let base = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Acknowledged means durable through power loss; group commit pays for it.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                .log_statements(tracing::log::LevelFilter::Trace);
            // Commits never checkpoint (see writer.rs): the checkpointer does.
            // Sub-journals in memory, as on the writer thread (see
            // `open_raw_writer`).
            let write_conn = base
                .clone()
                .pragma("wal_autocheckpoint", "0")
                .pragma("temp_store", "memory")
                .connect()
                .await?;
            let raw = open_raw_writer(&path)?;
            let checkpointer = open_raw_writer(&path)?;
            let read = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(base.pragma("query_only", "1"))
                .await?;
            Engine::Sqlite(SqliteEngine {
                writer: Writer::start(write_conn, raw, checkpointer),
                read,
                path,
            })
        } else {
            return Err(StoreError::Other(format!(
                "unsupported database URL '{}': use sqlite://path/to/bos.db or postgres://user@host/db",
                redact(url)
            )));
        };
        Ok(Store {
            engine: std::sync::Arc::new(engine),
            source_cache: Default::default(),
            secrets: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(
                crate::secrets::Keyring::ephemeral(),
            ))),
        })
    }

    /// Uses `keys` to seal and open provider secrets from now on (every
    /// clone of this store shares them).
    pub fn set_secret_keys(&self, keys: crate::secrets::Keyring) {
        *self.secrets.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(keys);
        // Cached sources hold secrets opened with the keys before.
        self.source_cache.clear();
    }

    pub(crate) fn keyring(&self) -> std::sync::Arc<crate::secrets::Keyring> {
        self.secrets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn kind(&self) -> EngineKind {
        match &*self.engine {
            Engine::Sqlite(_) => EngineKind::Sqlite,
            Engine::Postgres(_) => EngineKind::Postgres,
        }
    }

    /// The SQLite file, when on SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &*self.engine {
            Engine::Sqlite(s) => Some(&s.path),
            Engine::Postgres(_) => None,
        }
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        write!(self, |c| {
            let list = migrate::list_for(&*c);
            sqlx::query(migrate::CREATE_TABLE).execute(&mut *c).await?;
            let applied: Vec<(i64, i64)> =
                sqlx::query_as("select version, checksum from bos_migrations order by version")
                    .fetch_all(&mut *c)
                    .await?;
            let mut ran = 0usize;
            for m in list {
                let sum = migrate::checksum(m.sql);
                if let Some((_, stored)) = applied.iter().find(|(v, _)| *v == m.version) {
                    if *stored != sum {
                        return Err(migrate::changed(m));
                    }
                    continue;
                }
                let mut tx = c.begin().await?;
                for stmt in migrate::statements(m.sql) {
                    sqlx::query(stmt).execute(&mut *tx).await?;
                }
                sqlx::query("insert into bos_migrations (version, name, checksum, applied_at) values ($1, $2, $3, $4)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(sum)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
                ran += 1;
            }
            Ok(ran)
        })
    }

    /// Readiness: a round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        read!(self, |c| {
            c.ping().await?;
            Ok(())
        })
    }

    /// Closes pools (graceful shutdown).
    pub async fn close(&self) {
        match &*self.engine {
            Engine::Sqlite(s) => s.read.close().await,
            Engine::Postgres(p) => p.close().await,
        }
    }
}

/// Bytes the log file is trimmed back to when it restarts (64 MiB).
pub(crate) const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The writer thread's connection, with the same durability settings as
/// the sqlx writer (the file is already in WAL mode: the sqlx connection
/// opened it first).
pub(crate) fn open_raw_writer(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(&format!(
        "pragma journal_mode = wal; pragma synchronous = full; pragma foreign_keys = on; \
         pragma wal_autocheckpoint = 0; pragma journal_size_limit = {JOURNAL_SIZE_LIMIT};"
    ))?;
    // Dynamic statements (one per number of bound values) are few but more
    // than the default sixteen.
    conn.set_prepared_statement_cache_capacity(256);
    // Resolution touches index pages all over the file; 2 MiB (the default)
    // would send most of them back to the OS for every event. Pages are only
    // allocated as they are used, so a small database stays small.
    conn.execute_batch(&format!(
        "pragma cache_size = -{};",
        crate::writer::WRITER_CACHE_KIB
    ))?;
    // Every write in a group commit runs in its own savepoint, and each
    // savepoint journals the first change to every page it touches; past
    // 64 KiB that sub-journal spills to a temporary file, a `pwrite` per
    // page (measured: most of the writer's system calls while sending
    // nudges). It lives for one write and is truncated after it, so it
    // stays small in memory.
    conn.execute_batch("pragma temp_store = memory;")?;
    Ok(conn)
}

/// Wall-clock milliseconds. The store never reads the clock for business
/// decisions (callers pass `now`); this is only for bookkeeping columns.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Hides the password in a database URL for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
