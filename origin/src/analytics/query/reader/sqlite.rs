//! SQLite's half of the sandbox, on connections of rusqlite's (sqlx exposes neither the
//! authorizer nor the limits, and runs every statement of a string it is given).
//!
//! Each connection is opened read-only, then:
//! - every analytics table gets a TEMP view of the same name, which shadows it for any
//!   unqualified name and holds only the rows of the query's scope (`kw_workspace()`,
//!   `kw_may_read()`: functions that read the scope this connection was handed);
//! - an authorizer allows only SELECT, reads of those views, reads of the stored tables
//!   made *through* them, and the functions the rewriter emits; everything else (ATTACH,
//!   PRAGMA, VACUUM, transactions, writes, any other table, `main.x`) is denied;
//! - `sqlite3_limit` caps a value's length, the SQL's length, compound terms, columns,
//!   arguments and attached databases; a value over 1 MiB stops the query, so a query
//!   that doubles a string cannot grow the origin's memory past that;
//! - the query flattener is off: flattening copies a subquery's expression into every
//!   use of its column, so `v + v` over `v + v` over a subquery doubled the prepared
//!   statement at every level (a 14 KB query, 9.8 GB and 39 s inside `sqlite3_prepare`,
//!   where neither the progress handler nor `sqlite3_interrupt` reaches). Subqueries run
//!   as co-routines instead, and WHERE terms are still pushed down into them;
//! - a query runs as exactly one statement: text after the first is an error.
//!
//! A connection that is not back in autocommit after a query is dropped, not reused.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::sync::Semaphore;

use super::{ACQUIRE, CONNECTIONS, Collector, DbScope, ReadError, Rows, busy};

use crate::analytics::query::seal::Sealed;
use crate::analytics::query::tables::{IDENTITIES, stored_tables};

/// The longest string or blob a query may make (SQLite's default is 1 GB).
pub const MAX_VALUE_BYTES: i32 = 1024 * 1024;
/// `sqlite3_test_control(SQLITE_TESTCTRL_OPTIMIZATIONS)`'s bit for the query flattener.
const QUERY_FLATTENER: std::os::raw::c_int = 0x0000_0001;
/// SQLite VM steps between deadline checks: about a millisecond of work.
const STEPS_PER_CHECK: i32 = 10_000;
/// The widest row one answer may carry.
const MAX_ROW_BYTES: usize = 1024 * 1024;

/// The functions the rewriter emits for SQLite, and the two that read the scope.
const FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "abs",
    "round",
    "coalesce",
    "nullif",
    "lower",
    "upper",
    "length",
    "substr",
    "strftime",
    "like",
    "kw_workspace",
    "kw_may_read",
];

/// Table-valued functions the rewriter emits (`has()` reads tags with `json_each`).
const TABLE_FUNCTIONS: &[&str] = &["json_each"];

pub struct SqliteReader {
    /// `None`: an in-memory database, which only the store's own pool can see.
    jobs: Option<Mutex<std::sync::mpsc::Sender<Job>>>,
    /// One per worker: a query waits here (at most `ACQUIRE`) for a free one.
    permits: Arc<Semaphore>,
}

/// A query for a worker, with what must live as long as it runs: its connection permit
/// and its caller's place (`Slot`). A caller that hangs up frees neither; the query runs
/// to its end or its deadline, and only then do both go.
struct Job {
    sealed: Sealed,
    scope: DbScope,
    collector: Collector,
    hold: (
        tokio::sync::OwnedSemaphorePermit,
        Option<crate::analytics::query::Slot>,
    ),
    reply: tokio::sync::oneshot::Sender<Result<Rows, ReadError>>,
}

/// One connection inside the sandbox, and the scope its views read.
struct Sandboxed {
    conn: Connection,
    scope: Arc<Mutex<Option<DbScope>>>,
}

