//! Regression tests for the review's findings (issue "Hardening"): each failed on the
//! code before its fix. Numbers refer to the findings.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// 1. A changed duration must not lock an identifier out: the counter of a window length
// is its own counter, so `reset` stays within one window of now.
both!(duration_change_keeps_reset_in_the_window, |srv| {
    let short = json!({"namespace": "n", "identifier": "u", "limit": 3, "duration": 1000});
    let long = json!({"namespace": "n", "identifier": "u", "limit": 3, "duration": 60000});
    assert_eq!(srv.ok("/v2/ratelimit.limit", short).await["success"], true);
    let d = srv.ok("/v2/ratelimit.limit", long.clone()).await;
    assert_eq!(d["success"], true, "{d}");
    let reset = d["reset"].as_i64().unwrap();
    assert!(reset <= now_ms() + 60_000, "reset {reset} is far away");
    for _ in 0..2 {
        srv.ok("/v2/ratelimit.limit", long.clone()).await;
    }
    assert_eq!(srv.ok("/v2/ratelimit.limit", long).await["success"], false);

    // The same through a key's configured limit whose duration is changed.
    let (_, key_id, key) = srv
        .create_key(json!({"ratelimits": [{"name": "requests", "limit": 5, "duration": 1000, "autoApply": true}]}))
        .await;
    srv.verify(json!({"key": key})).await;
    srv.ok(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "ratelimits": [{"name": "requests", "limit": 5, "duration": 60000, "autoApply": true}]}),
    )
    .await;
    let d = srv.verify(json!({"key": key})).await;
    assert_eq!(d["code"], "VALID", "{d}");
    let reset = d["ratelimits"][0]["reset"].as_i64().unwrap();
    assert!(reset <= now_ms() + 60_000, "reset {reset} is far away");
});

// 2. Names that join to the same string are different counters, and a key scoped to one
// namespace cannot drain another.
both!(namespace_counters_do_not_collide, |srv| {
    let a = json!({"namespace": "a", "identifier": "b:x", "limit": 1, "duration": 60000});
    let ab = json!({"namespace": "a:b", "identifier": "x", "limit": 1, "duration": 60000});
    let scoped = srv.root_key_with(&["ratelimit.a.limit"]);
    let (s, v) = srv
        .call_as("/v2/ratelimit.limit", Some(&scoped), a.clone())
        .await;
    assert_eq!((s, &v["data"]["success"]), (200, &json!(true)), "{v}");
    let (_, v) = srv.call_as("/v2/ratelimit.limit", Some(&scoped), a).await;
    assert_eq!(v["data"]["success"], false);
    let (s, _) = srv
        .call_as("/v2/ratelimit.limit", Some(&scoped), ab.clone())
        .await;
    assert_eq!(s, 403);
    assert_eq!(srv.ok("/v2/ratelimit.limit", ab).await["success"], true);
});

// 3. A root key scoped to one API learns nothing about another API's keys.
both!(keys_outside_the_callers_apis_do_not_exist, |srv| {
    let api_a = srv.create_api().await;
    let api_b = srv.create_api().await;
    let scoped = srv.root_key_with(&[&format!("api.{api_a}.verify_key")]);
    let other = json!({"name": "secret-name", "meta": {"plan": "gold"}});
    let mut bodies = Vec::new();
    for extra in [
        json!({"enabled": false}),
        json!({"expires": now_ms() - 1000}),
        json!({"credits": {"remaining": 0}}),
        json!({}),
    ] {
        let mut body = other.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (_, key) = srv.create_key_in(&api_b, body).await;
        bodies.push(key);
    }
    for key in bodies {
        let (s, v) = srv
            .call_as("/v2/keys.verifyKey", Some(&scoped), json!({"key": key}))
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            v["data"],
            json!({"valid": false, "code": "NOT_FOUND"}),
            "nothing but NOT_FOUND: {v}"
        );
    }
    // Its own API's keys still answer in full.
    let (_, mine) = srv.create_key_in(&api_a, json!({"enabled": false})).await;
    let (_, v) = srv
        .call_as("/v2/keys.verifyKey", Some(&scoped), json!({"key": mine}))
        .await;
    assert_eq!(v["data"]["code"], "DISABLED");
});

/// One route's minimal grants: every grant is needed, and together they suffice.
struct Route {
    path: &'static str,
    body: Value,
    grants: Vec<String>,
}

fn route(path: &'static str, body: Value, grants: Vec<String>) -> Route {
    Route { path, body, grants }
}

