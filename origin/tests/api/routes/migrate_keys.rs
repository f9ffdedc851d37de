//! `keys.migrateKeys`: keys moved in by their hashes verify with their plaintext, and a
//! batch with any bad key is refused whole.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::both;
use crate::harness::sha256_base64;

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

mod status_200 {
    use super::*;

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
}

mod status_400 {
    use super::*;

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
        assert_eq!(
            srv.status(
                "/v2/identities.getIdentity",
                json!({"identity": "half-imported"}),
            )
            .await,
            404
        );

        // Batch size, an empty batch, an unknown field, and a grant the caller lacks.
        let many: Vec<Value> = (0..1001)
            .map(|i| key(sha256_base64(&format!("k{i}"))))
            .collect();
        for keys in [json!(many), json!([])] {
            assert_eq!(
                srv.status(
                    "/v2/keys.migrateKeys",
                    json!({"migrationId": "sha256_base64", "apiId": api, "keys": keys}),
                )
                .await,
                400
            );
        }
        assert_eq!(srv.status("/v2/keys.migrateKeys",
                json!({"migrationId": "sha256_base64", "apiId": api, "keys": [{"hash": sha256_base64(plain), "plaintext": "x"}]}),).await, 400);
        let reader = srv.root_key_with(&["api.*.read_key"]);
        assert_eq!(srv.as_root(&reader).status("/v2/keys.migrateKeys", json!({"migrationId": "sha256_base64", "apiId": api, "keys": [key(sha256_base64(plain))]}),).await, 403);
        // One API's grant does not reach another.
        let other = srv.create_api().await;
        let scoped = srv.root_key_with(&[&format!("api.{api}.create_key")]);
        let (status, body) = srv.as_root(&scoped).call("/v2/keys.migrateKeys", json!({"migrationId": "sha256_base64", "apiId": other, "keys": [key(sha256_base64(plain))]}),
            )
            .await;
        assert!(status == 403 || status == 404, "{status} {body}");
    });
}
