//! The SQLite single writer with group commit.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every
//! commit pays an fsync. Instead of making callers queue on a lock and pay
//! one fsync each, every write is sent to one task that owns the write
//! connection; it takes whatever writes are waiting (up to `MAX_BATCH`),
//! runs each inside its own savepoint within one transaction, commits once,
//! and only then answers every caller. A write that fails rolls back its own
//! savepoint and leaves the others alone; a failed commit fails them all.
//! A write that is alone in its group runs in the transaction itself (no
//! savepoint needed). Nothing is acknowledged before it is durable, except
//! bulk writes (import batches): they are acknowledged once committed, and
//! are durable after the next ordinary commit or [`Writer::flush`].
//!
//! Two connections share the writer's turn: the sqlx connection most
//! repositories use, and a rusqlite connection owned by a thread of its own
//! for the hot transactions (identity resolution, import), which run there
//! synchronously instead of paying a thread hop per statement (decision
//! 0008). The task hands consecutive writes of one kind to their connection
//! as one group and waits for its commit before the next group, so the two
//! never hold the write lock at once.
//!
//! Neither connection checkpoints inside its commits (`wal_autocheckpoint`
//! is off): a checkpoint copies a thousand pages and fsyncs the database
//! file, and inside a commit it lands on whichever caller was unlucky — the
//! p99 of a one-event write. A checkpointer thread with its own connection
//! runs PASSIVE checkpoints after commits instead, one a second under a
//! light load: a commit whose own fsync lands during a checkpoint's waits
//! behind it, so fewer, larger checkpoints touch fewer commits (measured:
//! attach p99 at a million profiles 1.3 ms with ten a second, 1.1 ms with
//! one). When the log grows over 1 MiB/s they come every 100 ms instead, so
//! each stall stays short. PASSIVE
//! never waits for the writer, so under steady writes it may never reach
//! the end of the log; when the log passes `WAL_LIMIT_FRAMES` (64 MiB) the
//! writer checkpoints once itself, after a commit, which lets the next
//! transaction start the log from the beginning again. After a bulk write
//! (an import batch) it waits longer, so that the checkpointer copies the
//! batch's pages on the other core (see `Checkpoints::writer_must_checkpoint`).

use crate::StoreError;
use sqlx::{Connection, SqliteConnection};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Finish = Box<dyn FnOnce(Option<String>) + Send>;
type SqlxJob =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, (bool, Finish)> + Send>;
type RawJob = Box<dyn FnOnce(&mut rusqlite::Connection) -> (bool, Finish) + Send>;

enum Job {
    Sqlx(SqlxJob),
    Raw(RawJob),
    /// A bulk write: alone in its transaction, foreign keys not enforced
    /// (see [`Writer::run_raw_bulk`]).
    Bulk(RawJob),
}

/// A group of raw writes for the writer thread, whether it is one bulk
/// write, and who waits for its commit.
type RawGroup = (Vec<RawJob>, bool, oneshot::Sender<()>);

const MAX_BATCH: usize = 512;

/// Log size (4 KiB frames, 64 MiB) past which the writer checkpoints
/// itself; for bulk writes, the part left uncopied past which it does.
const WAL_LIMIT_FRAMES: i64 = 16_384;
/// Log size (256 MiB) past which the writer checkpoints itself after a
/// bulk write even when the checkpointer keeps up: the log restarts only
/// when a write begins after a complete checkpoint, and an import always
/// begins its next batch while the checkpointer is still copying the last
/// one. `journal_size_limit` trims the file back once it restarts.
const WAL_MAX_FRAMES: i64 = 4 * WAL_LIMIT_FRAMES;

/// Wakes the checkpointer after commits and says when the log grew too long.
#[derive(Clone)]
struct Checkpoints {
    wake: std::sync::mpsc::SyncSender<()>,
    /// The log's size and its part left uncopied, in frames, as the
    /// checkpointer last saw them; zeroed when the writer checkpoints.
    log: std::sync::Arc<LogState>,
}

#[derive(Default)]
struct LogState {
    frames: std::sync::atomic::AtomicI64,
    uncopied: std::sync::atomic::AtomicI64,
}

impl Checkpoints {
    fn start(conn: rusqlite::Connection) -> Checkpoints {
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let log = std::sync::Arc::new(LogState::default());
        let state = log.clone();
        std::thread::Builder::new()
            .name("bos-sqlite-checkpoint".into())
            .spawn(move || checkpoint_thread(conn, rx, state))
            .expect("spawn the SQLite checkpoint thread");
        Checkpoints { wake, log }
    }

