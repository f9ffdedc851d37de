//! Cluster mode's counters: every rate-limit window and credit balance lives in Redis,
//! and one verification is one script call (`admit.lua`), which admits its limits and
//! its credit spend together.

pub mod credits;
pub mod script;
