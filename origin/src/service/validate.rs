//! Field rules shared by several routes, each reporting at the location the caller names.
//! A handler collects every issue before answering, so one 400 lists them all.

use keyway_core::api::int64;
use keyway_core::api::keys::{KeyCreditsData, RatelimitRequest, RefillData};
use keyway_core::credits::RefillInterval;
use keyway_core::error::{ApiError, ValidationIssue};
use keyway_core::validate::{Issues, is_external_id_byte, is_slug_byte};
use serde_json::{Map, Value};

use crate::error::AppError;

/// 2100-01-01 in unix ms: the latest expiry Unkey accepts.
pub const MAX_EXPIRES: i64 = 4_102_444_800_000;

pub fn key_id(v: &mut Issues, key_id: &str) {
    v.id("body.keyId", key_id);
}

pub fn expires(v: &mut Issues, loc: &str, at: i64) {
    v.check((0..=MAX_EXPIRES).contains(&at), loc, || {
        format!("must be between 0 and {MAX_EXPIRES}")
    });
}

pub fn meta(v: &mut Issues, loc: &str, meta: Option<&Map<String, Value>>) {
    if let Some(m) = meta {
        v.check(m.len() <= 100, loc, || {
            "may have at most 100 properties".into()
        });
    }
}

pub fn ratelimits(v: &mut Issues, loc: &str, limits: Option<&Vec<RatelimitRequest>>) {
    let Some(limits) = limits else { return };
    v.check(limits.len() <= 50, loc, || {
        "may have at most 50 items".into()
    });
    v.unique(loc, limits, |l| l.name.as_str());
    for (i, l) in limits.iter().enumerate() {
        v.length(&format!("{loc}[{i}].name"), &l.name, 3, 128);
        v.range(&format!("{loc}[{i}].limit"), l.limit, 1, int64::MAX);
        v.range(
            &format!("{loc}[{i}].duration"),
            l.duration,
            1000,
            2_592_000_000,
        );
    }
}

pub fn refill(v: &mut Issues, loc: &str, r: &RefillData) {
    v.range(&format!("{loc}.amount"), r.amount, 1, i64::MAX as u64);
    if let Some(day) = r.refill_day {
        v.range(&format!("{loc}.refillDay"), u64::from(day), 1, 31);
        v.check(
            r.interval == RefillInterval::Monthly,
            &format!("{loc}.refillDay"),
            || "is only allowed with the monthly interval".into(),
        );
    }
}

/// A permission slug: the characters permission queries can name.
pub fn slug(v: &mut Issues, loc: &str, slug: &str) {
    v.length(loc, slug, 1, 128);
    v.pattern(loc, slug, is_slug_byte, "letters, digits and _ : - . *");
}

pub fn permissions(v: &mut Issues, loc: &str, perms: Option<&Vec<String>>, max: usize) {
    let Some(perms) = perms else { return };
    v.check(perms.len() <= max, loc, || {
        format!("may have at most {max} items")
    });
    for (i, p) in perms.iter().enumerate() {
        slug(v, &format!("{loc}[{i}]"), p);
    }
}

pub fn roles(v: &mut Issues, loc: &str, roles: Option<&Vec<String>>) {
    let Some(roles) = roles else { return };
    v.check(roles.len() <= 100, loc, || {
        "may have at most 100 items".into()
    });
    for (i, r) in roles.iter().enumerate() {
        v.length(&format!("{loc}[{i}]"), r, 1, 128);
    }
}

pub fn external_id(v: &mut Issues, loc: &str, id: &str) {
    v.length(loc, id, 1, 255);
    v.pattern(loc, id, is_external_id_byte, "letters, digits and _ . -");
}

/// A list's page size: 1 to 100, `default` when absent.
pub fn page_limit(limit: Option<u64>, default: u64) -> Result<u32, AppError> {
    let l = limit.unwrap_or(default);
    if (1..=100).contains(&l) {
        Ok(u32::try_from(l).unwrap_or(100))
    } else {
        Err(AppError::Client(ApiError::invalid_input(
            "The request body is invalid.",
            vec![ValidationIssue::new(
                "body.limit",
                format!("must be between 1 and 100, got {l}"),
            )],
        )))
    }
}

/// The fields createKey and migrateKeys share, checked under `at` ("body", or
/// "body.keys[3]" for one key of a batch).
pub struct KeyFields<'a> {
    pub name: Option<&'a String>,
    pub external_id: Option<&'a String>,
    pub meta: Option<&'a Map<String, Value>>,
    pub roles: Option<&'a Vec<String>>,
    pub permissions: Option<&'a Vec<String>>,
    pub expires: Option<i64>,
    pub credits: Option<&'a KeyCreditsData>,
    pub ratelimits: Option<&'a Vec<RatelimitRequest>>,
}

pub fn key_fields(v: &mut Issues, at: &str, f: &KeyFields<'_>) {
    if let Some(n) = f.name {
        v.length(&format!("{at}.name"), n, 1, 255);
    }
    if let Some(e) = f.external_id {
        external_id(v, &format!("{at}.externalId"), e);
    }
    meta(v, &format!("{at}.meta"), f.meta);
    roles(v, &format!("{at}.roles"), f.roles);
    permissions(v, &format!("{at}.permissions"), f.permissions, 1000);
    if let Some(e) = f.expires {
        expires(v, &format!("{at}.expires"), e);
    }
    if let Some(c) = f.credits
        && let Some(r) = &c.refill
    {
        let loc = format!("{at}.credits.refill");
        refill(v, &loc, r);
        v.check(c.remaining.is_some(), &loc, || {
            "needs credits.remaining to be set".into()
        });
    }
    ratelimits(v, &format!("{at}.ratelimits"), f.ratelimits);
}

/// A request body's own rules, checked before the caller is authenticated so that a
/// malformed request is a 400 even without credentials. Each route's body type says its
/// rules beside the service that runs it.
pub trait Validate {
    /// Records what is wrong with the body, at the locations the caller named.
    fn issues(&self, _v: &mut Issues) {}

    /// A list's page size and its default, checked once the other rules pass.
    fn page(&self) -> Option<(Option<u64>, u64)> {
        None
    }
}

/// A body's rules, in order: its issues in one 400, then its page size.
pub fn check<T: Validate>(body: &T) -> Result<(), AppError> {
    let mut v = Issues::new();
    body.issues(&mut v);
    v.finish()?;
    if let Some((limit, default)) = body.page() {
        page_limit(limit, default)?;
    }
    Ok(())
}