impl SqliteReader {
    pub fn new(url: &str) -> anyhow::Result<SqliteReader> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let permits = Arc::new(Semaphore::new(CONNECTIONS));
        if memory {
            return Ok(SqliteReader {
                jobs: None,
                permits,
            });
        }
        let path = SqliteConnectOptions::from_str(url)?
            .get_filename()
            .to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..CONNECTIONS {
            let (rx, path) = (Arc::clone(&rx), path.clone());
            std::thread::Builder::new()
                .name(format!("analytics-{i}"))
                .spawn(move || work(&path, &rx))?;
        }
        Ok(SqliteReader {
            jobs: Some(Mutex::new(tx)),
            permits,
        })
    }

    pub(super) async fn run(
        &self,
        sealed: &Sealed,
        scope: &DbScope,
        collector: Collector,
        slot: Option<crate::analytics::query::Slot>,
    ) -> Result<Rows, ReadError> {
        let Some(jobs) = &self.jobs else {
            return Err(ReadError::Unavailable(
                "Analytics are not available on an in-memory database.".into(),
            ));
        };
        let permit = tokio::time::timeout(ACQUIRE, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            sealed: sealed.clone(),
            scope: scope.clone(),
            collector,
            hold: (permit, slot),
            reply,
        };
        jobs.lock()
            .map_err(|_| busy())?
            .send(job)
            .map_err(|_| ReadError::Database("the analytics workers stopped".into()))?;
        answer
            .await
            .map_err(|_| ReadError::Database("the analytics worker failed".into()))?
    }
}

/// A worker: its own thread, its own connection (opened at first use, opened again if a
/// query left it in a state it should not be in), at a lower priority than the API's
/// threads, so a report never takes a core a verification needs.
fn work(path: &std::path::Path, jobs: &Mutex<std::sync::mpsc::Receiver<Job>>) {
    lower_priority();
    let mut sandboxed: Option<Sandboxed> = None;
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let result = match sandboxed.take() {
            Some(s) => Ok(s),
            None => Sandboxed::open(path).map_err(|e| ReadError::Database(e.to_string())),
        }
        .and_then(|s| {
            let result = s.run(&job.sealed, job.scope, job.collector);
            if s.conn.is_autocommit() {
                sandboxed = Some(s);
            }
            result
        });
        // Free the places first, so the caller's next query finds them free.
        drop(job.hold);
        let _ = job.reply.send(result);
    }
}

/// Nice 10 for the calling thread: about a tenth of a core against the API's threads when
/// both want one, all of it when the API is idle. (SCHED_IDLE, as the event writer may
/// use, would let a busy server starve reports entirely.)
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no arguments and cannot fail; setpriority on our own thread
        // id only lowers this thread's priority, which needs no privilege.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10)
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "analytics worker keeps normal priority");
        }
    }
}

impl Sandboxed {
    fn open(path: &std::path::Path) -> rusqlite::Result<Sandboxed> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let scope: Arc<Mutex<Option<DbScope>>> = Arc::new(Mutex::new(None));
        install_scope_functions(&conn, &scope)?;
        let mut views = HashSet::new();
        for (stored, restrict, kind) in stored_tables() {
            conn.execute_batch(&format!(
                "CREATE TEMP VIEW {stored} AS SELECT * FROM main.{stored} \
                 WHERE workspace_id = kw_workspace() AND kw_may_read('{}', {restrict})",
                kind.as_str()
            ))?;
            views.insert(stored.to_string());
        }
        let (identities, columns) = IDENTITIES;
        conn.execute_batch(&format!(
            "CREATE TEMP VIEW {identities} AS SELECT {} FROM main.{identities} \
             WHERE workspace_id = kw_workspace()",
            columns.join(", ")
        ))?;
        views.insert(identities.to_string());
        // Prepare once through every view, so the schema is loaded before the
        // authorizer is in place (loading it reads sqlite_master).
        for view in &views {
            conn.prepare(&format!("SELECT 1 FROM {view} LIMIT 0"))?;
        }
        conn.pragma_update(None, "query_only", "ON")?;
        set_limits(&conn);
        // SAFETY: the handle is this connection's and is used on this thread; the control
        // takes the handle and a plain int mask (bits set are optimizations turned off).
        unsafe {
            rusqlite::ffi::sqlite3_test_control(
                rusqlite::ffi::SQLITE_TESTCTRL_OPTIMIZATIONS,
                conn.handle(),
                QUERY_FLATTENER,
            );
        }
        conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&views, ctx)));
        Ok(Sandboxed { conn, scope })
    }

    fn run(
        &self,
        sealed: &Sealed,
        scope: DbScope,
        mut collector: Collector,
    ) -> Result<Rows, ReadError> {
        if let Ok(mut s) = self.scope.lock() {
            *s = Some(scope);
        }
        let deadline = Instant::now() + collector.timeout;
        self.conn
            .progress_handler(STEPS_PER_CHECK, Some(move || Instant::now() >= deadline));
        let result = self.query(sealed, &mut collector);
        self.conn.progress_handler(0, None::<fn() -> bool>);
        if let Ok(mut s) = self.scope.lock() {
            *s = None;
        }
        result.map_err(|e| classify(e, &collector))?;
        Ok(collector.rows)
    }

    fn query(&self, sealed: &Sealed, collector: &mut Collector) -> Result<(), Failure> {
        let mut stmt = prepare_one(&self.conn, &sealed.sql)?;
        for (i, p) in sealed.params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, p.as_str())?;
        }
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            let mut out = Map::new();
            let mut size = 0;
            for (i, name) in names.iter().enumerate() {
                let raw = row.get_ref(i)?;
                // Sized before it is copied: a row is cut at MAX_ROW_BYTES, as PostgreSQL's
                // reader cuts it inside the database.
                size += name.len()
                    + match raw {
                        ValueRef::Text(t) | ValueRef::Blob(t) => t.len() + 2,
                        _ => 24,
                    };
                if size > MAX_ROW_BYTES {
                    return Err(Failure::Read(super::too_large()));
                }
                let value = match raw {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(f) => Value::from(f),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                };
                out.insert(name.clone(), value);
            }
            collector.push(out, size).map_err(Failure::Read)?;
        }
        Ok(())
    }
}

