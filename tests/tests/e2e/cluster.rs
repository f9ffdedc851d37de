//! Three origins on one fresh PostgreSQL database and one Redis, as `deploy/compose.yaml`
//! runs them, with requests spread round robin.
//!
//! Each test makes its own database and starts its own `redis-server` on a free port, so
//! the tests can stop Redis or kill a node without disturbing each other. They need the
//! machine's PostgreSQL on 127.0.0.1:5432 (user `postgres`, no password) and
//! `redis-server` on the PATH (Debian's package).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyway_testkit::process::run_to_end;
use keyway_testkit::{Backend, Redis, TestDb};
use keyway_tests::{Client, Origin, random_hex};
use serde_json::{Value, json};

const KEYWAY: &str = env!("CARGO_BIN_EXE_keyway-tests-origin");

struct Cluster {
    nodes: Vec<Origin>,
    c: Client,
    redis: Redis,
    db: TestDb,
    prefix: String,
    next: AtomicUsize,
}

impl Cluster {
    /// Three origins started at the same moment on an empty database: the migrations and
    /// the bootstrap must cope with each other.
    async fn start(extra: &[&str]) -> Cluster {
        let db = TestDb::new(Backend::Postgres)
            .await
            .expect("a PostgreSQL database");
        let redis = Redis::start().expect("redis-server (Debian's redis-server package)");
        let root = format!("root_{}", random_hex());
        let prefix = format!("keyway-test-{}:", random_hex());
        let mut args: Vec<String> = vec![
            "--redis".into(),
            redis.url(),
            "--redis-prefix".into(),
            prefix.clone(),
            "--credit-flush-ms".into(),
            "200".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let starts: Vec<_> = (0..3)
            .map(|_| {
                let (url, root, args) = (db.url.clone(), root.clone(), args.clone());
                std::thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    Origin::start_on(KEYWAY, &url, &root, &args)
                })
            })
            .collect();
        let nodes: Vec<Origin> = starts
            .into_iter()
            .map(|h| h.join().expect("every node starts"))
            .collect();
        Cluster {
            c: Client::new(&nodes[0].url, &root),
            nodes,
            redis,
            db,
            prefix,
            next: AtomicUsize::new(0),
        }
    }

    /// The next node, round robin.
    fn any(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.nodes[i % self.nodes.len()].url
    }

    async fn verify(&self, node: &str, body: Value) -> Value {
        let r = self.c.at(node).verify_reply(body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"].clone()
    }

    /// `keyway root-keys …` against the cluster's database and Redis, as an operator runs it.
    fn cli(&self, args: &[&str]) -> String {
        let out = run_to_end(
            Command::new(KEYWAY)
                .args(args)
                .env("KEYWAY_DATABASE_URL", &self.db.url)
                .env("KEYWAY_REDIS_URL", self.redis.url())
                .env("KEYWAY_REDIS_PREFIX", &self.prefix),
            &format!("keyway {args:?}"),
        )
        .unwrap();
        out.trim().to_string()
    }

    async fn ok(&self, node: &str, path: &str, body: Value) -> Value {
        let r = self.c.at(node).post(path, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.body["data"].clone()
    }
}

/// Sends `n` verifications spread over the nodes, 16 at a time, and counts the codes.
async fn hammer(
    cl: &Arc<Cluster>,
    n: usize,
    body: Value,
) -> std::collections::HashMap<String, usize> {
    let mut tasks = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    for _ in 0..n {
        let (cl, body, sem) = (Arc::clone(cl), body.clone(), Arc::clone(&sem));
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            let node = cl.any().to_string();
            cl.verify(&node, body).await["code"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        });
    }
    let mut codes = std::collections::HashMap::new();
    while let Some(code) = tasks.join_next().await {
        *codes.entry(code.expect("task")).or_insert(0) += 1;
    }
    codes
}

