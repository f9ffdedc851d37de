//! PostgreSQL's half of the sandbox.
//!
//! Analytics queries log in as a role of their own, `keyway_analytics_<hash of the
//! database's name>` (one per database, since roles are cluster-wide). `prepare` creates
//! it at start and keeps it current:
//! - it can `SELECT` the analytics tables and three columns of `identities`, nothing
//!   else of ours; as a plain login role it cannot read server files, signal other
//!   backends of other roles, or switch to a role that can;
//! - row-level security on those tables lets it see only the rows of the grant its
//!   query holds. A grant is a row the origin writes (as itself) before each query and
//!   deletes after; the query's transaction names it by a random token, and a
//!   `SECURITY DEFINER` function is the only way the role can read it. So a query that
//!   escaped the rewriter and set its own settings would still have to guess another
//!   query's 128-bit token to read another workspace;
//! - `statement_timeout`, `work_mem` and (where the server allows) `temp_file_limit`
//!   are set for the role, and the first two again per transaction;
//! - `pg_stat_activity` and the backend-signalling functions are revoked from PUBLIC in
//!   this database where the origin may do so, so one caller cannot read another's query.
//!
//! Where the origin's user may not create roles or own the tables, the server logs so at
//! start and runs analytics as itself in a read-only transaction: the rewriter is then
//! the only layer that keeps a query to its caller's rows (README, "Analytics").

use std::time::Duration;

use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use super::{ACQUIRE, CONNECTIONS, Collector, DbScope, ReadError, Rows, busy, too_large};
use crate::analytics::query::seal::Sealed;
use crate::analytics::query::tables::{IDENTITIES, Kind, stored_tables};

/// The longest row one answer may carry, as PostgreSQL's JSON text of it.
const MAX_ROW_BYTES: usize = 1024 * 1024;
/// Taken around the role's set-up, so nodes starting together do it one at a time.
const SETUP_LOCK: i64 = 0x6b65_7977_6179_0001;

/// The analytics role's login.
#[derive(Clone)]
pub struct Role {
    name: String,
    password: String,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role").field("name", &self.name).finish()
    }
}

