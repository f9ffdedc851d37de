//! Moving in: keys imported by hash, role permissions replaced whole, error media types
//! and request ids as Unkey clients expect them.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::both;

fn sha256_base64(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(key.as_bytes()))
}

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

both!(migrated_keys_verify_with_their_plaintext, |srv| {
    let api = srv.create_api().await;
    srv.ok(
        "/v2/permissions.createRole",
        json!({"name": "reader", "permissions": []}),
    )
    .await;
    // Keys as Unkey stores them: SHA-256 of the whole key, standard padded base64.
    let unkey_plain = ["uk_3ZfC8kX1aQ9Lm2Tb", "uk_7HtR4sW2pE6Nv8Yc"];
    let hex_plain = "legacy-key-0001";
    let d = srv
        .ok(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_base64", "apiId": api, "keys": [
                {"hash": sha256_base64(unkey_plain[0]), "start": "uk_3ZfC", "name": "first",
                 "externalId": "acme", "meta": {"plan": "pro"}, "permissions": ["docs.read"],
                 "roles": ["reader"], "credits": {"remaining": 5, "refill": {"interval": "daily", "amount": 5}},
                 "ratelimits": [{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]},
                {"hash": sha256_base64(unkey_plain[1]), "enabled": false,
                 "expires": 4_000_000_000_000_i64},
            ]}),
        )
        .await;
    assert_eq!(d["failed"], json!([]));
    let migrated = d["migrated"].as_array().unwrap();
    assert_eq!(migrated.len(), 2);
    assert_eq!(migrated[0]["hash"], sha256_base64(unkey_plain[0]));
    let first_id = migrated[0]["keyId"].as_str().unwrap().to_string();

    let v = srv
        .verify(json!({"key": unkey_plain[0], "permissions": "docs.read"}))
        .await;
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["keyId"], first_id.as_str());
    assert_eq!(v["name"], "first");
    assert_eq!(v["meta"]["plan"], "pro");
    assert_eq!(v["identity"]["externalId"], "acme");
    assert_eq!(v["credits"], 4);
    assert_eq!(v["roles"], json!(["reader"]));
    assert_eq!(
        srv.verify(json!({"key": unkey_plain[1]})).await["code"],
        "DISABLED"
    );
    let k = srv.ok("/v2/keys.getKey", json!({"keyId": first_id})).await;
    assert_eq!(k["start"], "uk_3ZfC");
    assert_eq!(k["credits"]["refill"]["amount"], 5);
    assert_eq!(k["ratelimits"][0]["limit"], 2);

    // Hex digests of either case, for systems that stored those.
    let d = srv
        .ok(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_hex", "apiId": api,
                   "keys": [{"hash": sha256_hex(hex_plain).to_uppercase()}]}),
        )
        .await;
    assert_eq!(d["migrated"].as_array().unwrap().len(), 1);
    assert_eq!(srv.verify(json!({"key": hex_plain})).await["code"], "VALID");

    // Duplicates fail one by one (already stored, whatever encoding brought it in, or
    // twice in the batch); the rest land.
    let fresh = "uk_9QwE3rT5yU7iO1pA";
    let again = sha256_base64(unkey_plain[0]);
    let d = srv
        .ok(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_base64", "apiId": api, "keys": [
                {"hash": again}, {"hash": sha256_base64(fresh)}, {"hash": sha256_base64(fresh)},
                {"hash": sha256_base64(hex_plain)},
            ]}),
        )
        .await;
    assert_eq!(d["migrated"].as_array().unwrap().len(), 1);
    assert_eq!(
        d["failed"],
        json!([again, sha256_base64(fresh), sha256_base64(hex_plain)])
    );
    assert_eq!(srv.verify(json!({"key": fresh})).await["code"], "VALID");
    // The duplicate did not touch the stored key.
    assert_eq!(
        srv.verify(json!({"key": unkey_plain[0]})).await["keyId"],
        first_id.as_str()
    );
});