    /// After a commit: wake the checkpointer (a pending wake-up is enough).
    fn committed(&self) {
        let _ = self.wake.try_send(());
    }

    /// Whether the writer should checkpoint now, itself, after a group
    /// (`bulk`: a bulk write's) commit; if so, forgets the log's state.
    ///
    /// After ordinary writes, once the log passes 64 MiB. After a bulk
    /// write, only once the checkpointer leaves 64 MiB uncopied or the log
    /// passes 256 MiB: an import commits some 70 MiB a batch, and with the
    /// first rule the writer copied every batch itself (a tenth of its
    /// time) while the other core idled. Not for ordinary writes: a single
    /// event whose commit met a 256 MiB log stalled for a third of a second
    /// (`bos-bench identify`, merges).
    fn writer_must_checkpoint(&self, bulk: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let (frames, uncopied) = (
            self.log.frames.load(Relaxed),
            self.log.uncopied.load(Relaxed),
        );
        let must = if bulk {
            uncopied > WAL_LIMIT_FRAMES || frames > WAL_MAX_FRAMES
        } else {
            frames > WAL_LIMIT_FRAMES
        };
        if must {
            self.log.frames.store(0, Relaxed);
            self.log.uncopied.store(0, Relaxed);
        }
        must
    }
}

fn checkpoint_thread(
    conn: rusqlite::Connection,
    rx: std::sync::mpsc::Receiver<()>,
    log: std::sync::Arc<LogState>,
) {
    let mut last = std::time::Instant::now();
    while rx.recv().is_ok() {
        let mut copied = 0;
        match conn.query_row("pragma wal_checkpoint(passive)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((frames, done)) => {
                copied = done;
                log.frames
                    .store(frames, std::sync::atomic::Ordering::Relaxed);
                log.uncopied
                    .store(frames - done, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed"),
        }
        // Pacing, not waiting for a condition: each checkpoint fsyncs the
        // database file, and frames written meanwhile are copied next time.
        // A commit whose fsync lands during a checkpoint waits for it, so
        // the pace follows how fast the log grows: under a light load one
        // a second keeps them rare; under a heavy one (the intake pipeline
        // rewriting pages) smaller, more frequent checkpoints keep each
        // stall short. The rate, not the count, decides: a short pause
        // copies few frames. See `BUSY_PACE_MS` for how short.
        let secs = last.elapsed().as_secs_f64().max(0.001);
        last = std::time::Instant::now();
        let busy = copied as f64 / secs >= BUSY_FRAMES_PER_SEC;
        std::thread::sleep(std::time::Duration::from_millis(if busy {
            BUSY_PACE_MS
        } else {
            1000
        }));
    }
}

/// A log growing by at least this many frames a second (1 MiB/s) makes
/// checkpoints come every `BUSY_PACE_MS` instead of every second.
const BUSY_FRAMES_PER_SEC: f64 = 256.0;

/// The pause between checkpoints while the log grows fast. Measured on the
/// 2-core machine (`bos-bench identify`, 1,000,000 profiles; `bos-bench
/// intake --lag-rate 2000`):
///
/// | pace | attach p99 | create p99 | ingest ack p99, pipeline running |
/// | --- | --- | --- | --- |
/// | 30 ms | 997 µs | 747 µs | 14–36 ms |
/// | 100 ms | 665 µs | 642 µs | 18–24 ms |
/// | 250 ms | 610 µs | 652 µs | — |
/// | 1 s | 631 µs | 693 µs | 34–42 ms (an earlier measurement) |
///
/// Every 30 ms, streaming resolution (~25,000 log frames a second) had a
/// checkpoint's fsync of the database file running beside its own fsync
/// a good part of the time; a page rewritten several times between two
/// checkpoints is also copied once instead of several times. Pauses longer
/// than 100 ms gained nothing more and make each stall larger (the
/// slowest event: 5–9 ms at 30 ms, 15–38 ms at 100–250 ms, 45–55 ms at 1 s).
const BUSY_PACE_MS: u64 = 100;

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer on its two connections; `checkpointer` is a third
    /// connection to the same file, for the checkpoint thread.
    pub(crate) fn start(
        conn: SqliteConnection,
        raw: rusqlite::Connection,
        checkpointer: rusqlite::Connection,
    ) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let (raw_tx, raw_rx) = std::sync::mpsc::channel::<RawGroup>();
        let checkpoints = Checkpoints::start(checkpointer);
        let cp = checkpoints.clone();
        std::thread::Builder::new()
            .name("bos-sqlite-writer".into())
            .spawn(move || raw_thread(raw, raw_rx, cp))
            .expect("spawn the SQLite writer thread");
        tokio::spawn(run(conn, rx, raw_tx, checkpoints));
        Writer { tx }
    }

    /// Runs `f` on the writer thread's rusqlite connection inside the next
    /// group commit, and returns its result once the commit is durable.
    pub(crate) async fn run_raw<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send_raw(f, false).await
    }

    /// Like [`Writer::run_raw`], for a write of thousands of rows (an
    /// import batch): it runs alone in its transaction, never in a
    /// savepoint beside other writes, and with foreign keys not enforced,
    /// so the caller checks its parent rows itself inside the write.
    ///
    /// Why: a statement that inserts several rows into a table with an
    /// enforced foreign key may fail halfway, so SQLite copies every page
    /// it is about to change into a statement journal first, in 1 KiB
    /// allocations freed when the statement ends. For a bulk insert into
    /// random-keyed indexes that is most pages of the batch, once per
    /// statement: a tenth of an import's time went to that copy and the
    /// allocator (decision 0004). The same holds for a savepoint.
    pub(crate) async fn run_raw_bulk<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send_raw(f, true).await
    }

    /// Makes every write committed so far durable, bulk writes included:
    /// syncs the log file, as an ordinary commit does itself and a bulk
    /// write's does not (see `BULK_SETTINGS`). Queued behind every write
    /// sent before it.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        self.run_raw(|c| {
            // An in-memory database has no file to sync.
            let Some(db) = c.path().filter(|p| !p.is_empty()) else {
                return Ok(());
            };
            let log = format!("{db}-wal");
            match std::fs::OpenOptions::new().write(true).open(&log) {
                Ok(f) => f
                    .sync_data()
                    .map_err(|e| StoreError::Unavailable(format!("cannot sync {log}: {e}"))),
                // No log: every commit is in the database file, which the
                // checkpoint that removed the log synced.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::Unavailable(format!("cannot open {log}: {e}"))),
            }
        })
        .await
    }

    async fn send_raw<T, F>(&self, f: F, bulk: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: RawJob = Box::new(move |c| {
            let r = f(c);
            let ok = r.is_ok();
            let finish: Finish = Box::new(move |commit_err: Option<String>| {
                let _ = done_tx.send(settle(commit_err, r));
            });
            (ok, finish)
        });
        self.tx
            .send(if bulk { Job::Bulk(job) } else { Job::Raw(job) })
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        done_rx.await.map_err(|_| {
            StoreError::Unavailable("the write was abandoned: its batch failed to start".into())
        })?
    }

    /// Runs `f` on the write connection inside the next group commit, and
    /// returns its result once the commit is durable.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: SqlxJob = Box::new(move |c| {
            Box::pin(async move {
                let r = f(c).await;
                let ok = r.is_ok();
                let finish: Finish = Box::new(move |commit_err: Option<String>| {
                    let _ = done_tx.send(settle(commit_err, r));
                });
                (ok, finish)
            })
        });
        self.tx
            .send(Job::Sqlx(job))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        done_rx.await.map_err(|_| {
            StoreError::Unavailable("the write was abandoned: its batch failed to start".into())
        })?
    }
}