/// Why a query stopped: SQLite said so, or a bound of ours did.
enum Failure {
    Sqlite(rusqlite::Error),
    Read(ReadError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

/// Prepares `sql`, which must be exactly one statement: sqlite3_prepare stops after the
/// first, and whatever follows it (another statement, a comment, a space) is refused.
fn prepare_one<'c>(conn: &'c Connection, sql: &str) -> Result<rusqlite::Statement<'c>, Failure> {
    let first = first_statement_len(conn, sql)?;
    if first != sql.len() {
        return Err(Failure::Read(ReadError::Rejected(
            "the database refused the query: it holds more than one statement".into(),
        )));
    }
    Ok(conn.prepare(sql)?)
}

/// How many bytes of `sql` SQLite reads as its first statement.
fn first_statement_len(conn: &Connection, sql: &str) -> Result<usize, Failure> {
    use rusqlite::ffi;
    let len = i32::try_from(sql.len())
        .map_err(|_| Failure::Read(ReadError::Limit("the query is too long".into())))?;
    let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
    let mut tail: *const std::os::raw::c_char = std::ptr::null();
    // SAFETY: the handle is this connection's, used on this thread only; `sql` outlives
    // the call, and `len` bounds what SQLite reads of it. The statement is finalized
    // before return; `tail` points into `sql`.
    let (rc, used) = unsafe {
        let rc = ffi::sqlite3_prepare_v2(
            conn.handle(),
            sql.as_ptr().cast(),
            len,
            &mut stmt,
            &mut tail,
        );
        let used = if tail.is_null() {
            sql.len()
        } else {
            (tail as usize).saturating_sub(sql.as_ptr() as usize)
        };
        ffi::sqlite3_finalize(stmt);
        (rc, used)
    };
    if rc != ffi::SQLITE_OK {
        // Prepare it again through rusqlite for the error and its message.
        conn.prepare(sql)?;
        return Err(Failure::Read(ReadError::Rejected(
            "the database refused the query".into(),
        )));
    }
    Ok(used)
}

fn install_scope_functions(
    conn: &Connection,
    scope: &Arc<Mutex<Option<DbScope>>>,
) -> rusqlite::Result<()> {
    // Not DETERMINISTIC: the scope changes between queries, and a deterministic function
    // in a view may be evaluated once and remembered.
    let flags = FunctionFlags::SQLITE_UTF8;
    let s = Arc::clone(scope);
    conn.create_scalar_function("kw_workspace", 0, flags, move |_| {
        Ok(s.lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.workspace_id.clone())))
    })?;
    let s = Arc::clone(scope);
    conn.create_scalar_function("kw_may_read", 2, flags, move |ctx| {
        let kind: String = ctx.get(0)?;
        let id: Option<String> = ctx.get(1)?;
        let Some(id) = id else { return Ok(false) };
        Ok(s.lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.may_read(&kind, &id)))
            .unwrap_or(false))
    })?;
    Ok(())
}