both!(migrate_keys_refuses_whole_batches, |srv| {
    let api = srv.create_api().await;
    let plain = "uk_AtomicBatch0001";
    let key = |hash: String| json!({"hash": hash});

    let (status, body) = srv
        .call(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "bcrypt", "apiId": api, "keys": [key(sha256_base64(plain))]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("sha256_base64") && message.contains("sha256_hex"),
        "{message}"
    );

    // A hash that is not a SHA-256 in the named encoding: a 400 at that key.
    for (migration, hash) in [
        ("sha256_base64", sha256_hex(plain)),
        (
            "sha256_base64",
            sha256_base64(plain).trim_end_matches('=').to_string(),
        ),
        ("sha256_hex", sha256_base64(plain)),
        ("sha256_hex", format!("+{}", &sha256_hex(plain)[1..])),
    ] {
        let valid = if migration == "sha256_hex" {
            sha256_hex("ok-key")
        } else {
            sha256_base64("ok-key")
        };
        let (status, body) = srv
            .call(
                "/v2/keys.migrateKeys",
                json!({"migrationId": migration, "apiId": api, "keys": [key(valid), key(hash)]}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["errors"][0]["location"], "body.keys[1].hash");
    }

    // A role that does not exist fails the whole batch: nothing half-imported remains,
    // not even the identity the first key would have created.
    let (status, body) = srv
        .call(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_base64", "apiId": api, "keys": [
                {"hash": sha256_base64(plain), "externalId": "half-imported"},
                {"hash": sha256_base64("uk_second"), "roles": ["no-such-role"]},
            ]}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(srv.verify(json!({"key": plain})).await["code"], "NOT_FOUND");
    let (status, _) = srv
        .call(
            "/v2/identities.getIdentity",
            json!({"identity": "half-imported"}),
        )
        .await;
    assert_eq!(status, 404);

    // Batch size, an empty batch, an unknown field, and a grant the caller lacks.
    let many: Vec<Value> = (0..1001)
        .map(|i| key(sha256_base64(&format!("k{i}"))))
        .collect();
    for keys in [json!(many), json!([])] {
        let (status, _) = srv
            .call(
                "/v2/keys.migrateKeys",
                json!({"migrationId": "sha256_base64", "apiId": api, "keys": keys}),
            )
            .await;
        assert_eq!(status, 400);
    }
    let (status, _) = srv
        .call(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_base64", "apiId": api, "keys": [{"hash": sha256_base64(plain), "plaintext": "x"}]}),
        )
        .await;
    assert_eq!(status, 400);
    let reader = srv.root_key_with(&["api.*.read_key"]);
    let (status, _) = srv
        .call_as(
            "/v2/keys.migrateKeys",
            Some(&reader),
            json!({"migrationId": "sha256_base64", "apiId": api, "keys": [key(sha256_base64(plain))]}),
        )
        .await;
    assert_eq!(status, 403);
    // One API's grant does not reach another.
    let other = srv.create_api().await;
    let scoped = srv.root_key_with(&[&format!("api.{api}.create_key")]);
    let (status, body) = srv
        .call_as(
            "/v2/keys.migrateKeys",
            Some(&scoped),
            json!({"migrationId": "sha256_base64", "apiId": other, "keys": [key(sha256_base64(plain))]}),
        )
        .await;
    assert!(status == 403 || status == 404, "{status} {body}");
});

/// setRolePermissions as `root_key` (the server's own when `None`).
async fn set_role(
    srv: &crate::harness::Server,
    root_key: Option<&str>,
    role: &str,
    permissions: &[&str],
) -> (u16, Value) {
    let (status, body) = srv
        .call_as(
            "/v2/permissions.setRolePermissions",
            Some(root_key.unwrap_or(&srv.root_key)),
            json!({"roleId": role, "permissions": permissions}),
        )
        .await;
    (status, body.get("data").cloned().unwrap_or(body))
}

fn slugs(permissions: &Value) -> Vec<&str> {
    permissions
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect()
}

