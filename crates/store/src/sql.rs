//! A small SQL seam for the hot write paths (identity resolution, import):
//! a statement with its arguments ([`Q`]), rows read by position ([`Row`]),
//! and the [`Db`] trait that runs them on a PostgreSQL connection (sqlx,
//! awaited) or on the SQLite writer thread's own connection (rusqlite,
//! synchronous). The transactional bodies are written once as async
//! functions over `Db`; on SQLite every future they await is already
//! complete, so [`run_ready`] drives them on the writer thread without an
//! executor and without a thread hop per statement (decision 0008).

use crate::writer::BoxFut;
use crate::StoreError;
use sqlx::Row as _;
use std::future::Future;
use std::task::{Context, Poll};
use uuid::Uuid;

/// One bound argument. Nulls carry their type: PostgreSQL needs it.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    Text(String),
    Uuid(Uuid),
    OptText(Option<String>),
    OptUuid(Option<Uuid>),
    OptI64(Option<i64>),
    Bytes(Vec<u8>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::I64(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(v.clone())
    }
}
impl From<Uuid> for Arg {
    fn from(v: Uuid) -> Arg {
        Arg::Uuid(v)
    }
}
impl From<&Uuid> for Arg {
    fn from(v: &Uuid) -> Arg {
        Arg::Uuid(*v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::OptText(v.map(str::to_string))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::OptText(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::OptI64(v)
    }
}
impl From<Option<Uuid>> for Arg {
    fn from(v: Option<Uuid>) -> Arg {
        Arg::OptUuid(v)
    }
}

/// A statement and its arguments, bound in order (`$1`, `$2`, … or `?`).
#[derive(Debug, Clone)]
pub(crate) struct Q {
    pub(crate) sql: String,
    args: Vec<Arg>,
}

/// Starts a statement.
pub(crate) fn q(sql: impl Into<String>) -> Q {
    Q {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Q {
    pub(crate) fn bind(mut self, a: impl Into<Arg>) -> Q {
        self.args.push(a.into());
        self
    }
}

/// A value bound to a multi-row statement, borrowed from the caller: an
/// import writes millions, and copying each into an [`Arg`] first (and
/// freeing it after) was a tenth of the SQLite writer's time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    I64(i64),
    Str(&'a str),
    Uuid(&'a Uuid),
}

/// A multi-row statement run over many rows, a chunk of rows per
/// execution (see [`Db::exec_rows`]).
pub(crate) struct Rows<'a> {
    /// The statement for `n` rows. Parameters `1..=shared.len()` are the
    /// shared values; each row's own values are numbered on from there.
    pub(crate) sql: &'a (dyn Fn(usize) -> String + Sync),
    /// Values every row uses, bound once per execution.
    pub(crate) shared: &'a [Val<'a>],
    /// How many rows.
    pub(crate) rows: usize,
    /// Rows per execution.
    pub(crate) chunk: usize,
    /// Appends row `i`'s own values.
    pub(crate) own: &'a (dyn Fn(usize, &mut Vec<Val<'a>>) + Sync),
}

impl<'a> Rows<'a> {
    /// Each chunk's row range.
    fn chunks(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
        let (chunk, rows) = (self.chunk.max(1), self.rows);
        (0..rows)
            .step_by(chunk)
            .map(move |s| s..(s + chunk).min(rows))
    }

    /// The shared values, then the rows' own, for one chunk.
    fn values(&self, range: std::ops::Range<usize>, out: &mut Vec<Val<'a>>) {
        out.clear();
        out.extend_from_slice(self.shared);
        for i in range {
            (self.own)(i, out);
        }
    }
}

/// The text of a [`Rows`] statement, made once per number of rows: every
/// chunk but the last has the same (made again per chunk, the text of a
/// 500-row insert was 4 % of an import's writer time).
#[derive(Default)]
struct StatementText {
    made: Option<(usize, String)>,
}

impl StatementText {
    fn for_rows(&mut self, r: &Rows<'_>, n: usize) -> &str {
        if self.made.as_ref().map(|m| m.0) != Some(n) {
            self.made = Some((n, (r.sql)(n)));
        }
        self.made.as_ref().map(|m| m.1.as_str()).unwrap_or_default()
    }
}

/// Types a closure as [`Rows::own`], whose values borrow for `'a` (a
/// closure's own annotations cannot name that lifetime).
pub(crate) fn own_values<'a, F: Fn(usize, &mut Vec<Val<'a>>) + Sync>(f: F) -> F {
    f
}

