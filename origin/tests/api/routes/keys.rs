//! The key routes: create, get, update, delete, credits, reroll and recoverable keys.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{MASTER_A, MASTER_B, MASTER_C};

/// A write naming a missing role is a 404 and leaves no trace of the owner it named
/// (`refused-owner`): the identity is created only inside the write's transaction.
async fn refused_without_owner(srv: &crate::harness::Server, route: &str, body: Value) {
    let (status, body) = srv.call(route, body).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        srv.status(
            "/v2/identities.getIdentity",
            json!({"identity": "refused-owner"}),
        )
        .await,
        404,
        "{route} left its owner behind"
    );
}

async fn get_key(srv: &crate::harness::Server, key_id: &str, decrypt: bool) -> Value {
    srv.ok(
        "/v2/keys.getKey",
        json!({"keyId": key_id, "decrypt": decrypt}),
    )
    .await
}

mod status_200 {
    use super::*;

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
        assert_eq!(
            srv.status("/v2/keys.getKey", json!({"keyId": key_id}))
                .await,
            404
        );
    });

    both!(
        recoverable_keys_decrypt_rotate_and_never_leak,
        &["--encryption-key", MASTER_A],
        |srv| {
            let api = srv.create_api().await;
            let (recoverable_id, plain) =
                srv.create_key_in(&api, json!({"recoverable": true})).await;
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
            assert_eq!(
                srv.as_root(&reader)
                    .status(
                        "/v2/keys.getKey",
                        json!({"keyId": recoverable_id, "decrypt": true}),
                    )
                    .await,
                403
            );
            assert_eq!(
                srv.as_root(&reader)
                    .status("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true}))
                    .await,
                403
            );
            let decrypter =
                srv.root_key_with(&["api.*.read_key", &format!("api.{api}.decrypt_key")]);
            let (status, body) = srv
                .as_root(&decrypter)
                .call(
                    "/v2/keys.getKey",
                    json!({"keyId": recoverable_id, "decrypt": true}),
                )
                .await;
            assert_eq!((status, &body["data"]["plaintext"]), (200, &json!(plain)));
            // Storing keys encrypted takes encrypt_key.
            let creator = srv.root_key_with(&["api.*.create_key"]);
            assert_eq!(
                srv.as_root(&creator)
                    .status(
                        "/v2/keys.createKey",
                        json!({"apiId": api, "recoverable": true}),
                    )
                    .await,
                403
            );

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
}

mod status_400 {
    use super::*;

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
}