fn count(codes: &std::collections::HashMap<String, usize>, code: &str) -> usize {
    codes.get(code).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_exact_across_nodes() {
    let cl = Arc::new(Cluster::start(&[]).await);
    let n0 = cl.nodes[0].url.clone();
    let api = cl.c.at(&n0).create_api().await;

    // Credits: 120 of them, 200 verifications over three nodes.
    let (metered_id, metered) =
        cl.c.at(&n0)
            .create_key_in(&api, json!({"credits": {"remaining": 120}}))
            .await;
    let codes = hammer(&cl, 200, json!({"key": metered})).await;
    assert_eq!(count(&codes, "VALID"), 120, "{codes:?}");
    assert_eq!(count(&codes, "USAGE_EXCEEDED"), 80, "{codes:?}");

    // A key's own limit: 60 a minute.
    let (_, limited) = cl
        .c
        .at(&n0).create_key_in(&api,
            json!({"ratelimits": [{"name": "rpm", "limit": 60, "duration": 60000, "autoApply": true}]}),
        )
        .await;
    let codes = hammer(&cl, 150, json!({"key": limited})).await;
    assert_eq!(count(&codes, "VALID"), 60, "{codes:?}");

    // An identity's limit, shared by two of its keys.
    cl.ok(
        &n0,
        "/v2/identities.createIdentity",
        json!({"externalId": "acme", "ratelimits": [{"name": "org", "limit": 40, "duration": 60000, "autoApply": true}]}),
    )
    .await;
    let (_, id_a) =
        cl.c.at(&n0)
            .create_key_in(&api, json!({"externalId": "acme"}))
            .await;
    let (_, id_b) =
        cl.c.at(&n0)
            .create_key_in(&api, json!({"externalId": "acme"}))
            .await;
    let a = hammer(&cl, 50, json!({"key": id_a})).await;
    let b = hammer(&cl, 50, json!({"key": id_b})).await;
    assert_eq!(count(&a, "VALID") + count(&b, "VALID"), 40, "{a:?} {b:?}");

    // ratelimit.limit in a namespace.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..120 {
        let cl = Arc::clone(&cl);
        tasks.spawn(async move {
            let node = cl.any().to_string();
            cl.ok(
                &node,
                "/v2/ratelimit.limit",
                json!({"namespace": "emails", "identifier": "user_1", "limit": 50, "duration": 60000}),
            )
            .await["success"]
                .as_bool()
                .unwrap_or(false)
        });
    }
    let mut passed = 0;
    while let Some(ok) = tasks.join_next().await {
        passed += usize::from(ok.expect("task"));
    }
    assert_eq!(passed, 50);

    // Limits and credits together: 10 credits under a limit of 20. Out of credits counts
    // against no limit, so after a top-up on another node exactly 10 more pass the limit.
    let (both_id, both) = cl
        .c
        .at(&n0).create_key_in(&api,
            json!({"credits": {"remaining": 10},
                   "ratelimits": [{"name": "rpm", "limit": 20, "duration": 60000, "autoApply": true}]}),
        )
        .await;
    let codes = hammer(&cl, 30, json!({"key": both})).await;
    assert_eq!(count(&codes, "VALID"), 10, "{codes:?}");
    assert_eq!(count(&codes, "USAGE_EXCEEDED"), 20, "{codes:?}");
    let n1 = cl.nodes[1].url.clone();
    let set = cl
        .ok(
            &n1,
            "/v2/keys.updateCredits",
            json!({"keyId": both_id, "operation": "set", "value": 100}),
        )
        .await;
    assert_eq!(set["remaining"], 100);
    let codes = hammer(&cl, 30, json!({"key": both})).await;
    assert_eq!(count(&codes, "VALID"), 10, "{codes:?}");
    assert_eq!(count(&codes, "RATE_LIMITED"), 20, "{codes:?}");

    // updateCredits on one node is what every node spends from and shows.
    cl.ok(
        &n1,
        "/v2/keys.updateCredits",
        json!({"keyId": metered_id, "operation": "increment", "value": 5}),
    )
    .await;
    for node in &cl.nodes {
        let k = cl
            .ok(&node.url, "/v2/keys.getKey", json!({"keyId": metered_id}))
            .await;
        assert_eq!(k["credits"]["remaining"], 5, "{k}");
    }
    let codes = hammer(&cl, 9, json!({"key": metered})).await;
    assert_eq!(count(&codes, "VALID"), 5, "{codes:?}");
    let n2 = cl.nodes[2].url.clone();
    let k = cl
        .ok(&n2, "/v2/keys.getKey", json!({"keyId": both_id}))
        .await;
    assert_eq!(k["credits"]["remaining"], 90, "{k}");

    // A list reads every key's live balance from Redis in one round trip, each its own.
    let page = cl
        .ok(
            &n2,
            "/v2/apis.listKeys",
            json!({"apiId": api, "limit": 100}),
        )
        .await;
    let remaining = |id: &str| {
        page.as_array()
            .and_then(|keys| keys.iter().find(|k| k["keyId"] == id))
            .map(|k| k["credits"]["remaining"].clone())
    };
    assert_eq!(remaining(&both_id), Some(json!(90)), "{page}");
    assert_eq!(remaining(&metered_id), Some(json!(0)), "{page}");
}

