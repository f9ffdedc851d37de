//! The bounds the README states, measured and printed beside the formula, then checked
//! against it: how long after a revocation a revoked key or root key still passes, at the
//! edge and on a second origin node without Redis (in cluster mode every node drops it at
//! once: `cluster::changes_reach_every_node_at_once`), and how long a request waits on an
//! origin that does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use keyway_tests::{Client, Edge, Origin, Reply};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_keyway-tests-origin");
const FRESH_SECONDS: f64 = 2.0;
const STALE_SECONDS: f64 = 60.0;

/// What still passing after a revocation means.
enum Probe<'a> {
    /// The key verifies as VALID.
    Key(&'a Client, &'a str),
    /// The client's root key is accepted to verify (any key).
    RootKey(&'a Client),
}

impl Probe<'_> {
    async fn passes(&self) -> (Reply, bool) {
        match self {
            Probe::Key(c, key) => {
                let r = c.verify_reply(json!({"key": key})).await;
                let passed = r.body["data"]["code"] == "VALID";
                (r, passed)
            }
            Probe::RootKey(c) => {
                let r = c.verify_reply(json!({"key": "sk_anything"})).await;
                let passed = r.status == 200;
                (r, passed)
            }
        }
    }
}

/// Polls `probe` from the revocation until it has been refused for a while, prints how
/// long after the revocation it last passed beside the README's `bound`, and checks
/// that against `limit_seconds`.
async fn refused_within(what: &str, bound: &str, limit_seconds: f64, probe: Probe<'_>) {
    let revoked_at = Instant::now();
    let mut last = Duration::ZERO;
    let mut refused_since = None;
    while revoked_at.elapsed() < Duration::from_secs(30) {
        let (r, passed) = probe.passes().await;
        if passed {
            last = revoked_at.elapsed();
            refused_since = None;
        } else {
            let since = *refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        assert!(r.status < 500, "{}: {}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{what}: last passed {:.2} s after the revocation; the README's bound: {bound}",
        last.as_secs_f64()
    );
    assert!(
        last <= Duration::from_secs_f64(limit_seconds),
        "{what}: passed {last:?} after the revocation"
    );
}

/// The id `keyway root-keys list` gives the root key `plain`.
fn root_key_id(origin: &Origin, plain: &str) -> String {
    let listed: serde_json::Value =
        serde_json::from_str(&origin.cli(&["root-keys", "list", "--json"])).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| plain.starts_with(k["start"].as_str().unwrap_or("-")))
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string()
}

/// A root key revoked with the CLI, which writes the database behind the running origin's
/// back, is refused at the edge within the edge's fresh time (then, a key disabled through
/// the API within the fresh time plus one stale answer), even when the origin's own
/// cache would keep it far longer: the origin hands the edge no copy older than half
/// the edge's fresh time, and the edge counts from when the origin read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_the_edge_within_its_fresh_time() {
    const ORIGIN_FRESH: &str = "60";
    let origin = Origin::start(BIN, &["--cache-fresh-seconds", ORIGIN_FRESH]);
    let edge = Edge::start(&origin, FRESH_SECONDS, STALE_SECONDS);
    let operator = origin.cli(&["root-keys", "create", "--permission", "api.*.verify_key"]);
    let operator = operator.trim().to_string();
    let c = Client::new(&edge.url, &operator);
    let verify = || c.verify_reply(json!({"key": "sk_anything"}));
    assert_eq!(verify().await.status, 200);
    // Used through the origin too, so the origin's cache holds it for its 60 s.
    let direct = c.at(&origin.url);
    assert_eq!(
        direct.verify_reply(json!({"key": "sk_x"})).await.status,
        200
    );
    let id = root_key_id(&origin, &operator);
    // Keep it fresh at the edge right up to the revocation.
    tokio::time::sleep(Duration::from_secs_f64(FRESH_SECONDS * 0.75)).await;
    assert_eq!(verify().await.status, 200);
    origin.cli(&["root-keys", "revoke", &id]);
    refused_within(
        "a root key revoked with the CLI, at the edge",
        &format!(
            "KEYWAY_FRESH_SECONDS = {FRESH_SECONDS} s (origin --cache-fresh-seconds {ORIGIN_FRESH})"
        ),
        FRESH_SECONDS + 0.5,
        Probe::RootKey(&c),
    )
    .await;
    assert_eq!(verify().await.status, 401);

    // A key disabled through the API, at the edge: the origin forgets it at once, and the
    // edge follows within its fresh time plus the one stale answer that starts the
    // refresh.
    let admin = Client::new(&edge.url, &origin.root_key);
    let (_, key_id, key) = admin.create_key(json!({})).await;
    assert_eq!(admin.verify(json!({"key": key})).await["code"], "VALID");
    tokio::time::sleep(Duration::from_secs_f64(FRESH_SECONDS * 0.75)).await;
    assert_eq!(admin.verify(json!({"key": key})).await["code"], "VALID");
    // Written at the origin, not through the edge, so nothing at the edge hears of it.
    admin
        .at(&origin.url)
        .ok(
            "/v2/keys.updateKey",
            json!({"keyId": key_id, "enabled": false}),
        )
        .await;
    refused_within(
        "a key disabled through the API, at the edge",
        &format!("KEYWAY_FRESH_SECONDS = {FRESH_SECONDS} s, plus the one stale answer that starts the refresh"),
        FRESH_SECONDS + 1.0,
        Probe::Key(&admin, &key),
    )
    .await;
}

