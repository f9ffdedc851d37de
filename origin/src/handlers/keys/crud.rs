//! Keys themselves: create, read, update, delete, reroll.

use keyway_core::api::keys::{
    CreateKeyRequest, DeleteKeyRequest, GetKeyRequest, RerollKeyRequest, UpdateKeyRequest,
    WhoamiRequest,
};

use crate::service;

one!(create_key, CreateKeyRequest => service::keys::crud::create_key);

one!(get_key, GetKeyRequest => service::keys::crud::get_key);

one!(whoami, WhoamiRequest => service::keys::crud::whoami);

one!(delete_key, DeleteKeyRequest => service::keys::crud::delete_key);

one!(update_key, UpdateKeyRequest => service::keys::crud::update_key);

one!(reroll_key, RerollKeyRequest => service::keys::crud::reroll_key);
