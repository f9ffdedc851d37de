//! Root keys: who may call the API, and for what.
//!
//! Root-key permissions are tuples `<resource>.<id or *>.<action>`, e.g.
//! `api.*.verify_key` or `api.api_123.create_key`. Unlike permission queries, `*` here
//! does mean "any id". The edge and the origin both authorize with these functions, so a
//! request is refused the same way whichever one answers it.

use std::sync::Arc;

use crate::error::ApiError;
use crate::snapshot::KeySnapshot;

/// What a root key may be granted: each action belongs to one resource, and a grant
/// names both (`api.*.create_key`). Handlers name an `Action`, never a string, so a typo
/// cannot silently authorize nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateApi,
    ReadApi,
    DeleteApi,
    UpdateApi,
    CreateKey,
    ReadKey,
    UpdateKey,
    DeleteKey,
    VerifyKey,
    EncryptKey,
    DecryptKey,
    /// `api.<id>.read_analytics`: `analytics.getVerifications` over that API's rows.
    ReadAnalytics,
    Limit,
    ReadOverride,
    SetOverride,
    DeleteOverride,
    /// `ratelimit.<namespace>.read_analytics`: `analytics.getRatelimits` over it.
    ReadRatelimitAnalytics,
    CreateIdentity,
    ReadIdentity,
    UpdateIdentity,
    DeleteIdentity,
    CreatePermission,
    ReadPermission,
    DeletePermission,
    CreateRole,
    ReadRole,
    DeleteRole,
    AddPermissionToKey,
    RemovePermissionFromKey,
    AddRoleToKey,
    RemoveRoleFromKey,
    AddPermissionToRole,
    RemovePermissionFromRole,
}

impl Action {
    /// Every action, in the order a bootstrap root key is granted them.
    pub const ALL: [Action; 33] = [
        Action::CreateApi,
        Action::ReadApi,
        Action::DeleteApi,
        Action::UpdateApi,
        Action::CreateKey,
        Action::ReadKey,
        Action::UpdateKey,
        Action::DeleteKey,
        Action::VerifyKey,
        Action::EncryptKey,
        Action::DecryptKey,
        Action::ReadAnalytics,
        Action::Limit,
        Action::ReadOverride,
        Action::SetOverride,
        Action::DeleteOverride,
        Action::ReadRatelimitAnalytics,
        Action::CreateIdentity,
        Action::ReadIdentity,
        Action::UpdateIdentity,
        Action::DeleteIdentity,
        Action::CreatePermission,
        Action::ReadPermission,
        Action::DeletePermission,
        Action::CreateRole,
        Action::ReadRole,
        Action::DeleteRole,
        Action::AddPermissionToKey,
        Action::RemovePermissionFromKey,
        Action::AddRoleToKey,
        Action::RemoveRoleFromKey,
        Action::AddPermissionToRole,
        Action::RemovePermissionFromRole,
    ];

