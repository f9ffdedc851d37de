//! Between the handlers and the store. Handlers parse, call these, and shape the answer;
//! the rules every route shares live here once: who may act (`access`), what exists for
//! the caller (`resources`), field rules (`validate`), response shapes loaded in batches
//! (`views`), sealing and opening recoverable keys (`recovery`), and the verification
//! flow both verify routes run (`verify`).

pub mod access;
pub mod recovery;
pub mod resources;
pub mod validate;
pub mod verify;
pub mod views;

use std::time::Instant;

use crate::ids::RequestId;

/// What a service needs to know of the request it serves, handed in by the handler: the
/// services never read the HTTP layer's task-locals.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub request: RequestId,
    pub started: Instant,
}

impl Context {
    pub fn latency_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}