/// A row, read by column name (or, where a statement's columns are
/// generated, by position): `row.text("email")`.
pub(crate) enum Row {
    Pg(sqlx::postgres::PgRow),
    Lite {
        /// The statement's column names, shared by all its rows.
        names: std::sync::Arc<[String]>,
        vals: Vec<rusqlite::types::Value>,
    },
}

/// A column of a [`Row`]: its name (`&str`, the rule for new code) or its
/// position (`usize`).
pub(crate) trait Col:
    Copy + std::fmt::Display + sqlx::ColumnIndex<sqlx::postgres::PgRow>
{
    fn position(self, names: &[String]) -> Option<usize>;
}

impl Col for usize {
    fn position(self, names: &[String]) -> Option<usize> {
        (self < names.len()).then_some(self)
    }
}

impl Col for &str {
    fn position(self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n == self)
    }
}

impl Row {
    fn lite<C: Col>(&self, c: C) -> Result<&rusqlite::types::Value, StoreError> {
        match self {
            Row::Lite { names, vals } => c
                .position(names)
                .and_then(|i| vals.get(i))
                .ok_or_else(|| StoreError::Other(format!("no column {c} in the row"))),
            Row::Pg(_) => Err(StoreError::Other("not a SQLite row".into())),
        }
    }

    pub(crate) fn i64<C: Col>(&self, c: C) -> Result<i64, StoreError> {
        match self {
            Row::Pg(r) => Ok(r.try_get::<i64, _>(c)?),
            Row::Lite { .. } => match self.lite(c)? {
                rusqlite::types::Value::Integer(n) => Ok(*n),
                other => Err(type_err(c, "integer", other)),
            },
        }
    }

    pub(crate) fn opt_i64<C: Col>(&self, c: C) -> Result<Option<i64>, StoreError> {
        match self {
            Row::Pg(r) => Ok(r.try_get::<Option<i64>, _>(c)?),
            Row::Lite { .. } => match self.lite(c)? {
                rusqlite::types::Value::Null => Ok(None),
                _ => self.i64(c).map(Some),
            },
        }
    }

    pub(crate) fn text<C: Col>(&self, c: C) -> Result<String, StoreError> {
        match self {
            Row::Pg(r) => Ok(r.try_get::<String, _>(c)?),
            Row::Lite { .. } => match self.lite(c)? {
                rusqlite::types::Value::Text(s) => Ok(s.clone()),
                other => Err(type_err(c, "text", other)),
            },
        }
    }

    pub(crate) fn opt_text<C: Col>(&self, c: C) -> Result<Option<String>, StoreError> {
        match self {
            Row::Pg(r) => Ok(r.try_get::<Option<String>, _>(c)?),
            Row::Lite { .. } => match self.lite(c)? {
                rusqlite::types::Value::Null => Ok(None),
                _ => self.text(c).map(Some),
            },
        }
    }

    /// A status or kind column through its type's one mapping (`parse`);
    /// an unknown value is an error naming the column and the value.
    pub(crate) fn parsed<T, C: Col>(
        &self,
        c: C,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let v = self.text(c)?;
        parse(&v).ok_or_else(|| StoreError::unknown_value(&c.to_string(), &v))
    }

    pub(crate) fn uuid<C: Col>(&self, c: C) -> Result<Uuid, StoreError> {
        match self {
            Row::Pg(r) => Ok(r.try_get::<Uuid, _>(c)?),
            Row::Lite { .. } => match self.lite(c)? {
                rusqlite::types::Value::Blob(b) => Uuid::from_slice(b)
                    .map_err(|e| StoreError::Other(format!("column {c}: not a uuid: {e}"))),
                other => Err(type_err(c, "uuid", other)),
            },
        }
    }

    pub(crate) fn opt_uuid<C: Col>(&self, c: C) -> Result<Option<Uuid>, StoreError> {
        match self {
            Row::Pg(r) => Ok(r.try_get::<Option<Uuid>, _>(c)?),
            Row::Lite { .. } => match self.lite(c)? {
                rusqlite::types::Value::Null => Ok(None),
                _ => self.uuid(c).map(Some),
            },
        }
    }
}

fn type_err<C: Col>(c: C, want: &str, got: &rusqlite::types::Value) -> StoreError {
    StoreError::Other(format!(
        "column {c}: expected {want}, found {:?}",
        got.data_type()
    ))
}

/// Where a transactional body runs. Bodies never begin or end transactions
/// themselves: the caller does (the SQLite writer, or a PostgreSQL
/// transaction opened around the body).
pub(crate) trait Db: Send {
    /// SQLite: the writer serializes every write, so no row locks.
    const SQLITE: bool;
    /// Row-lock suffix for reads that decide a write.
    const LOCK: &'static str;
    /// The uuid type name for casts in portable SQL.
    const UUID: &'static str;

