//! The store's error type: what callers can act on (not found, conflict,
//! unavailable) apart from everything else, which is logged as a 500.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or check constraint refused the write; the text names it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached right now; try again later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The input cannot be stored as given; the text says what to change (400).
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => {
                if db.is_unique_violation()
                    || db.is_check_violation()
                    || db.is_foreign_key_violation()
                {
                    StoreError::Conflict(
                        db.constraint()
                            .map(str::to_string)
                            .unwrap_or_else(|| db.message().to_string()),
                    )
                } else if matches!(
                    db.code().as_deref(),
                    Some("5") | Some("6") | Some("57P01") | Some("57P03")
                ) {
                    // SQLITE_BUSY / SQLITE_LOCKED, PostgreSQL admin shutdown / cannot connect now.
                    StoreError::Unavailable(db.message().to_string())
                } else {
                    StoreError::Other(db.message().to_string())
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