/// Two origins on one database and no Redis: a key disabled through one, and a root key
/// revoked with the CLI, stop passing on the other within its `--cache-fresh-seconds`
/// (plus the one stale answer that starts the reload, for the key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_origin_without_redis_follows_within_its_fresh_time() {
    const NODE_FRESH: f64 = 2.0;
    let args = ["--cache-fresh-seconds", "2"];
    let first = Origin::start(BIN, &args);
    let second = Origin::start_on(BIN, &first.db, &first.root_key, &args);
    let c = Client::new(&first.url, &first.root_key);
    let (_, key_id, key) = c.create_key(json!({})).await;
    let other = c.at(&second.url);
    assert_eq!(other.verify(json!({"key": key})).await["code"], "VALID");
    c.ok(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": false}),
    )
    .await;
    refused_within(
        "a key disabled through the API, on a second node without Redis",
        "--cache-fresh-seconds = 2 s, plus the one stale answer that starts the reload",
        NODE_FRESH + 1.0,
        Probe::Key(&other, &key),
    )
    .await;

    let operator = first.cli(&["root-keys", "create", "--permission", "api.*.verify_key"]);
    let operator = operator.trim().to_string();
    let as_operator = other.as_root(&operator);
    assert_eq!(
        as_operator.verify_reply(json!({"key": "k"})).await.status,
        200
    );
    first.cli(&["root-keys", "revoke", &root_key_id(&first, &operator)]);
    refused_within(
        "a root key revoked with the CLI, on a running node without Redis",
        "--cache-fresh-seconds = 2 s",
        NODE_FRESH + 0.5,
        Probe::RootKey(&as_operator),
    )
    .await;
}

/// An origin that accepts connections and never answers (frozen with SIGSTOP): a request
/// at the edge that needs it gets its 503 within `KEYWAY_ORIGIN_TIMEOUT_MS` (2,000 ms
/// here), once, however many origin calls it would have made. It used to wait for the
/// stale root key's reload to time out, answer from the stale copy, then wait again for
/// the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswering_origin_costs_a_request_one_timeout() {
    const TIMEOUT_MS: u64 = 2_000; // what Edge::start sets
    let origin = Origin::start(BIN, &[]);
    let edge = Edge::start(&origin, FRESH_SECONDS, STALE_SECONDS);
    let c = Client::new(&edge.url, &origin.root_key);
    assert_eq!(c.verify_reply(json!({"key": "sk_warm"})).await.status, 200);
    origin.signal("STOP");
    tokio::time::sleep(Duration::from_secs_f64(FRESH_SECONDS + 0.3)).await;
    let started = Instant::now();
    let r = c.verify_reply(json!({"key": "sk_never_seen"})).await;
    let waited = started.elapsed();
    origin.signal("CONT");
    println!(
        "an unanswering origin: 503 after {:.2} s; the README's bound: KEYWAY_ORIGIN_TIMEOUT_MS = {TIMEOUT_MS} ms",
        waited.as_secs_f64()
    );
    assert_eq!(
        (r.status, r.body["error"]["status"].as_u64()),
        (503, Some(503)),
        "{}",
        r.body
    );
    assert!(
        waited < Duration::from_millis(TIMEOUT_MS + 800),
        "waited {waited:?} for the 503"
    );
}
