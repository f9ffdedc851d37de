//! The `keyway` commands beside `serve`: root keys and `migrate`, against the same
//! databases the server uses.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both;
use crate::harness::{MASTER_A, sha256_base64};

fn keyway(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(args)
        .output()
        .unwrap()
}

mod root_keys {
    use super::*;

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
                srv.as_root(&narrow)
                    .status("/v2/apis.getApi", get.clone())
                    .await,
                200
            );
            srv.cli(&["root-keys", "revoke", &id]);
            let revoked = Instant::now();
            loop {
                let (s, _) = srv
                    .as_root(&narrow)
                    .call("/v2/apis.getApi", get.clone())
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
                srv.as_root(&old)
                    .status("/v2/apis.getApi", get.clone())
                    .await,
                401
            );
            assert_eq!(srv.status("/v2/apis.getApi", get).await, 200);
        }
    );

    both!(root_key_bootstrap_is_idempotent, |srv| {
        srv.create_api().await;
        assert_eq!(srv.signal_and_wait("TERM"), Some(0));
        srv.restart();
        let db = srv.db.pool().await.unwrap();
        let roots: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM keys WHERE for_workspace_id IS NOT NULL")
                .fetch_one(&db)
                .await
                .unwrap();
        let workspaces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces")
            .fetch_one(&db)
            .await
            .unwrap();
        let plain: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keys WHERE hash = $1")
            .bind(&srv.root_key)
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;
        assert_eq!(
            (roots, workspaces, plain),
            (1, 1, 0),
            "one root key, one workspace, no plaintext stored"
        );
        srv.create_api().await;
    });
}

mod migrate {
    use super::*;

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
            assert_eq!(
                moved
                    .status_as(
                        "/v2/keys.getKey",
                        Some(&operator),
                        json!({"keyId": keys[3].0}),
                    )
                    .await,
                200
            );
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
}