// 4. Every route against the grants Unkey requires, as a table. A root key with all of
// a route's grants passes authorization; without any one of them it gets a 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_grants_table() {
    let srv = Server::start_with(Backend::Sqlite, &[]).await;
    let api = srv.create_api().await;
    let (key_id, key) = srv.create_key_in(&api, json!({})).await;
    srv.ok(
        "/v2/permissions.createPermission",
        json!({"name": "p", "slug": "docs.read"}),
    )
    .await;
    srv.ok("/v2/permissions.createRole", json!({"name": "reader"}))
        .await;
    srv.ok(
        "/v2/identities.createIdentity",
        json!({"externalId": "user_1"}),
    )
    .await;
    let g = |s: &[&str]| s.iter().map(|x| x.replace("API", &api)).collect::<Vec<_>>();
    let routes = vec![
        route(
            "/v2/apis.createApi",
            json!({"name": "another"}),
            g(&["api.*.create_api"]),
        ),
        route(
            "/v2/apis.getApi",
            json!({"apiId": api}),
            g(&["api.API.read_api"]),
        ),
        route(
            "/v2/apis.listKeys",
            json!({"apiId": api}),
            g(&["api.API.read_key", "api.API.read_api"]),
        ),
        route(
            "/v2/keys.verifyKey",
            json!({"key": key}),
            g(&["api.API.verify_key"]),
        ),
        route(
            "/v2/keys.createKey",
            json!({"apiId": api}),
            g(&["api.API.create_key"]),
        ),
        route(
            "/v2/keys.createKey",
            json!({"apiId": api, "permissions": ["docs.read"]}),
            g(&["api.API.create_key", "rbac.*.add_permission_to_key"]),
        ),
        route(
            "/v2/keys.createKey",
            json!({"apiId": api, "permissions": ["docs.new"]}),
            g(&[
                "api.API.create_key",
                "rbac.*.add_permission_to_key",
                "rbac.*.create_permission",
            ]),
        ),
        route(
            "/v2/keys.createKey",
            json!({"apiId": api, "roles": ["reader"]}),
            g(&["api.API.create_key", "rbac.*.add_role_to_key"]),
        ),
        route(
            "/v2/keys.getKey",
            json!({"keyId": key_id}),
            g(&["api.API.read_key"]),
        ),
        route(
            "/v2/keys.whoami",
            json!({"key": key}),
            g(&["api.API.read_key"]),
        ),
        route(
            "/v2/keys.updateKey",
            json!({"keyId": key_id, "name": "n"}),
            g(&["api.API.update_key"]),
        ),
        route(
            "/v2/keys.updateKey",
            json!({"keyId": key_id, "permissions": ["docs.read"]}),
            g(&[
                "api.API.update_key",
                "rbac.*.add_permission_to_key",
                "rbac.*.remove_permission_from_key",
            ]),
        ),
        route(
            "/v2/keys.updateKey",
            json!({"keyId": key_id, "roles": ["reader"]}),
            g(&[
                "api.API.update_key",
                "rbac.*.add_role_to_key",
                "rbac.*.remove_role_from_key",
            ]),
        ),
        route(
            "/v2/keys.updateCredits",
            json!({"keyId": key_id, "operation": "set", "value": 5}),
            g(&["api.API.update_key"]),
        ),
        route(
            "/v2/keys.addPermissions",
            json!({"keyId": key_id, "permissions": ["docs.read"]}),
            g(&["api.API.update_key", "rbac.*.add_permission_to_key"]),
        ),
        route(
            "/v2/keys.addPermissions",
            json!({"keyId": key_id, "permissions": ["docs.other"]}),
            g(&[
                "api.API.update_key",
                "rbac.*.add_permission_to_key",
                "rbac.*.create_permission",
            ]),
        ),
        route(
            "/v2/keys.setPermissions",
            json!({"keyId": key_id, "permissions": ["docs.read"]}),
            g(&[
                "api.API.update_key",
                "rbac.*.add_permission_to_key",
                "rbac.*.remove_permission_from_key",
            ]),
        ),
        route(
            "/v2/keys.removePermissions",
            json!({"keyId": key_id, "permissions": ["docs.read"]}),
            g(&["api.API.update_key", "rbac.*.remove_permission_from_key"]),
        ),
        route(
            "/v2/keys.addRoles",
            json!({"keyId": key_id, "roles": ["reader"]}),
            g(&["api.API.update_key", "rbac.*.add_role_to_key"]),
        ),
        route(
            "/v2/keys.setRoles",
            json!({"keyId": key_id, "roles": ["reader"]}),
            g(&[
                "api.API.update_key",
                "rbac.*.add_role_to_key",
                "rbac.*.remove_role_from_key",
            ]),
        ),
        route(
            "/v2/keys.removeRoles",
            json!({"keyId": key_id, "roles": ["reader"]}),
            g(&["api.API.update_key", "rbac.*.remove_role_from_key"]),
        ),
        route(
            "/v2/keys.rerollKey",
            json!({"keyId": key_id, "expiration": 0}),
            g(&["api.API.create_key"]),
        ),
        route(
            "/v2/ratelimit.limit",
            json!({"namespace": "ns", "identifier": "i", "limit": 10, "duration": 60000}),
            g(&["ratelimit.ns.limit"]),
        ),
        route(
            "/v2/ratelimit.multiLimit",
            json!([{"namespace": "ns", "identifier": "i", "limit": 10, "duration": 60000}]),
            g(&["ratelimit.ns.limit"]),
        ),
        route(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "ns", "identifier": "i", "limit": 10, "duration": 60000}),
            g(&["ratelimit.ns.set_override"]),
        ),
        route(
            "/v2/ratelimit.getOverride",
            json!({"namespace": "ns", "identifier": "i"}),
            g(&["ratelimit.ns.read_override"]),
        ),
        route(
            "/v2/ratelimit.listOverrides",
            json!({"namespace": "ns"}),
            g(&["ratelimit.ns.read_override"]),
        ),
        route(
            "/v2/identities.createIdentity",
            json!({"externalId": "user_2"}),
            g(&["identity.*.create_identity"]),
        ),
        route(
            "/v2/identities.getIdentity",
            json!({"identity": "user_1"}),
            g(&["identity.*.read_identity"]),
        ),
        route(
            "/v2/identities.listIdentities",
            json!({}),
            g(&["identity.*.read_identity"]),
        ),
        route(
            "/v2/identities.updateIdentity",
            json!({"identity": "user_1", "meta": {"a": 1}}),
            g(&["identity.*.update_identity"]),
        ),
        route(
            "/v2/permissions.createPermission",
            json!({"name": "q", "slug": "docs.write"}),
            g(&["rbac.*.create_permission"]),
        ),
        route(
            "/v2/permissions.getPermission",
            json!({"permission": "docs.read"}),
            g(&["rbac.*.read_permission"]),
        ),
        route(
            "/v2/permissions.listPermissions",
            json!({}),
            g(&["rbac.*.read_permission"]),
        ),
        route(
            "/v2/permissions.createRole",
            json!({"name": "writer"}),
            g(&["rbac.*.create_role"]),
        ),
        route(
            "/v2/permissions.createRole",
            json!({"name": "editor", "permissions": ["docs.read"]}),
            g(&["rbac.*.create_role", "rbac.*.add_permission_to_role"]),
        ),
        route(
            "/v2/permissions.getRole",
            json!({"role": "reader"}),
            g(&["rbac.*.read_role"]),
        ),
        route(
            "/v2/permissions.listRoles",
            json!({}),
            g(&["rbac.*.read_role"]),
        ),
        route(
            "/v2/analytics.getVerifications",
            json!({"query": "SELECT COUNT(*) AS n FROM key_verifications_v1"}),
            g(&["api.API.read_analytics"]),
        ),
        route(
            "/v2/analytics.getRatelimits",
            json!({"query": "SELECT COUNT(*) AS n FROM ratelimits_v1"}),
            g(&["ratelimit.ns.read_analytics"]),
        ),
        // Deletions last: they remove what the rows above use.
        route(
            "/v2/ratelimit.deleteOverride",
            json!({"namespace": "ns", "identifier": "i"}),
            g(&["ratelimit.ns.delete_override"]),
        ),
        route(
            "/v2/identities.deleteIdentity",
            json!({"identity": "user_1"}),
            g(&["identity.*.delete_identity"]),
        ),
        route(
            "/v2/permissions.deleteRole",
            json!({"role": "reader"}),
            g(&["rbac.*.delete_role"]),
        ),
        route(
            "/v2/permissions.deletePermission",
            json!({"permission": "docs.read"}),
            g(&["rbac.*.delete_permission"]),
        ),
        route(
            "/v2/keys.deleteKey",
            json!({"keyId": key_id}),
            g(&["api.API.delete_key"]),
        ),
        route(
            "/v2/apis.deleteApi",
            json!({"apiId": api}),
            g(&["api.API.delete_api"]),
        ),
    ];
    for r in &routes {
        // Without each grant in turn: 403, in the envelope, and nothing changes.
        for missing in &r.grants {
            let rest: Vec<&str> = r
                .grants
                .iter()
                .filter(|g| *g != missing)
                .map(String::as_str)
                .collect();
            let partial = srv.root_key_with(&rest);
            let (s, v) = srv.call_as(r.path, Some(&partial), r.body.clone()).await;
            assert_eq!(s, 403, "{} without {missing}: {v}", r.path);
            assert_eq!(v["error"]["status"], 403);
        }
        let grants: Vec<&str> = r.grants.iter().map(String::as_str).collect();
        let exact = srv.root_key_with(&grants);
        let (s, v) = srv.call_as(r.path, Some(&exact), r.body.clone()).await;
        assert_eq!(s, 200, "{} with {grants:?}: {v}", r.path);
    }
}