/// Creates or updates the analytics role, its grants and the row-level security policies.
/// `Ok(None)`: this deployment's user may not, and analytics run without that layer.
pub async fn prepare(url: &str) -> anyhow::Result<Option<Role>> {
    let mut conn = PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    tx.execute(format!("SELECT pg_advisory_xact_lock({SETUP_LOCK})").as_str())
        .await?;
    match set_up(&mut tx).await {
        Ok(role) => {
            tx.commit().await?;
            Ok(Some(role))
        }
        Err(e) if insufficient_privilege(&e) => {
            drop(tx);
            tracing::warn!(
                error = %e,
                "analytics: the database user may not create the analytics role or own its tables; \
                 analytics queries run as the server's own user, kept to the caller's rows by the \
                 query rewriter alone"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn insufficient_privilege(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "42501"))
}

async fn set_up(tx: &mut PgConnection) -> Result<Role, sqlx::Error> {
    let (name, schema, database): (String, String, String) = sqlx::query_as(
        "SELECT 'keyway_analytics_' || left(md5(current_database()), 12), \
         quote_ident(current_schema()), quote_ident(current_database())",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS keyway_analytics_role (
             name TEXT PRIMARY KEY,
             password TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS keyway_analytics_grants (
             token TEXT PRIMARY KEY,
             kind TEXT NOT NULL,
             workspace_id TEXT NOT NULL,
             only_ids TEXT[],
             expires_at BIGINT NOT NULL
         );",
    )
    .await?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password FROM keyway_analytics_role WHERE name = $1")
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
    let password = match stored {
        Some(p) => p,
        None => {
            let p = hex(&crate::ids::random_bytes(24));
            sqlx::query("INSERT INTO keyway_analytics_role (name, password) VALUES ($1, $2)")
                .bind(&name)
                .bind(&p)
                .execute(&mut *tx)
                .await?;
            p
        }
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
    // The name is hex and the password hex: nothing here needs quoting.
    let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION \
                      NOBYPASSRLS CONNECTION LIMIT 32";
    let verb = if exists { "ALTER" } else { "CREATE" };
    tx.execute(format!("{verb} ROLE {name} {attributes} PASSWORD '{password}'").as_str())
        .await?;
    let mut sql = vec![
        format!("ALTER ROLE {name} SET default_transaction_read_only = on"),
        format!("ALTER ROLE {name} SET statement_timeout = '60s'"),
        format!("ALTER ROLE {name} SET work_mem = '16MB'"),
        format!("ALTER ROLE {name} SET search_path = {schema}"),
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {name}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {name}"),
        format!("REVOKE CREATE ON SCHEMA {schema} FROM {name}"),
        format!("GRANT CONNECT ON DATABASE {database} TO {name}"),
        format!("GRANT USAGE ON SCHEMA {schema} TO {name}"),
        // What a query's scope is: its grant, found by the token its transaction set.
        format!(
            "CREATE OR REPLACE FUNCTION keyway_analytics_scope(want TEXT)
             RETURNS TABLE (workspace_id TEXT, only_ids TEXT[])
             LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}
             AS $$ SELECT g.workspace_id, g.only_ids FROM {schema}.keyway_analytics_grants g
                   WHERE g.token = current_setting('keyway.analytics_token', true)
                     AND g.kind = want
                     AND g.expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$"
        ),
        "REVOKE ALL ON FUNCTION keyway_analytics_scope(TEXT) FROM PUBLIC".into(),
        format!("GRANT EXECUTE ON FUNCTION keyway_analytics_scope(TEXT) TO {name}"),
    ];
    let mut policy = |table: &str, kind: Kind, restrict: Option<&str>| {
        let k = kind.as_str();
        let scope = format!("(SELECT s.workspace_id FROM keyway_analytics_scope('{k}') s)");
        let rows = match restrict {
            Some(col) => format!(
                "workspace_id = {scope} AND ({col} = ANY (CAST((SELECT s.only_ids FROM keyway_analytics_scope('{k}') s) AS TEXT[])) \
                 OR (SELECT s.only_ids IS NULL FROM keyway_analytics_scope('{k}') s))"
            ),
            None => format!("workspace_id = {scope}"),
        };
        sql.extend([
            format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
            // The origin's own user keeps every row (it owns the tables, which already
            // bypasses the policies, unless a deployment forces them).
            format!("DROP POLICY IF EXISTS keyway_origin ON {table}"),
            format!(
                "CREATE POLICY keyway_origin ON {table} TO CURRENT_USER USING (true) WITH CHECK (true)"
            ),
            format!("DROP POLICY IF EXISTS keyway_analytics ON {table}"),
            format!(
                "CREATE POLICY keyway_analytics ON {table} FOR SELECT TO {name} USING ({rows})"
            ),
        ]);
    };
    let mut tables = Vec::new();
    for (stored, restrict, kind) in stored_tables() {
        policy(stored, kind, Some(restrict));
        tables.push(stored);
    }
    let (identities, columns) = IDENTITIES;
    policy(identities, Kind::Verifications, None);
    sql.push(format!("GRANT SELECT ON {} TO {name}", tables.join(", ")));
    sql.push(format!(
        "GRANT SELECT ({}) ON {identities} TO {name}",
        columns.join(", ")
    ));
    for statement in &sql {
        tx.execute(statement.as_str()).await?;
    }
    // Best effort: only a superuser may set these, and the rest stands without them.
    for optional in [
        format!("ALTER ROLE {name} SET temp_file_limit = '256MB'"),
        "REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC".into(),
        "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC"
            .into(),
        "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer) FROM PUBLIC".into(),
    ] {
        tx.execute("SAVEPOINT optional").await?;
        if let Err(e) = tx.execute(optional.as_str()).await {
            tracing::debug!(error = %e, statement = %optional, "analytics: optional hardening skipped");
            tx.execute("ROLLBACK TO SAVEPOINT optional").await?;
        }
        tx.execute("RELEASE SAVEPOINT optional").await?;
    }
    Ok(Role { name, password })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
pub struct PgReader {
    /// Connections as the analytics role (or as the server's user, without one).
    reader: PgPool,
    /// Connections as the server's own user, to write and delete grants.
    grants: PgPool,
    sandboxed: bool,
}

impl PgReader {
    pub fn connect(url: &str, role: Option<Role>) -> anyhow::Result<PgReader> {
        let own: PgConnectOptions = url.parse()?;
        let sandboxed = role.is_some();
        // Statement logs would carry callers' queries into the origin's log.
        let own = own
            .log_statements(log::LevelFilter::Off)
            .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(0));
        let as_reader = match role {
            Some(r) => own.clone().username(&r.name).password(&r.password),
            None => own.clone(),
        };
        let pool = |options: PgConnectOptions, n: usize| {
            PgPoolOptions::new()
                .max_connections(n as u32)
                .acquire_timeout(ACQUIRE)
                // A connection whose session a query changed anyway is reset before reuse.
                .after_release(|conn, _| {
                    Box::pin(async move { Ok(conn.execute("RESET ALL").await.is_ok()) })
                })
                .connect_lazy_with(options)
        };
        Ok(PgReader {
            reader: pool(as_reader, CONNECTIONS),
            grants: pool(own, 1),
            sandboxed,
        })
    }

    /// Runs on a task of its own, which holds `slot` until the database is done: a caller
    /// that hangs up frees nothing while its query still runs.
    pub(super) async fn run(
        &self,
        sealed: &Sealed,
        scope: &DbScope,
        collector: Collector,
        slot: Option<crate::analytics::query::Slot>,
    ) -> Result<Rows, ReadError> {
        let (this, sealed, scope) = (self.clone(), sealed.clone(), scope.clone());
        tokio::spawn(async move {
            let result = this.run_here(&sealed, &scope, collector).await;
            drop(slot);
            result
        })
        .await
        .map_err(|e| ReadError::Database(format!("the analytics task failed: {e}")))?
    }

    async fn run_here(
        &self,
        sealed: &Sealed,
        scope: &DbScope,
        mut collector: Collector,
    ) -> Result<Rows, ReadError> {
        let token = hex(&crate::ids::random_bytes(16));
        if self.sandboxed {
            self.grant(&token, scope, collector.timeout).await?;
        }
        let result = self.query(sealed, &token, &mut collector).await;
        if self.sandboxed {
            // A grant left behind expires on its own a few seconds later.
            let _ = sqlx::query("DELETE FROM keyway_analytics_grants WHERE token = $1")
                .bind(&token)
                .execute(&self.grants)
                .await;
        }
        result?;
        Ok(collector.rows)
    }

    async fn grant(
        &self,
        token: &str,
        scope: &DbScope,
        timeout: Duration,
    ) -> Result<(), ReadError> {
        let now = crate::ids::now_ms();
        let expires = now + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2) + 5_000;
        let mut conn = self.grants.acquire().await.map_err(pool_error)?;
        sqlx::query("DELETE FROM keyway_analytics_grants WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(database)?;
        sqlx::query(
            "INSERT INTO keyway_analytics_grants (token, kind, workspace_id, only_ids, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token)
        .bind(scope.kind.as_str())
        .bind(&scope.workspace_id)
        .bind(scope.only.as_deref())
        .bind(expires)
        .execute(&mut *conn)
        .await
        .map_err(database)?;
        Ok(())
    }

    async fn query(
        &self,
        sealed: &Sealed,
        token: &str,
        collector: &mut Collector,
    ) -> Result<(), ReadError> {
        let mut tx = self.reader.begin().await.map_err(pool_error)?;
        let setup = [
            "SET TRANSACTION READ ONLY".to_string(),
            format!(
                "SET LOCAL statement_timeout = {}",
                collector.timeout.as_millis().max(1)
            ),
            "SET LOCAL work_mem = '16MB'".to_string(),
            // A custom plan puts the bound strings into the plan and folds constant
            // expressions over them while planning, where no timeout or cancel reaches:
            // `$1 || $1 || …` once took a backend to 17 GB. A generic plan leaves them to
            // the executor.
            "SET LOCAL plan_cache_mode = force_generic_plan".to_string(),
        ];
        for s in &setup {
            tx.execute(s.as_str()).await.map_err(database)?;
        }
        sqlx::query("SELECT set_config('keyway.analytics_token', $1, true)")
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(database)?;
        // Rows come back as PostgreSQL's own JSON of them, so any column type (NUMERIC
        // sums included) maps the way PostgreSQL writes it; cut one byte past the
        // longest row, so a huge value never crosses the wire whole.
        let wrapped = format!(
            "SELECT substr(row_to_json(q)::text, 1, {}) FROM ({}) AS q",
            MAX_ROW_BYTES + 1,
            sealed.sql
        );
        let result = async {
            let mut query = sqlx::query_scalar::<_, String>(&wrapped);
            for p in &sealed.params {
                query = query.bind(p.as_str());
            }
            let mut stream = query.fetch(&mut *tx);
            while let Some(text) = stream
                .try_next()
                .await
                .map_err(|e| classify(e, collector))?
            {
                if text.len() > MAX_ROW_BYTES {
                    return Err(too_large());
                }
                let row: Map<String, Value> = serde_json::from_str(&text)
                    .map_err(|e| ReadError::Rejected(format!("a row could not be read: {e}")))?;
                collector.push(row, text.len())?;
            }
            Ok::<_, ReadError>(())
        }
        .await;
        // Read-only either way; rolling back ends it without a commit round trip.
        let _ = tx.rollback().await;
        result
    }
}

fn pool_error(e: sqlx::Error) -> ReadError {
    match e {
        sqlx::Error::PoolTimedOut => busy(),
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ReadError::Unavailable("The analytics database could not be reached; try again.".into())
        }
        other => database(other),
    }
}

fn database(e: sqlx::Error) -> ReadError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => pool_error(e),
        other => ReadError::Database(other.to_string()),
    }
}

/// A database error: the caller's query, a deadline, or ours.
fn classify(e: sqlx::Error, collector: &Collector) -> ReadError {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().unwrap_or_default();
        // 57014 query_canceled (statement_timeout).
        if code == "57014" {
            return collector.slow();
        }
        // 53 insufficient resources, 54 program limits (a value over 1 GB, too many
        // columns): over a limit, the caller's to narrow.
        if code.starts_with("53") || code.starts_with("54") {
            return ReadError::Limit(format!(
                "the query needs more than the analytics database allows: {}",
                db.message()
            ));
        }
        // 42 syntax, names and privileges (42501: a read the sandbox refuses), 22 data,
        // 21 cardinality, 0A feature not supported (a write nested in a query), 25006
        // read-only.
        let caller =
            ["42", "22", "21", "0A"].iter().any(|c| code.starts_with(c)) || code == "25006";
        if caller {
            return ReadError::Rejected(format!(
                "the database refused the query: {}",
                db.message()
            ));
        }
    }
    database(e)
}

