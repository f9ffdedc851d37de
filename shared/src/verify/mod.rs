//! The verification decision, in the one order both deployment models follow.
//!
//! [`plan`] is a pure function of the snapshot, the request, the caller and `now`. It
//! decides everything the snapshot alone can decide ([`Plan::Decided`]); what depends on
//! counters comes back as a [`Pending`] admission ([`Plan::Admit`]). The origin admits it
//! against its counters (memory, or Redis in cluster mode) and calls [`Pending::finish`];
//! the edge holds no counters and forwards it to the origin. Both answer the same way
//! because both run this code.

mod event;
mod limits;
mod order;
#[cfg(test)]
mod tests;

pub use event::EventContext;
pub use limits::resolve_limits;
pub use order::{Pending, Plan, Verdict, plan};
