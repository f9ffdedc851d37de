//! The HTTP API, by route and then by status: each file is one route group, and inside it
//! a `status_NNN` module holds the stories that end in that status. `matrix` gives every
//! authenticated route its own 200, 400, 401, 403 (and 404) test from one table, so a
//! route or a status without a test shows as a missing name.

mod analytics;
mod apis;
mod identities;
mod keys;
mod matrix;
mod migrate_keys;
mod permissions;
mod ratelimit;
mod service;
mod verify_key;
