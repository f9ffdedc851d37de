//! Route handlers, one module per API group. Each parses and validates first, then
//! authenticates, then acts through the service layer: a malformed body is a 400 even
//! without credentials.

pub mod analytics;
pub mod apis;
pub mod identities;
pub mod internal;
pub mod keys;
pub mod ops;
pub mod permissions;
pub mod ratelimit;
pub mod verify;

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
