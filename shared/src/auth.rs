//! Root keys: who may call the API, and for what.
//!
//! Root-key permissions are tuples `<resource>.<id or *>.<action>`, e.g.
//! `api.*.verify_key` or `api.api_123.create_key`. Unlike permission queries, `*` here
//! does mean "any id". The edge and the origin both authorize with these functions, so a
//! request is refused the same way whichever one answers it.

use crate::error::ApiError;
use crate::snapshot::KeySnapshot;

/// Every root-key permission the API knows, as wildcard tuples; a bootstrap root key
/// gets all of them.
pub const ALL_ROOT_PERMISSIONS: &[&str] = &[
    "api.*.create_api",
    "api.*.read_api",
    "api.*.delete_api",
    "api.*.update_api",
    "api.*.create_key",
    "api.*.read_key",
    "api.*.update_key",
    "api.*.delete_key",
    "api.*.verify_key",
    "api.*.encrypt_key",
    "api.*.decrypt_key",
    "ratelimit.*.limit",
    "ratelimit.*.read_override",
    "ratelimit.*.set_override",
    "ratelimit.*.delete_override",
    "identity.*.create_identity",
    "identity.*.read_identity",
    "identity.*.update_identity",
    "identity.*.delete_identity",
    "rbac.*.create_permission",
    "rbac.*.read_permission",
    "rbac.*.delete_permission",
    "rbac.*.create_role",
    "rbac.*.read_role",
    "rbac.*.delete_role",
    "rbac.*.add_permission_to_key",
    "rbac.*.remove_permission_from_key",
    "rbac.*.add_role_to_key",
    "rbac.*.remove_role_from_key",
];

/// Extracts the bearer token. Missing is a 400 and so is a header of the wrong shape:
/// both are client mistakes, distinct from a token we do not know (401).
pub fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let header = header.ok_or_else(ApiError::missing_auth)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or_else(ApiError::malformed_auth)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::malformed_auth());
    }
    Ok(token)
}

/// An authenticated root key: the workspace it acts for and what it may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootScope {
    pub key_id: String,
    pub workspace_id: String,
    /// Sorted.
    pub permissions: Vec<String>,
}

impl RootScope {
    /// A root key snapshot becomes a scope; anything else is a 401. A normal key used as
    /// a root key is as unknown as a random string, and says so in the same words.
    pub fn from_snapshot(
        snapshot: Option<&KeySnapshot>,
        now_ms: i64,
    ) -> Result<RootScope, ApiError> {
        let unknown = || {
            ApiError::unauthorized(
                "The provided root key is invalid. Check that you are using a root key, not a key of your API.",
            )
        };
        let s = snapshot.ok_or_else(unknown)?;
        let workspace_id = s.for_workspace_id.as_ref().ok_or_else(unknown)?;
        if s.deleted || !s.enabled || s.is_expired(now_ms) {
            return Err(unknown());
        }
        Ok(RootScope {
            key_id: s.key_id.clone(),
            workspace_id: workspace_id.clone(),
            permissions: s.permissions.clone(),
        })
    }

    fn has(&self, p: &str) -> bool {
        self.permissions
            .binary_search_by(|x| x.as_str().cmp(p))
            .is_ok()
    }

    /// May act on `resource` `id` (or on every id when `id` is `None` and the grant is `*`).
    pub fn allows(&self, resource: &str, id: Option<&str>, action: &str) -> bool {
        if self.has(&format!("{resource}.*.{action}")) {
            return true;
        }
        id.is_some_and(|id| self.has(&format!("{resource}.{id}.{action}")))
    }

    /// Holds the action for at least one id: decides 403 versus a per-item answer.
    pub fn allows_any(&self, resource: &str, action: &str) -> bool {
        let head = format!("{resource}.");
        let tail = format!(".{action}");
        self.permissions.iter().any(|p| {
            p.starts_with(&head) && p.ends_with(&tail) && p.len() > head.len() + tail.len()
        })
    }

    /// 403 unless the key may act on `id` (or on all, for `None`).
    pub fn require(&self, resource: &str, id: Option<&str>, action: &str) -> Result<(), ApiError> {
        if self.allows(resource, id, action) {
            Ok(())
        } else {
            let target = id.unwrap_or("*");
            Err(ApiError::forbidden(format!(
                "The root key lacks the permission '{resource}.{target}.{action}'."
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fixtures;

    fn scope(perms: &[&str]) -> RootScope {
        let mut permissions: Vec<String> = perms.iter().map(|s| s.to_string()).collect();
        permissions.sort();
        RootScope {
            key_id: "key_r".into(),
            workspace_id: "ws_1".into(),
            permissions,
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        assert_eq!(bearer_token(None).unwrap_err().status, 400);
        assert_eq!(bearer_token(Some("Basic abc")).unwrap_err().status, 400);
        assert_eq!(bearer_token(Some("Bearer")).unwrap_err().status, 400);
        assert_eq!(bearer_token(Some("Bearer a b")).unwrap_err().status, 400);
    }

    #[test]
    fn wildcard_and_specific_grants() {
        let s = scope(&["api.*.verify_key", "api.api_1.create_key"]);
        assert!(s.allows("api", Some("api_9"), "verify_key"));
        assert!(s.allows("api", Some("api_1"), "create_key"));
        assert!(!s.allows("api", Some("api_2"), "create_key"));
        assert!(!s.allows("api", None, "create_key"));
        assert!(s.allows_any("api", "create_key"));
        assert!(!s.allows_any("api", "delete_key"));
        assert_eq!(
            s.require("api", Some("api_2"), "create_key")
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn only_live_root_keys_authenticate() {
        let normal = fixtures::key();
        assert_eq!(
            RootScope::from_snapshot(Some(&normal), 0)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(RootScope::from_snapshot(None, 0).unwrap_err().status, 401);
        let mut root = fixtures::key();
        root.for_workspace_id = Some("ws_1".into());
        assert_eq!(
            RootScope::from_snapshot(Some(&root), 0)
                .unwrap()
                .workspace_id,
            "ws_1"
        );
        root.expires = Some(10);
        assert_eq!(
            RootScope::from_snapshot(Some(&root), 10)
                .unwrap_err()
                .status,
            401
        );
    }
}
