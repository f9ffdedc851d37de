//! Successful calls: shapes, codes and round trips.

use serde_json::json;

use crate::both;

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

both!(key_lifecycle, |srv| {
    let (api, key_id, key) = srv.create_key(json!({"prefix": "sk", "name": "first", "credits": {"remaining": 10, "refill": {"interval": "daily", "amount": 10}}})).await;
    assert!(key.starts_with("sk_"));
    let k = srv.ok("/v2/keys.getKey", json!({"keyId": key_id})).await;
    assert_eq!(k["start"].as_str().unwrap(), &key[..7]);
    assert_eq!(
        k["credits"],
        json!({"remaining": 10, "refill": {"interval": "daily", "amount": 10}})
    );
    assert!(k.get("plaintext").is_none());
    let who = srv.ok("/v2/keys.whoami", json!({"key": key})).await;
    assert_eq!(who["keyId"], key_id.as_str());

    srv.ok(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "name": null, "meta": {"a": 1}, "expires": 4102444800000i64}),
    )
    .await;
    let k = srv.ok("/v2/keys.getKey", json!({"keyId": key_id})).await;
    assert!(k.get("name").is_none());
    assert_eq!(k["meta"], json!({"a": 1}));
    assert_eq!(k["expires"], 4102444800000i64);

    let c = srv
        .ok(
            "/v2/keys.updateCredits",
            json!({"keyId": key_id, "operation": "decrement", "value": 3}),
        )
        .await;
    assert_eq!(c["remaining"], 7);
    let c = srv
        .ok(
            "/v2/keys.updateCredits",
            json!({"keyId": key_id, "operation": "increment", "value": 5}),
        )
        .await;
    assert_eq!(c["remaining"], 12);
    assert_eq!(
        srv.verify(json!({"key": key, "credits": {"cost": 2}}))
            .await["credits"],
        10
    );
    let c = srv
        .ok(
            "/v2/keys.updateCredits",
            json!({"keyId": key_id, "operation": "set", "value": null}),
        )
        .await;
    assert_eq!(c, json!({"remaining": null}));
    let d = srv.verify(json!({"key": key})).await;
    assert!(d.get("credits").is_none(), "unlimited now: {d}");

    let perms = srv
        .ok(
            "/v2/keys.addPermissions",
            json!({"keyId": key_id, "permissions": ["p.one", "p.two"]}),
        )
        .await;
    assert_eq!(perms.as_array().unwrap().len(), 2);
    srv.ok(
        "/v2/keys.removePermissions",
        json!({"keyId": key_id, "permissions": ["p.one"]}),
    )
    .await;
    assert_eq!(
        srv.verify(json!({"key": key, "permissions": "p.two"}))
            .await["code"],
        "VALID"
    );
    assert_eq!(
        srv.verify(json!({"key": key, "permissions": "p.one"}))
            .await["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    srv.ok(
        "/v2/permissions.createPermission",
        json!({"name": "admin", "slug": "admin"}),
    )
    .await;
    srv.ok(
        "/v2/permissions.createRole",
        json!({"name": "admins", "permissions": ["admin"]}),
    )
    .await;
    let roles = srv
        .ok(
            "/v2/keys.setRoles",
            json!({"keyId": key_id, "roles": ["admins"]}),
        )
        .await;
    assert_eq!(roles[0]["name"], "admins");
    let d = srv
        .verify(json!({"key": key, "permissions": "admin AND p.two"}))
        .await;
    assert_eq!(d["code"], "VALID");
    assert_eq!(d["roles"], json!(["admins"]));

    let rerolled = srv
        .ok(
            "/v2/keys.rerollKey",
            json!({"keyId": key_id, "expiration": 0}),
        )
        .await;
    let new_key = rerolled["key"].as_str().unwrap();
    assert!(new_key.starts_with("sk_"));
    assert_eq!(
        srv.verify(json!({"key": new_key, "permissions": "admin"}))
            .await["code"],
        "VALID"
    );
    assert_eq!(srv.verify(json!({"key": key})).await["code"], "EXPIRED");

    // Pagination over listKeys.
    for _ in 0..3 {
        srv.create_key_in(&api, json!({})).await;
    }
    let (status, page) = srv
        .call("/v2/apis.listKeys", json!({"apiId": api, "limit": 2}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["pagination"]["hasMore"], true);
    let cursor = page["pagination"]["cursor"].as_str().unwrap().to_string();
    let (_, rest) = srv
        .call(
            "/v2/apis.listKeys",
            json!({"apiId": api, "limit": 100, "cursor": cursor}),
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 3);
    assert_eq!(rest["pagination"], json!({"hasMore": false}));

    srv.ok("/v2/keys.deleteKey", json!({"keyId": key_id})).await;
    let (status, _) = srv.call("/v2/keys.getKey", json!({"keyId": key_id})).await;
    assert_eq!(status, 404);
});

