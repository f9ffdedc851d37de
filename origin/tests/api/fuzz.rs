//! Fuzzing every route in process: generated methods, paths, headers, content types and
//! bodies (random bytes, arbitrary JSON, valid bodies with one field broken, huge numbers,
//! deep nesting, huge arrays, unicode edge cases), with a valid root key and without.
//!
//! Every answer must be below 500 and never a panic; every 4xx must be in the error
//! envelope with a request id; and a probe key verified after each case must answer
//! exactly as before, so no input damages the server's state.
//!
//! CI runs a fixed seed and `KEYWAY_FUZZ_CASES` cases (3,000 by default). The long run:
//! `KEYWAY_FUZZ_CASES=1000000 cargo test --release -p keyway-origin --test api fuzz -- --nocapture`

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request};
use clap::Parser;
use keyway_origin::config::ServeConfig;
use keyway_origin::routes::{MetricsOn, router};
use keyway_origin::server::build;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const SEED: [u8; 32] = *b"keyway-fuzz-every-route-seed-v01";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeConfig,
}

/// Every route with a body that would pass validation, so that one broken field is
/// what the server sees.
fn templates(api: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v2/keys.verifyKey",
            json!({"key": "sk_fuzz", "permissions": "a AND b", "credits": {"cost": 1}, "ratelimits": [{"name": "abc", "limit": 5, "duration": 60000}], "tags": ["t"]}),
        ),
        (
            "/v2/keys.createKey",
            json!({"apiId": api, "prefix": "fz", "name": "n", "byteLength": 16, "meta": {"a": 1}, "roles": [], "permissions": ["p.q"], "expires": 4_000_000_000_000i64, "credits": {"remaining": 5, "refill": {"interval": "monthly", "amount": 5, "refillDay": 3}}, "ratelimits": [{"name": "req", "limit": 5, "duration": 60000, "autoApply": true}], "enabled": true, "externalId": "user_fuzz"}),
        ),
        (
            "/v2/keys.getKey",
            json!({"keyId": "key_fuzz", "decrypt": false}),
        ),
        ("/v2/keys.whoami", json!({"key": "sk_fuzz"})),
        (
            "/v2/keys.updateKey",
            json!({"keyId": "key_fuzz", "name": null, "meta": {"a": 1}, "expires": null, "credits": {"remaining": 3, "refill": null}, "ratelimits": [], "enabled": false, "externalId": null, "permissions": [], "roles": []}),
        ),
        (
            "/v2/keys.deleteKey",
            json!({"keyId": "key_fuzz", "permanent": true}),
        ),
        (
            "/v2/keys.updateCredits",
            json!({"keyId": "key_fuzz", "operation": "increment", "value": 5}),
        ),
        (
            "/v2/keys.rerollKey",
            json!({"keyId": "key_fuzz", "expiration": 0}),
        ),
        (
            "/v2/keys.migrateKeys",
            json!({"migrationId": "sha256_base64", "apiId": api,
                   "keys": [{"hash": "uhTH3LspCVdyWFb6jvqSIaOEtu0sjSatUcj8jJnlQAs=", "start": "sk_f"}]}),
        ),
        (
            "/v2/keys.addPermissions",
            json!({"keyId": "key_fuzz", "permissions": ["p.q"]}),
        ),
        (
            "/v2/keys.setPermissions",
            json!({"keyId": "key_fuzz", "permissions": ["p.q"]}),
        ),
        (
            "/v2/keys.removePermissions",
            json!({"keyId": "key_fuzz", "permissions": ["p.q"]}),
        ),
        (
            "/v2/keys.addRoles",
            json!({"keyId": "key_fuzz", "roles": ["r"]}),
        ),
        (
            "/v2/keys.setRoles",
            json!({"keyId": "key_fuzz", "roles": ["r"]}),
        ),
        (
            "/v2/keys.removeRoles",
            json!({"keyId": "key_fuzz", "roles": ["r"]}),
        ),
        (
            "/v2/analytics.getVerifications",
            json!({"query": "SELECT outcome, SUM(count) AS n FROM key_verifications_per_hour_v1 WHERE time > now() - INTERVAL 1 DAY GROUP BY outcome"}),
        ),
        (
            "/v2/analytics.getRatelimits",
            json!({"query": "SELECT namespace_id, SUM(total) AS n FROM ratelimits_per_day_v1 GROUP BY namespace_id"}),
        ),
        ("/v2/apis.createApi", json!({"name": "fuzz-api"})),
        ("/v2/apis.getApi", json!({"apiId": api})),
        (
            "/v2/apis.listKeys",
            json!({"apiId": api, "limit": 10, "cursor": "key_0", "externalId": "user_fuzz", "decrypt": false, "revalidateKeysCache": false}),
        ),
        ("/v2/apis.deleteApi", json!({"apiId": "api_fuzz"})),
        (
            "/v2/ratelimit.limit",
            json!({"namespace": "ns", "identifier": "i", "limit": 5, "duration": 60000, "cost": 1}),
        ),
        (
            "/v2/ratelimit.multiLimit",
            json!([{"namespace": "ns", "identifier": "i", "limit": 5, "duration": 60000}]),
        ),
        (
            "/v2/ratelimit.setOverride",
            json!({"namespace": "ns", "identifier": "i", "limit": 5, "duration": 60000}),
        ),
        (
            "/v2/ratelimit.getOverride",
            json!({"namespace": "ns", "identifier": "i"}),
        ),
        (
            "/v2/ratelimit.listOverrides",
            json!({"namespace": "ns", "limit": 5}),
        ),
        (
            "/v2/ratelimit.deleteOverride",
            json!({"namespace": "ns", "identifier": "i"}),
        ),
        (
            "/v2/identities.createIdentity",
            json!({"externalId": "user_fuzz", "meta": {"a": 1}, "ratelimits": [{"name": "req", "limit": 5, "duration": 60000}]}),
        ),
        (
            "/v2/identities.getIdentity",
            json!({"identity": "user_fuzz"}),
        ),
        ("/v2/identities.listIdentities", json!({"limit": 5})),
        (
            "/v2/identities.updateIdentity",
            json!({"identity": "user_fuzz", "meta": {"b": 2}}),
        ),
        (
            "/v2/identities.deleteIdentity",
            json!({"identity": "user_fuzz"}),
        ),
        (
            "/v2/permissions.createPermission",
            json!({"name": "p", "slug": "p.q", "description": "d"}),
        ),
        (
            "/v2/permissions.getPermission",
            json!({"permission": "p.q"}),
        ),
        ("/v2/permissions.listPermissions", json!({"limit": 5})),
        (
            "/v2/permissions.deletePermission",
            json!({"permission": "p.q"}),
        ),
        (
            "/v2/permissions.createRole",
            json!({"name": "r", "permissions": ["p.q"]}),
        ),
        ("/v2/permissions.getRole", json!({"role": "r"})),
        ("/v2/permissions.listRoles", json!({"limit": 5})),
        ("/v2/permissions.deleteRole", json!({"role": "r"})),
        (
            "/v2/permissions.setRolePermissions",
            json!({"roleId": "r", "permissions": ["p.q"]}),
        ),
        ("/internal/v1/snapshot", json!({})),
        ("/internal/v1/snapshot-pair", json!({})),
        ("/internal/v1/verify", json!({})),
        ("/internal/v1/events", json!({})),
        ("/v2/liveness", json!({})),
        ("/metrics", json!({})),
    ]
}

