//! The rate-limit routes: limit, multiLimit and overrides.

use serde_json::json;

use crate::both;
use crate::harness::now_ms;

mod status_200 {
    use super::*;

    both!(ratelimit_routes, |srv| {
        let body =
            json!({"namespace": "email", "identifier": "user_1", "limit": 2, "duration": 60000});
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
            .as_root(&scoped)
            .call("/v2/ratelimit.limit", a.clone())
            .await;
        assert_eq!((s, &v["data"]["success"]), (200, &json!(true)), "{v}");
        let (_, v) = srv.as_root(&scoped).call("/v2/ratelimit.limit", a).await;
        assert_eq!(v["data"]["success"], false);
        let (s, _) = srv
            .as_root(&scoped)
            .call("/v2/ratelimit.limit", ab.clone())
            .await;
        assert_eq!(s, 403);
        assert_eq!(srv.ok("/v2/ratelimit.limit", ab).await["success"], true);
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
            assert_eq!(
                srv.status(
                    "/v2/ratelimit.getOverride",
                    json!({"namespace": "signup", "identifier": "ann@example.com"}),
                )
                .await,
                404
            );
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
}
