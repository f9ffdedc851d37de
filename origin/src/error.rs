//! The origin's one error type, saying who caused a failure: the client (a 4xx), a
//! dependency that did not answer (a 503, worth retrying), or us (a 500).
//!
//! An error is classified where it is made and becomes an answer in one place,
//! [`AppError::into_api_error`], which is also the one place it is logged: a client's
//! mistake is not logged at all, the others once each.

use keyway_core::error::ApiError;

use crate::cluster::ClusterError;
use crate::store::{Missing, StoreError};
use keyway_core::not_found;

#[derive(Debug)]
pub enum AppError {
    /// The caller's mistake, answered as it is.
    Client(ApiError),
    /// A dependency did not answer; nothing says the request cannot succeed later.
    Unavailable {
        dependency: Dependency,
        cause: String,
    },
    /// Our own fault: a bug, or stored data that cannot mean anything.
    Internal {
        /// What the log says happened.
        log: &'static str,
        /// What the client is told; never the cause, which can hold query fragments.
        public: String,
        cause: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Database,
    /// Redis, holding the cluster's rate-limit windows and credit balances.
    Counters,
    /// The analytics reader's workers (all busy, or gone).
    AnalyticsReader,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Database => "database",
            Dependency::Counters => "redis",
            Dependency::AnalyticsReader => "analytics_reader",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Dependency::Database => {
                "The database is unavailable; the request was not completed. Retry shortly."
            }
            Dependency::Counters => {
                "The shared rate-limit and credit counters are unreachable; nothing was counted or spent. Retry shortly."
            }
            Dependency::AnalyticsReader => {
                "The analytics reader is unavailable; retry the query shortly."
            }
        }
    }
}

impl AppError {
    pub fn internal(log: &'static str, public: impl Into<String>, cause: impl ToString) -> Self {
        AppError::Internal {
            log,
            public: public.into(),
            cause: cause.to_string(),
        }
    }

    pub fn unavailable(dependency: Dependency, cause: impl ToString) -> Self {
        AppError::Unavailable {
            dependency,
            cause: cause.to_string(),
        }
    }

    /// The answer for the client, logging what the operator needs to know.
    pub fn into_api_error(self) -> ApiError {
        match self {
            AppError::Client(e) => e,
            AppError::Unavailable { dependency, cause } => {
                tracing::warn!(dependency = dependency.as_str(), error = %cause, "a dependency is unavailable");
                ApiError::unavailable(dependency.detail())
            }
            AppError::Internal { log, public, cause } => {
                tracing::error!(error = %cause, "{log}");
                ApiError::internal(public)
            }
        }
    }
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError::Client(e)
    }
}

/// Whether a database error means the database did not answer, rather than that it
/// refused this statement.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions, insufficient resources, operator
            // intervention (a shutdown). SQLite: busy or locked.
            ["08", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517")
        }),
        _ => false,
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => AppError::Client(ApiError::conflict(
                "unkey/data/resource_already_exists",
                "A resource with this identifier already exists.",
            )),
            StoreError::Missing(Missing::Role(name)) => AppError::Client(not_found::role(&name)),
            StoreError::Missing(Missing::PermissionRef(what)) => {
                AppError::Client(not_found::permission(&what))
            }
            StoreError::Missing(Missing::Permission(slug)) => {
                AppError::Client(ApiError::forbidden(format!(
                    "The permission '{slug}' does not exist, and the root key lacks 'rbac.*.create_permission' to create it."
                )))
            }
            StoreError::Database(e) if database_unavailable(&e) => {
                AppError::unavailable(Dependency::Database, e)
            }
            StoreError::Database(e) => AppError::internal(
                "database error",
                "The database failed to answer; the request was not completed.",
                e,
            ),
            StoreError::Corrupt(what) => AppError::internal(
                "stored data could not be decoded",
                "Stored data could not be read; the request was not completed.",
                what,
            ),
        }
    }
}

/// Redis did not answer: refuse rather than guess, so no limit or balance is over-spent.
/// The cluster logs the outage once and counts each failure.
impl From<ClusterError> for AppError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Store(e) => AppError::from(e),
            other => AppError::unavailable(Dependency::Counters, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_has_its_status() {
        let status = |e: AppError| e.into_api_error().status;
        assert_eq!(status(ApiError::forbidden("no").into()), 403);
        assert_eq!(status(StoreError::Conflict.into()), 409);
        assert_eq!(
            status(StoreError::Database(sqlx::Error::PoolTimedOut).into()),
            503
        );
        assert_eq!(
            status(StoreError::Database(sqlx::Error::RowNotFound).into()),
            500
        );
        assert_eq!(status(StoreError::Corrupt("x".into()).into()), 500);
        assert_eq!(status(ClusterError::Reply("nonsense".into()).into()), 503);
    }

    #[test]
    fn the_cause_stays_out_of_the_answer() {
        let e: AppError =
            StoreError::Database(sqlx::Error::Protocol("SELECT secret FROM keys".into())).into();
        let answer = e.into_api_error();
        assert_eq!(answer.status, 500);
        assert!(!answer.detail.contains("secret"), "{}", answer.detail);
    }
}