const FIELDS: &[&str] = &[
    "key",
    "keyId",
    "apiId",
    "name",
    "limit",
    "duration",
    "cost",
    "permissions",
    "roles",
    "credits",
    "ratelimits",
    "namespace",
    "identifier",
    "externalId",
    "meta",
    "expires",
    "enabled",
    "remaining",
    "refill",
    "interval",
    "amount",
    "refillDay",
    "operation",
    "value",
    "identity",
    "permission",
    "role",
    "slug",
    "tags",
    "prefix",
    "byteLength",
    "expiration",
    "cursor",
    "autoApply",
    "permanent",
    "decrypt",
    "migrationId",
    "hash",
    "keys",
    "roleId",
    "recoverable",
    "description",
];

/// Number literals JSON allows but no Rust integer type holds, and ones it does not allow.
const ODD_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "340282366920938463463374607431768211456",
    "0.5",
    "-0",
    "1E2",
    "1e-400",
    "NaN",
    "Infinity",
    "00",
    "0x10",
];

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        1 => prop::sample::select(vec![
            String::new(),
            "\u{0}".into(),
            "a\u{0}b".into(),
            "\u{1}\u{7}\u{8}\u{1b}[31m\u{7f}".into(),
            "line\r\nbreak\t".into(),
            "\u{d7ff}\u{e000}\u{fffd}".into(),
            "\u{FEFF}key".into(),
            "\u{202E}rtl".into(),
            "e\u{301}".into(),
            "🦀".repeat(300),
            "a".repeat(600),
            "key_missing".into(),
            "api.*.verify_key".into(),
            "*".into(),
            "../..".into(),
            "' OR 1=1 --".into(),
        ]),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(String::from), 1 => string()],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum BodyKind {
    Bytes(Vec<u8>),
    Json(Value),
    /// The route's valid body with one field replaced, removed, or added.
    Mutated {
        field: usize,
        replacement: Option<Value>,
        add: Option<String>,
    },
    /// The route's valid body with one field set to a number literal as raw text.
    OddNumber {
        field: usize,
        literal: &'static str,
    },
    Nested(usize),
    HugeArray(usize),
    Oversized,
}

