//! `keys.verifyKey`: every code a verification answers, and every refusal.

use serde_json::json;

use crate::both;
use crate::harness::assert_envelope;
use crate::harness::now_ms;

mod status_200 {
    use super::*;

    both!(verify_codes, |srv| {
        let now = keyway_origin::ids::now_ms();
        let (api, _, valid) = srv.create_key(json!({"permissions": ["api.read", "api.write"], "meta": {"plan": "pro"}, "name": "k1"})).await;
        let d = srv.verify(json!({"key": valid})).await;
        assert_eq!(d["valid"], true);
        assert_eq!(d["code"], "VALID");
        assert_eq!(d["meta"]["plan"], "pro");
        assert_eq!(d["name"], "k1");
        assert_eq!(d["permissions"], json!(["api.read", "api.write"]));
        // Absent optionals are omitted, never null.
        assert!(
            d.get("expires").is_none() && d.get("credits").is_none() && d.get("identity").is_none()
        );

        assert_eq!(
            srv.verify(json!({"key": "sk_doesnotexist"})).await,
            json!({"valid": false, "code": "NOT_FOUND"})
        );

        let d = srv
            .verify(json!({"key": valid, "permissions": "api.read AND (api.write OR admin)"}))
            .await;
        assert_eq!(d["code"], "VALID");
        let d = srv
            .verify(json!({"key": valid, "permissions": "api.read AND admin"}))
            .await;
        assert_eq!(d["code"], "INSUFFICIENT_PERMISSIONS");

        let (_, disabled) = srv.create_key_in(&api, json!({"enabled": false})).await;
        assert_eq!(
            srv.verify(json!({"key": disabled})).await["code"],
            "DISABLED"
        );

        let (_, expired) = srv
            .create_key_in(&api, json!({"expires": now - 1000}))
            .await;
        let d = srv.verify(json!({"key": expired})).await;
        assert_eq!(
            (d["code"].as_str(), d["valid"].as_bool()),
            (Some("EXPIRED"), Some(false))
        );

        let (_, limited) = srv.create_key_in(&api, json!({"ratelimits": [{"name": "requests", "limit": 1, "duration": 60000, "autoApply": true}]})).await;
        assert_eq!(srv.verify(json!({"key": limited})).await["code"], "VALID");
        let d = srv.verify(json!({"key": limited})).await;
        assert_eq!(d["code"], "RATE_LIMITED");
        assert_eq!(d["ratelimits"][0]["exceeded"], true);
        assert_eq!(d["ratelimits"][0]["autoApply"], true);

        let (_, metered) = srv
            .create_key_in(&api, json!({"credits": {"remaining": 1}}))
            .await;
        let d = srv.verify(json!({"key": metered})).await;
        assert_eq!(
            (d["code"].as_str(), d["credits"].as_i64()),
            (Some("VALID"), Some(0))
        );
        let d = srv.verify(json!({"key": metered})).await;
        assert_eq!(
            (d["code"].as_str(), d["credits"].as_i64()),
            (Some("USAGE_EXCEEDED"), Some(0))
        );
        // Cost 0 passes even at zero.
        assert_eq!(
            srv.verify(json!({"key": metered, "credits": {"cost": 0}}))
                .await["code"],
            "VALID"
        );
    });

    both!(verify_named_and_identity_limits, |srv| {
        let id = srv
            .ok("/v2/identities.createIdentity", json!({"externalId": "user_1", "ratelimits": [{"name": "tokens", "limit": 10, "duration": 60000}]}))
            .await;
        assert!(id["identityId"].as_str().unwrap().starts_with("id_"));
        let (_, _, key) = srv.create_key(json!({"externalId": "user_1"})).await;
        let d = srv.verify(json!({"key": key})).await;
        assert_eq!(d["identity"]["externalId"], "user_1");
        assert!(
            d.get("ratelimits").is_none(),
            "identity limit is not auto-applied: {d}"
        );
        let d = srv
            .verify(json!({"key": key, "ratelimits": [{"name": "tokens", "cost": 7}]}))
            .await;
        assert_eq!(d["ratelimits"][0]["remaining"], 3);
        let d = srv
            .verify(json!({"key": key, "ratelimits": [{"name": "tokens", "cost": 7}]}))
            .await;
        assert_eq!(d["code"], "RATE_LIMITED");
        let d = srv
            .verify(
                json!({"key": key, "ratelimits": [{"name": "adhoc", "limit": 2, "duration": 1000}]}),
            )
            .await;
        assert_eq!(d["code"], "VALID");
        assert!(
            d["ratelimits"][0]["id"]
                .as_str()
                .unwrap()
                .starts_with("rl_")
        );
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
                .as_root(&scoped)
                .call("/v2/keys.verifyKey", json!({"key": key}))
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
            .as_root(&scoped)
            .call("/v2/keys.verifyKey", json!({"key": mine}))
            .await;
        assert_eq!(v["data"]["code"], "DISABLED");
    });
}

