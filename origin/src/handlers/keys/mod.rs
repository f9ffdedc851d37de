//! `keys.*` except verifyKey, one room per concern.

mod credits;
mod crud;
mod grants;
mod migrate;

pub use credits::update_credits;
pub use crud::{create_key, delete_key, get_key, reroll_key, update_key, whoami};
pub use grants::{
    add_permissions, add_roles, remove_permissions, remove_roles, set_permissions, set_roles,
};
pub use migrate::migrate_keys;
