//! A key's direct permissions and roles: add, set, remove.

use keyway_core::api::keys::{KeyPermissionsRequest, KeyRolesRequest};

use crate::service::keys::grants::{NonEmpty, change_permissions, change_roles};
use crate::store::SetOp;

one!(add_permissions, NonEmpty<KeyPermissionsRequest> => change_permissions, SetOp::Add);

one!(set_permissions, KeyPermissionsRequest => change_permissions, SetOp::Set);

one!(remove_permissions, NonEmpty<KeyPermissionsRequest> => change_permissions, SetOp::Remove);

one!(add_roles, NonEmpty<KeyRolesRequest> => change_roles, SetOp::Add);

one!(set_roles, KeyRolesRequest => change_roles, SetOp::Set);

one!(remove_roles, NonEmpty<KeyRolesRequest> => change_roles, SetOp::Remove);
