//! `analytics.*`: the caller's SQL over its own verification and rate-limit rows.

use std::time::Duration;

use axum::extract::State;
use keyway_core::api::analytics::QueryRequest;
use keyway_core::auth::{Action, Targets};
use keyway_core::error::ApiError;
use keyway_core::validate::Issues;

use crate::analytics::query::functions::Ctx;
use crate::analytics::query::reader::{DbScope, ReadError};
use crate::analytics::query::tables::{Catalog, RATELIMITS, Scope, VERIFICATIONS};
use crate::analytics::query::{self, QueryError};
use crate::error::{AppError, Dependency};
use crate::http::{ApiResult, Credentials, Json, ok};
use crate::ids;
use crate::state::AppState;

/// A route over one table, readable with one action.
macro_rules! table_route {
    ($name:ident, $table:expr, $action:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            credentials: Credentials,
            Json(req): Json<QueryRequest>,
        ) -> ApiResult {
            run(&state, &credentials, &req, &$table, $action).await
        }
    };
}

table_route!(get_verifications, VERIFICATIONS, Action::ReadAnalytics);
table_route!(get_ratelimits, RATELIMITS, Action::ReadRatelimitAnalytics);

async fn run(
    state: &AppState,
    credentials: &Credentials,
    req: &QueryRequest,
    catalog: &'static Catalog,
    action: Action,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.query", &req.query, 1, usize::MAX);
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    let only = match caller.targets(action) {
        Targets::All => None,
        Targets::Only(ids) => Some(ids),
        Targets::None => {
            let (resource, what) = match action {
                Action::ReadRatelimitAnalytics => ("ratelimit", "namespace"),
                _ => ("api", "apiId"),
            };
            return Err(AppError::Client(ApiError::forbidden(format!(
                "The root key has no permission to read analytics ('{resource}.*.read_analytics' or '{resource}.<{what}>.read_analytics')."
            ))));
        }
    };
    let scope = Scope {
        workspace_id: caller.workspace_id().to_string(),
        only,
    };
    let analytics = &state.analytics;
    let ctx = Ctx {
        dialect: analytics.reader.dialect(),
        now_ms: ids::now_ms(),
    };
    let max_rows = analytics.limits.max_rows;
    // Taken before planning, which is work too (on a thread of its own).
    let slot = analytics
        .running
        .enter(caller.key_id(), analytics.limits.per_key)
        .ok_or_else(|| {
            AppError::Client(ApiError::too_many_requests(format!(
                "This root key already has {} analytics queries running; wait for one to finish.",
                analytics.limits.per_key
            )))
        })?;
    // The slot goes with the planning thread and comes back: a caller that hangs up
    // while its query is planned frees nothing until the planning ends.
    let (sealed, slot) = {
        let (sql, scope) = (req.query.clone(), scope.clone());
        tokio::task::spawn_blocking(move || {
            let planned = query::plan_on_own_stack(&sql, catalog, &scope, ctx, max_rows);
            (planned, slot)
        })
        .await
        .map_err(|e| {
            AppError::internal(
                "the analytics planner failed",
                "The analytics query could not be planned.",
                e,
            )
        })?
    };
    let sealed = sealed.map_err(query_error)?;
    let timeout = Duration::from_millis(analytics.limits.timeout_ms);
    let rows = analytics
        .reader
        .run(
            &sealed,
            &DbScope::new(catalog.kind, &scope),
            max_rows,
            timeout,
            Some(slot),
        )
        .await
        .map_err(read_error)?;
    ok(rows)
}

fn query_error(e: QueryError) -> AppError {
    let kind = match &e {
        QueryError::Table { .. } => "user/bad_request/invalid_analytics_table",
        QueryError::Function(_) => "user/bad_request/invalid_analytics_function",
        QueryError::Invalid(_) => "user/bad_request/invalid_analytics_query",
        QueryError::Limit(m) => return AppError::Client(ApiError::query_limit(m.clone())),
    };
    AppError::Client(ApiError::invalid_query(kind, e.to_string()))
}

fn read_error(e: ReadError) -> AppError {
    match e {
        ReadError::Rejected(m) => AppError::Client(ApiError::invalid_query(
            "user/bad_request/invalid_analytics_query",
            m,
        )),
        ReadError::Limit(m) => AppError::Client(ApiError::query_limit(m)),
        ReadError::Unavailable(m) => AppError::unavailable(Dependency::AnalyticsReader, m),
        ReadError::Database(e) => AppError::internal(
            "analytics query failed",
            "The analytics query failed in the database.",
            e,
        ),
    }
}
