//! Between the handlers and the store: one module per API group (`apis`, `identities`,
//! `keys`, `permissions`, `ratelimit`) holds what each route does and how its body is
//! validated. Handlers only extract (`http::Call`), call these, and shape the answer;
//! the rules every route shares live here once: who may act (`access`), what exists for
//! the caller (`resources`), field rules (`validate`), response shapes loaded in batches
//! (`views`), sealing and opening recoverable keys (`recovery`), and the verification
//! flow both verify routes run (`verify`).

pub mod access;
pub mod apis;
pub mod identities;
pub mod keys;
pub mod permissions;
pub mod ratelimit;
pub mod recovery;
pub mod resources;
pub mod validate;
pub mod verify;
pub mod views;

use std::future::Future;
use std::ops::Deref;
use std::time::Instant;

use keyway_core::auth::RootScope;

use crate::error::AppError;
use crate::ids::RequestId;
use crate::state::AppState;
use crate::store::{HashFilter, Store, StoreResult};

/// One authenticated call into a service: the state it acts on, who asks (the root key's
/// scope, which it derefs to), and the request it came with. Every service takes this
/// one argument, so what a write must know of its caller (for an audit record, say) is
/// in one place.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub state: &'a AppState,
    pub scope: &'a RootScope,
    pub ctx: Context,
}

impl<'a> Caller<'a> {
    pub fn new(state: &'a AppState, scope: &'a RootScope, ctx: Context) -> Self {
        Caller { state, scope, ctx }
    }

    /// The store this call reads and writes.
    pub fn store(&self) -> &'a Store {
        &self.state.store
    }

    /// Runs `write`, which changes how the keys `touched` selects verify, then drops those
    /// keys' cached snapshots (across the cluster too). The keys are found before the
    /// write runs, because a delete removes the links that find them.
    pub async fn changing_keys<T>(
        &self,
        touched: HashFilter<'_>,
        write: impl Future<Output = StoreResult<T>>,
    ) -> Result<T, AppError> {
        let hashes = self.store().hashes_where(touched).await?;
        let out = write.await?;
        self.state.forget(hashes.iter().map(String::as_str)).await;
        Ok(out)
    }
}

impl Deref for Caller<'_> {
    type Target = RootScope;
    fn deref(&self) -> &RootScope {
        self.scope
    }
}

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

/// One page of a list, and the cursor of the next when there is one.
pub struct Page<T> {
    pub items: Vec<T>,
    pub cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, cursor: Option<String>) -> Self {
        Page { items, cursor }
    }
}

/// Fetches one more than the page and turns the extra into a cursor.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let cursor = rows.last().map(&id);
        (rows, cursor)
    } else {
        (rows, None)
    }
}
