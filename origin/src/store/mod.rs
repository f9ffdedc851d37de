//! Storage: SQLite (embedded, the default) and PostgreSQL through one code path.
//!
//! Everything goes through sqlx's `Any` driver with portable SQL: `$N` placeholders
//! (SQLite accepts them too), BIGINT for booleans and unix-ms times, TEXT for JSON. So
//! there is one query per operation, not one per database, and the integration suite
//! runs unchanged against both.

mod apis;
mod bootstrap;
mod credits;
mod grants;
mod identities;
mod keys;
mod query;
mod ratelimits;
mod rbac;
mod recovery;
mod snapshot;
pub mod transfer;

pub use apis::ApiRow;
pub use bootstrap::{Bootstrap, RootKeyRow};
pub use grants::SetOp;
pub use identities::{IdentityRow, RatelimitRow};
pub use keys::{HashFilter, KeyRow, KeyUpdate, NewKey, NewRatelimit};
pub use ratelimits::OverrideRow;
pub use rbac::{PermissionRow, RoleRow};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    Conflict,
    /// A write named something that does not exist; nothing was written.
    #[error("{0}")]
    Missing(Missing),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Stored data that cannot mean anything: an error to log and count, never a default.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a write could not find. The transaction is dropped, so nothing half-done remains.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("no role {0:?}")]
    Role(String),
    /// A permission that would have to be created by a caller who may not create one.
    #[error("no permission {0:?}, and it may not be created")]
    Permission(String),
    /// A permission named by id or slug that does not exist.
    #[error("no permission {0:?}")]
    PermissionRef(String),
}

impl From<Missing> for StoreError {
    fn from(m: Missing) -> Self {
        StoreError::Missing(m)
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    is_sqlite: bool,
}

/// `sqlite://keyway.db` → create the file if missing; leave other URLs alone.
fn normalize_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL lets readers proceed during the batched writes; the busy
                        // timeout makes concurrent writers wait instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&normalize_url(url))
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool, is_sqlite })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. On SQLite it takes the write lock at `BEGIN IMMEDIATE`: a
    /// deferred transaction that reads first must upgrade its lock when it writes, and if
    /// another connection (the event writer, say) committed in between, SQLite answers
    /// SQLITE_BUSY at once instead of waiting out the busy timeout. One CI run got a 500
    /// from permissions.setRolePermissions that way.
    /// The pool, for the analytics subsystem's own statements.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn transaction(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(if self.is_sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }
}

/// `$1, $2, …, $n`: the placeholders of an `IN (…)` list.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(
            normalize_url("sqlite://keyway.db"),
            "sqlite://keyway.db?mode=rwc"
        );
        assert_eq!(
            normalize_url("sqlite://k.db?x=1"),
            "sqlite://k.db?x=1&mode=rwc"
        );
        assert_eq!(normalize_url("postgres://p@h/db"), "postgres://p@h/db");
    }
}
