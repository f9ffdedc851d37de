//! Shadow mode: compare the edge's decision with the origin's on real traffic.

use keyway_core::api::keys::VerifyCode;
use keyway_core::error::ApiError;
use keyway_core::verify::Plan;
use serde_json::Value;

use super::stats::Stats;

/// What one comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The edge could not decide this one alone (counters, or a 4xx): nothing to compare.
    Skipped,
    Agreed,
    /// The key id only, never the key.
    Mismatch {
        key_id: Option<String>,
        edge: VerifyCode,
        origin: VerifyCode,
    },
}

/// The edge's plan for a verification the origin answered with `origin`.
pub fn compare(edge: Result<Plan<'_>, ApiError>, origin: (bool, VerifyCode)) -> Comparison {
    let Ok(Plan::Decided(verdict)) = edge else {
        return Comparison::Skipped;
    };
    let edge = (verdict.data.valid, verdict.data.code);
    if disagrees(edge, origin) {
        Comparison::Mismatch {
            key_id: verdict.data.key_id,
            edge: edge.1,
            origin: origin.1,
        }
    } else {
        Comparison::Agreed
    }
}

impl Stats {
    pub fn count_shadow(&mut self, c: &Comparison) {
        match c {
            Comparison::Skipped => self.shadow_skipped += 1,
            Comparison::Agreed => self.shadow_compared += 1,
            Comparison::Mismatch { .. } => {
                self.shadow_compared += 1;
                self.shadow_mismatches += 1;
            }
        }
    }
}

/// What the origin answered, read from its response body: `(valid, code)`.
pub fn origin_verdict(status: u16, body: &[u8]) -> Option<(bool, VerifyCode)> {
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?;
    let valid = data.get("valid")?.as_bool()?;
    let code = VerifyCode::parse(data.get("code")?.as_str()?)?;
    Some((valid, code))
}

/// A disagreement worth logging: both decided, and not the same way.
pub fn disagrees(edge: (bool, VerifyCode), origin: (bool, VerifyCode)) -> bool {
    edge != origin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_origin_answers() {
        let body =
            br#"{"meta":{"requestId":"r"},"data":{"valid":false,"code":"DISABLED","keyId":"k"}}"#;
        assert_eq!(
            origin_verdict(200, body),
            Some((false, VerifyCode::Disabled))
        );
        assert_eq!(origin_verdict(400, body), None);
        assert_eq!(origin_verdict(200, b"nope"), None);
        assert!(disagrees(
            (true, VerifyCode::Valid),
            (false, VerifyCode::Disabled)
        ));
        assert!(!disagrees(
            (true, VerifyCode::Valid),
            (true, VerifyCode::Valid)
        ));
    }

    #[test]
    fn compares_only_what_the_edge_decided() {
        use keyway_core::snapshot::fixtures;
        let key = fixtures::key();
        let mut root = fixtures::key();
        root.for_workspace_id = Some(root.workspace_id.clone());
        root.permissions = vec!["api.*.verify_key".into()];
        let root = std::sync::Arc::new(root.normalized());
        let caller = keyway_core::auth::RootScope::from_snapshot(Some(root), 0).unwrap();
        let request = serde_json::from_str(r#"{"key":"x"}"#).unwrap();
        let plan = || keyway_core::verify::plan(Some(&key), &request, None, &caller, 0);
        let mut stats = Stats::default();
        let agreed = compare(plan(), (true, VerifyCode::Valid));
        assert_eq!(agreed, Comparison::Agreed);
        let mismatch = compare(plan(), (false, VerifyCode::Disabled));
        assert_eq!(
            mismatch,
            Comparison::Mismatch {
                key_id: Some("key_1".into()),
                edge: VerifyCode::Valid,
                origin: VerifyCode::Disabled
            }
        );
        let skipped = compare(
            Err(ApiError::precondition_failed("x")),
            (true, VerifyCode::Valid),
        );
        assert_eq!(skipped, Comparison::Skipped);
        for c in [&agreed, &mismatch, &skipped] {
            stats.count_shadow(c);
        }
        assert_eq!(
            (
                stats.shadow_compared,
                stats.shadow_mismatches,
                stats.shadow_skipped
            ),
            (2, 1, 1)
        );
    }
}
