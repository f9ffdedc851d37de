//! The permission and role routes.

use serde_json::{Value, json};

use crate::both;

/// setRolePermissions as `root_key` (the server's own when `None`).
async fn set_role(
    srv: &crate::harness::Server,
    root_key: Option<&str>,
    role: &str,
    permissions: &[&str],
) -> (u16, Value) {
    let (status, body) = srv
        .call_as(
            "/v2/permissions.setRolePermissions",
            Some(root_key.unwrap_or(&srv.root_key)),
            json!({"roleId": role, "permissions": permissions}),
        )
        .await;
    (status, body.get("data").cloned().unwrap_or(body))
}

fn slugs(permissions: &Value) -> Vec<&str> {
    permissions
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect()
}

mod status_200 {
    use super::*;

    both!(permissions_and_roles_round_trip, |srv| {
        let p = srv
            .ok(
                "/v2/permissions.createPermission",
                json!({"name": "Read", "slug": "docs.read"}),
            )
            .await;
        let pid = p["permissionId"].as_str().unwrap();
        assert_eq!(
            srv.ok("/v2/permissions.getPermission", json!({"permission": pid}))
                .await["slug"],
            "docs.read"
        );
        srv.ok(
            "/v2/permissions.createRole",
            json!({"name": "reader", "permissions": ["docs.read"]}),
        )
        .await;
        let r = srv
            .ok("/v2/permissions.getRole", json!({"role": "reader"}))
            .await;
        assert_eq!(r["permissions"][0]["slug"], "docs.read");
        let (_, roles) = srv
            .call("/v2/permissions.listRoles", json!({"limit": 10}))
            .await;
        assert_eq!(roles["data"].as_array().unwrap().len(), 1);
        let (_, perms) = srv.call("/v2/permissions.listPermissions", json!({})).await;
        assert_eq!(perms["data"].as_array().unwrap().len(), 1);
        srv.ok("/v2/permissions.deleteRole", json!({"role": "reader"}))
            .await;
        srv.ok(
            "/v2/permissions.deletePermission",
            json!({"permission": "docs.read"}),
        )
        .await;
    });

    both!(set_role_permissions_replaces_the_set, |srv| {
        let role = srv
            .ok(
                "/v2/permissions.createRole",
                json!({"name": "editor", "permissions": []}),
            )
            .await["roleId"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, _, key) = srv.create_key(json!({"roles": ["editor"]})).await;
        let may_write = async || {
            srv.verify(json!({"key": key, "permissions": "docs.write"}))
                .await["code"]
                == "VALID"
        };
        assert!(!may_write().await);

        // Missing permissions are created (the server's root key may create them), and the
        // key sees the change at once: its cached snapshot was dropped.
        let (status, held) = set_role(
            &srv,
            None,
            &role,
            &["docs.write", "docs.read", "docs.write"],
        )
        .await;
        assert_eq!(
            (status, slugs(&held)),
            (200, vec!["docs.read", "docs.write"])
        );
        assert!(may_write().await);

        // By name as well as id; the new set replaces the old one.
        let (_, held) = set_role(&srv, None, "editor", &["docs.read"]).await;
        assert_eq!(slugs(&held), ["docs.read"]);
        assert!(!may_write().await);
        let r = srv
            .ok("/v2/permissions.getRole", json!({"role": role}))
            .await;
        assert_eq!(slugs(&r["permissions"]), ["docs.read"]);

        // Empty clears.
        assert_eq!(set_role(&srv, None, &role, &[]).await, (200, json!([])));

        // Errors: unknown role, bad slug, missing grants, no right to create permissions.
        assert_eq!(set_role(&srv, None, "role_nope", &[]).await.0, 404);
        let (status, body) = set_role(&srv, None, &role, &["has space"]).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"]["errors"][0]["location"],
            "body.permissions[0]"
        );
        let adder = srv.root_key_with(&["rbac.*.add_permission_to_role"]);
        assert_eq!(set_role(&srv, Some(&adder), &role, &[]).await.0, 403);
        let both_grants = srv.root_key_with(&[
            "rbac.*.add_permission_to_role",
            "rbac.*.remove_permission_from_role",
        ]);
        assert_eq!(
            set_role(&srv, Some(&both_grants), &role, &["brand.new"])
                .await
                .0,
            403
        );
        assert_eq!(
            set_role(&srv, Some(&both_grants), &role, &["docs.write"])
                .await
                .0,
            200
        );
    });
}