/// Polls `done` until it holds; fails the test with `what` after 5 s.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < deadline, "after 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How long until every other node stops answering VALID after a write on node 0.
async fn propagation(cl: &Cluster, key: &str, body: Value, change: impl AsyncFnOnce()) -> Duration {
    for node in &cl.nodes[1..] {
        assert_eq!(cl.verify(&node.url, body.clone()).await["code"], "VALID");
    }
    change().await;
    let started = Instant::now();
    for node in &cl.nodes[1..] {
        until(&format!("{key} still VALID on {}", node.url), async || {
            cl.verify(&node.url, body.clone()).await["code"] != "VALID"
        })
        .await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_node_at_once() {
    // A minute of cache freshness: only the notices can make the other nodes see changes.
    let cl = Cluster::start(&["--cache-fresh-seconds", "60"]).await;
    let n0 = cl.nodes[0].url.clone();
    let api = cl.c.at(&n0).create_api().await;
    cl.ok(
        &n0,
        "/v2/permissions.createPermission",
        json!({"name": "docs.read", "slug": "docs.read"}),
    )
    .await;
    let mut times = Vec::new();
    for i in 0..30 {
        let (id, key) =
            cl.c.at(&n0)
                .create_key_in(&api, json!({"permissions": ["docs.read"]}))
                .await;
        let body = json!({"key": key});
        let t = match i % 3 {
            0 => {
                propagation(&cl, &key, body, async || {
                    cl.ok(&n0, "/v2/keys.deleteKey", json!({"keyId": id})).await;
                })
                .await
            }
            1 => {
                propagation(&cl, &key, body, async || {
                    cl.ok(
                        &n0,
                        "/v2/keys.updateKey",
                        json!({"keyId": id, "enabled": false}),
                    )
                    .await;
                })
                .await
            }
            _ => {
                let body = json!({"key": key, "permissions": "docs.read"});
                propagation(&cl, &key, body, async || {
                    cl.ok(
                        &n0,
                        "/v2/keys.removePermissions",
                        json!({"keyId": id, "permissions": ["docs.read"]}),
                    )
                    .await;
                })
                .await
            }
        };
        times.push(t);
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let worst = times[times.len() - 1];
    eprintln!(
        "invalidation across nodes: p50 {p50:?}, max {worst:?} over {} changes",
        times.len()
    );
    // Each change was seen everywhere within `until`'s 5 s, twelve times under the fresh
    // time, so the notices did it, not expiry. How fast is a figure, printed above and not
    // asserted: a 100 ms bound failed one CI run at 126 ms (p50 14 ms) on the shared
    // two-core machine.
    assert_eq!(times.len(), 30, "{times:?}");

    // A root key revoked with the CLI is refused by every node at once, not after the
    // (here one-minute) fresh time.
    let operator = cl.cli(&["root-keys", "create", "--name", "operator"]);
    let op = cl.c.as_root(&operator);
    for node in &cl.nodes {
        let r = op
            .at(&node.url)
            .post("/v2/apis.createApi", json!({"name": "ops-check"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let listed: Value = serde_json::from_str(&cl.cli(&["root-keys", "list", "--json"])).unwrap();
    let id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "operator")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    cl.cli(&["root-keys", "revoke", &id]);
    for node in &cl.nodes {
        until(&format!("{} still takes the key", node.url), async || {
            let body = json!({"name": "ops-check"});
            op.at(&node.url)
                .post("/v2/apis.createApi", body)
                .await
                .status
                == 401
        })
        .await;
    }

    // Rate-limit overrides are kept in memory per namespace on every node: setting and
    // deleting one reaches every node at once too.
    let limit = json!({"namespace": "ovr", "identifier": "u1", "limit": 100, "duration": 60000});
    let limit_on = async |node: &str| cl.ok(node, "/v2/ratelimit.limit", limit.clone()).await;
    for node in &cl.nodes {
        let d = limit_on(&node.url).await;
        assert_eq!(
            (d["limit"].as_u64(), d.get("overrideId")),
            (Some(100), None),
            "{d}"
        );
    }
    let o = json!({"namespace": "ovr", "identifier": "u1", "limit": 3, "duration": 60000});
    let set = cl.ok(&n0, "/v2/ratelimit.setOverride", o).await;
    for node in &cl.nodes {
        until(
            &format!("{} has not seen the override", node.url),
            async || {
                let d = limit_on(&node.url).await;
                d["limit"] == 3 && d["overrideId"] == set["overrideId"]
            },
        )
        .await;
    }
    let gone = json!({"namespace": "ovr", "identifier": "u1"});
    cl.ok(&n0, "/v2/ratelimit.deleteOverride", gone).await;
    for node in &cl.nodes {
        until(
            &format!("{} still applies the override", node.url),
            async || limit_on(&node.url).await["limit"] == 100,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing() {
    let mut cl = Cluster::start(&[]).await;
    let n0 = cl.nodes[0].url.clone();
    let api = cl.c.at(&n0).create_api().await;
    let (id, key) =
        cl.c.at(&n0)
            .create_key_in(&api, json!({"credits": {"remaining": 100}}))
            .await;
    let c = Arc::new(cl.c.clone());
    let urls: Vec<String> = cl.nodes.iter().map(|n| n.url.clone()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..150 {
        let (c, url, key) = (Arc::clone(&c), urls[i % 3].clone(), key.clone());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(2 * i as u64)).await;
            c.at(&url)
                .try_post("/v2/keys.verifyKey", json!({"key": key}))
                .await
                .map(|r| r.body["data"]["code"].as_str().unwrap_or("?").to_string())
        });
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    cl.nodes[2].kill();
    let (mut valid, mut lost) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task") {
            Some(code) if code == "VALID" => valid += 1,
            Some(_) => {}
            None => lost += 1,
        }
    }
    assert!(lost > 0, "the kill came too late to test anything");
    // The survivors answer, and the balance is exact: every VALID was paid for, and
    // the only spends nobody heard of are requests that died with the node.
    let left = cl.ok(&n0, "/v2/keys.getKey", json!({"keyId": id})).await["credits"]["remaining"]
        .as_u64()
        .expect("remaining");
    let spent = 100 - left as usize;
    assert!(
        spent >= valid && spent <= valid + lost,
        "valid {valid}, lost {lost}, left {left}"
    );
    let n1 = cl.nodes[1].url.clone();
    let again = cl.verify(&n1, json!({"key": key})).await;
    assert_eq!(again["credits"], json!(left.saturating_sub(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_never_over_admits() {
    let mut cl = Cluster::start(&[]).await;
    let n0 = cl.nodes[0].url.clone();
    let api = cl.c.at(&n0).create_api().await;
    let (id, metered) =
        cl.c.at(&n0)
            .create_key_in(&api, json!({"credits": {"remaining": 30}}))
            .await;
    let (plain_id, plain) = cl.c.at(&n0).create_key_in(&api, json!({})).await;
    let cl_arc_codes = {
        let mut valid = 0;
        for _ in 0..10 {
            let node = cl.any().to_string();
            if cl.verify(&node, json!({"key": metered})).await["code"] == "VALID" {
                valid += 1;
            }
        }
        valid
    };
    assert_eq!(cl_arc_codes, 10);
    for node in &cl.nodes {
        assert_eq!(
            cl.verify(&node.url, json!({"key": plain})).await["code"],
            "VALID"
        );
    }
    // Let the write-behind reach the database before Redis goes.
    tokio::time::sleep(Duration::from_millis(600)).await;

    cl.redis.stop();
    for node in &cl.nodes {
        // Counters needed: refused in the envelope, nothing spent.
        let r =
            cl.c.at(&node.url)
                .verify_reply(json!({"key": metered}))
                .await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.body["meta"]["requestId"].is_string(), "{}", r.body);
        assert!(r.body["error"]["detail"].is_string(), "{}", r.body);
        // No counters: answered from memory.
        assert_eq!(
            cl.verify(&node.url, json!({"key": plain})).await["code"],
            "VALID"
        );
    }
    // Writes still succeed, and the node that made one stops verifying the key at once.
    cl.ok(
        &n0,
        "/v2/keys.updateKey",
        json!({"keyId": plain_id, "enabled": false}),
    )
    .await;
    assert_eq!(
        cl.verify(&n0, json!({"key": plain})).await["code"],
        "DISABLED"
    );
    let metrics = reqwest::get(format!("{n0}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("keyway_redis_errors_total"), "{metrics}");

    // Redis comes back empty: balances are seeded from the database, which holds what
    // the write-behind wrote (20 left), and the queued notice arrives.
    cl.redis.restart().expect("redis-server restarts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut valid = 0;
    loop {
        let node = cl.any().to_string();
        let r = cl.c.at(&node).verify_reply(json!({"key": metered})).await;
        if r.status == 200 {
            if r.body["data"]["code"] == "VALID" {
                valid += 1;
            } else {
                break;
            }
        }
        assert!(Instant::now() < deadline, "never recovered: {}", r.body);
    }
    assert_eq!(valid, 20, "spent more than the 30 credits over the outage");
    for node in &cl.nodes {
        until(&format!("{} never saw the disable", node.url), async || {
            cl.verify(&node.url, json!({"key": plain})).await["code"] == "DISABLED"
        })
        .await;
    }
    let k = cl.ok(&n0, "/v2/keys.getKey", json!({"keyId": id})).await;
    assert_eq!(k["credits"]["remaining"], 0, "{k}");
}

// Redis's Lua counts in doubles: a balance of i64::MAX once became one VALID with
// credits 0, then USAGE_EXCEEDED forever and a false "redis is unreachable". The API now
// stops every count at 2^53 - 1, and at that bound the cluster counts exactly, as one
// node does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_at_2_pow_53_are_exact_across_nodes() {
    let cl = Cluster::start(&[]).await;
    let n0 = cl.nodes[0].url.clone();
    let api = cl.c.at(&n0).create_api().await;
    let r =
        cl.c.at(&n0)
            .post(
                "/v2/keys.createKey",
                json!({"apiId": api, "credits": {"remaining": 9223372036854775807u64}}),
            )
            .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let max = 9_007_199_254_740_991u64;
    let (key_id, key) =
        cl.c.at(&n0)
            .create_key_in(&api, json!({"credits": {"remaining": max}}))
            .await;
    for (i, node) in cl.nodes.iter().enumerate() {
        let v = cl.verify(&node.url, json!({"key": key})).await;
        assert_eq!(v["code"], "VALID", "{v}");
        assert_eq!(v["credits"], max - 1 - i as u64, "{v}");
    }
    let limit = json!({"namespace": "big", "identifier": "u", "limit": max, "duration": 60000});
    for (i, node) in cl.nodes.iter().enumerate() {
        let v = cl.ok(&node.url, "/v2/ratelimit.limit", limit.clone()).await;
        assert_eq!(v["success"], true, "{v}");
        assert_eq!(v["remaining"], max - 1 - i as u64, "{v}");
    }

    // The balance in Redis expires when unused, and goes with its key.
    let redis = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &cl.redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (Debian's redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let balance = format!("{}cr:{key_id}", cl.prefix);
    let ttl: i64 = redis(&["PTTL", &balance]).parse().unwrap();
    assert!(ttl > 86_400_000, "the balance's TTL is {ttl} ms");
    cl.ok(
        &n0,
        "/v2/keys.deleteKey",
        json!({"keyId": key_id, "permanent": true}),
    )
    .await;
    assert_eq!(redis(&["EXISTS", &balance]), "0");
}