fn set_limits(conn: &Connection) {
    for (limit, value) in [
        (Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES),
        (Limit::SQLITE_LIMIT_SQL_LENGTH, 1024 * 1024),
        (Limit::SQLITE_LIMIT_COLUMN, 256),
        (Limit::SQLITE_LIMIT_EXPR_DEPTH, 256),
        (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 32),
        (Limit::SQLITE_LIMIT_FUNCTION_ARG, 32),
        (Limit::SQLITE_LIMIT_ATTACHED, 0),
        (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 200),
        (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 4096),
        (Limit::SQLITE_LIMIT_TRIGGER_DEPTH, 1),
    ] {
        conn.set_limit(limit, value);
    }
}

/// The authorizer: what this connection may do, decided at prepare time.
fn authorize(views: &HashSet<String>, ctx: AuthContext<'_>) -> Authorization {
    let allowed = match ctx.action {
        AuthAction::Select => true,
        AuthAction::Read { table_name, .. } => match (ctx.database_name, ctx.accessor) {
            // One of our views, named by the query.
            (Some("temp"), _) => views.contains(table_name),
            // No schema: a subquery's or a CTE's own rows (a stored table always has one).
            (None, _) => true,
            // A stored table, read by the view of its own name, never directly.
            (Some("main"), Some(view)) => view == table_name && views.contains(table_name),
            // `has()`'s json_each over a row's tags.
            (_, _) => TABLE_FUNCTIONS.contains(&table_name),
        },
        AuthAction::Function { function_name } => FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(function_name)),
        _ => false,
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

/// A failure as the caller's, a bound's, or ours.
fn classify(f: Failure, collector: &Collector) -> ReadError {
    let e = match f {
        Failure::Read(r) => return r,
        Failure::Sqlite(e) => e,
    };
    let message = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => collector.slow(),
        Some(ErrorCode::OutOfMemory) => {
            ReadError::Limit("the query needs more memory than the analytics database has".into())
        }
        Some(ErrorCode::TooBig) => ReadError::Limit(format!(
            "a value in the query grew past {MAX_VALUE_BYTES} bytes; the analytics database stops there"
        )),
        Some(ErrorCode::AuthorizationForStatementDenied) => ReadError::Rejected(format!(
            "the database refused the query: it reads something analytics may not read ({message})"
        )),
        Some(
            ErrorCode::Unknown
            | ErrorCode::ReadOnly
            | ErrorCode::TypeMismatch
            | ErrorCode::ParameterOutOfRange
            | ErrorCode::ConstraintViolation,
        ) => ReadError::Rejected(format!("the database refused the query: {message}")),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            ReadError::Unavailable("The analytics database is busy; try again.".into())
        }
        _ => match e {
            rusqlite::Error::MultipleStatement | rusqlite::Error::InvalidParameterCount(..) => {
                ReadError::Rejected(format!("the database refused the query: {message}"))
            }
            _ => ReadError::Database(message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with two workspaces' rows, opened through the sandbox directly: no
    /// rewriter in front, so every refusal here is the database's own.
    fn sandbox() -> (tempfile::TempDir, Sandboxed) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE keys (id TEXT, hash TEXT);
             INSERT INTO keys VALUES ('k1', 'secret-hash');
             CREATE TABLE identities (id TEXT, workspace_id TEXT, external_id TEXT, meta TEXT);
             INSERT INTO identities VALUES ('i1', 'ws_1', 'u1', 'private'), ('i2', 'ws_2', 'u2', 'x');",
        )
        .unwrap();
        for (stored, restrict, _) in stored_tables() {
            c.execute_batch(&format!(
                "CREATE TABLE {stored} (workspace_id TEXT, {restrict} TEXT, n INTEGER);
                 INSERT INTO {stored} VALUES ('ws_1', 'a1', 1), ('ws_1', 'a2', 10), ('ws_2', 'a1', 100);"
            ))
            .unwrap();
        }
        drop(c);
        let s = Sandboxed::open(&path).unwrap();
        (dir, s)
    }

    fn scope(only: Option<&[&str]>) -> DbScope {
        DbScope::for_tests(only)
    }

    fn run(s: &Sandboxed, sql: &str, scope: DbScope) -> Result<Rows, ReadError> {
        let sealed = Sealed {
            sql: sql.into(),
            params: Vec::new(),
        };
        s.run(
            &sealed,
            scope,
            Collector::new(1000, std::time::Duration::from_secs(2)),
        )
    }

    fn total(s: &Sandboxed, sql: &str, scope: DbScope) -> i64 {
        let rows = run(s, sql, scope).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows[0]
            .values()
            .next()
            .and_then(Value::as_i64)
            .unwrap_or(-1)
    }

    #[test]
    fn the_views_hold_only_the_scopes_rows() {
        let (_d, s) = sandbox();
        let sql = "SELECT SUM(n) AS n FROM key_verifications";
        assert_eq!(total(&s, sql, scope(None)), 11);
        assert_eq!(total(&s, sql, scope(Some(&["a1"]))), 1);
        assert_eq!(total(&s, sql, scope(Some(&[]))), -1, "no rows: SUM is NULL");
        // The other route's tables are empty to a verifications scope.
        assert_eq!(
            total(
                &s,
                "SELECT COUNT(*) AS n FROM ratelimit_events",
                scope(None)
            ),
            0
        );
        assert_eq!(
            total(&s, "SELECT COUNT(*) AS n FROM identities", scope(None)),
            1
        );
        // A CTE of a compound select, counted: its rows are the query's own.
        assert_eq!(
            total(
                &s,
                "WITH a AS (SELECT 0 AS n UNION ALL SELECT 1 AS n) SELECT count(*) AS c FROM a",
                scope(None)
            ),
            2
        );
        // Between queries the scope is gone: a leftover view reads nothing.
        assert!(s.scope.lock().unwrap().is_none());
    }

    #[test]
    fn everything_else_is_refused_by_the_database() {
        let (_d, s) = sandbox();
        for sql in [
            "SELECT * FROM keys",
            "SELECT * FROM main.key_verifications",
            "SELECT * FROM main.identities",
            "SELECT meta FROM identities",
            "SELECT * FROM sqlite_master",
            "SELECT * FROM sqlite_temp_master",
            "SELECT * FROM pragma_table_info('keys')",
            "SELECT load_extension('x')",
            "SELECT randomblob(10)",
            "SELECT readfile('/etc/passwd')",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "PRAGMA query_only = OFF",
            "VACUUM INTO '/tmp/copy.db'",
            "BEGIN",
            "SAVEPOINT a",
            "DELETE FROM key_verifications",
            "INSERT INTO key_verifications VALUES ('ws_1', 'a', 1)",
            "CREATE TEMP TABLE x (a)",
            "DROP VIEW key_verifications",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r",
            "SELECT 1; SELECT * FROM keys",
            "SELECT 1; -- trailing",
            "SELECT 1;;",
            "SELECT 1; BEGIN",
        ] {
            match run(&s, sql, scope(None)) {
                Err(ReadError::Rejected(_)) | Err(ReadError::Limit(_)) => {}
                other => panic!("{sql}: {other:?}"),
            }
            assert!(s.conn.is_autocommit(), "{sql}");
        }
    }

    #[test]
    fn a_value_cannot_grow_past_the_length_limit() {
        let (_d, s) = sandbox();
        // Materialized, so SQLite computes each level once instead of inlining the
        // doublings into one huge expression (which `cost` refuses before it gets here).
        let mut sql = String::from("WITH c0 AS (SELECT 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' AS v)");
        for i in 1..=20 {
            sql.push_str(&format!(
                ", c{i} AS MATERIALIZED (SELECT v || v AS v FROM c{})",
                i - 1
            ));
        }
        sql.push_str(" SELECT length(v) AS n FROM c20");
        match run(&s, &sql, scope(None)) {
            Err(ReadError::Limit(m)) => assert!(m.contains("grew past"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// Without the rewriter: the subquery that flattening copied into every use of its
    /// column stays one subquery, and the prepared statement stays small.
    #[test]
    fn subqueries_are_not_copied_into_each_use() {
        let (_d, s) = migrated();
        let inlist = (0..1000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut sql = format!(
            "WITH c1 AS (SELECT (SELECT count(*) FROM key_verifications WHERE spent_credits IN ({inlist})) AS v FROM key_verifications)"
        );
        for k in 2..=16 {
            sql.push_str(&format!(", c{k} AS (SELECT v+v AS v FROM c{})", k - 1));
        }
        sql.push_str(" SELECT v FROM c16 LIMIT 1");
        let stmt = s.conn.prepare(&sql).unwrap();
        let bytes = stmt.get_status(rusqlite::StatementStatus::MemUsed);
        // Flattened, twelve levels of this were 650 MB; sixteen would be about 10 GB.
        assert!(
            bytes < 16 * 1024 * 1024,
            "the statement holds {bytes} bytes"
        );
        drop(stmt);
        let rows = run(&s, &sql, scope(None)).unwrap();
        assert_eq!(rows[0]["v"], 1 << 15, "{rows:?}");
    }

    #[test]
    fn parameters_are_bound_not_spliced() {
        let (_d, s) = sandbox();
        let sealed = Sealed {
            sql: "SELECT COUNT(*) AS n FROM key_verifications WHERE api_id = ?1".into(),
            params: vec!["a1' OR '1'='1".into()],
        };
        let rows = s
            .run(
                &sealed,
                scope(None),
                Collector::new(10, std::time::Duration::from_secs(1)),
            )
            .unwrap();
        assert_eq!(rows[0]["n"], 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// The database says what a string was: whatever the caller's literal holds, it
        /// comes back as exactly the value ClickHouse's reading of it gives.
        #[test]
        fn a_literal_comes_back_as_itself(
            v in crate::analytics::query::seal::tests::hostile_string(),
            doubled in proptest::prelude::any::<bool>(),
        ) {
            use crate::analytics::query::functions::{Ctx, Dialect};
            use crate::analytics::query::plan;
            use crate::analytics::query::tables::{Scope, VERIFICATIONS};
            let (_d, s) = migrated();
            let lit = crate::analytics::query::seal::tests::clickhouse_literal(&v, doubled);
            let query = format!("SELECT {lit} AS v, concat({lit}, key_id) AS w FROM key_verifications_v1 WHERE api_id = 'a1'");
            let scope = Scope { workspace_id: "ws_1".into(), only: None };
            let ctx = Ctx { dialect: Dialect::Sqlite, now_ms: 0 };
            match plan(&query, &VERIFICATIONS, &scope, ctx, 10) {
                Ok(sealed) => {
                    let rows = s.run(&sealed, super::tests::scope(None), Collector::new(10, std::time::Duration::from_secs(2)));
                    let rows = rows.map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{query}: {e}")))?;
                    proptest::prop_assert_eq!(rows.len(), 1);
                    proptest::prop_assert_eq!(rows[0]["v"].as_str(), Some(v.as_str()), "{}", query);
                    let w = format!("{v}k1");
                    proptest::prop_assert_eq!(rows[0]["w"].as_str(), Some(w.as_str()));
                }
                // Only a NUL may be refused: every other string is a fine literal.
                Err(e) => proptest::prop_assert!(v.contains('\0'), "{query}: {e}"),
            }
        }
    }

    /// A database with the real schema and one verification of `ws_1`, key `k1`.
    fn migrated() -> (tempfile::TempDir, Sandboxed) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let c = Connection::open(&path).unwrap();
        for m in [
            include_str!("../../../../migrations/0001_init.sql"),
            include_str!("../../../../migrations/0002_rollups.sql"),
            include_str!("../../../../migrations/0003_encrypted_keys.sql"),
            include_str!("../../../../migrations/0004_raw_events_one_index.sql"),
        ] {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch(
            "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) \
             VALUES (0, 'r1', 'ws_1', 'a1', 'k1', NULL, 'VALID', 0, '[]', 1, 'origin'), (0, 'r2', 'ws_2', 'a1', 'k2', NULL, 'VALID', 0, '[]', 1, 'origin')",
        )
        .unwrap();
        drop(c);
        let s = Sandboxed::open(&path).unwrap();
        (dir, s)
    }
}
