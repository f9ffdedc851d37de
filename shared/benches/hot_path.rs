//! The verification hot path without I/O: hash a 22-character key, then decide on a
//! snapshot with two permissions and one rate limit. This is the work both the edge and
//! the origin do per request before any network or cache cost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use keyway_core::admission::InMemory;
use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::auth::RootScope;
use keyway_core::key::KeyHash;
use keyway_core::permission::Query;
use keyway_core::snapshot::{KeySnapshot, LimitOwner, RateLimitRule};
use keyway_core::verify::decide_in_memory;

fn snapshot() -> KeySnapshot {
    KeySnapshot {
        key_id: "key_2cGKbMxRyIzhCxo1Idjz8q".into(),
        api_id: "api_1".into(),
        keyspace_id: "ks_1".into(),
        workspace_id: "ws_1".into(),
        for_workspace_id: None,
        name: Some("bench".into()),
        meta: None,
        enabled: true,
        deleted: false,
        expires: Some(i64::MAX),
        credits: None,
        ratelimits: vec![RateLimitRule {
            id: "rl_1".into(),
            name: "requests".into(),
            limit: u64::MAX,
            duration_ms: 60_000,
            auto_apply: true,
            owner: LimitOwner::Key,
        }],
        permissions: vec!["api.read".into(), "api.write".into()],
        roles: Vec::new(),
        identity: None,
    }
}

fn bench(c: &mut Criterion) {
    let key = "sk_2NEpo7TZRRrLZSi2U5x";
    assert_eq!(key.len(), 22);
    let snap = snapshot();
    let request: VerifyKeyRequest = serde_json::from_str(
        r#"{"key":"sk_2NEpo7TZRRrLZSi2U5x","permissions":"api.read AND api.write"}"#,
    )
    .unwrap();
    let query = Query::parse("api.read AND api.write").unwrap();
    // The bootstrap root key's full grant list, as the origin's hot path sees it.
    let mut root = snapshot();
    root.for_workspace_id = Some("ws_1".into());
    root.permissions = keyway_core::auth::all_root_permissions();
    let caller = RootScope::from_snapshot(Some(std::sync::Arc::new(root.normalized())), 0).unwrap();
    let mut counters = InMemory::default();
    let mut now = 1_700_000_000_000i64;

    c.bench_function("hash_22_char_key", |b| {
        b.iter(|| KeyHash::of(black_box(key)))
    });
    let mut decide_once = |now: i64| {
        decide_in_memory(
            Some(black_box(&snap)),
            &request,
            Some(&query),
            &caller,
            now,
            &mut counters,
        )
        .unwrap()
    };
    c.bench_function("decide_2_permissions_1_ratelimit", |b| {
        b.iter(|| {
            now += 1;
            decide_once(now)
        })
    });
    c.bench_function("hash_and_decide", |b| {
        b.iter(|| {
            now += 1;
            black_box(KeyHash::of(black_box(key)));
            decide_once(now)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