/// A body's result, unless the commit that should have made it durable failed.
fn settle<T>(commit_err: Option<String>, r: Result<T, StoreError>) -> Result<T, StoreError> {
    match (commit_err, r) {
        (Some(e), Ok(_)) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
        (_, r) => r,
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    raw: std::sync::mpsc::Sender<RawGroup>,
    checkpoints: Checkpoints,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        // One group: consecutive writes for the same connection.
        match first {
            Job::Raw(j) => {
                let mut group = vec![j];
                while group.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Job::Raw(j)) => group.push(j),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (done_tx, done_rx) = oneshot::channel();
                if raw.send((group, false, done_tx)).is_err() {
                    tracing::error!("the SQLite writer thread has stopped");
                    return;
                }
                // The next group must not start before this one committed.
                let _ = done_rx.await;
            }
            Job::Bulk(j) => {
                let (done_tx, done_rx) = oneshot::channel();
                if raw.send((vec![j], true, done_tx)).is_err() {
                    tracing::error!("the SQLite writer thread has stopped");
                    return;
                }
                let _ = done_rx.await;
            }
            Job::Sqlx(j) => {
                let mut batch = vec![j];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Job::Sqlx(j)) => batch.push(j),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                sqlx_group(&mut conn, batch).await;
                if checkpoints.writer_must_checkpoint(false) {
                    if let Err(e) = sqlx::query("pragma wal_checkpoint(passive)")
                        .execute(&mut conn)
                        .await
                    {
                        tracing::warn!(error = %e, "sqlite checkpoint failed");
                    }
                }
                checkpoints.committed();
            }
        }
    }
}