#[cfg(test)]
mod tests {
    //! The database alone: raw SQL straight to the reader, no rewriter in front, on a
    //! PostgreSQL database of the test's own.
    use super::*;
    use crate::store::Store;
    use keyway_testkit::db::{Backend, TestDb};

    async fn setup() -> (TestDb, PgReader) {
        let db = TestDb::new(Backend::Postgres).await.unwrap();
        let store = Store::connect(&db.url, 2).await.unwrap();
        store.close().await;
        let pool = db.pool().await.unwrap();
        for (ws, api, n) in [("ws_1", "a1", 1), ("ws_1", "a2", 10), ("ws_2", "a1", 100)] {
            sqlx::query(&format!(
                "INSERT INTO key_verifications_per_day (time, workspace_id, api_id, key_id, identity_id, outcome, tags, count, spent_credits) \
                 VALUES (0, '{ws}', '{api}', 'k', '', 'VALID', '[]', {n}, 0)"
            ))
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        let role = prepare(&db.url)
            .await
            .unwrap()
            .expect("the test user may create roles");
        // Twice, as a second node or a restart does: it keeps the role current.
        let role2 = prepare(&db.url).await.unwrap().unwrap();
        assert_eq!(role.password, role2.password);
        let reader = PgReader::connect(&db.url, Some(role)).unwrap();
        (db, reader)
    }

    fn scope(only: Option<&[&str]>) -> DbScope {
        DbScope::for_tests(only)
    }

    async fn run(r: &PgReader, sql: &str, scope: DbScope) -> Result<Rows, ReadError> {
        let sealed = Sealed {
            sql: sql.into(),
            params: Vec::new(),
        };
        r.run(
            &sealed,
            &scope,
            Collector::new(100, Duration::from_secs(2)),
            None,
        )
        .await
    }

    async fn number(r: &PgReader, sql: &str, scope: DbScope) -> f64 {
        let rows = run(r, sql, scope)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows[0]
            .values()
            .next()
            .and_then(Value::as_f64)
            .unwrap_or(-1.0)
    }

    #[tokio::test]
    async fn the_role_sees_only_its_grants_rows() {
        let (_db, r) = setup().await;
        let sum = "SELECT COALESCE(SUM(count), 0) AS n FROM key_verifications_per_day";
        assert_eq!(number(&r, sum, scope(None)).await, 11.0);
        assert_eq!(number(&r, sum, scope(Some(&["a1"]))).await, 1.0);
        assert_eq!(number(&r, sum, scope(Some(&[]))).await, 0.0);
        let other = DbScope {
            kind: Kind::Ratelimits,
            ..scope(None)
        };
        assert_eq!(number(&r, sum, other).await, 0.0, "the other route's grant");
        // Forged settings do not widen the scope: the grant is found by its token.
        for forged in [
            "SELECT set_config('keyway.analytics_token', 'guess', true) AS t, (SELECT COALESCE(SUM(count), 0) FROM key_verifications_per_day) AS n",
            "SELECT (SELECT COALESCE(SUM(count), 0) FROM key_verifications_per_day, (SELECT set_config('keyway.analytics_token', '', false)) AS x) AS n",
        ] {
            let rows = run(&r, forged, scope(Some(&["a1"]))).await.unwrap();
            let n = rows[0]["n"].as_f64().unwrap_or(-1.0);
            assert!(n <= 1.0, "{forged}: {rows:?}");
        }
        // Grants do not outlive their query.
        let pool = PgPool::connect(&_db.url).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keyway_analytics_grants")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0);
        pool.close().await;
    }

    #[tokio::test]
    async fn everything_else_is_refused_by_the_database() {
        let (_db, r) = setup().await;
        for sql in [
            "SELECT * FROM keys",
            "SELECT hash FROM keys",
            "SELECT meta FROM identities",
            "SELECT * FROM keyway_analytics_grants",
            "SELECT * FROM keyway_analytics_role",
            "SELECT * FROM apis",
            "SELECT pg_read_file('/etc/passwd') AS x",
            "SELECT pg_ls_dir('.') AS x",
            "SELECT * FROM pg_stat_activity",
            "SELECT pg_terminate_backend(1) AS x",
            "SELECT pg_cancel_backend(1) AS x",
            "SELECT set_config('role', 'postgres', true) AS x",
            "SELECT set_config('session_authorization', 'postgres', true) AS x",
            "SELECT lo_import('/etc/passwd') AS x",
            "WITH d AS (DELETE FROM key_verifications_per_day RETURNING 1) SELECT COUNT(*) AS n FROM d",
            "SELECT 1 AS x) AS q; DELETE FROM keys; SELECT (SELECT 1",
            "SELECT 1 AS x) AS q; COMMIT; SELECT (SELECT 1",
        ] {
            match run(&r, sql, scope(None)).await {
                Err(ReadError::Rejected(_)) => {}
                other => panic!("{sql}: {other:?}"),
            }
        }
        // The catalog and the connection are as they were: a later query still runs, and
        // the stored rows are all there.
        assert_eq!(
            number(
                &r,
                "SELECT COALESCE(SUM(count), 0) AS n FROM key_verifications_per_day",
                scope(None)
            )
            .await,
            11.0
        );
    }

    #[tokio::test]
    async fn a_connection_is_reset_after_each_query() {
        let (_db, r) = setup().await;
        for _ in 0..4 {
            run(
                &r,
                "SELECT set_config('work_mem', '64kB', false) AS x",
                scope(None),
            )
            .await
            .unwrap();
        }
        for _ in 0..4 {
            let rows = run(&r, "SELECT current_setting('work_mem') AS w, current_setting('transaction_read_only') AS ro, current_user AS u", scope(None))
                .await
                .unwrap();
            assert_eq!(rows[0]["w"], "16MB", "{rows:?}");
            assert_eq!(rows[0]["ro"], "on", "{rows:?}");
            assert!(
                rows[0]["u"]
                    .as_str()
                    .unwrap()
                    .starts_with("keyway_analytics_")
            );
        }
    }
}

#[cfg(test)]
mod without_createrole {
    //! A deployment whose database user may not create roles: the server says so and
    //! runs analytics as itself, read-only.
    use super::*;
    use crate::store::Store;
    use keyway_testkit::db::PG_SERVER;

