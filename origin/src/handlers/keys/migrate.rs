//! keys.migrateKeys: moving keys in from another system by their hashes.

use keyway_core::api::keys::MigrateKeysRequest;

use crate::service;

one!(migrate_keys, MigrateKeysRequest => service::keys::migrate::migrate_keys);
