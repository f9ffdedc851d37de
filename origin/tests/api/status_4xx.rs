//! Every refusal: 400, 401, 403, 404, 409, 412, 413, each in the error envelope.

use serde_json::{Value, json};

use crate::both;

fn assert_envelope(v: &Value, status: u16) {
    assert_eq!(v["error"]["status"], status, "{v}");
    assert!(
        v["meta"]["requestId"].as_str().unwrap().starts_with("req_"),
        "{v}"
    );
    assert!(
        v["error"]["type"]
            .as_str()
            .unwrap()
            .starts_with("https://unkey.com/docs/errors/"),
        "{v}"
    );
    assert!(
        v["error"]["title"].is_string() && v["error"]["detail"].is_string(),
        "{v}"
    );
    if status == 400 {
        assert!(v["error"]["errors"].is_array(), "{v}");
    } else {
        assert!(v["error"].get("errors").is_none(), "{v}");
    }
}

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
    let (status, _) = srv
        .call_as("/v2/apis.createApi", Some(&key), json!({"name": "nope"}))
        .await;
    assert_eq!(status, 401);
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
        .call_as("/v2/keys.verifyKey", Some(&narrow), json!({"key": "k"}))
        .await;
    assert_eq!(status, 403, "{v}");
    assert_envelope(&v, 403);
    let (status, _) = srv
        .call_as("/v2/apis.createApi", Some(&narrow), json!({"name": "nope"}))
        .await;
    assert_eq!(status, 403);
    // Holding create_key for no API at all is 403; for another API only, 404.
    let (status, _) = srv
        .call_as("/v2/keys.createKey", Some(&narrow), json!({"apiId": api}))
        .await;
    assert_eq!(status, 403);
});

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
    let (status, _) = srv
        .call(
            "/v2/keys.createKey",
            json!({"apiId": api, "roles": ["ghost"]}),
        )
        .await;
    assert_eq!(status, 404);
});

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
    let (status, _) = srv
        .call(
            "/v2/permissions.createPermission",
            json!({"name": "x", "slug": "x.y"}),
        )
        .await;
    assert_eq!(status, 409);
});

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

both!(status_413, |srv| {
    let big = format!("{{\"key\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let (status, v) = srv.raw("/v2/keys.verifyKey", big).await;
    assert_eq!(status, 413);
    assert_envelope(&v, 413);
    // And the server is fine afterwards.
    let (status, _) = srv.call("/v2/keys.verifyKey", json!({"key": "k"})).await;
    assert_eq!(status, 200);
});

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
