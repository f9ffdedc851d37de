use super::*;
use crate::admission::InMemory;
use crate::api::keys::{VerifyCode, VerifyKeyRequest, VerifyKeyResponseData};
use crate::auth::RootScope;
use crate::permission::Query;
use crate::snapshot::KeySnapshot;
use crate::snapshot::{LimitOwner, fixtures};

type Counters = InMemory;

// The origin's flow over the simplest counter store: plan, admit, finish.
use super::decide_in_memory as decide;

fn root(perms: &[&str]) -> RootScope {
    crate::auth::tests::scope(perms)
}

fn req(json: &str) -> VerifyKeyRequest {
    serde_json::from_str(json).unwrap()
}

fn run(
    key: Option<&KeySnapshot>,
    r: &VerifyKeyRequest,
    now: i64,
    c: &mut Counters,
) -> VerifyKeyResponseData {
    let q = r.permissions.as_deref().map(|p| Query::parse(p).unwrap());
    match decide(key, r, q.as_ref(), &root(&["api.*.verify_key"]), now, c) {
        Ok(v) => v.data,
        Err(e) => panic!("{e}"),
    }
}

fn code(key: Option<&KeySnapshot>, r: &str) -> VerifyCode {
    run(key, &req(r), 1_000, &mut Counters::default()).code
}

