//! The HTTP surface, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::sync::Arc;

use axum::routing::{MethodRouter, get, post};

use crate::handlers::{
    analytics, apis, identities, internal, keys, ops, permissions, ratelimit, verify,
};
use crate::http::{ContextLayer, MAX_BODY_BYTES};
use crate::metrics::Metrics;
use crate::state::AppState;

/// Where `GET /metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOn {
    /// On the public API's address, beside every route.
    Api,
    /// Only on its own listener (`metrics_router`); the API answers it with a 404.
    Separate,
}

/// The metrics alone, for a private listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .with_state(state)
}

pub fn router(state: AppState, metrics: MetricsOn) -> Router {
    let routes = Routes::new(&state).route("/v2/liveness", get(ops::liveness));
    let routes = match metrics {
        MetricsOn::Api => routes.route("/metrics", get(ops::metrics)),
        MetricsOn::Separate => routes,
    };
    routes
        // analytics
        .route(
            "/v2/analytics.getVerifications",
            post(analytics::get_verifications),
        )
        .route(
            "/v2/analytics.getRatelimits",
            post(analytics::get_ratelimits),
        )
        // apis
        .route("/v2/apis.createApi", post(apis::create_api))
        .route("/v2/apis.getApi", post(apis::get_api))
        .route("/v2/apis.listKeys", post(apis::list_keys))
        .route("/v2/apis.deleteApi", post(apis::delete_api))
        // keys
        .route("/v2/keys.verifyKey", post(verify::verify_key))
        .route("/v2/keys.createKey", post(keys::create_key))
        .route("/v2/keys.getKey", post(keys::get_key))
        .route("/v2/keys.whoami", post(keys::whoami))
        .route("/v2/keys.updateKey", post(keys::update_key))
        .route("/v2/keys.deleteKey", post(keys::delete_key))
        .route("/v2/keys.updateCredits", post(keys::update_credits))
        .route("/v2/keys.rerollKey", post(keys::reroll_key))
        .route("/v2/keys.migrateKeys", post(keys::migrate_keys))
        .route("/v2/keys.addPermissions", post(keys::add_permissions))
        .route("/v2/keys.setPermissions", post(keys::set_permissions))
        .route("/v2/keys.removePermissions", post(keys::remove_permissions))
        .route("/v2/keys.addRoles", post(keys::add_roles))
        .route("/v2/keys.setRoles", post(keys::set_roles))
        .route("/v2/keys.removeRoles", post(keys::remove_roles))
        // ratelimit
        .route("/v2/ratelimit.limit", post(ratelimit::limit))
        .route("/v2/ratelimit.multiLimit", post(ratelimit::multi_limit))
        .route("/v2/ratelimit.setOverride", post(ratelimit::set_override))
        .route("/v2/ratelimit.getOverride", post(ratelimit::get_override))
        .route(
            "/v2/ratelimit.listOverrides",
            post(ratelimit::list_overrides),
        )
        .route(
            "/v2/ratelimit.deleteOverride",
            post(ratelimit::delete_override),
        )
        // identities
        .route(
            "/v2/identities.createIdentity",
            post(identities::create_identity),
        )
        .route("/v2/identities.getIdentity", post(identities::get_identity))
        .route(
            "/v2/identities.listIdentities",
            post(identities::list_identities),
        )
        .route(
            "/v2/identities.updateIdentity",
            post(identities::update_identity),
        )
        .route(
            "/v2/identities.deleteIdentity",
            post(identities::delete_identity),
        )
        // permissions and roles
        .route(
            "/v2/permissions.createPermission",
            post(permissions::create_permission),
        )
        .route(
            "/v2/permissions.getPermission",
            post(permissions::get_permission),
        )
        .route(
            "/v2/permissions.listPermissions",
            post(permissions::list_permissions),
        )
        .route(
            "/v2/permissions.deletePermission",
            post(permissions::delete_permission),
        )
        .route("/v2/permissions.createRole", post(permissions::create_role))
        .route("/v2/permissions.getRole", post(permissions::get_role))
        .route("/v2/permissions.listRoles", post(permissions::list_roles))
        .route("/v2/permissions.deleteRole", post(permissions::delete_role))
        .route(
            "/v2/permissions.setRolePermissions",
            post(permissions::set_role_permissions),
        )
        // the edge's internal endpoints
        .route(keyway_core::wire::SNAPSHOT_PATH, post(internal::snapshot))
        .route(keyway_core::wire::PAIR_PATH, post(internal::pair))
        .route(keyway_core::wire::VERIFY_PATH, post(internal::verify))
        .route(keyway_core::wire::EVENTS_PATH, post(internal::events))
        .router
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        // Our own extractor enforces the limit with a 413 in the error envelope.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The router under construction. Each route gets the request context layer with its
/// own latency histogram, resolved here once: per request there is no label lookup and
/// no lock. Fallbacks are outside it and make their own request ids.
struct Routes {
    router: Router<AppState>,
    metrics: Arc<Metrics>,
}

impl Routes {
    fn new(state: &AppState) -> Self {
        Self {
            router: Router::new(),
            metrics: Arc::clone(&state.metrics),
        }
    }

    fn route(self, path: &'static str, method: MethodRouter<AppState>) -> Self {
        let layer = ContextLayer::new(
            self.metrics.route_histogram(path),
            Arc::clone(&self.metrics),
        );
        Self {
            router: self.router.route(path, method.route_layer(layer)),
            metrics: self.metrics,
        }
    }
}
