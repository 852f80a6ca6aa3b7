//! Fresh, isolated stores for tests: every call gets its own database.
//!
//! Without `BOS_TEST_DATABASE_URL` a store is a new SQLite file in a temp
//! directory. With it (a `postgres://` URL), a new database named
//! `bos_t_<uuid>` is created on that server and dropped when the guard is
//! dropped, so tests never see each other's rows.

use crate::{Store, StoreError, StoreOptions};
use std::path::PathBuf;

pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Pg { admin_url: String, name: String },
}

impl TestDb {
    pub fn engine_name(&self) -> &'static str {
        match self.store.kind() {
            crate::EngineKind::Sqlite => "sqlite",
            crate::EngineKind::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL server URL tests should use, if any.
pub fn pg_url() -> Option<String> {
    std::env::var("BOS_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A database URL for a brand-new, empty database (created now).
pub async fn fresh_url() -> Result<(String, CleanupGuard), StoreError> {
    fresh_url_on(pg_url()).await
}

/// A brand-new database on the PostgreSQL server `server` (any database URL
/// of it), or a temporary SQLite file when `None`. Benchmarks use it so a
/// `--database-url` never measures (or changes) an existing database.
pub async fn fresh_url_on(server: Option<String>) -> Result<(String, CleanupGuard), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Some(admin) = server {
        use sqlx::Connection;
        let name = format!("bos_t_{id}");
        let mut c = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("create database {name}"))
            .execute(&mut c)
            .await?;
        let base = match admin.rfind('/') {
            Some(i) if i > "postgres://".len() => admin[..i].to_string(),
            _ => admin.clone(),
        };
        let (base, query) = match admin.find('?') {
            Some(q) => (
                base.split('?').next().unwrap_or(&base).to_string(),
                admin[q..].to_string(),
            ),
            None => (base, String::new()),
        };
        Ok((
            format!("{base}/{name}{query}"),
            CleanupGuard(Some(Cleanup::Pg {
                admin_url: admin,
                name,
            })),
        ))
    } else {
        let dir = std::env::temp_dir().join(format!("bos-test-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Other(e.to_string()))?;
        let url = format!("sqlite://{}", dir.join("bos.db").display());
        Ok((url, CleanupGuard(Some(Cleanup::Dir(dir)))))
    }
}

/// Removes the test database when dropped.
pub struct CleanupGuard(Option<Cleanup>);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        match self.0.take() {
            Some(Cleanup::Dir(d)) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Some(Cleanup::Pg { admin_url, name }) => {
                // Drop runs outside any runtime guarantee: use a short-lived thread + runtime.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(async move {
                            use sqlx::Connection;
                            if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                                let _ = sqlx::query(&format!(
                                    "drop database if exists {name} with (force)"
                                ))
                                .execute(&mut c)
                                .await;
                            }
                        });
                    }
                })
                .join();
            }
            None => {}
        }
    }
}

impl TestDb {
    /// A migrated store on a fresh database.
    pub async fn new() -> Result<TestDb, StoreError> {
        let (url, guard) = fresh_url().await?;
        let store = Store::open(&StoreOptions {
            url: url.clone(),
            max_connections: 4,
        })
        .await?;
        Ok(TestDb {
            store,
            url,
            cleanup: Cleanup::from_guard(guard),
        })
    }
}

impl Cleanup {
    fn from_guard(mut g: CleanupGuard) -> Cleanup {
        g.0.take().expect("fresh guard")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let c = std::mem::replace(&mut self.cleanup, Cleanup::Dir(PathBuf::new()));
        if let Cleanup::Dir(ref d) = c {
            if d.as_os_str().is_empty() {
                return;
            }
        }
        drop(CleanupGuard(Some(c)));
    }
}
