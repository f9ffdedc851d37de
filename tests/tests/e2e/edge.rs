//! End to end: the real origin and the real Worker in workerd, together.
//!
//! One story in order, because starting workerd costs seconds: proxying, bad input, cache
//! tiers, stateful forwarding, revocation, every traffic mode, and finally the origin
//! going down. Each step says what it checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::future::join_all;
use keyway_core::wire;
use keyway_tests::{Client, Edge, Origin, random_hex};
use serde_json::json;

const FRESH_SECONDS: f64 = 2.0;
const STALE_SECONDS: f64 = 60.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_end_to_end() {
    let mut origin = Origin::start(env!("CARGO_BIN_EXE_keyway-tests-origin"), &[]);
    let edge = Edge::start(&origin, FRESH_SECONDS, STALE_SECONDS);
    let e = edge.url.as_str();
    // Every call goes through the edge, as a user's would; the origin only where named.
    let c = Client::new(e, &origin.root_key);

    // Proxying: a non-verify endpoint goes to the origin unchanged.
    let r = c
        .post("/v2/apis.createApi", json!({"name": "via-edge"}))
        .await;
    assert_eq!(
        (r.status, r.served_by.as_deref()),
        (200, Some("origin")),
        "{}",
        r.body
    );
    let api = r.body["data"]["apiId"].as_str().unwrap().to_string();
    let r = c.post("/v2/apis.getApi", json!({"apiId": api})).await;
    assert_eq!(r.body["data"]["name"], "via-edge");
    let r = c
        .post("/v2/keys.getKey", json!({"keyId": "key_missing"}))
        .await;
    assert_eq!(
        (r.status, r.served_by.as_deref()),
        (404, Some("origin")),
        "status codes are relayed"
    );

    // Bad input: the same 400s as the origin, in the envelope, decided at the edge.
    let r = c.post_raw("/v2/keys.verifyKey", "{\"key\":").await;
    assert_eq!((r.status, r.served_by.as_deref()), (400, Some("edge")));
    assert_eq!(r.body["error"]["status"], 400);
    // An error's content type follows the caller's Accept, as at the origin. The edge reads
    // Accept only when it answers with an error, so this checks that late read.
    for (accept, want) in [
        ("application/problem+json", "application/problem+json"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
    ] {
        let resp = reqwest::Client::new()
            .post(format!("{e}/v2/keys.verifyKey"))
            .bearer_auth(&origin.root_key)
            .header("accept", accept)
            .body("{\"key\":")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], want, "Accept: {accept}");
    }
    let r = c
        .verify_reply(json!({"key": "k", "permissions": "a AND"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["errors"][0]["location"], "body.permissions");
    let r = c.verify_reply(json!({"key": "k", "nope": 1})).await;
    assert_eq!(r.status, 400);
    let r = c
        .post_raw(
            "/v2/keys.verifyKey",
            format!("{{\"key\":\"{}\"}}", "a".repeat(2 << 20)),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let anonymous = c.as_root("root_unknown");
    let r = anonymous.verify_reply(json!({"key": "k"})).await;
    assert_eq!((r.status, r.served_by.as_deref()), (401, Some("edge")));
    // The edge's request ids have the origin's shape, so one log search finds both.
    let id = r.body["meta"]["requestId"].as_str().unwrap_or_default();
    let hex = id.strip_prefix("req_").unwrap_or_default();
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let again = anonymous.verify_reply(json!({"key": "k"})).await;
    assert_ne!(
        again.body["meta"]["requestId"].as_str(),
        Some(id),
        "ids repeat"
    );

    // Only the public API is proxied: never the internal endpoints, and /metrics only when
    // the operator asks for it.
    let r = c.post("/internal/v1/snapshot", json!({})).await;
    assert_eq!((r.status, r.served_by.as_deref()), (404, Some("edge")));
    assert_eq!(c.get("/metrics", "").await.status, 404);
    assert_eq!(c.get("/v2/../metrics", "").await.status, 404);

    // Unauthenticated callers cost one origin lookup (their root key), never the key's.
    let before = snapshot_calls(&c, &origin).await;
    let r = c
        .as_root(&format!("root_{}", random_hex()))
        .verify_reply(json!({"key": format!("sk_{}", random_hex())}))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(snapshot_calls(&c, &origin).await - before, 1.0);
    // Junk bearers are remembered apart from the verification snapshots, so a flood of
    // them cannot push hot keys out of the isolate; one that cannot be a root key at all
    // is a 400 before any lookup.
    let stats = c.get("/_keyway/stats", &origin.secret).await.body;
    let (snapshots, unknown) = (&stats["cachedSnapshots"], &stats["cachedUnknownRootKeys"]);
    let (snapshots, unknown) = (snapshots.as_u64().unwrap(), unknown.as_u64().unwrap());
    for _ in 0..5 {
        let junk = c.as_root(&format!("root_{}", random_hex()));
        assert_eq!(junk.verify_reply(json!({"key": "k"})).await.status, 401);
    }
    let stats = c.get("/_keyway/stats", &origin.secret).await.body;
    assert_eq!(
        stats["cachedSnapshots"].as_u64(),
        Some(snapshots),
        "{stats}"
    );
    assert!(
        stats["cachedUnknownRootKeys"].as_u64() >= Some(unknown + 5),
        "{stats}"
    );
    let before = snapshot_calls(&c, &origin).await;
    for malformed in ["k".repeat(300), "r\u{f6}\u{f6}t".to_string()] {
        let r = c
            .as_root(&malformed)
            .verify_reply(json!({"key": "k"}))
            .await;
        assert_eq!((r.status, r.served_by.as_deref()), (400, Some("edge")));
    }
    assert_eq!(
        snapshot_calls(&c, &origin).await,
        before,
        "no lookup for them"
    );

    // Miss, then hit: the first verification loads the snapshot, the next one is cached.
    let (_, plain) = c
        .create_key_in(&api, json!({"permissions": ["docs.read"]}))
        .await;
    // The edge has seen neither this root key nor this key: one origin call brings both.
    let (before, pairs) = (
        snapshot_calls(&c, &origin).await,
        calls(&c, &origin, wire::PAIR_PATH).await,
    );
    let r = c
        .verify_reply(json!({"key": plain, "permissions": "docs.read"}))
        .await;
    assert_eq!(r.served_from(), (Some("edge"), Some("miss")));
    assert_eq!(snapshot_calls(&c, &origin).await - before, 1.0);
    assert_eq!(calls(&c, &origin, wire::PAIR_PATH).await - pairs, 1.0);
    assert_eq!(r.body["data"]["code"], "VALID");
    let r = c
        .verify_reply(json!({"key": plain, "permissions": "docs.read"}))
        .await;
    assert_eq!(r.served_from(), (Some("edge"), Some("hit")));
    let r = c
        .verify_reply(json!({"key": plain, "permissions": "docs.write"}))
        .await;
    assert_eq!(r.body["data"]["code"], "INSUFFICIENT_PERMISSIONS");
    // Unknown keys are cached as not found too.
    let r = c.verify_reply(json!({"key": "sk_nothing"})).await;
    assert_eq!(
        (r.body["data"]["code"].as_str(), r.cache.as_deref()),
        (Some("NOT_FOUND"), Some("miss"))
    );
    let r = c.verify_reply(json!({"key": "sk_nothing"})).await;
    assert_eq!(r.cache.as_deref(), Some("hit"));

    // Stale: after the fresh time, the cached answer comes back at once and refreshes.
    tokio::time::sleep(Duration::from_secs_f64(FRESH_SECONDS + 0.3)).await;
    let r = c.verify_reply(json!({"key": plain})).await;
    assert_eq!(
        (r.body["data"]["code"].as_str(), r.cache.as_deref()),
        (Some("VALID"), Some("stale"))
    );
    let mut renewed = None;
    for _ in 0..30 {
        let r = c.verify_reply(json!({"key": plain})).await;
        if r.cache.as_deref() == Some("hit") {
            renewed = r.cache;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        renewed.as_deref(),
        Some("hit"),
        "the background refresh renewed it"
    );

    // Stateful: a key with credits is forwarded, and its credits are exact.
    let (_, metered) = c
        .create_key_in(&api, json!({"credits": {"remaining": 20}}))
        .await;
    let replies = join_all((0..40).map(|_| c.verify_reply(json!({"key": metered})))).await;
    assert!(
        replies
            .iter()
            .all(|r| r.served_by.as_deref() == Some("origin"))
    );
    let valid = replies
        .iter()
        .filter(|r| r.body["data"]["code"] == "VALID")
        .count();
    let exceeded = replies
        .iter()
        .filter(|r| r.body["data"]["code"] == "USAGE_EXCEEDED")
        .count();
    assert_eq!((valid, exceeded), (20, 20));
    let (_, limited) = c
        .create_key_in(&api, json!({"ratelimits": [{"name": "rps", "limit": 3, "duration": 60000, "autoApply": true}]}))
        .await;
    let replies = join_all((0..10).map(|_| c.verify_reply(json!({"key": limited})))).await;
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["data"]["code"] == "VALID")
            .count(),
        3
    );

    // A forwarded answer keeps the origin's status, body and content type: the origin
    // picks an error's type from the caller's Accept, q-values included. The edge still
    // holds the key's named limit for its fresh time after the origin dropped it, so it
    // forwards, and the origin answers 412.
    let (named_id, named) = c
        .create_key_in(
            &api,
            json!({"ratelimits": [{"name": "tokens", "limit": 5, "duration": 60000}]}),
        )
        .await;
    let named_verify = json!({"key": named, "ratelimits": [{"name": "tokens"}]});
    let r = c.verify_reply(named_verify.clone()).await;
    assert_eq!(
        (r.status, r.served_by.as_deref()),
        (200, Some("origin")),
        "{}",
        r.body
    );
    let r = c
        .post(
            "/v2/keys.updateKey",
            json!({"keyId": named_id, "ratelimits": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let resp = reqwest::Client::new()
        .post(format!("{e}/v2/keys.verifyKey"))
        .bearer_auth(&origin.root_key)
        .header("accept", "application/problem+json;q=0, application/json")
        .json(&named_verify)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    assert_eq!(resp.headers()["x-keyway-served-by"], "origin");
    assert_eq!(resp.headers()["content-type"], "application/json");

    // Revocation: the edge stops verifying a disabled key within the fresh time (plus the
    // one stale answer that triggers the refresh).
    let (rev_id, revoked) = c.create_key_in(&api, json!({})).await;
    assert_eq!(
        c.verify_reply(json!({"key": revoked})).await.body["data"]["code"],
        "VALID"
    );
    let r = c
        .post(
            "/v2/keys.updateKey",
            json!({"keyId": rev_id, "enabled": false}),
        )
        .await;
    assert_eq!(r.status, 200);
    // Under concurrent load: stale refreshes race, and an answer that left before the
    // change must not overwrite one that left after it.
    let revoked_at = Instant::now();
    let pollers = (0..8).map(|_| async {
        let mut answers = Vec::new();
        loop {
            let r = c.verify_reply(json!({"key": revoked})).await;
            let code = r.body["data"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: {}", r.status, r.body))
                .to_string();
            answers.push((revoked_at.elapsed(), code.clone(), r.cache.clone()));
            if code == "DISABLED"
                && revoked_at.elapsed() > Duration::from_secs_f64(FRESH_SECONDS + 2.0)
            {
                return answers;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "still valid after 10 s: {answers:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    for answers in join_all(pollers).await {
        let last_valid = answers
            .iter()
            .rev()
            .find(|(_, c, _)| c == "VALID")
            .map(|(t, _, _)| *t)
            .unwrap_or_default();
        assert!(
            last_valid <= Duration::from_secs_f64(FRESH_SECONDS + 1.5),
            "a disabled key verified {last_valid:?} after revocation: {answers:?}"
        );
    }

    // Traffic modes through KV.
    edge.set_route("origin");
    wait_for_route(&c, &plain, "origin").await;
    let r = c.verify_reply(json!({"key": plain})).await;
    assert_eq!(
        (r.served_by.as_deref(), r.body["data"]["code"].as_str()),
        (Some("origin"), Some("VALID"))
    );
    assert!(
        r.cache.is_none(),
        "no cache header on verifications the edge did not decide"
    );

    edge.set_route("split:50");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut keys = Vec::new();
    for _ in 0..16 {
        keys.push(c.create_key_in(&api, json!({})).await.1);
    }
    let mut by = std::collections::HashMap::new();
    for k in &keys {
        let first = c.verify_reply(json!({"key": k})).await.served_by.unwrap();
        let again = c.verify_reply(json!({"key": k})).await.served_by.unwrap();
        assert_eq!(first, again, "a split is sticky per key");
        *by.entry(first).or_insert(0) += 1;
    }
    assert!(
        by.get("edge").copied().unwrap_or(0) > 0 && by.get("origin").copied().unwrap_or(0) > 0,
        "{by:?}"
    );

    edge.set_route("shadow");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (shadow_id, shadowed) = c.create_key_in(&api, json!({})).await;
    let r = c.verify_reply(json!({"key": shadowed})).await;
    assert_eq!(
        (r.served_by.as_deref(), r.body["data"]["code"].as_str()),
        (Some("origin"), Some("VALID"))
    );
    // Disable behind the edge's cache: the origin now says DISABLED, the edge's cached
    // snapshot still says VALID, and shadow mode must notice.
    c.post(
        "/v2/keys.updateKey",
        json!({"keyId": shadow_id, "enabled": false}),
    )
    .await;
    let r = c.verify_reply(json!({"key": shadowed})).await;
    assert_eq!(r.body["data"]["code"], "DISABLED");
    let mut mismatches = 0;
    for _ in 0..20 {
        let stats = c.get("/_keyway/stats", &origin.secret).await;
        assert_eq!(stats.status, 200, "{}", stats.body);
        mismatches = stats.body["shadowMismatches"].as_u64().unwrap();
        if mismatches > 0 {
            assert!(stats.body["shadowCompared"].as_u64().unwrap() >= 2);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        mismatches, 1,
        "the shadow comparison found the disagreement"
    );
    // Cache API faults are counted, not silent.
    let stats = c.get("/_keyway/stats", &origin.secret).await;
    for counter in [
        "cacheReadFailures",
        "cacheCorruptEntries",
        "cacheWriteFailures",
    ] {
        assert!(stats.body[counter].is_u64(), "{counter}: {}", stats.body);
    }
    let stats = c.get("/_keyway/stats", "wrong").await;
    assert_eq!(stats.status, 401);

    edge.set_route("edge");
    wait_for_route(&c, &plain, "edge").await;

    // Edge analytics reach the origin.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    c.verify_reply(json!({"key": plain})).await;
    let mut sent = 0;
    for _ in 0..30 {
        let stats = c.get("/_keyway/stats", &origin.secret).await;
        sent = stats.body["eventsSent"].as_u64().unwrap();
        if sent > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent > 0, "edge events were shipped to the origin");

    // The origin goes down: cached keys still verify while the root key is fresh; then
    // authentication fails closed, stateful keys and proxied calls get a 503 in the
    // envelope, and nothing hangs.
    let r = c.verify_reply(json!({"key": plain})).await;
    assert_eq!(r.body["data"]["code"], "VALID");
    origin.stop();
    let started = Instant::now();
    let r = c.verify_reply(json!({"key": plain})).await;
    assert_eq!(
        (
            r.status,
            r.body["data"]["code"].as_str(),
            r.served_by.as_deref()
        ),
        (200, Some("VALID"), Some("edge"))
    );
    tokio::time::sleep(Duration::from_secs_f64(FRESH_SECONDS + 0.3)).await;
    // Past its fresh time the root key cannot be read again: authentication fails closed,
    // a 503 in the envelope, never a pass on the stale copy, however often it is asked.
    for _ in 0..3 {
        let r = c.verify_reply(json!({"key": plain})).await;
        assert_eq!(
            (r.status, r.body["error"]["status"].as_u64()),
            (503, Some(503)),
            "{}",
            r.body
        );
    }
    let r = c.verify_reply(json!({"key": metered})).await;
    assert_eq!(
        (r.status, r.body["error"]["status"].as_u64()),
        (503, Some(503)),
        "{}",
        r.body
    );
    let r = c.post("/v2/apis.getApi", json!({"apiId": api})).await;
    assert_eq!(r.status, 503);
    let r = c.verify_reply(json!({"key": "sk_never_seen"})).await;
    assert_eq!(r.status, 503, "an unknown key needs the origin");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "origin calls time out"
    );
}

/// How many snapshot lookups the origin has answered for the edge: single and paired.
async fn snapshot_calls(c: &Client, origin: &Origin) -> f64 {
    calls(c, origin, wire::SNAPSHOT_PATH).await + calls(c, origin, wire::PAIR_PATH).await
}

/// How many requests the origin has answered on one route.
async fn calls(c: &Client, origin: &Origin, route: &str) -> f64 {
    let text = c.at(&origin.url).get("/metrics", "").await.body;
    text.as_str()
        .unwrap_or_default()
        .lines()
        .find(|l| {
            l.starts_with("keyway_request_duration_seconds_count")
                && l.contains(&format!("\"{route}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls until the switch has taken effect (the isolate caches the mode for 2 s).
async fn wait_for_route(c: &Client, key: &str, served_by: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let r = c.verify_reply(json!({"key": key})).await;
        if r.served_by.as_deref() == Some(served_by) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("route did not switch to {served_by} within 10 s");
}
