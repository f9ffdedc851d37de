//! Root keys: who may call the API, and for what.
//!
//! Root-key permissions are tuples `<resource>.<id or *>.<action>`, e.g.
//! `api.*.verify_key` or `api.api_123.create_key`. Unlike permission queries, `*` here
//! does mean "any id". The edge and the origin both authorize with these functions, so a
//! request is refused the same way whichever one answers it.

use std::sync::Arc;

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
    "rbac.*.add_permission_to_role",
    "rbac.*.remove_permission_from_role",
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
///
/// It shares the cached snapshot instead of copying its grants: a bootstrap root key has
/// about thirty, and copying them on every request was measurable on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootScope {
    snapshot: Arc<KeySnapshot>,
}

/// Does `grant` (`<resource>.<id or *>.<action>`) cover `resource` `id` `action`?
/// `id: None` asks for the wildcard grant. Compares in place, allocating nothing.
fn grant_covers(grant: &str, resource: &str, id: Option<&str>, action: &str) -> bool {
    match grant_target(grant, resource, action) {
        Some("*") => true,
        Some(m) => id == Some(m),
        None => false,
    }
}

/// The id part of `<resource>.<id>.<action>`, if `grant` is for that resource and action.
fn grant_target<'g>(grant: &'g str, resource: &str, action: &str) -> Option<&'g str> {
    grant
        .strip_prefix(resource)
        .and_then(|g| g.strip_prefix('.'))
        .and_then(|g| g.strip_suffix(action))
        .and_then(|g| g.strip_suffix('.'))
}

impl RootScope {
    /// A root key snapshot becomes a scope; anything else is a 401. A normal key used as
    /// a root key is as unknown as a random string, and says so in the same words.
    pub fn from_snapshot(
        snapshot: Option<Arc<KeySnapshot>>,
        now_ms: i64,
    ) -> Result<RootScope, ApiError> {
        let unknown = || {
            ApiError::unauthorized(
                "The provided root key is invalid. Check that you are using a root key, not a key of your API.",
            )
        };
        let s = snapshot.ok_or_else(unknown)?;
        if s.for_workspace_id.is_none() || s.deleted || !s.enabled || s.is_expired(now_ms) {
            return Err(unknown());
        }
        Ok(RootScope { snapshot: s })
    }

    pub fn workspace_id(&self) -> &str {
        self.snapshot
            .for_workspace_id
            .as_deref()
            .unwrap_or_default()
    }

    pub fn permissions(&self) -> &[String] {
        &self.snapshot.permissions
    }

    /// May act on `resource` `id` (or on every id when `id` is `None` and the grant is `*`).
    pub fn allows(&self, resource: &str, id: Option<&str>, action: &str) -> bool {
        self.permissions()
            .iter()
            .any(|g| grant_covers(g, resource, id, action))
    }

    /// Holds the action for at least one id: decides 403 versus a per-item answer.
    pub fn allows_any(&self, resource: &str, action: &str) -> bool {
        self.permissions()
            .iter()
            .any(|g| grant_target(g, resource, action).is_some_and(|m| !m.is_empty()))
    }

    /// 403 unless the key may verify keys of at least one API. Checked before the key is
    /// looked up; whether it may verify *this* key's API is part of the decision itself.
    pub fn require_verifier(&self) -> Result<(), ApiError> {
        if self.allows_any("api", "verify_key") {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "The root key has no permission to verify keys ('api.*.verify_key' or 'api.<apiId>.verify_key').",
            ))
        }
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
pub(crate) mod tests {
    use super::*;
    use crate::snapshot::fixtures;

    pub(crate) fn scope(perms: &[&str]) -> RootScope {
        let mut root = fixtures::key();
        root.for_workspace_id = Some("ws_1".into());
        root.permissions = perms.iter().map(|s| s.to_string()).collect();
        RootScope::from_snapshot(Some(Arc::new(root.normalized())), 0).unwrap()
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
        // Prefixes and suffixes must match whole segments.
        assert!(!scope(&["apis.*.verify_key"]).allows("api", Some("x"), "verify_key"));
        assert!(!scope(&["api.*.verify_keys"]).allows("api", Some("x"), "verify_key"));
        assert!(!scope(&["api..verify_key"]).allows_any("api", "verify_key"));
        assert!(!scope(&["api.x.verify_key"]).allows("api", Some("y"), "verify_key"));
    }

    #[test]
    fn only_live_root_keys_authenticate() {
        let normal = Arc::new(fixtures::key());
        assert_eq!(
            RootScope::from_snapshot(Some(normal), 0)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(RootScope::from_snapshot(None, 0).unwrap_err().status, 401);
        let mut root = fixtures::key();
        root.for_workspace_id = Some("ws_1".into());
        let scope = RootScope::from_snapshot(Some(Arc::new(root.clone())), 0).unwrap();
        assert_eq!(scope.workspace_id(), "ws_1");
        root.expires = Some(10);
        assert_eq!(
            RootScope::from_snapshot(Some(Arc::new(root)), 10)
                .unwrap_err()
                .status,
            401
        );
    }
}