#[derive(Debug, Clone)]
enum Auth {
    Root,
    None,
    Raw(String),
}

#[derive(Debug, Clone)]
struct Case {
    route: usize,
    other_path: Option<String>,
    method: Method,
    auth: Auth,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: BodyKind,
}

fn case(routes: usize) -> impl Strategy<Value = Case> {
    let body = prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..512).prop_map(BodyKind::Bytes),
        3 => json_value().prop_map(BodyKind::Json),
        6 => (any::<usize>(), prop::option::of(json_value()), prop::option::of(prop::sample::select(FIELDS).prop_map(String::from)))
            .prop_map(|(field, replacement, add)| BodyKind::Mutated { field, replacement, add }),
        2 => (any::<usize>(), prop::sample::select(ODD_NUMBERS)).prop_map(|(field, literal)| BodyKind::OddNumber { field, literal }),
        1 => (1usize..20_000).prop_map(BodyKind::Nested),
        1 => (1usize..50_000).prop_map(BodyKind::HugeArray),
        1 => Just(BodyKind::Oversized),
    ];
    let method = prop_oneof![
        12 => Just(Method::POST),
        1 => prop::sample::select(vec![Method::GET, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD, Method::OPTIONS]),
    ];
    let auth = prop_oneof![
        5 => Just(Auth::Root),
        2 => Just(Auth::None),
        1 => "(Bearer |bearer |Basic )?[ -~]{0,40}".prop_map(Auth::Raw),
    ];
    (
        0..routes,
        prop::option::weighted(0.05, "/[a-zA-Z0-9._/%-]{0,30}"),
        method,
        auth,
        prop::option::of(prop::sample::select(vec![
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=utf-16",
            "multipart/form-data; boundary=x",
            "\u{7f}",
        ])),
        prop::option::of(prop::sample::select(vec![
            "application/json",
            "application/problem+json",
            "*/*",
            "text/html",
        ])),
        body,
    )
        .prop_map(
            |(route, other_path, method, auth, content_type, accept, body)| Case {
                route,
                other_path,
                method,
                auth,
                content_type,
                accept,
                body,
            },
        )
}

fn render(template: &Value, body: &BodyKind) -> Vec<u8> {
    let keys: Vec<String> = template
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    match body {
        BodyKind::Bytes(b) => b.clone(),
        BodyKind::Json(v) => v.to_string().into_bytes(),
        BodyKind::Mutated {
            field,
            replacement,
            add,
        } => {
            let mut t = template.clone();
            if let Some(o) = t.as_object_mut() {
                if !keys.is_empty() {
                    let k = &keys[field % keys.len()];
                    match replacement {
                        Some(v) => {
                            o.insert(k.clone(), v.clone());
                        }
                        None => {
                            o.remove(k);
                        }
                    }
                }
                if let Some(extra) = add {
                    o.insert(extra.clone(), json!("extra"));
                }
            } else if let (Some(a), Some(v)) = (t.as_array_mut(), replacement) {
                a.push(v.clone());
            }
            t.to_string().into_bytes()
        }
        BodyKind::OddNumber { field, literal } => {
            let mut t = template.clone();
            let marker = "\"__odd_number__\"";
            if let Some(o) = t.as_object_mut()
                && !keys.is_empty()
            {
                o.insert(keys[field % keys.len()].clone(), json!("__odd_number__"));
            }
            t.to_string().replace(marker, literal).into_bytes()
        }
        BodyKind::Nested(depth) => {
            let mut s = "[".repeat(*depth);
            s.push_str(&"]".repeat(*depth));
            s.into_bytes()
        }
        BodyKind::HugeArray(n) => {
            format!("{{\"permissions\":[{}\"x\"]}}", "\"a\",".repeat(*n)).into_bytes()
        }
        BodyKind::Oversized => vec![b' '; 1024 * 1024 + 1],
    }
}

