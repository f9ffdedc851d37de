//! `keys.updateCredits`: a balance set, raised or lowered from its live value.

use keyway_core::api::keys::UpdateCreditsRequest;

use crate::service;

one!(update_credits, UpdateCreditsRequest => service::keys::credits::update_credits);
