//! Integers the spec declares `int64`, held as `u64` where they cannot be negative.
//!
//! serde accepts any `u64` for a `u64` field, so without these a body could carry values
//! up to 2^64 - 1 that Unkey's spec (and its SDKs) reject, and that overflow `BIGINT`
//! columns and counter arithmetic downstream. Each request field that is an `int64` in
//! the spec deserializes through one of these, so an out-of-range number is a 400 that
//! names the field, like any other schema error.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

use super::Patch;

pub const MAX: u64 = i64::MAX as u64;

/// `v` if it is at most `max`, else the schema error that says why (`what` the bound is).
fn at_most<E: Error>(v: u64, max: u64, what: &str) -> Result<u64, E> {
    if v <= max {
        Ok(v)
    } else {
        Err(E::custom(format!(
            "must be at most {max} ({what}), got {v}"
        )))
    }
}

fn bounded<E: Error>(v: u64) -> Result<u64, E> {
    at_most(v, MAX, "a 64-bit signed integer")
}

/// Credits, refill amounts, limits and costs: 2^53 - 1 at most. Redis's Lua counts in
/// doubles and the Unkey SDK's JavaScript numbers cannot carry more, so a larger value
/// would be counted wrong in cluster mode (or read wrong by a client) instead of refused.
pub const COUNTER_MAX: u64 = (1 << 53) - 1;

fn counter_bounded<E: Error>(v: u64) -> Result<u64, E> {
    at_most(
        v,
        COUNTER_MAX,
        "2^53 - 1, the largest integer JavaScript and Redis count exactly",
    )
}

pub fn counter<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    counter_bounded(u64::deserialize(d)?)
}

pub fn opt_counter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(counter_bounded)
        .transpose()
}

pub fn patch_counter<'de, D: Deserializer<'de>>(d: D) -> Result<Patch<u64>, D::Error> {
    Ok(match Patch::<u64>::deserialize(d)? {
        Patch::Value(v) => Patch::Value(counter_bounded(v)?),
        other => other,
    })
}

pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    bounded(u64::deserialize(d)?)
}

pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?.map(bounded).transpose()
}

pub fn patch<'de, D: Deserializer<'de>>(d: D) -> Result<Patch<u64>, D::Error> {
    Ok(match Patch::<u64>::deserialize(d)? {
        Patch::Value(v) => Patch::Value(bounded(v)?),
        other => other,
    })
}