    #[tokio::test]
    async fn analytics_run_as_the_servers_user_with_a_warning() {
        let suffix = hex(&crate::ids::random_bytes(6));
        let (user, db) = (
            format!("kw_plain_{suffix}"),
            format!("kw_plain_db_{suffix}"),
        );
        let admin = PgPool::connect(&format!("{PG_SERVER}/postgres"))
            .await
            .unwrap();
        for sql in [
            format!("CREATE ROLE {user} LOGIN NOCREATEROLE NOSUPERUSER"),
            format!("CREATE DATABASE {db} OWNER {user}"),
        ] {
            sqlx::query(&sql).execute(&admin).await.unwrap();
        }
        let url = format!("postgres://{user}@127.0.0.1:5432/{db}");
        let result = async {
            let store = Store::connect(&url, 2).await?;
            store.close().await;
            let role = prepare(&url).await?;
            anyhow::ensure!(role.is_none(), "a role was made without CREATEROLE");
            let reader = PgReader::connect(&url, None)?;
            let sealed = Sealed {
                sql: "SELECT COUNT(*) AS n, current_user AS u FROM key_verifications".into(),
                params: Vec::new(),
            };
            let scope = DbScope {
                kind: Kind::Verifications,
                workspace_id: "ws".into(),
                only: None,
            };
            let rows = reader
                .run(
                    &sealed,
                    &scope,
                    Collector::new(10, Duration::from_secs(2)),
                    None,
                )
                .await?;
            anyhow::ensure!(rows[0]["u"] == user.as_str(), "{rows:?}");
            // Still read-only.
            let write = Sealed {
                sql: "WITH d AS (DELETE FROM keys RETURNING 1) SELECT COUNT(*) AS n FROM d".into(),
                params: Vec::new(),
            };
            let refused = reader
                .run(
                    &write,
                    &scope,
                    Collector::new(10, Duration::from_secs(2)),
                    None,
                )
                .await;
            anyhow::ensure!(
                matches!(refused, Err(ReadError::Rejected(_))),
                "{refused:?}"
            );
            Ok(())
        }
        .await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&admin)
            .await;
        let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {user}"))
            .execute(&admin)
            .await;
        result.unwrap();
    }
}