// 5. A database that refuses writes mid-run loses nothing: failed balances stay dirty and
// are written once it accepts again; a shutdown that still cannot write exits non-zero
// and names the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_writes_survive_a_refusing_database() {
    let mut srv = Server::start_with(
        Backend::Sqlite,
        &["--credit-flush-ms", "100", "--shutdown-flush-seconds", "1"],
    )
    .await;
    let api = srv.create_api().await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(
            srv.create_key_in(&api, json!({"credits": {"remaining": 100}}))
                .await,
        );
    }
    let pool = srv.db.pool().await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_credits BEFORE UPDATE OF remaining ON keys
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (_, key) in &keys {
        for _ in 0..3 {
            srv.verify(json!({"key": key})).await;
        }
    }
    // Several flushes fail while the trigger stands.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("DROP TRIGGER refuse_credits")
        .execute(&pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stored = Vec::new();
        for (id, _) in &keys {
            let r: Option<i64> = sqlx::query_scalar("SELECT remaining FROM keys WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            stored.push(r);
        }
        if stored.iter().all(|r| *r == Some(97)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "balances not written after the database recovered: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Shutdown against a database that keeps refusing: non-zero, and the key is named.
    sqlx::query(
        "CREATE TRIGGER refuse_credits BEFORE UPDATE OF remaining ON keys
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    srv.verify(json!({"key": keys[0].1})).await;
    let code = srv.signal_and_wait("TERM");
    assert_ne!(code, Some(0), "shutdown must fail when balances were lost");
    let named = keyway_testkit::origin::wait_for_log_where(
        &srv.logs,
        |l| {
            l["fields"]["message"] == "credit balance not written"
                && l["fields"]["key_id"] == keys[0].0
        },
        Duration::from_secs(5),
    )
    .is_some();
    assert!(named, "the unwritten key is named in the log");
    pool.close().await;
}

// 7. Root keys can be listed (never shown) and revoked; a new KEYWAY_ROOT_KEY revokes the
// previous one.
both!(
    root_keys_list_revoke_and_rotate,
    &["--cache-fresh-seconds", "1"],
    |srv| {
        let narrow = srv.root_key_with(&["api.*.read_api"]);
        let listed: Value =
            serde_json::from_str(&srv.cli(&["root-keys", "list", "--json"])).unwrap();
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let text = serde_json::to_string(listed).unwrap();
        assert!(!text.contains(&narrow) && !text.contains(&srv.root_key));
        let entry = listed
            .iter()
            .find(|k| k["permissions"] == json!(["api.*.read_api"]))
            .unwrap();
        assert!(narrow.starts_with(entry["start"].as_str().unwrap()));
        let id = entry["id"].as_str().unwrap().to_string();

        let api = srv.create_api().await;
        let get = json!({"apiId": api});
        assert_eq!(
            srv.call_as("/v2/apis.getApi", Some(&narrow), get.clone())
                .await
                .0,
            200
        );
        srv.cli(&["root-keys", "revoke", &id]);
        let revoked = Instant::now();
        loop {
            let (s, _) = srv
                .call_as("/v2/apis.getApi", Some(&narrow), get.clone())
                .await;
            if s == 401 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_millis(1500),
                "revoked root key still answered {s} after {:?}",
                revoked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !srv.cli_output(&["root-keys", "revoke", &id])
                .status
                .success()
        );

        // Rotation: restart with a new KEYWAY_ROOT_KEY; the old one is refused.
        let old = srv.root_key.clone();
        srv.signal_and_wait("TERM");
        srv.root_key = format!("{old}_rotated");
        srv.restart();
        assert_eq!(
            srv.call_as("/v2/apis.getApi", Some(&old), get.clone())
                .await
                .0,
            401
        );
        assert_eq!(srv.call("/v2/apis.getApi", get).await.0, 200);
    }
);

// 8. A snapshot that cannot be decoded is an error, logged and counted, not a disabled
// key of no API.
both!(undecodable_snapshot_is_an_error, |srv| {
    let (_, key_id, key) = srv
        .create_key(
            json!({"credits": {"remaining": 5, "refill": {"interval": "daily", "amount": 5}}}),
        )
        .await;
    let pool = srv.db.pool().await.unwrap();
    sqlx::query("UPDATE keys SET refill_interval = 'fortnightly' WHERE id = $1")
        .bind(&key_id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let before = srv.metric("keyway_server_errors_total").await;
    let (s, v) = srv.call("/v2/keys.verifyKey", json!({"key": key})).await;
    assert_eq!(s, 500, "{v}");
    assert_eq!(v["error"]["status"], 500);
    assert!(v["meta"]["requestId"].is_string());
    assert_eq!(srv.metric("keyway_server_errors_total").await, before + 1.0);
    assert!(srv.log_line("stored data could not be decoded").is_some());
});

// 11. Metrics on a private address, and not on the API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener() {
    let srv = Server::start_with(Backend::Sqlite, &["--metrics-listen", "127.0.0.1:0"]).await;
    let r = srv.http().get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let addr = srv.log_line("metrics listening").unwrap()["fields"]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let r = srv
        .http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("keyway_verifications_total")
    );
}

// 12. Caps and bounds: what Unkey caps or its spec rejects is a 400 naming the field.
both!(unbounded_inputs_are_refused, |srv| {
    let (_, _, key) = srv.create_key(json!({})).await;
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("n{i:03}"), "limit": 5, "duration": 60000}))
        .collect();
    for (body, location) in [
        (json!({"key": key, "ratelimits": many}), "body.ratelimits"),
        (
            json!({"key": key, "ratelimits": [{"name": "abc", "limit": 5, "duration": 60000}, {"name": "abc", "limit": 5, "duration": 60000}]}),
            "body.ratelimits[1]",
        ),
        (
            json!({"key": key, "ratelimits": [{"name": "abc", "limit": 5, "duration": 60000, "cost": 9223372036854775808u64}]}),
            "body.ratelimits[0].cost",
        ),
        (
            json!({"key": key, "credits": {"cost": 9223372036854775808u64}}),
            "body.credits.cost",
        ),
    ] {
        let (s, v) = srv.call("/v2/keys.verifyKey", body).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["errors"][0]["location"], location, "{v}");
    }
    let one = json!({"namespace": "n", "identifier": "i", "limit": 5, "duration": 60000});
    let (s, v) = srv
        .call("/v2/ratelimit.multiLimit", json!([one, one]))
        .await;
    assert_eq!(
        (s, &v["error"]["errors"][0]["location"]),
        (400, &json!("body[1]")),
        "{v}"
    );
    let (s, _) = srv
        .call(
            "/v2/ratelimit.limit",
            json!({"namespace": "n", "identifier": "i", "limit": 9223372036854775808u64, "duration": 60000}),
        )
        .await;
    assert_eq!(s, 400);
});

// Rate-limit counters with identifiers of the caller's choosing are bounded: past
// --ratelimit-max-counters the oldest windows make room, counted in /metrics, and a
// counter in use is never the one to go, so it still counts exactly.
both!(
    ratelimit_counters_are_bounded,
    &["--ratelimit-max-counters", "1024"],
    |srv| {
        let month = 2_592_000_000u64;
        let hot = serde_json::json!({"namespace": "ns", "identifier": "hot", "limit": 10_000, "duration": month});
        let mut uses = 0u64;
        for i in 0..3_000 {
            let body = serde_json::json!({"namespace": "ns", "identifier": format!("random_{i}"), "limit": 5, "duration": month});
            srv.ok("/v2/ratelimit.limit", body).await;
            if i % 5 == 0 {
                srv.ok("/v2/ratelimit.limit", hot.clone()).await;
                uses += 1;
            }
        }
        assert!(srv.metric("keyway_ratelimit_counters_evicted_total").await > 0.0);
        let v = srv.ok("/v2/ratelimit.limit", hot.clone()).await;
        assert_eq!(v["remaining"], 10_000 - uses - 1, "{v}");
    }
);