both!(set_role_permissions_replaces_the_set, |srv| {
    let role = srv
        .ok(
            "/v2/permissions.createRole",
            json!({"name": "editor", "permissions": []}),
        )
        .await["roleId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, key) = srv.create_key(json!({"roles": ["editor"]})).await;
    let may_write = async || {
        srv.verify(json!({"key": key, "permissions": "docs.write"}))
            .await["code"]
            == "VALID"
    };
    assert!(!may_write().await);

    // Missing permissions are created (the server's root key may create them), and the
    // key sees the change at once: its cached snapshot was dropped.
    let (status, held) = set_role(
        &srv,
        None,
        &role,
        &["docs.write", "docs.read", "docs.write"],
    )
    .await;
    assert_eq!(
        (status, slugs(&held)),
        (200, vec!["docs.read", "docs.write"])
    );
    assert!(may_write().await);

    // By name as well as id; the new set replaces the old one.
    let (_, held) = set_role(&srv, None, "editor", &["docs.read"]).await;
    assert_eq!(slugs(&held), ["docs.read"]);
    assert!(!may_write().await);
    let r = srv
        .ok("/v2/permissions.getRole", json!({"role": role}))
        .await;
    assert_eq!(slugs(&r["permissions"]), ["docs.read"]);

    // Empty clears.
    assert_eq!(set_role(&srv, None, &role, &[]).await, (200, json!([])));

    // Errors: unknown role, bad slug, missing grants, no right to create permissions.
    assert_eq!(set_role(&srv, None, "role_nope", &[]).await.0, 404);
    let (status, body) = set_role(&srv, None, &role, &["has space"]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["errors"][0]["location"],
        "body.permissions[0]"
    );
    let adder = srv.root_key_with(&["rbac.*.add_permission_to_role"]);
    assert_eq!(set_role(&srv, Some(&adder), &role, &[]).await.0, 403);
    let both_grants = srv.root_key_with(&[
        "rbac.*.add_permission_to_role",
        "rbac.*.remove_permission_from_role",
    ]);
    assert_eq!(
        set_role(&srv, Some(&both_grants), &role, &["brand.new"])
            .await
            .0,
        403
    );
    assert_eq!(
        set_role(&srv, Some(&both_grants), &role, &["docs.write"])
            .await
            .0,
        200
    );
});

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

/// A write naming a missing role is a 404 and leaves no trace of the owner it named
/// (`refused-owner`): the identity is created only inside the write's transaction.
async fn refused_without_owner(srv: &crate::harness::Server, route: &str, body: Value) {
    let (status, body) = srv.call(route, body).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = srv
        .call(
            "/v2/identities.getIdentity",
            json!({"identity": "refused-owner"}),
        )
        .await;
    assert_eq!(status, 404, "{route} left its owner behind");
}

async fn get_key(srv: &crate::harness::Server, key_id: &str, decrypt: bool) -> Value {
    srv.ok(
        "/v2/keys.getKey",
        json!({"keyId": key_id, "decrypt": decrypt}),
    )
    .await
}

const MASTER_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const MASTER_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const MASTER_C: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";

both!(
    recoverable_keys_decrypt_rotate_and_never_leak,
    &["--encryption-key", MASTER_A],
    |srv| {
        let api = srv.create_api().await;
        let (recoverable_id, plain) = srv.create_key_in(&api, json!({"recoverable": true})).await;
        let (ordinary_id, _) = srv.create_key_in(&api, json!({})).await;
        assert_eq!(
            get_key(&srv, &recoverable_id, true).await["plaintext"],
            plain.as_str()
        );
        assert!(
            get_key(&srv, &recoverable_id, false)
                .await
                .get("plaintext")
                .is_none()
        );
        assert!(
            get_key(&srv, &ordinary_id, true)
                .await
                .get("plaintext")
                .is_none()
        );
        let listed = srv
            .ok("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true}))
            .await;
        let shown: Vec<&Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k.get("plaintext"))
            .collect();
        assert_eq!(shown, [&json!(plain)]);
        let who = srv
            .ok("/v2/keys.whoami", json!({"key": plain, "decrypt": true}))
            .await;
        assert_eq!(who["plaintext"], plain.as_str());

        // Reading is not decrypting: that takes decrypt_key on the key's API.
        let reader = srv.root_key_with(&["api.*.read_key", "api.*.read_api"]);
        let (status, _) = srv
            .call_as(
                "/v2/keys.getKey",
                Some(&reader),
                json!({"keyId": recoverable_id, "decrypt": true}),
            )
            .await;
        assert_eq!(status, 403);
        let (status, _) = srv
            .call_as(
                "/v2/apis.listKeys",
                Some(&reader),
                json!({"apiId": api, "decrypt": true}),
            )
            .await;
        assert_eq!(status, 403);
        let decrypter = srv.root_key_with(&["api.*.read_key", &format!("api.{api}.decrypt_key")]);
        let (status, body) = srv
            .call_as(
                "/v2/keys.getKey",
                Some(&decrypter),
                json!({"keyId": recoverable_id, "decrypt": true}),
            )
            .await;
        assert_eq!((status, &body["data"]["plaintext"]), (200, &json!(plain)));
        // Storing keys encrypted takes encrypt_key.
        let creator = srv.root_key_with(&["api.*.create_key"]);
        let (status, _) = srv
            .call_as(
                "/v2/keys.createKey",
                Some(&creator),
                json!({"apiId": api, "recoverable": true}),
            )
            .await;
        assert_eq!(status, 403);

        // A rerolled recoverable key stays recoverable, with the new plaintext.
        let rerolled = srv
            .ok(
                "/v2/keys.rerollKey",
                json!({"keyId": recoverable_id, "expiration": 0}),
            )
            .await;
        let new_id = rerolled["keyId"].as_str().unwrap().to_string();
        let new_plain = rerolled["key"].as_str().unwrap().to_string();
        assert_eq!(
            get_key(&srv, &new_id, true).await["plaintext"],
            new_plain.as_str()
        );

        // Rotation: re-seal under B, keeping A only to open; then B alone opens both.
        // Each run's log is kept: a restart starts a fresh one.
        let mut said = serde_json::to_string(&*srv.logs.lock().unwrap()).unwrap();
        assert_eq!(srv.signal_and_wait("TERM"), Some(0));
        let out = srv.cli(&[
            "encryption",
            "rotate",
            "--encryption-key",
            MASTER_B,
            "--old-encryption-keys",
            MASTER_A,
        ]);
        assert!(out.starts_with("re-sealed 2 keys"), "{out}");
        let again = srv.cli(&["encryption", "rotate", "--encryption-key", MASTER_B]);
        assert!(
            again.starts_with("re-sealed 0 keys") && again.contains("2 were already"),
            "{again}"
        );
        srv.extra = vec!["--encryption-key".into(), MASTER_B.into()];
        srv.restart();
        assert_eq!(
            get_key(&srv, &recoverable_id, true).await["plaintext"],
            plain.as_str()
        );
        assert_eq!(
            get_key(&srv, &new_id, true).await["plaintext"],
            new_plain.as_str()
        );

        // A server missing the sealing key says which setting to fix, with a 412.
        said.push_str(&serde_json::to_string(&*srv.logs.lock().unwrap()).unwrap());
        assert_eq!(srv.signal_and_wait("TERM"), Some(0));
        srv.extra = vec!["--encryption-key".into(), MASTER_C.into()];
        srv.restart();
        let (status, body) = srv
            .call("/v2/keys.getKey", json!({"keyId": new_id, "decrypt": true}))
            .await;
        assert_eq!(status, 412, "{body}");
        assert!(
            body["error"]["detail"]
                .as_str()
                .unwrap()
                .contains("KEYWAY_ENCRYPTION_KEYS_OLD")
        );

        // The 412 is logged, by key id. Waited for: the line reaches the test through a
        // reader thread, and reading the logs at once lost that race once.
        let logged = srv
            .log_line("a recoverable key could not be opened")
            .expect("the 412 is logged");
        assert_eq!(logged["fields"]["key_id"], new_id.as_str(), "{logged}");

        // Nothing the server said in any run holds a plaintext or a master key.
        said.push_str(&serde_json::to_string(&*srv.logs.lock().unwrap()).unwrap());
        for secret in [
            plain.as_str(),
            new_plain.as_str(),
            MASTER_A,
            MASTER_B,
            MASTER_C,
        ] {
            assert!(!said.contains(secret), "a secret reached the log");
        }
    }
);

both!(recoverable_keys_need_a_master_key, |srv| {
    let api = srv.create_api().await;
    let (status, body) = srv
        .call(
            "/v2/keys.createKey",
            json!({"apiId": api, "recoverable": true, "externalId": "refused-owner"}),
        )
        .await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("KEYWAY_ENCRYPTION_KEY")
    );
    // A key refused for any reason creates nothing: no key, and not its identity.
    refused_without_owner(
        &srv,
        "/v2/keys.createKey",
        json!({"apiId": api, "externalId": "refused-owner", "roles": ["no-such-role"]}),
    )
    .await;
    let listed = srv.ok("/v2/apis.listKeys", json!({"apiId": api})).await;
    assert_eq!(listed, json!([]));
    // Asking to decrypt keys that are not recoverable is not an error.
    let (key_id, _) = srv.create_key_in(&api, json!({"recoverable": false})).await;
    // The same holds for an update refused for a missing role.
    refused_without_owner(
        &srv,
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "externalId": "refused-owner", "roles": ["no-such-role"]}),
    )
    .await;
    let k = srv
        .ok("/v2/keys.getKey", json!({"keyId": key_id, "decrypt": true}))
        .await;
    assert!(k.get("plaintext").is_none());
});

