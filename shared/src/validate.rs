//! Request validation: JSON parsing and the spec's field rules, as 400s with locations.
//!
//! Validation runs before authentication on both edge and origin, so a malformed body
//! gets the same 400 with or without credentials, and from either deployment model.

use serde::de::DeserializeOwned;

use crate::api::keys::VerifyKeyRequest;
use crate::error::{ApiError, ValidationIssue};
use crate::permission::Query;

/// Parses a JSON body; the error names the field that failed, e.g. `body.credits.cost`.
///
/// A NUL character anywhere in the body is refused first, naming the field: PostgreSQL
/// cannot store one in text (a 500 there, and a poisoned event batch), SQLite stores it
/// and a later `keyway migrate` to PostgreSQL fails on it. No field of the API needs one.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Some(location) = nul_location(body) {
        return Err(ApiError::invalid_input(
            "The request body holds a NUL character.",
            vec![ValidationIssue::new(
                location,
                "must not contain a NUL character (\\u0000)",
            )],
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match parsed {
        Ok(v) => {
            // Trailing garbage after the object is as malformed as a missing brace.
            if de.end().is_err() {
                return Err(ApiError::invalid_input(
                    "The request body is not valid JSON.",
                    vec![ValidationIssue::new(
                        "body",
                        "unexpected characters after the JSON value",
                    )],
                ));
            }
            Ok(v)
        }
        Err(e) => {
            let path = e.path().to_string();
            let location = if path == "." || path.is_empty() {
                "body".to_string()
            } else {
                format!("body.{path}")
            };
            let inner = e.into_inner();
            let detail = if inner.is_syntax() || inner.is_eof() {
                "The request body is not valid JSON."
            } else {
                "The request body does not match the schema."
            };
            Err(ApiError::invalid_input(
                detail,
                vec![ValidationIssue::new(location, inner.to_string())],
            ))
        }
    }
}

/// Where the body's first NUL character is, as `body.a.b[2]`, if it has one. JSON can
/// only carry a NUL as the escape `\u0000`, so a body without that text has none, and
/// only such a body is parsed a second time to find the field.
fn nul_location(body: &[u8]) -> Option<String> {
    // One pass to the next backslash (most bodies have none); an escape is two bytes or
    // more, so stepping over the byte after each backslash never mistakes the text `\\`
    // followed by `u0000` for a NUL.
    let mut rest = body;
    let mut escaped_nul = false;
    while let Some(i) = rest.iter().position(|&b| b == b'\\') {
        if rest[i..].starts_with(b"\\u0000") {
            escaped_nul = true;
            break;
        }
        rest = &rest[(i + 2).min(rest.len())..];
    }
    if !escaped_nul {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    fn find(v: &serde_json::Value, path: &mut String) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = find(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            serde_json::Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let found = k.contains('\0') || find(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::from("body");
    find(&value, &mut path).then_some(path)
}

/// Collects field problems so one 400 can list them all.
#[derive(Debug, Default)]
pub struct Issues(Vec<ValidationIssue>);

impl Issues {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(
        &mut self,
        ok: bool,
        location: &str,
        message: impl FnOnce() -> String,
    ) -> &mut Self {
        if !ok {
            self.0.push(ValidationIssue::new(location, message()));
        }
        self
    }

    pub fn length(&mut self, location: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.chars().count();
        self.check((min..=max).contains(&n), location, || {
            format!("must be between {min} and {max} characters long, got {n}")
        })
    }

    /// `^[a-zA-Z0-9_]+$`, the spec's id pattern.
    pub fn id(&mut self, location: &str, value: &str) -> &mut Self {
        self.length(location, value, 3, 255);
        self.check(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            location,
            || "may only contain letters, digits and underscores".into(),
        )
    }

    pub fn pattern(
        &mut self,
        location: &str,
        value: &str,
        allowed: fn(u8) -> bool,
        what: &str,
    ) -> &mut Self {
        self.check(value.bytes().all(allowed), location, || {
            format!("may only contain {what}")
        })
    }

    pub fn range(&mut self, location: &str, value: u64, min: u64, max: u64) -> &mut Self {
        self.check((min..=max).contains(&value), location, || {
            format!("must be between {min} and {max}, got {value}")
        })
    }

    /// Flags the second and later items whose `key` repeats an earlier one. A repeated
    /// name in one request would otherwise address one counter twice, and count once.
    pub fn unique<'a, T, K: PartialEq>(
        &mut self,
        location: &str,
        items: &'a [T],
        key: impl Fn(&'a T) -> K,
    ) -> &mut Self {
        for (i, item) in items.iter().enumerate() {
            let k = key(item);
            if let Some(first) = items[..i].iter().position(|other| key(other) == k) {
                self.0.push(ValidationIssue::new(
                    format!("{location}[{i}]"),
                    format!("repeats item {first}; each may appear once"),
                ));
            }
        }
        self
    }

    pub fn push(&mut self, issue: ValidationIssue) -> &mut Self {
        self.0.push(issue);
        self
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_input(
                "The request body is invalid.",
                self.0,
            ))
        }
    }
}

pub fn is_slug_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.' | b'*')
}

pub fn is_external_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Most rate limits one verification may name. The spec sets no bound, but every entry
/// can create a counter kept for up to its window (30 days at most); a key's own
/// configured limits are capped at 50, and so is this.
pub const MAX_VERIFY_RATELIMITS: usize = 50;

/// Checks a verifyKey body against the spec and parses its permission query once.
pub fn verify_request(req: &VerifyKeyRequest) -> Result<Option<Query>, ApiError> {
    let mut v = Issues::new();
    v.length("body.key", req.key.expose(), 1, 512);
    v.finish()?;
    verify_options(req)
}

/// Everything `verify_request` checks but the key itself, for verifications the edge
/// forwards by hash (their `key` is empty on purpose).
pub fn verify_options(req: &VerifyKeyRequest) -> Result<Option<Query>, ApiError> {
    let mut v = Issues::new();
    if let Some(tags) = &req.tags {
        v.check(tags.len() <= 20, "body.tags", || {
            "must have at most 20 items".into()
        });
        for (i, t) in tags.iter().enumerate() {
            v.length(&format!("body.tags[{i}]"), t, 1, 512);
        }
    }
    if let Some(c) = req.credits {
        v.range("body.credits.cost", c.cost, 0, 1_000_000_000_000);
    }
    if let Some(limits) = &req.ratelimits {
        v.check(
            limits.len() <= MAX_VERIFY_RATELIMITS,
            "body.ratelimits",
            || format!("must have at most {MAX_VERIFY_RATELIMITS} items"),
        );
        v.unique("body.ratelimits", limits, |l| l.name.as_str());
        for (i, l) in limits.iter().enumerate() {
            v.length(&format!("body.ratelimits[{i}].name"), &l.name, 3, 255);
            v.check(
                l.limit.is_some() == l.duration.is_some(),
                &format!("body.ratelimits[{i}]"),
                || "limit and duration must be given together".into(),
            );
            if let Some(d) = l.duration {
                v.range(
                    &format!("body.ratelimits[{i}].duration"),
                    d,
                    1000,
                    2_592_000_000,
                );
            }
        }
    }
    if let Some(m) = &req.migration_id {
        v.length("body.migrationId", m, 0, 256);
    }
    v.finish()?;
    match &req.permissions {
        None => Ok(None),
        Some(q) => Query::parse(q)
            .map(Some)
            .map_err(|e| ApiError::permissions_query_syntax(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_have_locations() {
        let e =
            parse_json::<VerifyKeyRequest>(br#"{"key":"k","credits":{"cost":"x"}}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.errors[0].location, "body.credits.cost");
        let e = parse_json::<VerifyKeyRequest>(b"{\"key\":").unwrap_err();
        assert_eq!(e.detail, "The request body is not valid JSON.");
        let e = parse_json::<VerifyKeyRequest>(br#"{"key":"k"} x"#).unwrap_err();
        assert_eq!(e.status, 400);
        let e = parse_json::<VerifyKeyRequest>(br#"{"key":"k","x":1}"#).unwrap_err();
        assert!(
            e.errors[0].message.contains("unknown field"),
            "{:?}",
            e.errors
        );
        assert!(parse_json::<VerifyKeyRequest>(br#"{"key":"k"}"#).is_ok());
    }

    #[test]
    fn a_nul_is_refused_by_its_field() {
        for (body, location) in [
            (&br#"{"key":"a\u0000b"}"#[..], "body.key"),
            (br#"{"key":"k","tags":["x","\u0000"]}"#, "body.tags[1]"),
            (
                br#"{"key":"k","ratelimits":[{"name":"r\u0000"}]}"#,
                "body.ratelimits[0].name",
            ),
            (br#"{"key":"k","meta":{"a\u0000":1}}"#, "body.meta.a\0"),
        ] {
            let e = parse_json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.errors[0].location, location, "{:?}", e.errors);
            assert!(e.errors[0].message.contains("NUL"));
        }
        // The text `\\u0000` is a backslash and five characters, not a NUL.
        let v: serde_json::Value = parse_json(br#"{"key":"a\\u0000"}"#).unwrap();
        assert_eq!(v["key"], "a\\u0000");
    }

    proptest::proptest! {
        /// Found exactly when a string of the body holds a NUL, whatever else it holds
        /// (backslashes, quotes, other escapes), and named by its field.
        #[test]
        fn a_nul_is_found_exactly_where_it_is(s in "[\\\\\"u0\\x00\\x01a-f\\u{e9}]{0,24}") {
            let body = serde_json::to_vec(&serde_json::json!({"key": "k", "meta": {"note": s}})).unwrap();
            let found = nul_location(&body);
            proptest::prop_assert_eq!(found.is_some(), s.contains('\0'), "{:?}", String::from_utf8_lossy(&body));
            if let Some(at) = found {
                proptest::prop_assert_eq!(at, "body.meta.note");
            }
        }
    }

    #[test]
    fn verify_validation() {
        let ok: VerifyKeyRequest = parse_json(br#"{"key":"k","permissions":"a AND b"}"#).unwrap();
        assert!(verify_request(&ok).unwrap().is_some());
        let bad: VerifyKeyRequest = parse_json(br#"{"key":""}"#).unwrap();
        assert_eq!(
            verify_request(&bad).unwrap_err().errors[0].location,
            "body.key"
        );
        let q: VerifyKeyRequest = parse_json(br#"{"key":"k","permissions":"a AND"}"#).unwrap();
        let e = verify_request(&q).unwrap_err();
        assert_eq!(e.kind, "user/bad_request/permissions_query_syntax_error");
        assert_eq!(e.errors[0].location, "body.permissions");
        let half: VerifyKeyRequest =
            parse_json(br#"{"key":"k","ratelimits":[{"name":"abc","limit":3}]}"#).unwrap();
        assert!(verify_request(&half).is_err());
    }

    #[test]
    fn verify_ratelimits_are_capped_and_unique() {
        let twice: VerifyKeyRequest = parse_json(
            br#"{"key":"k","ratelimits":[{"name":"abc"},{"name":"xyz"},{"name":"abc","cost":2}]}"#,
        )
        .unwrap();
        let e = verify_request(&twice).unwrap_err();
        assert_eq!(e.errors[0].location, "body.ratelimits[2]");
        let many = serde_json::json!({
            "key": "k",
            "ratelimits": (0..51).map(|i| serde_json::json!({"name": format!("n{i:03}")})).collect::<Vec<_>>(),
        });
        let many: VerifyKeyRequest = parse_json(many.to_string().as_bytes()).unwrap();
        let e = verify_request(&many).unwrap_err();
        assert_eq!(e.errors[0].location, "body.ratelimits");
    }

    #[test]
    fn integers_beyond_int64_are_rejected_with_their_field() {
        let big = "9223372036854775808";
        for (body, location) in [
            (
                format!(r#"{{"key":"k","credits":{{"cost":{big}}}}}"#),
                "body.credits.cost",
            ),
            (
                format!(r#"{{"key":"k","ratelimits":[{{"name":"abc","cost":{big}}}]}}"#),
                "body.ratelimits[0].cost",
            ),
            (
                format!(
                    r#"{{"key":"k","ratelimits":[{{"name":"abc","limit":{big},"duration":1000}}]}}"#
                ),
                "body.ratelimits[0].limit",
            ),
        ] {
            let e = parse_json::<VerifyKeyRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.errors[0].location, location, "{body}");
        }
        // Counters stop at 2^53 - 1, which Redis's Lua and JavaScript count exactly.
        let cost = |n: u64| format!(r#"{{"key":"k","ratelimits":[{{"name":"abc","cost":{n}}}]}}"#);
        let max = crate::api::int64::COUNTER_MAX;
        assert!(parse_json::<VerifyKeyRequest>(cost(max).as_bytes()).is_ok());
        let e = parse_json::<VerifyKeyRequest>(cost(max + 1).as_bytes()).unwrap_err();
        assert_eq!(e.errors[0].location, "body.ratelimits[0].cost");
        assert!(
            e.errors[0].message.contains("9007199254740991"),
            "{:?}",
            e.errors
        );
        use crate::api::keys::CreateKeyRequest as Create;
        for (body, location) in [
            (
                r#"{"apiId":"a","credits":{"remaining":9007199254740992}}"#,
                "body.credits.remaining",
            ),
            (
                r#"{"apiId":"a","credits":{"remaining":9223372036854775807}}"#,
                "body.credits.remaining",
            ),
            (
                r#"{"apiId":"a","credits":{"remaining":1,"refill":{"interval":"daily","amount":9007199254740992}}}"#,
                "body.credits.refill.amount",
            ),
            (
                r#"{"apiId":"a","ratelimits":[{"name":"r","limit":9007199254740992,"duration":1000}]}"#,
                "body.ratelimits[0].limit",
            ),
        ] {
            let e = parse_json::<Create>(body.as_bytes()).unwrap_err();
            assert_eq!(e.errors[0].location, location, "{body}");
        }
        use crate::api::keys::{CreateKeyRequest, UpdateCreditsRequest, UpdateKeyRequest};
        use crate::api::ratelimit::{LimitRequest, SetOverrideRequest};
        let e = parse_json::<LimitRequest>(
            format!(
                r#"{{"namespace":"n","identifier":"i","limit":1,"duration":1000,"cost":{big}}}"#
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.errors[0].location, "body.cost");
        assert!(
            parse_json::<SetOverrideRequest>(
                format!(r#"{{"namespace":"n","identifier":"i","limit":{big},"duration":1000}}"#)
                    .as_bytes()
            )
            .is_err()
        );
        assert!(
            parse_json::<CreateKeyRequest>(
                format!(r#"{{"apiId":"api_1","credits":{{"remaining":{big}}}}}"#).as_bytes()
            )
            .is_err()
        );
        assert!(
            parse_json::<UpdateKeyRequest>(
                format!(r#"{{"keyId":"key_1","credits":{{"remaining":{big}}}}}"#).as_bytes()
            )
            .is_err()
        );
        assert!(
            parse_json::<UpdateCreditsRequest>(
                format!(r#"{{"keyId":"key_1","operation":"set","value":{big}}}"#).as_bytes()
            )
            .is_err()
        );
    }
}
