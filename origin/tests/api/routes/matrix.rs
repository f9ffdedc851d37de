//! Every authenticated route against every refusal the extractor and the grants make,
//! one test per route and status, so a route without its 400, 401 or 403 shows as a
//! missing test and not as a line inside a loop.
//!
//! A row names the route, a body that succeeds on a fresh [`Fixture`], and the grants
//! Unkey requires for it (`API` stands for the fixture's API id). For each row:
//! - `status_200`: a root key with exactly those grants passes;
//! - `status_400`: malformed JSON, a body of the wrong type, and no `Authorization`
//!   header each get a 400 in the envelope; a bad body without credentials is still a
//!   400 (validation runs before authentication);
//! - `status_401`: an unknown root key, and an ordinary key used as a root key;
//! - `status_403`: without any one of the grants, a 403 in the envelope;
//! - `status_404`, where the row names a missing resource: Unkey's not-found.
//!
//! Each test runs on its own server (SQLite: none of this depends on the database), so
//! the deleting routes need no ordering. [`every_served_route_has_a_row`] fails when a
//! route is added to the router without a row here.

use serde_json::{Value, json};

use crate::harness::{Backend, Server, assert_envelope};

/// What the rows' bodies refer to: one of each resource, made with the bootstrap key.
pub struct Fixture {
    pub api: String,
    pub key_id: String,
    pub key: String,
    pub role_id: String,
}

async fn setup() -> (Server, Fixture) {
    let srv = Server::start_with(Backend::Sqlite, &[]).await;
    let api = srv.create_api().await;
    let (key_id, key) = srv.create_key_in(&api, json!({})).await;
    srv.ok(
        "/v2/permissions.createPermission",
        json!({"name": "p", "slug": "docs.read"}),
    )
    .await;
    let role = srv
        .ok("/v2/permissions.createRole", json!({"name": "reader"}))
        .await;
    let role_id = role["roleId"].as_str().expect("roleId").to_string();
    srv.ok(
        "/v2/identities.createIdentity",
        json!({"externalId": "user_1"}),
    )
    .await;
    srv.ok(
        "/v2/ratelimit.setOverride",
        json!({"namespace": "ns", "identifier": "i", "limit": 10, "duration": 60000}),
    )
    .await;
    (
        srv,
        Fixture {
            api,
            key_id,
            key,
            role_id,
        },
    )
}

fn grants(f: &Fixture, grants: &[&str]) -> Vec<String> {
    grants.iter().map(|g| g.replace("API", &f.api)).collect()
}

pub async fn status_200(path: &str, body: fn(&Fixture) -> Value, required: &[&str]) {
    let (srv, f) = setup().await;
    let required = grants(&f, required);
    let exact = srv.root_key_with(&required.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, v) = srv.as_root(&exact).call(path, body(&f)).await;
    assert_eq!(status, 200, "{path} with {required:?}: {v}");
}

pub async fn status_400(path: &str, body: fn(&Fixture) -> Value) {
    let (srv, f) = setup().await;
    for bad in ["{", "\"a string\"", "null"] {
        let (status, v) = srv.raw(path, bad).await;
        assert_eq!(status, 400, "{path} {bad} → {v}");
        assert_envelope(&v, 400);
    }
    let (status, v) = srv.call_as(path, None, body(&f)).await;
    assert_eq!(status, 400, "{path} without Authorization → {v}");
    assert_envelope(&v, 400);
    let (status, v) = srv
        .call_as(path, None, Value::String("a string".into()))
        .await;
    assert_eq!(status, 400, "{path} bad body, no credentials → {v}");
    assert_envelope(&v, 400);
}

pub async fn status_401(path: &str, body: fn(&Fixture) -> Value) {
    let (srv, f) = setup().await;
    for bearer in ["root_unknown", f.key.as_str()] {
        let (status, v) = srv.as_root(bearer).call(path, body(&f)).await;
        assert_eq!(status, 401, "{path} as an unknown root key → {v}");
        assert_envelope(&v, 401);
    }
}

