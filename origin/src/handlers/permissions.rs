//! `permissions.*`: workspace permissions and roles.

use keyway_core::api::identities::ListRequest;
use keyway_core::api::permissions::{
    CreatePermissionRequest, CreateRoleRequest, PermissionRef, RoleRef, SetRolePermissionsRequest,
};

use crate::service;

one!(create_permission, CreatePermissionRequest => service::permissions::create_permission);

one!(get_permission, PermissionRef => service::permissions::get_permission);

page!(list_permissions, ListRequest => service::permissions::list_permissions);

one!(delete_permission, PermissionRef => service::permissions::delete_permission);

one!(create_role, CreateRoleRequest => service::permissions::create_role);

one!(get_role, RoleRef => service::permissions::get_role);

page!(list_roles, ListRequest => service::permissions::list_roles);

one!(delete_role, RoleRef => service::permissions::delete_role);

// Replaces the role's permissions as a whole; the keys holding the role see the new set
// on their next verification.
one!(set_role_permissions, SetRolePermissionsRequest => service::permissions::set_role_permissions);
