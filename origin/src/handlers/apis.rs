//! `apis.*`.

use keyway_core::api::apis::{ApiIdRequest, CreateApiRequest, ListKeysRequest};

use crate::service;

one!(create_api, CreateApiRequest => service::apis::create_api);

one!(get_api, ApiIdRequest => service::apis::get_api);

one!(delete_api, ApiIdRequest => service::apis::delete_api);

page!(list_keys, ListKeysRequest => service::apis::list_keys);
