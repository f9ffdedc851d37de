//! `ratelimit.*`: standalone rate limiting by namespace and identifier, with overrides.

use keyway_core::api::ratelimit::{
    LimitRequest, ListOverridesRequest, OverrideRef, SetOverrideRequest,
};

use crate::service;

one!(limit, LimitRequest => service::ratelimit::limit);

one!(multi_limit, Vec<LimitRequest> => service::ratelimit::multi_limit);

one!(set_override, SetOverrideRequest => service::ratelimit::set_override);

one!(get_override, OverrideRef => service::ratelimit::get_override);

page!(list_overrides, ListOverridesRequest => service::ratelimit::list_overrides);

one!(delete_override, OverrideRef => service::ratelimit::delete_override);
