//! Reading analytics: the SQL of `analytics.getVerifications` and
//! `analytics.getRatelimits` is parsed and rewritten (`rewrite`, with `functions`,
//! `tables`, `cost` and `seal`), then run by a `reader` that enforces the sandbox again
//! in the database itself.

pub mod cost;
mod error;
pub mod functions;
pub mod reader;
pub mod rewrite;
pub mod seal;
pub mod tables;

pub use error::QueryError;
pub use rewrite::{PLAN_STACK_BYTES, plan, plan_on_own_stack};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::AnalyticsLimits;

/// What the analytics routes need: their own reader, its bounds, and who is running
/// queries now.
pub struct Analytics {
    pub reader: reader::Reader,
    pub limits: AnalyticsLimits,
    pub running: Running,
}

/// Queries running per root key, so one caller cannot hold every analytics connection.
#[derive(Default, Clone)]
pub struct Running(Arc<Mutex<HashMap<String, usize>>>);

/// One running query; dropping it frees its place.
pub struct Slot {
    running: Running,
    key_id: String,
}

impl Running {
    /// A place for `key_id`'s query, if it has fewer than `max` running.
    pub fn enter(&self, key_id: &str, max: usize) -> Option<Slot> {
        let mut map = self.0.lock().ok()?;
        let n = map.entry(key_id.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            running: self.clone(),
            key_id: key_id.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.running.0.lock()
            && let Some(n) = map.get_mut(&self.key_id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_at_most_its_places_and_frees_them() {
        let r = Running::default();
        let a = r.enter("k1", 2).unwrap();
        let _b = r.enter("k1", 2).unwrap();
        assert!(r.enter("k1", 2).is_none());
        assert!(r.enter("k2", 2).is_some(), "another key is not affected");
        drop(a);
        assert!(r.enter("k1", 2).is_some());
        assert!(
            r.0.lock().unwrap().get("k2").is_none(),
            "an idle key holds no entry"
        );
    }
}