    /// The resource part of a grant: `api`, `ratelimit`, `identity` or `rbac`.
    pub const fn resource(self) -> &'static str {
        use Action::*;
        match self {
            CreateApi | ReadApi | DeleteApi | UpdateApi | CreateKey | ReadKey | UpdateKey
            | DeleteKey | VerifyKey | EncryptKey | DecryptKey | ReadAnalytics => "api",
            Limit | ReadOverride | SetOverride | DeleteOverride | ReadRatelimitAnalytics => {
                "ratelimit"
            }
            CreateIdentity | ReadIdentity | UpdateIdentity | DeleteIdentity => "identity",
            CreatePermission
            | ReadPermission
            | DeletePermission
            | CreateRole
            | ReadRole
            | DeleteRole
            | AddPermissionToKey
            | RemovePermissionFromKey
            | AddRoleToKey
            | RemoveRoleFromKey
            | AddPermissionToRole
            | RemovePermissionFromRole => "rbac",
        }
    }

    /// The action part of a grant, as Unkey spells it.
    pub const fn name(self) -> &'static str {
        use Action::*;
        match self {
            CreateApi => "create_api",
            ReadApi => "read_api",
            DeleteApi => "delete_api",
            UpdateApi => "update_api",
            CreateKey => "create_key",
            ReadKey => "read_key",
            UpdateKey => "update_key",
            DeleteKey => "delete_key",
            VerifyKey => "verify_key",
            EncryptKey => "encrypt_key",
            DecryptKey => "decrypt_key",
            ReadAnalytics | ReadRatelimitAnalytics => "read_analytics",
            Limit => "limit",
            ReadOverride => "read_override",
            SetOverride => "set_override",
            DeleteOverride => "delete_override",
            CreateIdentity => "create_identity",
            ReadIdentity => "read_identity",
            UpdateIdentity => "update_identity",
            DeleteIdentity => "delete_identity",
            CreatePermission => "create_permission",
            ReadPermission => "read_permission",
            DeletePermission => "delete_permission",
            CreateRole => "create_role",
            ReadRole => "read_role",
            DeleteRole => "delete_role",
            AddPermissionToKey => "add_permission_to_key",
            RemovePermissionFromKey => "remove_permission_from_key",
            AddRoleToKey => "add_role_to_key",
            RemoveRoleFromKey => "remove_role_from_key",
            AddPermissionToRole => "add_permission_to_role",
            RemovePermissionFromRole => "remove_permission_from_role",
        }
    }

    /// The grant on every id: `<resource>.*.<action>`.
    pub fn wildcard_grant(self) -> String {
        format!("{}.*.{}", self.resource(), self.name())
    }
}

/// Every root-key permission the API knows, as wildcard grants; a bootstrap root key
/// gets all of them.
pub fn all_root_permissions() -> Vec<String> {
    Action::ALL.iter().map(|a| a.wildcard_grant()).collect()
}

/// The longest root key taken to a lookup. Root keys are a few dozen characters; a longer
/// token is no root key of ours, and refusing it costs no lookup.
pub const MAX_ROOT_KEY_BYTES: usize = 256;

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

/// The bearer token as a root key: one that cannot be a root key (longer than
/// [`MAX_ROOT_KEY_BYTES`], or with anything but visible ASCII) is malformed, refused
/// before any lookup. Only root keys get this rule; the edge secret is the operator's.
pub fn root_key_token(header: Option<&str>) -> Result<&str, ApiError> {
    let token = bearer_token(header)?;
    if token.len() > MAX_ROOT_KEY_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::malformed_auth());
    }
    Ok(token)
}

/// The ids a root key holds an action on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    All,
    Only(Vec<String>),
    None,
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
fn grant_covers(grant: &str, action: Action, id: Option<&str>) -> bool {
    match grant_target(grant, action) {
        Some("*") => true,
        Some(m) => id == Some(m),
        None => false,
    }
}