    fn exec<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<u64, StoreError>>;
    fn rows<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<Vec<Row>, StoreError>>;
    /// Runs a multi-row statement over `r.rows` rows, `r.chunk` per
    /// execution; the rows affected.
    fn exec_rows<'a>(&'a mut self, r: Rows<'a>) -> BoxFut<'a, Result<u64, StoreError>>;

    /// The first row, or `NotFound`.
    fn one<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<Row, StoreError>> {
        Box::pin(async move { self.opt(q).await?.ok_or(StoreError::NotFound) })
    }

    /// The first row, if any.
    fn opt<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<Option<Row>, StoreError>> {
        Box::pin(async move { Ok(self.rows(q).await?.into_iter().next()) })
    }
}

impl Db for sqlx::PgConnection {
    const SQLITE: bool = false;
    const LOCK: &'static str = " for update";
    const UUID: &'static str = "uuid";

    fn exec<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let r = pg_bind(sqlx::query(&q.sql), &q.args)
                .execute(&mut *self)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn rows<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<Vec<Row>, StoreError>> {
        Box::pin(async move {
            let rows = pg_bind(sqlx::query(&q.sql), &q.args)
                .fetch_all(&mut *self)
                .await?;
            Ok(rows.into_iter().map(Row::Pg).collect())
        })
    }

    fn exec_rows<'a>(&'a mut self, r: Rows<'a>) -> BoxFut<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut n = 0;
            let mut vals = Vec::new();
            let mut sql = StatementText::default();
            for range in r.chunks() {
                let text = sql.for_rows(&r, range.len());
                r.values(range, &mut vals);
                let mut query = sqlx::query(text);
                for v in &vals {
                    query = match *v {
                        Val::I64(x) => query.bind(x),
                        Val::Str(x) => query.bind(x),
                        Val::Uuid(x) => query.bind(*x),
                    };
                }
                n += query.execute(&mut *self).await?.rows_affected();
            }
            Ok(n)
        })
    }
}

/// Binds [`Arg`]s to a sqlx query of either engine (the same calls, two
/// argument types).
macro_rules! bind_args {
    ($query:ident, $args:expr) => {
        for a in $args {
            $query = match a {
                Arg::I64(v) => $query.bind(*v),
                Arg::Text(v) => $query.bind(v.as_str()),
                Arg::Uuid(v) => $query.bind(*v),
                Arg::OptText(v) => $query.bind(v.as_deref()),
                Arg::OptUuid(v) => $query.bind(*v),
                Arg::OptI64(v) => $query.bind(*v),
                Arg::Bytes(v) => $query.bind(v.as_slice()),
            };
        }
    };
}

fn pg_bind<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    bind_args!(query, args);
    query
}

/// The SQLite writer thread's connection, seen through [`Db`]. Statements
/// are prepared once and cached; every call completes before it returns.
pub(crate) struct Lite<'c>(pub(crate) &'c mut rusqlite::Connection);

impl Lite<'_> {
    fn prepare_bound<'s>(
        conn: &'s rusqlite::Connection,
        q: &Q,
    ) -> Result<rusqlite::CachedStatement<'s>, StoreError> {
        let mut st = conn.prepare_cached(&q.sql)?;
        // `$N` parameters are named in SQLite (a statement may repeat or
        // reorder them): bind those by name. Anonymous `?` bind by position;
        // looking thousands of them up by name would be quadratic.
        let named = q.sql.contains('$');
        for (i, a) in q.args.iter().enumerate() {
            let idx = if named {
                match st.parameter_index(&format!("${}", i + 1))? {
                    Some(idx) => idx,
                    // Bound but unused by this statement.
                    None => continue,
                }
            } else {
                i + 1
            };
            match a {
                Arg::I64(v) => st.raw_bind_parameter(idx, v)?,
                Arg::Text(v) => st.raw_bind_parameter(idx, v.as_str())?,
                Arg::Uuid(v) => st.raw_bind_parameter(idx, &v.as_bytes()[..])?,
                Arg::OptText(v) => st.raw_bind_parameter(idx, v.as_deref())?,
                Arg::OptI64(v) => st.raw_bind_parameter(idx, *v)?,
                Arg::Bytes(v) => st.raw_bind_parameter(idx, v.as_slice())?,
                Arg::OptUuid(v) => {
                    st.raw_bind_parameter(idx, v.as_ref().map(|u| &u.as_bytes()[..]))?
                }
            }
        }
        Ok(st)
    }

    fn exec_now(&mut self, q: &Q) -> Result<u64, StoreError> {
        let mut st = Self::prepare_bound(self.0, q)?;
        Ok(st.raw_execute()? as u64)
    }

    fn rows_now(&mut self, q: &Q) -> Result<Vec<Row>, StoreError> {
        let mut st = Self::prepare_bound(self.0, q)?;
        let n = st.column_count();
        let names: std::sync::Arc<[String]> =
            st.column_names().into_iter().map(str::to_string).collect();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(r.get::<_, rusqlite::types::Value>(i)?);
            }
            out.push(Row::Lite {
                names: names.clone(),
                vals: v,
            });
        }
        Ok(out)
    }
}