async fn sqlx_group(conn: &mut SqliteConnection, batch: Vec<SqlxJob>) {
    let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
    let res: Result<(), sqlx::Error> = async {
        let mut tx = conn.begin().await?;
        if batch.len() == 1 {
            // Alone in its group, a write needs no savepoint: the
            // transaction is its own. A savepoint would make SQLite copy
            // every page the write touches into a statement sub-journal
            // and rescan it after each statement, which large writes
            // (an import batch) pay for dearly.
            for job in batch {
                let (ok, finish) = job(&mut tx).await;
                finishes.push(finish);
                if !ok {
                    return tx.rollback().await;
                }
            }
            return tx.commit().await;
        }
        for job in batch {
            let mut sp = tx.begin().await?;
            let (ok, finish) = job(&mut sp).await;
            if ok {
                sp.commit().await?;
            } else {
                sp.rollback().await?;
            }
            finishes.push(finish);
        }
        tx.commit().await
    }
    .await;
    let err = res.err().map(|e| {
        tracing::error!(error = %e, "sqlite group commit failed");
        e.to_string()
    });
    for f in finishes {
        f(err.clone());
    }
}

/// The writer thread: runs each group of raw writes in one transaction
/// (each in its own savepoint when there are several), commits once, then
/// answers every caller and the writer task.
fn raw_thread(
    mut conn: rusqlite::Connection,
    rx: std::sync::mpsc::Receiver<RawGroup>,
    checkpoints: Checkpoints,
) {
    loop {
        let (group, bulk, done) = match rx.recv_timeout(IDLE) {
            Ok(g) => g,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                shrink_cache(&mut conn);
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
        if bulk {
            // Outside a transaction, where the pragmas take effect. Should
            // this fail, the write runs under the usual settings: slower,
            // not wrong.
            if let Err(e) = conn.execute_batch(BULK_SETTINGS) {
                tracing::warn!(error = %e, "sqlite bulk settings refused");
            }
        }
        let res = raw_group(&mut conn, group, &mut finishes);
        let err = res.err().map(|e| {
            tracing::error!(error = %e, "sqlite group commit failed");
            // Leave no transaction open for the next group.
            let _ = conn.execute_batch("rollback");
            e.to_string()
        });
        if bulk {
            if let Err(e) = conn.execute_batch(&usual_settings()) {
                // Never go on writing without foreign keys or durable
                // commits: answer this write as it ended, then stop the
                // writer, and with it the store's writes, rather than lose
                // integrity.
                tracing::error!(error = %e, "cannot restore foreign keys and durable commits; the SQLite writer stops");
                for f in finishes {
                    f(err.clone());
                }
                return;
            }
        }
        for f in finishes {
            f(err.clone());
        }
        if checkpoints.writer_must_checkpoint(bulk) {
            if let Err(e) = conn.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "sqlite checkpoint failed");
            }
        }
        checkpoints.committed();
        let _ = done.send(());
    }
}

/// What a bulk write runs under (see [`Writer::run_raw_bulk`]):
/// - foreign keys off, so that SQLite keeps no statement journal;
/// - `synchronous = normal`: the commit does not wait for an fsync of the
///   log. It is atomic all the same (the log's checksums drop a torn tail)
///   and a crash of the process loses nothing; power loss may lose the
///   last bulk writes, until the next ordinary commit, checkpoint or
///   [`Writer::flush`] syncs the log. An import calls `flush` when its file
///   ends, and a lost batch is imported again by running the file again.
///   Measured: the writer spent 5 of an import's 62 s in those fsyncs;
/// - no limit on the log file's size: trimming it back to 64 MiB when it
///   restarts made every batch grow the file again, and the file system
///   zeroes and allocates each new block (5 % of the writer's time).
const BULK_SETTINGS: &str = "pragma foreign_keys = off; pragma synchronous = normal; \
     pragma journal_size_limit = -1;";

/// The settings every other write needs back after a bulk write: the ones
/// `engine::open_raw_writer` opens the connection with.
fn usual_settings() -> String {
    format!(
        "pragma foreign_keys = on; pragma synchronous = full; pragma journal_size_limit = {};",
        crate::engine::JOURNAL_SIZE_LIMIT
    )
}