both!(
    wildcard_overrides_rank_exact_then_pattern_then_default,
    |srv| {
        let set = |identifier: &'static str, limit: u64| {
            srv.ok(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "signup", "identifier": identifier, "limit": limit, "duration": 60000}),
        )
        };
        let domain = set("*@example.com", 3).await["overrideId"]
            .as_str()
            .unwrap()
            .to_string();
        let vip = set("vip@example.com", 5).await["overrideId"]
            .as_str()
            .unwrap()
            .to_string();
        let any = set("*", 4).await["overrideId"]
            .as_str()
            .unwrap()
            .to_string();
        let limit = |identifier: &'static str| {
            srv.ok(
            "/v2/ratelimit.limit",
            json!({"namespace": "signup", "identifier": identifier, "limit": 1, "duration": 60000}),
        )
        };
        // Each identifier gets the limit and override id of the rule that ranks first.
        for (identifier, expected_limit, expected_override) in [
            ("vip@example.com", 5, &vip),
            ("ann@example.com", 3, &domain),
            ("bob@elsewhere.org", 4, &any),
        ] {
            let d = limit(identifier).await;
            assert_eq!(d["limit"], expected_limit, "{identifier}");
            assert_eq!(d["overrideId"], expected_override.as_str(), "{identifier}");
        }
        // The pattern's limit is enforced per identifier, not shared across the pattern.
        for _ in 0..2 {
            assert_eq!(limit("ann@example.com").await["success"], true);
        }
        assert_eq!(limit("ann@example.com").await["success"], false);
        assert_eq!(limit("cat@example.com").await["success"], true);

        // Deleting the exact override hands the identifier to the best pattern at once.
        srv.ok(
            "/v2/ratelimit.deleteOverride",
            json!({"namespace": "signup", "identifier": "vip@example.com"}),
        )
        .await;
        assert_eq!(
            limit("vip@example.com").await["overrideId"],
            domain.as_str()
        );
        // getOverride reads the pattern itself, not what it matches.
        let (status, _) = srv
            .call(
                "/v2/ratelimit.getOverride",
                json!({"namespace": "signup", "identifier": "ann@example.com"}),
            )
            .await;
        assert_eq!(status, 404);
        let g = srv
            .ok(
                "/v2/ratelimit.getOverride",
                json!({"namespace": "signup", "identifier": "*@example.com"}),
            )
            .await;
        assert_eq!(g["limit"], 3);
        // No override at all: the request's own limit.
        srv.ok(
            "/v2/ratelimit.deleteOverride",
            json!({"namespace": "signup", "identifier": "*"}),
        )
        .await;
        let d = limit("bob@elsewhere.org").await;
        assert_eq!(d["limit"], 1);
        assert!(d.get("overrideId").is_none(), "{d}");
    }
);

