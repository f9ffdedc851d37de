//! Runs a sealed analytics query inside the database's own sandbox, bounded in rows,
//! bytes, time and concurrency, on connections of its own so a slow report never takes
//! one the API needs.
//!
//! The rewriter (`query`) already limits what a query can name. Each database refuses
//! the same things again on its own terms, so a query that got past the rewriter still
//! reads only the caller's rows of the analytics tables:
//! - SQLite (`sqlite`): read-only connections with an authorizer, scoped views, length
//!   limits and one statement per call;
//! - PostgreSQL (`postgres`): a role of its own that can read only the analytics tables,
//!   with row-level security keyed to a per-query grant.

mod postgres;
mod sqlite;

use std::time::Duration;

use serde_json::{Map, Value};

use super::functions::Dialect;
use super::seal::Sealed;
use super::tables::{Kind, Scope};

pub use postgres::prepare as prepare_postgres;

/// Bytes of row data one answer may carry.
pub const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Connections for analytics queries, apart from the API's pool: twice the default per
/// key, so one caller at its limit leaves as many for everyone else.
const CONNECTIONS: usize = 4;
/// How long a query waits for one of those connections before it is told to retry.
const ACQUIRE: Duration = Duration::from_secs(5);

pub enum Reader {
    Sqlite(sqlite::SqliteReader),
    Postgres(postgres::PgReader),
}

/// Why a query that passed the checks still did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database refused the query (an unknown column, a type mismatch, a read its
    /// sandbox does not allow): the caller's to fix, so a 400 with the database's words.
    #[error("{0}")]
    Rejected(String),
    /// Over a limit (rows, bytes, time, a value's length): a 422.
    #[error("{0}")]
    Limit(String),
    /// Every analytics connection stayed busy: a 503 to retry.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed: a 500 that is ours to look at.
    #[error("database error: {0}")]
    Database(String),
}

pub type Rows = Vec<Map<String, Value>>;

/// What the database itself lets one query read: the caller's workspace, its readable
/// APIs or namespaces (`None`: all of them), and which route's tables.
#[derive(Debug, Clone)]
pub struct DbScope {
    pub kind: Kind,
    pub workspace_id: String,
    pub only: Option<Vec<String>>,
}

impl DbScope {
    /// Workspace `ws_1`'s verifications, limited to the APIs in `only`: the scope the
    /// readers' own tests read under.
    #[cfg(test)]
    pub(crate) fn for_tests(only: Option<&[&str]>) -> DbScope {
        DbScope {
            kind: Kind::Verifications,
            workspace_id: "ws_1".into(),
            only: only.map(|o| o.iter().map(|s| s.to_string()).collect()),
        }
    }

    pub fn new(kind: Kind, scope: &Scope) -> DbScope {
        DbScope {
            kind,
            workspace_id: scope.workspace_id.clone(),
            only: scope.only.clone(),
        }
    }

    fn may_read(&self, kind: &str, id: &str) -> bool {
        kind == self.kind.as_str()
            && self
                .only
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == id))
    }
}

impl Reader {
    /// Opens the reader for `url`. On PostgreSQL, `role` is what `prepare_postgres` set
    /// up (or `None` where the deployment could not create a role).
    pub fn connect(url: &str, role: Option<postgres::Role>) -> anyhow::Result<Reader> {
        if url.starts_with("sqlite:") {
            Ok(Reader::Sqlite(sqlite::SqliteReader::new(url)?))
        } else {
            Ok(Reader::Postgres(postgres::PgReader::connect(url, role)?))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Reader::Sqlite(_) => Dialect::Sqlite,
            Reader::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sealed` (from `query::plan`, which asked for one row over `max_rows`).
    /// `slot` (the caller's place among its key's running queries) is held until the
    /// database has finished, even if the caller hangs up first.
    pub async fn run(
        &self,
        sealed: &Sealed,
        scope: &DbScope,
        max_rows: u64,
        timeout: Duration,
        slot: Option<super::Slot>,
    ) -> Result<Rows, ReadError> {
        let collector = Collector::new(max_rows, timeout);
        match self {
            Reader::Sqlite(r) => r.run(sealed, scope, collector, slot).await,
            Reader::Postgres(r) => r.run(sealed, scope, collector, slot).await,
        }
    }
}

/// Gathers rows as they arrive and stops at the first one over a bound.
struct Collector {
    rows: Rows,
    bytes: usize,
    max_rows: u64,
    timeout: Duration,
}

impl Collector {
    fn new(max_rows: u64, timeout: Duration) -> Collector {
        Collector {
            rows: Rows::new(),
            bytes: 0,
            max_rows,
            timeout,
        }
    }

    fn push(&mut self, row: Map<String, Value>, size: usize) -> Result<(), ReadError> {
        self.bytes += size;
        if self.bytes > MAX_RESULT_BYTES {
            return Err(too_large());
        }
        self.rows.push(row);
        if self.rows.len() as u64 > self.max_rows {
            return Err(ReadError::Limit(format!(
                "the query returns more than {} rows; aggregate, filter or add a LIMIT",
                self.max_rows
            )));
        }
        Ok(())
    }

    fn slow(&self) -> ReadError {
        ReadError::Limit(format!(
            "the query ran longer than {} ms; narrow its time range or use a rollup table",
            self.timeout.as_millis()
        ))
    }
}

fn too_large() -> ReadError {
    ReadError::Limit(format!(
        "the answer is larger than {MAX_RESULT_BYTES} bytes; select fewer columns or rows"
    ))
}

fn busy() -> ReadError {
    ReadError::Unavailable("Every analytics connection is busy; try again shortly.".into())
}
