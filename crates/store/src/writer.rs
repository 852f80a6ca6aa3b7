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
//! savepoint needed). Nothing is acknowledged before it is durable.

use crate::StoreError;
use sqlx::{Connection, SqliteConnection};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Finish = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, (bool, Finish)> + Send>;

const MAX_BATCH: usize = 512;

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn start(conn: SqliteConnection) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(run(conn, rx));
        Writer { tx }
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
        let job: Job = Box::new(move |c| {
            Box::pin(async move {
                let r = f(c).await;
                let ok = r.is_ok();
                let finish: Finish = Box::new(move |commit_err: Option<String>| {
                    let r = match (commit_err, r) {
                        (Some(e), Ok(_)) => {
                            Err(StoreError::Unavailable(format!("commit failed: {e}")))
                        }
                        (_, r) => r,
                    };
                    let _ = done_tx.send(r);
                });
                (ok, finish)
            })
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        done_rx.await.map_err(|_| {
            StoreError::Unavailable("the write was abandoned: its batch failed to start".into())
        })?
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
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
}
