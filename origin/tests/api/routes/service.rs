//! What every route shares: liveness and metrics, lists, unknown routes, body limits and
//! bounds, conflicts, and the error envelope with its media type and request id.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Server, assert_envelope};

mod status_200 {
    use super::*;

    both!(liveness_and_metrics, |srv| {
        let v = srv
            .http()
            .get(srv.url("/v2/liveness"))
            .send()
            .await
            .unwrap();
        assert_eq!(v.status(), 200);
        let body: serde_json::Value = v.json().await.unwrap();
        assert_eq!(body["data"]["message"], "OK");
        assert!(
            body["meta"]["requestId"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
        let m = srv.metrics().await;
        assert!(m.contains("keyway_event_buffer_depth"), "{m}");
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

    // Lists load a page's snapshots, balances, role permissions and identity limits in one
    // query each; every item must still get its own rows, equal to what the single read says.
    both!(lists_give_each_item_its_own_rows, |srv| {
        let api = srv.create_api().await;
        for (ext, limit) in [("acme", 5), ("globex", 7), ("initech", 9)] {
            srv.ok(
                "/v2/identities.createIdentity",
                json!({"externalId": ext, "ratelimits": [{"name": "rps", "limit": limit, "duration": 1000}]}),
            )
            .await;
        }
        for (name, perms) in [
            ("reader", vec!["docs.read"]),
            ("writer", vec!["docs.read", "docs.write"]),
        ] {
            for p in &perms {
                let _ = srv
                    .call(
                        "/v2/permissions.createPermission",
                        json!({"name": p, "slug": p}),
                    )
                    .await;
            }
            srv.ok(
                "/v2/permissions.createRole",
                json!({"name": name, "permissions": perms}),
            )
            .await;
        }
        let mut keys = Vec::new();
        for i in 0..4u64 {
            let mut body = json!({
                "name": format!("key-{i}"),
                "permissions": [format!("p.{i}")],
                "credits": {"remaining": 10 + i},
                "roles": [if i % 2 == 0 { "reader" } else { "writer" }],
            });
            if i < 3 {
                body["externalId"] = json!(["acme", "globex", "initech"][i as usize]);
            }
            let (_, key) = srv.create_key_in(&api, body).await;
            // Spend i credits, so each live balance differs from the stored one.
            for _ in 0..i {
                srv.verify(json!({"key": key})).await;
            }
            keys.push(key);
        }
        let (status, page) = srv
            .call("/v2/apis.listKeys", json!({"apiId": api, "limit": 100}))
            .await;
        assert_eq!(status, 200);
        let listed = page["data"].as_array().unwrap();
        assert_eq!(listed.len(), 4);
        for item in listed {
            let one = srv
                .ok("/v2/keys.getKey", json!({"keyId": item["keyId"]}))
                .await;
            assert_eq!(item, &one);
            let i: u64 = item["name"].as_str().unwrap()[4..].parse().unwrap();
            assert_eq!(item["credits"]["remaining"], 10);
            assert_eq!(
                item["permissions"].as_array().unwrap().len(),
                if i.is_multiple_of(2) { 2 } else { 3 }
            );
        }

        let (_, roles) = srv
            .call("/v2/permissions.listRoles", json!({"limit": 10}))
            .await;
        for r in roles["data"].as_array().unwrap() {
            let one = srv
                .ok("/v2/permissions.getRole", json!({"role": r["name"]}))
                .await;
            assert_eq!(r, &one);
        }
        let (_, ids) = srv
            .call("/v2/identities.listIdentities", json!({"limit": 10}))
            .await;
        let ids = ids["data"].as_array().unwrap();
        assert_eq!(ids.len(), 3);
        for i in ids {
            let one = srv
                .ok(
                    "/v2/identities.getIdentity",
                    json!({"identity": i["externalId"]}),
                )
                .await;
            assert_eq!(i, &one);
        }
    });
}

mod status_400 {
    use super::*;

    // A NUL in any text field is a 400 naming the field, on both databases (PostgreSQL
    // cannot store one: it was a 500 there, and in a rate-limit identifier it poisoned the
    // analytics batch of every caller).
    both!(status_400_nul_in_text, |srv| {
        let api = srv.create_api().await;
        for (path, body, location) in [
            (
                "/v2/apis.createApi",
                json!({"name": "a\u{0}b"}),
                "body.name",
            ),
            (
                "/v2/keys.createKey",
                json!({"apiId": api, "name": "k\u{0}"}),
                "body.name",
            ),
            (
                "/v2/keys.createKey",
                json!({"apiId": api, "meta": {"note": "x\u{0}"}}),
                "body.meta.note",
            ),
            (
                "/v2/ratelimit.limit",
                json!({"namespace": "n\u{0}s", "identifier": "u", "limit": 1, "duration": 1000}),
                "body.namespace",
            ),
            (
                "/v2/ratelimit.limit",
                json!({"namespace": "ns", "identifier": "\u{0}", "limit": 1, "duration": 1000}),
                "body.identifier",
            ),
            (
                "/v2/permissions.createPermission",
                json!({"name": "p\u{0}", "slug": "p"}),
                "body.name",
            ),
            (
                "/v2/analytics.getVerifications",
                json!({"query": "SELECT '\u{0}' AS x"}),
                "body.query",
            ),
            ("/v2/keys.verifyKey", json!({"key": "k\u{0}"}), "body.key"),
        ] {
            let (status, v) = srv.call(path, body.clone()).await;
            assert_eq!(status, 400, "{path} {body} → {v}");
            assert_envelope(&v, 400);
            assert_eq!(v["error"]["errors"][0]["location"], location, "{path}: {v}");
        }
        // Nothing was written: the API's keys and the namespace's counters are untouched.
        let (status, v) = srv.call("/v2/apis.listKeys", json!({"apiId": api})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(0), "{v}");
    });

    // Credits, refill amounts, limits and costs stop at 2^53 - 1 in every mode.
    both!(status_400_counts_past_2_pow_53, |srv| {
        let api = srv.create_api().await;
        for (path, body, location) in [
            (
                "/v2/keys.createKey",
                json!({"apiId": api, "credits": {"remaining": 9223372036854775807u64}}),
                "body.credits.remaining",
            ),
            (
                "/v2/keys.createKey",
                json!({"apiId": api, "credits": {"remaining": 9007199254740992u64}}),
                "body.credits.remaining",
            ),
            (
                "/v2/ratelimit.limit",
                json!({"namespace": "ns", "identifier": "u", "limit": 9007199254740993u64, "duration": 1000}),
                "body.limit",
            ),
        ] {
            let (status, v) = srv.call(path, body.clone()).await;
            assert_eq!(status, 400, "{path} {body} → {v}");
            assert_eq!(v["error"]["errors"][0]["location"], location, "{v}");
        }
        let (_, key) = srv
            .create_key_in(&api, json!({"credits": {"remaining": 9007199254740991u64}}))
            .await;
        let v = srv.verify(json!({"key": key})).await;
        assert_eq!(v["credits"], 9007199254740990u64, "{v}");
    });

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
}

mod status_401 {
    use super::*;

    both!(errors_follow_accept_and_carry_one_request_id_shape, |srv| {
        let send = |accept: Option<&'static str>| {
            let mut req = srv
                .http()
                .post(srv.url("/v2/apis.getApi"))
                .bearer_auth("not-a-root-key")
                .json(&json!({"apiId": "api_missing"}));
            if let Some(a) = accept {
                req = req.header("accept", a);
            }
            req.send()
        };
        for (accept, expected) in [
            (None, "application/json"),
            (Some("*/*"), "application/json"),
            (Some("application/*"), "application/json"),
            (Some("application/problem+json"), "application/problem+json"),
        ] {
            let resp = send(accept).await.unwrap();
            assert_eq!(resp.status(), 401);
            assert_eq!(resp.headers()["content-type"], expected, "{accept:?}");
            let body: Value = resp.json().await.unwrap();
            let id = body["meta"]["requestId"].as_str().unwrap();
            let hex = id.strip_prefix("req_").unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    });
}

mod status_404 {
    use super::*;

    both!(status_404, |srv| {
        for (path, body) in [
            ("/v2/keys.getKey", json!({"keyId": "key_missing"})),
            ("/v2/keys.deleteKey", json!({"keyId": "key_missing"})),
            (
                "/v2/keys.updateKey",
                json!({"keyId": "key_missing", "name": "x"}),
            ),
            ("/v2/apis.getApi", json!({"apiId": "api_missing"})),
            ("/v2/keys.createKey", json!({"apiId": "api_missing"})),
            ("/v2/identities.getIdentity", json!({"identity": "nobody"})),
            ("/v2/permissions.getRole", json!({"role": "nobody"})),
            (
                "/v2/ratelimit.getOverride",
                json!({"namespace": "n", "identifier": "i"}),
            ),
        ] {
            let (status, v) = srv.call(path, body).await;
            assert_eq!(status, 404, "{path} → {v}");
            assert_envelope(&v, 404);
        }
        let (status, v) = srv.call("/v2/does.notExist", json!({})).await;
        assert_eq!(status, 404);
        assert_envelope(&v, 404);
        let api = srv.create_api().await;
        assert_eq!(
            srv.status(
                "/v2/keys.createKey",
                json!({"apiId": api, "roles": ["ghost"]}),
            )
            .await,
            404
        );
    });
}

mod status_409 {
    use super::*;

    both!(status_409, |srv| {
        srv.ok(
            "/v2/identities.createIdentity",
            json!({"externalId": "dup"}),
        )
        .await;
        let (status, v) = srv
            .call(
                "/v2/identities.createIdentity",
                json!({"externalId": "dup"}),
            )
            .await;
        assert_eq!(status, 409);
        assert_envelope(&v, 409);
        srv.ok(
            "/v2/permissions.createPermission",
            json!({"name": "x", "slug": "x.y"}),
        )
        .await;
        assert_eq!(
            srv.status(
                "/v2/permissions.createPermission",
                json!({"name": "x", "slug": "x.y"}),
            )
            .await,
            409
        );
    });
}

mod status_413 {
    use super::*;

    both!(status_413, |srv| {
        let big = format!("{{\"key\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
        let (status, v) = srv.raw("/v2/keys.verifyKey", big).await;
        assert_eq!(status, 413);
        assert_envelope(&v, 413);
        // And the server is fine afterwards.
        assert_eq!(
            srv.status("/v2/keys.verifyKey", json!({"key": "k"})).await,
            200
        );
    });
}