impl Db for Lite<'_> {
    const SQLITE: bool = true;
    const LOCK: &'static str = "";
    const UUID: &'static str = "blob";

    fn exec<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<u64, StoreError>> {
        let r = self.exec_now(&q);
        Box::pin(std::future::ready(r))
    }

    fn rows<'a>(&'a mut self, q: Q) -> BoxFut<'a, Result<Vec<Row>, StoreError>> {
        let r = self.rows_now(&q);
        Box::pin(std::future::ready(r))
    }

    fn exec_rows<'a>(&'a mut self, r: Rows<'a>) -> BoxFut<'a, Result<u64, StoreError>> {
        let res = self.exec_rows_now(&r);
        Box::pin(std::future::ready(res))
    }
}

impl Lite<'_> {
    fn exec_rows_now(&mut self, r: &Rows<'_>) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut vals = Vec::new();
        let mut sql = StatementText::default();
        for range in r.chunks() {
            let mut st = self.0.prepare_cached(sql.for_rows(r, range.len()))?;
            r.values(range, &mut vals);
            // Numbered `?N` parameters: the n-th value is parameter n.
            for (i, v) in vals.iter().enumerate() {
                match *v {
                    Val::I64(x) => st.raw_bind_parameter(i + 1, x)?,
                    Val::Str(x) => st.raw_bind_parameter(i + 1, x)?,
                    Val::Uuid(x) => st.raw_bind_parameter(i + 1, &x.as_bytes()[..])?,
                }
            }
            n += st.raw_execute()? as u64;
        }
        Ok(n)
    }
}

/// Drives a body whose every await is already complete (a body over
/// [`Lite`]) to its end on the current thread.
pub(crate) fn run_ready<T, F>(f: F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r,
        // Only a body that awaited something other than `Lite` gets here.
        Poll::Pending => Err(StoreError::Other(
            "a SQLite writer body waited on something outside the database".into(),
        )),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, msg) => {
                let text = msg.clone().unwrap_or_else(|| f.to_string());
                match f.code {
                    C::ConstraintViolation => StoreError::Conflict(text),
                    C::DatabaseBusy | C::DatabaseLocked => StoreError::Unavailable(text),
                    C::DiskFull | C::SystemIoFailure | C::CannotOpen => {
                        StoreError::Unavailable(text)
                    }
                    _ => StoreError::Other(text),
                }
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Runs a query on the read path (SQLite's read pool or a PostgreSQL
/// connection) and returns its rows by position, like [`Db::rows`]: the one
/// way for code written over [`Q`] to read without taking the writer's turn.
pub(crate) async fn read_rows(store: &crate::Store, q: Q) -> Result<Vec<Row>, StoreError> {
    use crate::engine::Engine;
    match &*store.engine {
        Engine::Postgres(p) => {
            let mut conn = p.acquire().await?;
            conn.rows(q).await
        }
        Engine::Sqlite(s) => {
            use sqlx::{Column as _, Row as _, TypeInfo, ValueRef};
            let mut conn = s.read.acquire().await?;
            let mut query = sqlx::query(&q.sql);
            bind_args!(query, &q.args);
            let rows = query.fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            let names: std::sync::Arc<[String]> = rows
                .first()
                .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
                .unwrap_or_default();
            for r in rows {
                let mut vals = Vec::with_capacity(r.len());
                for i in 0..r.len() {
                    use rusqlite::types::Value as V;
                    let raw = r.try_get_raw(i)?;
                    let v = if raw.is_null() {
                        V::Null
                    } else {
                        // The value's own storage class (SQLite is dynamically typed).
                        match raw.type_info().name() {
                            "INTEGER" | "BOOLEAN" => V::Integer(r.try_get::<i64, _>(i)?),
                            "REAL" => V::Real(r.try_get::<f64, _>(i)?),
                            "BLOB" => V::Blob(r.try_get::<Vec<u8>, _>(i)?),
                            _ => V::Text(r.try_get::<String, _>(i)?),
                        }
                    };
                    vals.push(v);
                }
                out.push(Row::Lite {
                    names: names.clone(),
                    vals,
                });
            }
            Ok(out)
        }
    }
}