both!(apis_identities_permissions, |srv| {
    let api = srv.create_api().await;
    let a = srv.ok("/v2/apis.getApi", json!({"apiId": api})).await;
    assert_eq!(a, json!({"id": api, "name": "test-api"}));

    srv.ok(
        "/v2/identities.createIdentity",
        json!({"externalId": "acme", "meta": {"tier": 1}}),
    )
    .await;
    let i = srv
        .ok("/v2/identities.getIdentity", json!({"identity": "acme"}))
        .await;
    assert_eq!(i["meta"], json!({"tier": 1}));
    let i = srv.ok("/v2/identities.updateIdentity", json!({"identity": "acme", "meta": {"tier": 2}, "ratelimits": [{"name": "rps", "limit": 5, "duration": 1000}]})).await;
    assert_eq!(i["ratelimits"][0]["name"], "rps");
    let (_, list) = srv.call("/v2/identities.listIdentities", json!({})).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    srv.ok("/v2/identities.deleteIdentity", json!({"identity": "acme"}))
        .await;
    let (status, _) = srv
        .call("/v2/identities.getIdentity", json!({"identity": "acme"}))
        .await;
    assert_eq!(status, 404);

    let p = srv
        .ok(
            "/v2/permissions.createPermission",
            json!({"name": "Read", "slug": "docs.read"}),
        )
        .await;
    let pid = p["permissionId"].as_str().unwrap();
    assert_eq!(
        srv.ok("/v2/permissions.getPermission", json!({"permission": pid}))
            .await["slug"],
        "docs.read"
    );
    srv.ok(
        "/v2/permissions.createRole",
        json!({"name": "reader", "permissions": ["docs.read"]}),
    )
    .await;
    let r = srv
        .ok("/v2/permissions.getRole", json!({"role": "reader"}))
        .await;
    assert_eq!(r["permissions"][0]["slug"], "docs.read");
    let (_, roles) = srv
        .call("/v2/permissions.listRoles", json!({"limit": 10}))
        .await;
    assert_eq!(roles["data"].as_array().unwrap().len(), 1);
    let (_, perms) = srv.call("/v2/permissions.listPermissions", json!({})).await;
    assert_eq!(perms["data"].as_array().unwrap().len(), 1);
    srv.ok("/v2/permissions.deleteRole", json!({"role": "reader"}))
        .await;
    srv.ok(
        "/v2/permissions.deletePermission",
        json!({"permission": "docs.read"}),
    )
    .await;

    srv.ok("/v2/apis.deleteApi", json!({"apiId": api})).await;
    let (status, _) = srv.call("/v2/apis.getApi", json!({"apiId": api})).await;
    assert_eq!(status, 404);
});

both!(ratelimit_routes, |srv| {
    let body = json!({"namespace": "email", "identifier": "user_1", "limit": 2, "duration": 60000});
    assert_eq!(
        srv.ok("/v2/ratelimit.limit", body.clone()).await["success"],
        true
    );
    let d = srv.ok("/v2/ratelimit.limit", body.clone()).await;
    assert_eq!(
        (d["success"].as_bool(), d["remaining"].as_i64()),
        (Some(true), Some(0))
    );
    assert_eq!(
        srv.ok("/v2/ratelimit.limit", body.clone()).await["success"],
        false
    );

    let o = srv
        .ok(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "email", "identifier": "vip", "limit": 100, "duration": 60000}),
        )
        .await;
    let oid = o["overrideId"].as_str().unwrap().to_string();
    let d = srv
        .ok(
            "/v2/ratelimit.limit",
            json!({"namespace": "email", "identifier": "vip", "limit": 1, "duration": 60000}),
        )
        .await;
    assert_eq!(
        (d["limit"].as_i64(), d["overrideId"].as_str()),
        (Some(100), Some(oid.as_str()))
    );
    let g = srv
        .ok(
            "/v2/ratelimit.getOverride",
            json!({"namespace": "email", "identifier": "vip"}),
        )
        .await;
    assert_eq!(g["limit"], 100);
    let (_, l) = srv
        .call("/v2/ratelimit.listOverrides", json!({"namespace": "email"}))
        .await;
    assert_eq!(l["data"].as_array().unwrap().len(), 1);
    srv.ok(
        "/v2/ratelimit.deleteOverride",
        json!({"namespace": "email", "identifier": "vip"}),
    )
    .await;

    let (status, m) = srv
        .call(
            "/v2/ratelimit.multiLimit",
            json!([
                {"namespace": "a", "identifier": "x", "limit": 5, "duration": 1000},
                {"namespace": "b", "identifier": "x", "limit": 1, "duration": 1000, "cost": 2}
            ]),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["data"]["passed"], false);
    // All or nothing: the passing limit took nothing.
    assert_eq!(m["data"]["limits"][0]["remaining"], 5);
});

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
