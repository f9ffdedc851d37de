//! Shadow mode: compare the edge's decision with the origin's on real traffic.

use keyway_core::api::keys::VerifyCode;
use serde_json::Value;

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
}