mod status_400 {
    use super::*;

    both!(status_400_bad_bodies, |srv| {
        for body in [
            "{",
            "[]",
            "{\"key\": 5}",
            "{\"key\": \"k\", \"unknown\": 1}",
            "{}",
            "null",
            "{\"key\":\"k\"} trailing",
        ] {
            let (status, v) = srv.raw("/v2/keys.verifyKey", body.to_string()).await;
            assert_eq!(status, 400, "{body} → {v}");
            assert_envelope(&v, 400);
        }
        let (status, v) = srv
            .raw(
                "/v2/keys.verifyKey",
                r#"{"key":"k","credits":{"cost":"x"}}"#.to_string(),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(v["error"]["errors"][0]["location"], "body.credits.cost");
        // Validation runs before auth: no credentials, still 400 for a bad body.
        let (status, v) = srv
            .call_as("/v2/keys.createKey", None, json!({"apiId": 5}))
            .await;
        assert_eq!(status, 400);
        assert_envelope(&v, 400);
        let (status, v) = srv
            .call(
                "/v2/keys.createKey",
                json!({"apiId": "api_123", "byteLength": 8}),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(v["error"]["errors"][0]["location"], "body.byteLength");
    });

    both!(status_400_permission_query, |srv| {
        let (_, _, key) = srv.create_key(json!({})).await;
        let (status, v) = srv
            .call(
                "/v2/keys.verifyKey",
                json!({"key": key, "permissions": "a AND (b OR"}),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(
            v["error"]["type"],
            "https://unkey.com/docs/errors/user/bad_request/permissions_query_syntax_error"
        );
        assert_eq!(v["error"]["errors"][0]["location"], "body.permissions");
        assert!(
            v["error"]["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("position")
        );
    });

    both!(status_400_auth_header, |srv| {
        let (status, v) = srv
            .call_as("/v2/keys.verifyKey", None, json!({"key": "k"}))
            .await;
        assert_eq!(status, 400);
        assert_envelope(&v, 400);
        let resp = srv
            .http()
            .post(srv.url("/v2/keys.verifyKey"))
            .header("authorization", "Basic abc")
            .json(&json!({"key": "k"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    });
}

mod status_401 {
    use super::*;

    both!(status_401, |srv| {
        let (status, v) = srv
            .call_as(
                "/v2/keys.verifyKey",
                Some("root_unknown"),
                json!({"key": "k"}),
            )
            .await;
        assert_eq!(status, 401);
        assert_envelope(&v, 401);
        // A normal key is not a root key.
        let (_, _, key) = srv.create_key(json!({})).await;
        assert_eq!(
            srv.as_root(&key)
                .status("/v2/apis.createApi", json!({"name": "nope"}))
                .await,
            401
        );
        // problem+json when accepted.
        let resp = srv
            .http()
            .post(srv.url("/v2/keys.verifyKey"))
            .bearer_auth("root_unknown")
            .header("accept", "application/problem+json")
            .json(&json!({"key": "k"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    });
}

mod status_403 {
    use super::*;

    both!(status_403, |srv| {
        let api = srv.create_api().await;
        // A root key with one narrow grant, made with the CLI as an operator would.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
            .args([
                "root-keys",
                "create",
                "--permission",
                &format!("api.{api}.read_key"),
                "--database",
                &srv.db.url,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let narrow = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let (status, v) = srv
            .as_root(&narrow)
            .call("/v2/keys.verifyKey", json!({"key": "k"}))
            .await;
        assert_eq!(status, 403, "{v}");
        assert_envelope(&v, 403);
        assert_eq!(
            srv.as_root(&narrow)
                .status("/v2/apis.createApi", json!({"name": "nope"}))
                .await,
            403
        );
        // Holding create_key for no API at all is 403; for another API only, 404.
        assert_eq!(
            srv.as_root(&narrow)
                .status("/v2/keys.createKey", json!({"apiId": api}))
                .await,
            403
        );
    });
}

mod status_412 {
    use super::*;

    both!(status_412, |srv| {
        let (_, _, key) = srv.create_key(json!({})).await;
        let (status, v) = srv
            .call(
                "/v2/keys.verifyKey",
                json!({"key": key, "ratelimits": [{"name": "nonexistent"}]}),
            )
            .await;
        assert_eq!(status, 412, "{v}");
        assert_envelope(&v, 412);
    });
}

mod status_500 {
    use super::*;

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
}
