//! `identities.*`.

use keyway_core::api::identities::{
    CreateIdentityRequest, IdentityRef, ListRequest, UpdateIdentityRequest,
};

use crate::service;

one!(create_identity, CreateIdentityRequest => service::identities::create_identity);

one!(get_identity, IdentityRef => service::identities::get_identity);

page!(list_identities, ListRequest => service::identities::list_identities);

one!(update_identity, UpdateIdentityRequest => service::identities::update_identity);

one!(delete_identity, IdentityRef => service::identities::delete_identity);
