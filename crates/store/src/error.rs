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

impl StoreError {
    /// A stored status or kind its type does not know (written by a newer
    /// release, or by hand): an error naming the column and the value,
    /// never a silent default.
    pub(crate) fn unknown_value(column: &str, value: &str) -> StoreError {
        StoreError::Other(format!("unknown value '{value}' in column {column}"))
    }
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
                } else if db_unavailable(
                    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .is_some(),
                    db.code().as_deref().unwrap_or(""),
                    db.message(),
                ) {
                    StoreError::Unavailable(db.message().to_string())
                } else {
                    StoreError::Other(db.message().to_string())
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// Whether a database error means "the database cannot serve now, try
/// again" (503 with `Retry-After`) rather than a fault in the request or the
/// code (500). `code` is PostgreSQL's SQLSTATE or SQLite's extended result
/// code.
pub(crate) fn db_unavailable(postgres: bool, code: &str, message: &str) -> bool {
    if postgres {
        // 08: the connection failed or broke; 53: the server is out of
        // connections, memory or disk; 57P01-57P03: it is shutting down,
        // crashed or starting; 25006: a read-only standby after a
        // failover. 55000 is only an outage when it turns a connection
        // away (`ALTER DATABASE … ALLOW_CONNECTIONS false`, a database
        // being dropped or restored).
        code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
            || (code == "55000" && message.contains("accepting connections"))
    } else {
        // SQLite's primary result code is the low byte of the extended
        // one: BUSY (5) and LOCKED (6) in every variant, IOERR (10), FULL
        // (13) and CANTOPEN (14).
        code.parse::<u32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::db_unavailable;

    #[test]
    fn outages_are_told_from_faults() {
        for code in ["08006", "08001", "53300", "57P01", "57P03", "25006"] {
            assert!(db_unavailable(true, code, ""), "{code}");
        }
        assert!(db_unavailable(
            true,
            "55000",
            "database \"x\" is not currently accepting connections"
        ));
        for code in ["55000", "23505", "22021", "42P01", "28P01", ""] {
            assert!(!db_unavailable(true, code, "something else"), "{code}");
        }
        for code in ["5", "6", "261", "517", "262", "10", "13", "14", "1038"] {
            assert!(db_unavailable(false, code, ""), "sqlite {code}");
        }
        for code in ["1", "19", "2067", "787", ""] {
            assert!(!db_unavailable(false, code, ""), "sqlite {code}");
        }
    }
}