async fn send(app: &Router, req: Request<Body>) -> (u16, Option<String>, Vec<u8>) {
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = to_bytes(resp.into_body(), usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status, content_type, body)
}

fn post(path: &str, root: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {root}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[test]
fn fuzz_every_route() {
    fuzz_every_route_on(crate::harness::Backend::Sqlite, 3_000);
}

/// PostgreSQL refuses what SQLite stores (a NUL in text, above all), so the same cases run
/// against it too; fewer by default, since each write is a round trip.
#[test]
fn fuzz_every_route_on_postgres() {
    fuzz_every_route_on(crate::harness::Backend::Postgres, 1_500);
}

fn fuzz_every_route_on(backend: crate::harness::Backend, default_cases: u32) {
    let cases: u32 = std::env::var("KEYWAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt
        .block_on(crate::harness::TestDb::new(backend))
        .expect("test database");
    let url = db.url.clone();
    let root = "root_fuzz_0123456789";
    let cli = Cli::try_parse_from([
        "keyway",
        "--root-key",
        root,
        "--edge-secret",
        "edge_fuzz",
        "--database",
        &url,
        "--event-flush-ms",
        "200",
    ])
    .unwrap();
    let (app, api, probe, baseline) = rt.block_on(async {
        let built = build(&cli.serve).await.unwrap();
        let app = router(built.state.clone(), MetricsOn::Api);
        let (_, _, b) = send(
            &app,
            post("/v2/apis.createApi", root, &json!({"name": "probe"})),
        )
        .await;
        let api = serde_json::from_slice::<Value>(&b).unwrap()["data"]["apiId"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, _, b) = send(
            &app,
            post(
                "/v2/keys.createKey",
                root,
                &json!({"apiId": api, "name": "probe", "meta": {"k": "v"}}),
            ),
        )
        .await;
        let probe = serde_json::from_slice::<Value>(&b).unwrap()["data"]["key"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, _, b) = send(
            &app,
            post("/v2/keys.verifyKey", root, &json!({"key": probe})),
        )
        .await;
        assert_eq!(status, 200);
        let baseline = serde_json::from_slice::<Value>(&b).unwrap()["data"].clone();
        assert_eq!(baseline["code"], "VALID");
        // The batcher keeps running on this runtime for the whole test.
        std::mem::forget(built.batcher);
        (app, api, probe, baseline)
    });
    let templates = templates(&api);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            // Header values the request builder cannot represent are rejected, not run;
            // about one case in five at this mix, so the budget grows with the run.
            max_global_rejects: cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
    );
    let result = runner.run(&case(templates.len()), |c| {
        let (path, template) = &templates[c.route];
        let path = c.other_path.as_deref().unwrap_or(path);
        let mut req = Request::builder().method(c.method.clone()).uri(path);
        match &c.auth {
            Auth::Root => req = req.header("authorization", format!("Bearer {root}")),
            Auth::None => {}
            Auth::Raw(v) => req = req.header("authorization", v.as_str()),
        }
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(a) = c.accept {
            req = req.header("accept", a);
        }
        let req = req
            .body(Body::from(render(template, &c.body)))
            .map_err(|e| TestCaseError::reject(e.to_string()))?;
        let (status, content_type, body) = rt.block_on(send(&app, req));
        prop_assert!(
            status < 500,
            "{status} for {c:?}: {}",
            String::from_utf8_lossy(&body)
        );
        if (400..500).contains(&status) && c.method != Method::HEAD {
            let v: Value = serde_json::from_slice(&body).map_err(|e| {
                TestCaseError::fail(format!("{status} is not JSON ({e}) for {c:?}"))
            })?;
            prop_assert_eq!(&v["error"]["status"], &json!(status), "{:?}", c);
            prop_assert!(
                v["meta"]["requestId"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("req_")),
                "no request id: {v} for {c:?}"
            );
            prop_assert!(
                content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("application/")),
                "content type {content_type:?}"
            );
        }
        // The server answers the probe exactly as before.
        let (status, _, b) = rt.block_on(send(
            &app,
            post("/v2/keys.verifyKey", root, &json!({"key": probe})),
        ));
        prop_assert_eq!(status, 200);
        let data = serde_json::from_slice::<Value>(&b)
            .map(|v| v["data"].clone())
            .ok();
        prop_assert_eq!(
            data.as_ref(),
            Some(&baseline),
            "probe changed after {:?}",
            c
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("fuzz ({backend:?}): {cases} cases passed");
}