/// The writer connection's page cache between bulk writes, in KiB.
///
/// Small on purpose. SQLite's B-tree rebalancing parks pages under a
/// temporary page number past the end of the file (the lock-byte page),
/// and every commit after such an insert truncates the cache back to the
/// file's size, which walks the cache's whole hash table — one slot per
/// cached page, and the table never shrinks. With 64 MiB that walk was a
/// tenth of the writer's time while sending nudges; with 8 MiB it vanished
/// from the profile, and identify at a million profiles kept its latency
/// (decision 0014).
pub(crate) const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// How long the writer thread waits before it treats writes as paused.
const IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Gives back what an import's larger page cache took, once writes pause.
/// The connection is opened afresh: a smaller `cache_size` would free the
/// pages but keep the import-sized hash table, which every later commit
/// may walk (see `WRITER_CACHE_KIB`). Should the reopen fail, the cache is
/// only resized.
fn shrink_cache(conn: &mut rusqlite::Connection) {
    let shrink = conn
        .query_row("pragma cache_size", [], |r| r.get::<_, i64>(0))
        .map(|kib| kib != -WRITER_CACHE_KIB)
        .unwrap_or(false);
    if !shrink {
        return;
    }
    let fresh = conn
        .path()
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .ok_or_else(|| StoreError::Other("the writer's database has no path".into()))
        .and_then(|p| crate::engine::open_raw_writer(&p));
    match fresh {
        Ok(c) => *conn = c,
        Err(e) => {
            tracing::warn!(error = %e, "sqlite writer reopen failed; resizing its cache instead");
            if let Err(e) = conn.execute_batch(&format!("pragma cache_size = -{WRITER_CACHE_KIB}"))
            {
                tracing::warn!(error = %e, "sqlite cache resize failed");
            }
        }
    }
}

fn raw_group(
    conn: &mut rusqlite::Connection,
    group: Vec<RawJob>,
    finishes: &mut Vec<Finish>,
) -> Result<(), rusqlite::Error> {
    conn.execute_batch("begin immediate")?;
    if group.len() == 1 {
        // Alone: the transaction is its own (see `sqlx_group`).
        for job in group {
            let (ok, finish) = job(conn);
            finishes.push(finish);
            if !ok {
                return conn.execute_batch("rollback");
            }
        }
        return conn.execute_batch("commit");
    }
    for job in group {
        conn.execute_batch("savepoint w")?;
        let (ok, finish) = job(conn);
        if ok {
            conn.execute_batch("release w")?;
        } else {
            conn.execute_batch("rollback to w; release w")?;
        }
        finishes.push(finish);
    }
    conn.execute_batch("commit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::ConnectOptions;

    /// (foreign_keys, synchronous, journal_size_limit) on a connection.
    fn settings(c: &rusqlite::Connection) -> Result<(i64, i64, i64), StoreError> {
        let get = |p: &str| c.query_row(&format!("pragma {p}"), [], |r| r.get::<_, i64>(0));
        Ok((
            get("foreign_keys")?,
            get("synchronous")?,
            get("journal_size_limit")?,
        ))
    }

    #[tokio::test]
    async fn bulk_writes_run_under_their_settings_and_every_other_write_under_the_usual_ones() {
        let dir = std::env::temp_dir().join(format!("bos-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        let conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        let raw = crate::engine::open_raw_writer(&path).unwrap();
        let cp = crate::engine::open_raw_writer(&path).unwrap();
        let w = Writer::start(conn, raw, cp);
        let usual = (1, 2, crate::engine::JOURNAL_SIZE_LIMIT);

        assert_eq!(w.run_raw(|c| settings(c)).await.unwrap(), usual);
        let bulk = w
            .run_raw_bulk(|c| {
                c.execute_batch("create table t (x integer); insert into t values (1);")?;
                settings(c)
            })
            .await
            .unwrap();
        assert_eq!(
            bulk,
            (0, 1, -1),
            "foreign keys off, synchronous normal, no log limit"
        );
        assert_eq!(w.run_raw(|c| settings(c)).await.unwrap(), usual);

        // A bulk write that fails gives the usual settings back too.
        let failed = w
            .run_raw_bulk(|_| Err::<(), _>(StoreError::Other("refused".into())))
            .await;
        assert!(failed.is_err());
        assert_eq!(w.run_raw(|c| settings(c)).await.unwrap(), usual);

        // The bulk write's row is there, and flushing syncs the log.
        w.flush().await.unwrap();
        let n = w
            .run_raw(|c| Ok(c.query_row("select count(*) from t", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