/// The id part of `<resource>.<id>.<action>`, if `grant` is for that resource and action.
fn grant_target(grant: &str, action: Action) -> Option<&str> {
    grant
        .strip_prefix(action.resource())
        .and_then(|g| g.strip_prefix('.'))
        .and_then(|g| g.strip_suffix(action.name()))
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

    /// The root key's own id: what per-caller quotas count by.
    pub fn key_id(&self) -> &str {
        &self.snapshot.key_id
    }

    pub fn permissions(&self) -> &[String] {
        &self.snapshot.permissions
    }

    /// May do `action` on `id` (or on every id when `id` is `None` and the grant is `*`).
    pub fn allows(&self, action: Action, id: Option<&str>) -> bool {
        self.permissions()
            .iter()
            .any(|g| grant_covers(g, action, id))
    }

    /// Holds the action for at least one id: decides 403 versus a per-item answer.
    pub fn allows_any(&self, action: Action) -> bool {
        self.permissions()
            .iter()
            .any(|g| grant_target(g, action).is_some_and(|m| !m.is_empty()))
    }

    /// The ids the key may do `action` on: every one (a `*` grant), these, or none.
    pub fn targets(&self, action: Action) -> Targets {
        let mut ids = Vec::new();
        for g in self.permissions() {
            match grant_target(g, action) {
                Some("*") => return Targets::All,
                Some(id) if !id.is_empty() => ids.push(id.to_string()),
                _ => {}
            }
        }
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            Targets::None
        } else {
            Targets::Only(ids)
        }
    }

    /// 403 unless the key may verify keys of at least one API. Checked before the key is
    /// looked up; whether it may verify *this* key's API is part of the decision itself.
    pub fn require_verifier(&self) -> Result<(), ApiError> {
        if self.allows_any(Action::VerifyKey) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "The root key has no permission to verify keys ('api.*.verify_key' or 'api.<apiId>.verify_key').",
            ))
        }
    }

    /// 403 unless the key may act on `id` (or on all, for `None`).
    pub fn require(&self, action: Action, id: Option<&str>) -> Result<(), ApiError> {
        if self.allows(action, id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "The root key lacks the permission '{}.{}.{}'.",
                action.resource(),
                id.unwrap_or("*"),
                action.name()
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
        // What cannot be a root key is refused before any lookup.
        let longest = "k".repeat(MAX_ROOT_KEY_BYTES);
        assert!(root_key_token(Some(&format!("Bearer {longest}"))).is_ok());
        for bad in [
            format!("{longest}k"),
            "ключ".into(),
            "a\tb".into(),
            "a\u{7f}".into(),
        ] {
            let header = format!("Bearer {bad}");
            assert_eq!(
                root_key_token(Some(&header)).unwrap_err().status,
                400,
                "{bad:?}"
            );
        }
        // The rule is for root keys: any other bearer (the edge secret) keeps its shape.
        assert!(bearer_token(Some(&format!("Bearer {longest}k"))).is_ok());
    }

    #[test]
    fn wildcard_and_specific_grants() {
        let s = scope(&["api.*.verify_key", "api.api_1.create_key"]);
        assert!(s.allows(Action::VerifyKey, Some("api_9")));
        assert!(s.allows(Action::CreateKey, Some("api_1")));
        assert!(!s.allows(Action::CreateKey, Some("api_2")));
        assert!(!s.allows(Action::CreateKey, None));
        assert!(s.allows_any(Action::CreateKey));
        assert!(!s.allows_any(Action::DeleteKey));
        let denied = s.require(Action::CreateKey, Some("api_2")).unwrap_err();
        assert_eq!(denied.status, 403);
        assert!(denied.detail.contains("'api.api_2.create_key'"));
        // Prefixes and suffixes must match whole segments.
        assert!(!scope(&["apis.*.verify_key"]).allows(Action::VerifyKey, Some("x")));
        assert!(!scope(&["api.*.verify_keys"]).allows(Action::VerifyKey, Some("x")));
        assert!(!scope(&["api..verify_key"]).allows_any(Action::VerifyKey));
        assert!(!scope(&["api.x.verify_key"]).allows(Action::VerifyKey, Some("y")));
    }

    #[test]
    fn targets_list_the_granted_ids() {
        let s = scope(&[
            "api.api_2.read_analytics",
            "api.api_1.read_analytics",
            "api.api_1.read_key",
        ]);
        assert_eq!(
            s.targets(Action::ReadAnalytics),
            Targets::Only(vec!["api_1".into(), "api_2".into()])
        );
        assert_eq!(s.targets(Action::ReadRatelimitAnalytics), Targets::None);
        let s = scope(&["api.api_1.read_analytics", "api.*.read_analytics"]);
        assert_eq!(s.targets(Action::ReadAnalytics), Targets::All);
        let s = scope(&["ratelimit.*.read_analytics"]);
        assert_eq!(s.targets(Action::ReadRatelimitAnalytics), Targets::All);
        assert_eq!(s.targets(Action::ReadAnalytics), Targets::None);
    }

    #[test]
    fn every_action_has_one_distinct_grant() {
        let all = all_root_permissions();
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), Action::ALL.len());
        let s = scope(&all.iter().map(String::as_str).collect::<Vec<_>>());
        for a in Action::ALL {
            assert!(s.allows(a, Some("any_id")), "{a:?}");
            let only = scope(&[&a.wildcard_grant()]);
            let others = Action::ALL.iter().filter(|b| **b != a);
            assert!(others.into_iter().all(|b| !only.allows(*b, None)), "{a:?}");
        }
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