fn keyway(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(args)
        .output()
        .unwrap()
}

both!(
    keyway_migrate_copies_a_deployment_across_databases,
    &["--encryption-key", MASTER_A],
    |srv| {
        use crate::harness::{Backend, TestDb};
        // A deployment filled through the API: every kind of row the copy must carry.
        let api = srv.create_api().await;
        srv.ok(
            "/v2/permissions.createRole",
            json!({"name": "admin", "permissions": []}),
        )
        .await;
        let mut keys = Vec::new();
        for extra in [
            json!({"credits": {"remaining": 10, "refill": {"interval": "daily", "amount": 10}}}),
            json!({"permissions": ["docs.read"], "roles": ["admin"], "externalId": "acme",
                   "ratelimits": [{"name": "requests", "limit": 100, "duration": 60000, "autoApply": true}]}),
            json!({"recoverable": true, "meta": {"plan": "pro"}, "expires": 4_000_000_000_000_i64}),
            json!({"enabled": false}),
        ] {
            keys.push(srv.create_key_in(&api, extra).await);
        }
        let imported = "uk_ImportedBeforeTheMove";
        srv.ok(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_base64", "apiId": api, "keys": [{"hash": sha256_base64(imported)}]}),
        )
        .await;
        srv.ok(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "mail", "identifier": "*@example.com", "limit": 7, "duration": 60000}),
        )
        .await;
        let operator = srv.root_key_with(&["api.*.read_key"]);
        // Spend credits (written behind) and make events and rollups.
        for _ in 0..3 {
            srv.verify(json!({"key": keys[0].1})).await;
        }
        srv.verify(json!({"key": keys[1].1, "permissions": "docs.read"}))
            .await;
        srv.ok(
            "/v2/ratelimit.limit",
            json!({"namespace": "mail", "identifier": "ann@example.com", "limit": 1, "duration": 60000}),
        )
        .await;
        let before: Vec<Value> = {
            let mut out = Vec::new();
            for (_, plain) in &keys {
                out.push(srv.verify(json!({"key": plain})).await);
            }
            out
        };
        // Stopping flushes the credits and events servers hold in memory.
        assert_eq!(srv.signal_and_wait("TERM"), Some(0));

        let other = match srv.db.url.starts_with("sqlite:") {
            true => Backend::Postgres,
            false => Backend::Sqlite,
        };
        let target = TestDb::new(other).await.unwrap();
        let out = keyway(&["migrate", "--from", &srv.db.url, "--to", &target.url]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("every table matches"), "{said}");
        for table in [
            "keys",
            "encrypted_keys",
            "key_verifications",
            "key_verifications_per_minute",
            "ratelimit_overrides",
            "root_key_permissions",
        ] {
            let line = said
                .lines()
                .find(|l| l.starts_with(&format!("{table} ")))
                .unwrap_or_else(|| panic!("{table} missing from {said}"));
            assert!(line.ends_with(" ok"), "{line}");
            let rows: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(rows > 0, "{line}");
        }

        // A target with rows is refused unless told, and the refusal changes nothing.
        let again = keyway(&["migrate", "--from", &srv.db.url, "--to", &target.url]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
        let forced = keyway(&[
            "migrate",
            "--from",
            &srv.db.url,
            "--to",
            &target.url,
            "--overwrite",
        ]);
        assert!(
            forced.status.success(),
            "{}",
            String::from_utf8_lossy(&forced.stderr)
        );
        let same = keyway(&["migrate", "--from", &target.url, "--to", &target.url]);
        assert!(!same.status.success());

        // Same to same: the copy copies on.
        let third = TestDb::new(other).await.unwrap();
        let chained = keyway(&["migrate", "--from", &target.url, "--to", &third.url]);
        assert!(String::from_utf8_lossy(&chained.stdout).contains("every table matches"));

        // A server on the new database answers every key as before, credits included.
        let moved = srv.on_database(third);
        for ((key_id, plain), was) in keys.iter().zip(&before) {
            let now = moved.verify(json!({"key": plain})).await;
            assert_eq!(now["code"], was["code"], "{key_id}");
            assert_eq!(now["keyId"], key_id.as_str());
            if let Some(credits) = was["credits"].as_u64() {
                assert_eq!(now["credits"].as_u64(), Some(credits - 1), "{key_id}");
            }
        }
        assert_eq!(
            moved.verify(json!({"key": imported})).await["code"],
            "VALID"
        );
        let k = moved
            .ok(
                "/v2/keys.getKey",
                json!({"keyId": keys[2].0, "decrypt": true}),
            )
            .await;
        assert_eq!(k["plaintext"], keys[2].1.as_str());
        let d = moved
            .ok(
                "/v2/ratelimit.limit",
                json!({"namespace": "mail", "identifier": "bob@example.com", "limit": 1, "duration": 60000}),
            )
            .await;
        assert_eq!(d["limit"], 7);
        let (status, _) = moved
            .call_as(
                "/v2/keys.getKey",
                Some(&operator),
                json!({"keyId": keys[3].0}),
            )
            .await;
        assert_eq!(status, 200);
    }
);

// SQLite stores a NUL in text, PostgreSQL refuses one: a deployment whose rows hold one
// (written before the API refused them) once failed to migrate with an encoding error
// that named no table or row. It now names both, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyway_migrate_names_a_row_postgres_cannot_hold() {
    use crate::harness::{Backend, Server, TestDb};
    let mut srv = Server::start_with(Backend::Sqlite, &[]).await;
    let api = srv.create_api().await;
    assert_eq!(srv.signal_and_wait("TERM"), Some(0));
    let db = srv.db.pool().await.unwrap();
    sqlx::query(&format!(
        "UPDATE apis SET name = 'a' || char(0) || 'b' WHERE id = '{api}'"
    ))
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    let target = TestDb::new(Backend::Postgres).await.unwrap();
    let out = keyway(&["migrate", "--from", &srv.db.url, "--to", &target.url]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("table `apis`"), "{said}");
    assert!(said.contains(&format!("(id \"{api}\")")), "{said}");
    assert!(said.contains("column `name` holds a NUL"), "{said}");
    let pool = target.pool().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apis")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "the target is left as it was");
}