pub async fn status_403(path: &str, body: fn(&Fixture) -> Value, required: &[&str]) {
    let (srv, f) = setup().await;
    let required = grants(&f, required);
    for missing in &required {
        let rest: Vec<&str> = required
            .iter()
            .filter(|g| *g != missing)
            .map(String::as_str)
            .collect();
        let partial = srv.root_key_with(&rest);
        let (status, v) = srv.as_root(&partial).call(path, body(&f)).await;
        assert_eq!(status, 403, "{path} without {missing}: {v}");
        assert_envelope(&v, 403);
    }
}

pub async fn status_404(path: &str, missing: fn(&Fixture) -> Value) {
    let (srv, f) = setup().await;
    let (status, v) = srv.call(path, missing(&f)).await;
    assert_eq!(status, 404, "{path} → {v}");
    assert_envelope(&v, 404);
}

macro_rules! routes {
    ($(
        $name:ident: $path:literal, |$f:ident| $body:expr, [$($grant:literal),* $(,)?]
        $(, missing |$m:ident| $missing:expr)? ;
    )*) => {
        $(
            mod $name {
                use super::*;
                const PATH: &str = $path;
                const GRANTS: &[&str] = &[$($grant),*];
                fn body($f: &Fixture) -> Value {
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn status_200() {
                    super::status_200(PATH, body, GRANTS).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn status_400() {
                    super::status_400(PATH, body).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn status_401() {
                    super::status_401(PATH, body).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn status_403() {
                    super::status_403(PATH, body, GRANTS).await;
                }
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn status_404() {
                        fn missing($m: &Fixture) -> Value {
                            $missing
                        }
                        super::status_404(PATH, missing).await;
                    }
                )?
            }
        )*
        /// Every path with a row.
        const PATHS: &[&str] = &[$($path),*];
    };
}

routes! {
    apis_create_api: "/v2/apis.createApi", |_f| json!({"name": "another"}), ["api.*.create_api"];
    apis_get_api: "/v2/apis.getApi", |f| json!({"apiId": f.api}), ["api.API.read_api"],
        missing |_f| json!({"apiId": "api_missing"});
    apis_list_keys: "/v2/apis.listKeys", |f| json!({"apiId": f.api}),
        ["api.API.read_key", "api.API.read_api"],
        missing |_f| json!({"apiId": "api_missing"});
    apis_delete_api: "/v2/apis.deleteApi", |f| json!({"apiId": f.api}), ["api.API.delete_api"],
        missing |_f| json!({"apiId": "api_missing"});

    keys_verify_key: "/v2/keys.verifyKey", |f| json!({"key": f.key}), ["api.API.verify_key"];
    keys_create_key: "/v2/keys.createKey", |f| json!({"apiId": f.api}), ["api.API.create_key"],
        missing |_f| json!({"apiId": "api_missing"});
    keys_create_key_with_permission: "/v2/keys.createKey",
        |f| json!({"apiId": f.api, "permissions": ["docs.read"]}),
        ["api.API.create_key", "rbac.*.add_permission_to_key"];
    keys_create_key_with_new_permission: "/v2/keys.createKey",
        |f| json!({"apiId": f.api, "permissions": ["docs.new"]}),
        ["api.API.create_key", "rbac.*.add_permission_to_key", "rbac.*.create_permission"];
    keys_create_key_with_role: "/v2/keys.createKey",
        |f| json!({"apiId": f.api, "roles": ["reader"]}),
        ["api.API.create_key", "rbac.*.add_role_to_key"],
        missing |f| json!({"apiId": f.api, "roles": ["ghost"]});
    keys_get_key: "/v2/keys.getKey", |f| json!({"keyId": f.key_id}), ["api.API.read_key"],
        missing |_f| json!({"keyId": "key_missing"});
    keys_whoami: "/v2/keys.whoami", |f| json!({"key": f.key}), ["api.API.read_key"],
        missing |_f| json!({"key": "sk_missing"});
    keys_update_key: "/v2/keys.updateKey", |f| json!({"keyId": f.key_id, "name": "n"}),
        ["api.API.update_key"],
        missing |_f| json!({"keyId": "key_missing", "name": "x"});
    keys_update_key_permissions: "/v2/keys.updateKey",
        |f| json!({"keyId": f.key_id, "permissions": ["docs.read"]}),
        ["api.API.update_key", "rbac.*.add_permission_to_key", "rbac.*.remove_permission_from_key"];
    keys_update_key_roles: "/v2/keys.updateKey",
        |f| json!({"keyId": f.key_id, "roles": ["reader"]}),
        ["api.API.update_key", "rbac.*.add_role_to_key", "rbac.*.remove_role_from_key"];
    keys_delete_key: "/v2/keys.deleteKey", |f| json!({"keyId": f.key_id}), ["api.API.delete_key"],
        missing |_f| json!({"keyId": "key_missing"});
    keys_update_credits: "/v2/keys.updateCredits",
        |f| json!({"keyId": f.key_id, "operation": "set", "value": 5}), ["api.API.update_key"],
        missing |_f| json!({"keyId": "key_missing", "operation": "set", "value": 5});
    keys_reroll_key: "/v2/keys.rerollKey", |f| json!({"keyId": f.key_id, "expiration": 0}),
        ["api.API.create_key"],
        missing |_f| json!({"keyId": "key_missing", "expiration": 0});
    keys_migrate_keys: "/v2/keys.migrateKeys",
        |f| json!({"migrationId": "sha256_base64", "apiId": f.api,
                   "keys": [{"hash": "kkZIWy7dXDeQFFToxiPoEUJD0Z7Yl4OFlpkksckgvPc="}]}),
        ["api.API.create_key"],
        missing |_f| json!({"migrationId": "sha256_base64", "apiId": "api_missing",
                            "keys": [{"hash": "kkZIWy7dXDeQFFToxiPoEUJD0Z7Yl4OFlpkksckgvPc="}]});
    keys_add_permissions: "/v2/keys.addPermissions",
        |f| json!({"keyId": f.key_id, "permissions": ["docs.read"]}),
        ["api.API.update_key", "rbac.*.add_permission_to_key"],
        missing |_f| json!({"keyId": "key_missing", "permissions": ["docs.read"]});
    keys_add_new_permissions: "/v2/keys.addPermissions",
        |f| json!({"keyId": f.key_id, "permissions": ["docs.other"]}),
        ["api.API.update_key", "rbac.*.add_permission_to_key", "rbac.*.create_permission"];
    keys_set_permissions: "/v2/keys.setPermissions",
        |f| json!({"keyId": f.key_id, "permissions": ["docs.read"]}),
        ["api.API.update_key", "rbac.*.add_permission_to_key", "rbac.*.remove_permission_from_key"];
    keys_remove_permissions: "/v2/keys.removePermissions",
        |f| json!({"keyId": f.key_id, "permissions": ["docs.read"]}),
        ["api.API.update_key", "rbac.*.remove_permission_from_key"];
    keys_add_roles: "/v2/keys.addRoles", |f| json!({"keyId": f.key_id, "roles": ["reader"]}),
        ["api.API.update_key", "rbac.*.add_role_to_key"],
        missing |f| json!({"keyId": f.key_id, "roles": ["ghost"]});
    keys_set_roles: "/v2/keys.setRoles", |f| json!({"keyId": f.key_id, "roles": ["reader"]}),
        ["api.API.update_key", "rbac.*.add_role_to_key", "rbac.*.remove_role_from_key"];
    keys_remove_roles: "/v2/keys.removeRoles", |f| json!({"keyId": f.key_id, "roles": ["reader"]}),
        ["api.API.update_key", "rbac.*.remove_role_from_key"];

    ratelimit_limit: "/v2/ratelimit.limit",
        |_f| json!({"namespace": "ns", "identifier": "i", "limit": 10, "duration": 60000}),
        ["ratelimit.ns.limit"];
    ratelimit_multi_limit: "/v2/ratelimit.multiLimit",
        |_f| json!([{"namespace": "ns", "identifier": "i", "limit": 10, "duration": 60000}]),
        ["ratelimit.ns.limit"];
    ratelimit_set_override: "/v2/ratelimit.setOverride",
        |_f| json!({"namespace": "ns", "identifier": "j", "limit": 10, "duration": 60000}),
        ["ratelimit.ns.set_override"];
    ratelimit_get_override: "/v2/ratelimit.getOverride",
        |_f| json!({"namespace": "ns", "identifier": "i"}), ["ratelimit.ns.read_override"],
        missing |_f| json!({"namespace": "ns", "identifier": "nobody"});
    ratelimit_list_overrides: "/v2/ratelimit.listOverrides", |_f| json!({"namespace": "ns"}),
        ["ratelimit.ns.read_override"];
    ratelimit_delete_override: "/v2/ratelimit.deleteOverride",
        |_f| json!({"namespace": "ns", "identifier": "i"}), ["ratelimit.ns.delete_override"],
        missing |_f| json!({"namespace": "ns", "identifier": "nobody"});

    identities_create_identity: "/v2/identities.createIdentity",
        |_f| json!({"externalId": "user_2"}), ["identity.*.create_identity"];
    identities_get_identity: "/v2/identities.getIdentity", |_f| json!({"identity": "user_1"}),
        ["identity.*.read_identity"],
        missing |_f| json!({"identity": "nobody"});
    identities_list_identities: "/v2/identities.listIdentities", |_f| json!({}),
        ["identity.*.read_identity"];
    identities_update_identity: "/v2/identities.updateIdentity",
        |_f| json!({"identity": "user_1", "meta": {"a": 1}}), ["identity.*.update_identity"],
        missing |_f| json!({"identity": "nobody", "meta": {"a": 1}});
    identities_delete_identity: "/v2/identities.deleteIdentity", |_f| json!({"identity": "user_1"}),
        ["identity.*.delete_identity"],
        missing |_f| json!({"identity": "nobody"});

    permissions_create_permission: "/v2/permissions.createPermission",
        |_f| json!({"name": "q", "slug": "docs.write"}), ["rbac.*.create_permission"];
    permissions_get_permission: "/v2/permissions.getPermission",
        |_f| json!({"permission": "docs.read"}), ["rbac.*.read_permission"],
        missing |_f| json!({"permission": "docs.nothing"});
    permissions_list_permissions: "/v2/permissions.listPermissions", |_f| json!({}),
        ["rbac.*.read_permission"];
    permissions_delete_permission: "/v2/permissions.deletePermission",
        |_f| json!({"permission": "docs.read"}), ["rbac.*.delete_permission"],
        missing |_f| json!({"permission": "docs.nothing"});
    permissions_create_role: "/v2/permissions.createRole", |_f| json!({"name": "writer"}),
        ["rbac.*.create_role"];
    permissions_create_role_with_permission: "/v2/permissions.createRole",
        |_f| json!({"name": "editor", "permissions": ["docs.read"]}),
        ["rbac.*.create_role", "rbac.*.add_permission_to_role"];
    permissions_get_role: "/v2/permissions.getRole", |_f| json!({"role": "reader"}),
        ["rbac.*.read_role"],
        missing |_f| json!({"role": "nobody"});
    permissions_list_roles: "/v2/permissions.listRoles", |_f| json!({}), ["rbac.*.read_role"];
    permissions_delete_role: "/v2/permissions.deleteRole", |_f| json!({"role": "reader"}),
        ["rbac.*.delete_role"],
        missing |_f| json!({"role": "nobody"});
    permissions_set_role_permissions: "/v2/permissions.setRolePermissions",
        |f| json!({"roleId": f.role_id, "permissions": ["docs.read"]}),
        ["rbac.*.add_permission_to_role", "rbac.*.remove_permission_from_role"],
        missing |_f| json!({"roleId": "role_missing", "permissions": ["docs.read"]});

    analytics_get_verifications: "/v2/analytics.getVerifications",
        |_f| json!({"query": "SELECT COUNT(*) AS n FROM key_verifications_v1"}),
        ["api.API.read_analytics"];
    analytics_get_ratelimits: "/v2/analytics.getRatelimits",
        |_f| json!({"query": "SELECT COUNT(*) AS n FROM ratelimits_v1"}),
        ["ratelimit.ns.read_analytics"];
}

/// Routes that take no root key, each with the test that covers it instead.
const UNAUTHENTICATED: &[(&str, &str)] = &[("/v2/liveness", "routes::service")];

// A route added to the router without a row here would have no 400, 401 or 403 test.
#[test]
fn every_served_route_has_a_row() {
    let router = include_str!("../../../src/routes.rs");
    let served: Vec<&str> = router
        .split('"')
        .filter(|s| s.starts_with("/v2/"))
        .collect();
    assert!(served.len() > 40, "found only {served:?} in routes.rs");
    for path in served {
        assert!(
            PATHS.contains(&path) || UNAUTHENTICATED.iter().any(|(p, _)| *p == path),
            "{path} is served but has no row in routes/matrix.rs"
        );
    }
}
