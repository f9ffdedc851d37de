//! Runs a planned analytics query: read-only, bounded in rows, bytes and time, on its own
//! small pool so a slow report never takes a connection the API needs.
//!
//! - SQLite: connections opened read-only (`SQLITE_OPEN_READONLY`, `query_only`), and a
//!   progress handler that interrupts the statement at the deadline.
//! - PostgreSQL: a `READ ONLY` transaction with a `statement_timeout`, rolled back after.
//!   Rows come back as `row_to_json`, so any column type (NUMERIC sums included) maps to
//!   JSON the way PostgreSQL itself writes it.

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, Executor, Row, TypeInfo, ValueRef};

use super::functions::Dialect;

/// Bytes of row data one answer may carry.
pub const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Connections for analytics queries, apart from the API's pool.
const CONNECTIONS: u32 = 2;
/// SQLite VM steps between deadline checks: about a millisecond of work.
const STEPS_PER_CHECK: i32 = 10_000;

#[derive(Clone)]
pub enum Reader {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Why a query that passed the checks still did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database refused the query (an unknown column, a type mismatch): the caller's
    /// to fix, so a 400 with the database's words.
    #[error("{0}")]
    Rejected(String),
    /// Over a limit: a 422.
    #[error("{0}")]
    Limit(String),
    /// The database failed: a 500 (or 503) that is ours to look at.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

pub type Rows = Vec<Map<String, Value>>;

impl Reader {
    pub fn connect(url: &str) -> anyhow::Result<Reader> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .busy_timeout(Duration::from_secs(5))
                .pragma("query_only", "ON");
            let pool = SqlitePoolOptions::new()
                .max_connections(CONNECTIONS)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(options);
            Ok(Reader::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(CONNECTIONS)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy(url)?;
            Ok(Reader::Postgres(pool))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Reader::Sqlite(_) => Dialect::Sqlite,
            Reader::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql` (from `query::plan`, which asked for one row over `max_rows`).
    pub async fn run(
        &self,
        sql: &str,
        max_rows: u64,
        timeout: Duration,
    ) -> Result<Rows, ReadError> {
        let limit = || {
            ReadError::Limit(format!(
                "the query returns more than {max_rows} rows; aggregate, filter or add a LIMIT"
            ))
        };
        let slow = || {
            ReadError::Limit(format!(
                "the query ran longer than {} ms; narrow its time range or use a rollup table",
                timeout.as_millis()
            ))
        };
        let mut rows = Rows::new();
        let mut bytes = 0usize;
        let mut push = |row: Map<String, Value>, size: usize| -> Result<(), ReadError> {
            bytes += size;
            if bytes > MAX_RESULT_BYTES {
                return Err(ReadError::Limit(format!(
                    "the answer is larger than {MAX_RESULT_BYTES} bytes; select fewer columns or rows"
                )));
            }
            rows.push(row);
            if rows.len() as u64 > max_rows {
                return Err(limit());
            }
            Ok(())
        };
        match self {
            Reader::Sqlite(pool) => {
                let mut conn = pool.acquire().await.map_err(ReadError::Database)?;
                let deadline = Instant::now() + timeout;
                conn.lock_handle()
                    .await
                    .map_err(ReadError::Database)?
                    .set_progress_handler(STEPS_PER_CHECK, move || Instant::now() < deadline);
                let result = async {
                    let mut stream = sqlx::query(sql).fetch(&mut *conn);
                    while let Some(row) = stream.try_next().await.map_err(|e| classify(e, &slow))? {
                        let (row, size) = sqlite_row(&row);
                        push(row, size)?;
                    }
                    Ok::<_, ReadError>(())
                }
                .await;
                if let Ok(mut handle) = conn.lock_handle().await {
                    handle.remove_progress_handler();
                }
                result?;
            }
            Reader::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(ReadError::Database)?;
                tx.execute("SET TRANSACTION READ ONLY")
                    .await
                    .map_err(ReadError::Database)?;
                tx.execute(
                    format!(
                        "SET LOCAL statement_timeout = {}",
                        timeout.as_millis().max(1)
                    )
                    .as_str(),
                )
                .await
                .map_err(ReadError::Database)?;
                let wrapped = format!("SELECT row_to_json(q)::text FROM ({sql}) AS q");
                let result = async {
                    let mut stream = sqlx::query_scalar::<_, String>(&wrapped).fetch(&mut *tx);
                    while let Some(text) =
                        stream.try_next().await.map_err(|e| classify(e, &slow))?
                    {
                        let row: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
                            ReadError::Rejected(format!("a row could not be read: {e}"))
                        })?;
                        push(row, text.len())?;
                    }
                    Ok::<_, ReadError>(())
                }
                .await;
                // Read-only either way; rolling back ends it without a commit round trip.
                let _ = tx.rollback().await;
                result?;
            }
        }
        Ok(rows)
    }
}

/// A database error: the caller's query, a deadline, or ours.
fn classify(e: sqlx::Error, slow: &dyn Fn() -> ReadError) -> ReadError {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().unwrap_or_default();
        // PostgreSQL: 57014 query_canceled (statement_timeout). SQLite: 9 SQLITE_INTERRUPT.
        if code == "57014" || code == "9" {
            return slow();
        }
        // PostgreSQL: 42 syntax and names, 22 data, 21 cardinality, 25006 read-only.
        // SQLite: 1 SQLITE_ERROR (no such column, misuse), 8 SQLITE_READONLY,
        // 20 SQLITE_MISMATCH, 25 SQLITE_RANGE.
        let caller = ["42", "22", "21"].iter().any(|c| code.starts_with(c))
            || matches!(code.as_ref(), "25006" | "1" | "8" | "20" | "25");
        if caller {
            return ReadError::Rejected(format!(
                "the database refused the query: {}",
                db.message()
            ));
        }
    }
    ReadError::Database(e)
}

/// One SQLite row as JSON, by each value's own storage class, and its size in bytes.
fn sqlite_row(row: &SqliteRow) -> (Map<String, Value>, usize) {
    let mut out = Map::new();
    let mut size = 0;
    for (i, column) in row.columns().iter().enumerate() {
        let value = match row.try_get_raw(i) {
            Ok(raw) if raw.is_null() => Value::Null,
            Ok(raw) => match raw.type_info().name() {
                "INTEGER" => row
                    .try_get::<i64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "REAL" => row
                    .try_get::<f64, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                "TEXT" => row
                    .try_get::<String, _>(i)
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                _ => row
                    .try_get_unchecked::<Vec<u8>, _>(i)
                    .map(|b| Value::from(String::from_utf8_lossy(&b).into_owned()))
                    .unwrap_or(Value::Null),
            },
            Err(_) => Value::Null,
        };
        size += column.name().len() + value.to_string().len();
        out.insert(column.name().to_string(), value);
    }
    (out, size)
}