/// A key the caller may not see records no API or identity of its own in the
/// caller's analytics; a key it may see records both.
#[test]
fn events_name_only_keys_the_caller_found() {
    let mut k = fixtures::key();
    k.identity = Some(Box::new(crate::snapshot::IdentitySnapshot {
        id: "id_1".into(),
        external_id: "user".into(),
        meta: None,
    }));
    let r = req(r#"{"key":"x"}"#);
    let caller = root(&["api.*.verify_key"]);
    let event = |key: &KeySnapshot| {
        let verdict = decide(
            Some(key),
            &r,
            None,
            &caller,
            1_000,
            &mut Counters::default(),
        )
        .unwrap_or_else(|_| panic!("decided"));
        verdict.event(EventContext {
            time_ms: 1_000,
            request_id: "req_1",
            caller: &caller,
            snapshot: Some(key),
            request: &r,
            latency_us: 1,
            served_by: crate::wire::ServedBy::Origin,
        })
    };
    let found = event(&k);
    assert_eq!(found.outcome, VerifyCode::Valid);
    assert_eq!(
        (found.api_id.as_str(), found.identity_id.as_deref()),
        (k.api_id.as_str(), Some("id_1"))
    );

    let mut foreign = k.clone();
    foreign.workspace_id = "ws_other".into();
    let hidden = event(&foreign);
    assert_eq!(hidden.outcome, VerifyCode::NotFound);
    assert_eq!(hidden.workspace_id, "ws_1");
    assert_eq!(
        (
            hidden.api_id.as_str(),
            hidden.key_id.as_str(),
            hidden.identity_id
        ),
        ("", "", None)
    );
}

#[test]
fn each_code() {
    let k = fixtures::key();
    assert_eq!(code(None, r#"{"key":"x"}"#), VerifyCode::NotFound);
    assert_eq!(code(Some(&k), r#"{"key":"x"}"#), VerifyCode::Valid);

    let mut deleted = k.clone();
    deleted.deleted = true;
    assert_eq!(code(Some(&deleted), r#"{"key":"x"}"#), VerifyCode::NotFound);

    let mut disabled = k.clone();
    disabled.enabled = false;
    assert_eq!(
        code(Some(&disabled), r#"{"key":"x"}"#),
        VerifyCode::Disabled
    );

    let mut expired = k.clone();
    expired.expires = Some(1_000);
    assert_eq!(code(Some(&expired), r#"{"key":"x"}"#), VerifyCode::Expired);
    expired.expires = Some(1_001);
    assert_eq!(code(Some(&expired), r#"{"key":"x"}"#), VerifyCode::Valid);

    assert_eq!(
        code(
            Some(&k),
            r#"{"key":"x","permissions":"api.read AND api.write"}"#
        ),
        VerifyCode::Valid
    );
    assert_eq!(
        code(
            Some(&k),
            r#"{"key":"x","permissions":"api.read AND api.delete"}"#
        ),
        VerifyCode::InsufficientPermissions
    );

    let mut limited = k.clone();
    limited.ratelimits = vec![fixtures::rule("rl_1", "requests", 1, true, LimitOwner::Key)];
    let mut c = Counters::default();
    let r = req(r#"{"key":"x"}"#);
    assert_eq!(run(Some(&limited), &r, 0, &mut c).code, VerifyCode::Valid);
    assert_eq!(
        run(Some(&limited), &r, 1, &mut c).code,
        VerifyCode::RateLimited
    );

    let mut metered = k.clone();
    metered.credits = fixtures::credits(1);
    let mut c = Counters::default();
    let d = run(Some(&metered), &r, 0, &mut c);
    assert_eq!((d.code, d.credits), (VerifyCode::Valid, Some(0)));
    let d = run(Some(&metered), &r, 0, &mut c);
    assert_eq!(
        (d.code, d.credits, d.valid),
        (VerifyCode::UsageExceeded, Some(0), false)
    );
}

#[test]
fn order_of_checks() {
    // Everything wrong at once: each fix reveals the next code in Unkey's order.
    let mut k = fixtures::key();
    k.enabled = false;
    k.expires = Some(0);
    k.api_id = "api_other".into();
    k.ratelimits = vec![fixtures::rule("rl_1", "requests", 0, true, LimitOwner::Key)];
    k.credits = fixtures::credits(0);
    let r = req(r#"{"key":"x","permissions":"nope"}"#);
    let q = Query::parse("nope").unwrap();
    let scoped = root(&["api.api_1.verify_key"]);
    let step = |k: &KeySnapshot| {
        decide(
            Some(k),
            &r,
            Some(&q),
            &scoped,
            1_000,
            &mut Counters::default(),
        )
        .map(|v| v.data.code)
        .map_err(|_| ())
        .unwrap()
    };
    // Outside the caller's scope first: a disabled, expired key of an API the caller
    // may not verify is as unknown as a missing one, and nothing about it comes back.
    let hidden = decide(
        Some(&k),
        &r,
        Some(&q),
        &scoped,
        1_000,
        &mut Counters::default(),
    )
    .map_err(|_| ())
    .unwrap()
    .data;
    assert_eq!(
        hidden.code,
        VerifyCode::NotFound,
        "caller scoped to another API"
    );
    assert!(hidden.key_id.is_none() && hidden.name.is_none() && hidden.meta.is_none());
    k.api_id = "api_1".into();
    assert_eq!(step(&k), VerifyCode::Disabled);
    k.enabled = true;
    assert_eq!(step(&k), VerifyCode::Expired);
    k.expires = None;
    assert_eq!(step(&k), VerifyCode::InsufficientPermissions);
    k.permissions.push("nope".into());
    k = k.normalized();
    assert_eq!(step(&k), VerifyCode::RateLimited);
    k.ratelimits[0].limit = 10;
    assert_eq!(step(&k), VerifyCode::UsageExceeded);
    k.credits = None;
    assert_eq!(step(&k), VerifyCode::Valid);
}

#[test]
fn other_workspace_is_not_found() {
    let mut k = fixtures::key();
    k.workspace_id = "ws_2".into();
    k.enabled = false;
    assert_eq!(code(Some(&k), r#"{"key":"x"}"#), VerifyCode::NotFound);
    let mut rootkey = fixtures::key();
    rootkey.for_workspace_id = Some("ws_1".into());
    assert_eq!(code(Some(&rootkey), r#"{"key":"x"}"#), VerifyCode::NotFound);
}

#[test]
fn named_limits_and_412() {
    let mut k = fixtures::key();
    k.ratelimits = vec![
        fixtures::rule("rl_auto", "requests", 100, true, LimitOwner::Key),
        fixtures::rule("rl_tok", "tokens", 10, false, LimitOwner::Identity),
    ];
    let mut c = Counters::default();
    // Only the auto-applied one counts by default.
    let d = run(Some(&k), &req(r#"{"key":"x"}"#), 0, &mut c);
    let names: Vec<_> = d
        .ratelimits
        .unwrap()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["requests"]);
    // Named with a cost.
    let d = run(
        Some(&k),
        &req(r#"{"key":"x","ratelimits":[{"name":"tokens","cost":10}]}"#),
        0,
        &mut c,
    );
    assert_eq!(d.code, VerifyCode::Valid);
    let rl = d.ratelimits.unwrap();
    assert_eq!(rl.len(), 2);
    assert_eq!(rl[1].remaining, 0);
    // Ad hoc.
    let d = run(
        Some(&k),
        &req(r#"{"key":"x","ratelimits":[{"name":"burst","limit":1,"duration":1000}]}"#),
        0,
        &mut c,
    );
    let rl = d.ratelimits.unwrap();
    assert!(rl[1].id.starts_with("rl_adhoc_"));
    // Unknown without limit/duration → 412.
    let r = req(r#"{"key":"x","ratelimits":[{"name":"missing"}]}"#);
    match decide(Some(&k), &r, None, &root(&["api.*.verify_key"]), 0, &mut c) {
        Err(e) => assert_eq!(e.status, 412),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rate_limited_spends_no_credits() {
    let mut k = fixtures::key();
    k.ratelimits = vec![fixtures::rule("rl_1", "requests", 1, true, LimitOwner::Key)];
    k.credits = fixtures::credits(5);
    let mut c = Counters::default();
    let r = req(r#"{"key":"x"}"#);
    run(Some(&k), &r, 0, &mut c);
    let d = run(Some(&k), &r, 0, &mut c);
    assert_eq!(d.code, VerifyCode::RateLimited);
    assert_eq!(c.balances["key_1"].remaining, 4);
}

#[test]
fn plan_decides_what_it_can_and_hands_the_rest_to_the_counters() {
    let k = fixtures::key();
    let r = req(r#"{"key":"x"}"#);
    let caller = root(&["api.*.verify_key"]);
    let decided = |k: &KeySnapshot| match plan(Some(k), &r, None, &caller, 0).unwrap() {
        Plan::Decided(v) => Some(v.data),
        Plan::Admit(_) => None,
    };
    assert!(decided(&k).unwrap().valid);
    let mut metered = k.clone();
    metered.credits = fixtures::credits(5);
    assert!(decided(&metered).is_none(), "credits need the counters");
    // A disabled metered key needs no counters to be refused.
    metered.enabled = false;
    assert_eq!(decided(&metered).unwrap().code, VerifyCode::Disabled);
}

#[test]
fn response_json_shape() {
    let mut k = fixtures::key();
    k.identity = Some(Box::new(crate::snapshot::IdentitySnapshot {
        id: "id_1".into(),
        external_id: "u1".into(),
        meta: None,
    }));
    let d = run(
        Some(&k),
        &req(r#"{"key":"x"}"#),
        0,
        &mut Counters::default(),
    );
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::json!({
            "valid": true, "code": "VALID", "keyId": "key_1", "name": "test", "meta": {"plan": "pro"},
            "enabled": true, "permissions": ["api.read", "api.write"], "roles": ["admin"],
            "identity": {"id": "id_1", "externalId": "u1"}
        })
    );
}
