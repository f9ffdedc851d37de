//! The network profiles: where the caller, the edge and the origin sit.
//!
//! Delays are one-way and injected for real by the delay proxies; the Cache API's read
//! latency is injected by the cache service. Everything else is measured.

use serde::Serialize;

use crate::cache_api::ReadDelay;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub about: &'static str,
    /// One-way delays in milliseconds.
    pub client_edge_ms: u64,
    pub client_origin_ms: u64,
    pub edge_origin_ms: u64,
    pub cache_read: ReadDelay,
}

impl Profile {
    pub fn is_local(&self) -> bool {
        self.client_edge_ms == 0
            && self.client_origin_ms == 0
            && self.edge_origin_ms == 0
            && self.cache_read == ReadDelay::None
    }
}

pub const ALL: [Profile; 4] = [
    Profile {
        name: "local",
        about: "everything on loopback, no added delay: the cost of the software alone",
        client_edge_ms: 0,
        client_origin_ms: 0,
        edge_origin_ms: 0,
        cache_read: ReadDelay::None,
    },
    Profile {
        name: "near",
        about: "the origin in the caller's region: edge 2 ms away, origin 5 ms, edge to origin 5 ms",
        client_edge_ms: 2,
        client_origin_ms: 5,
        edge_origin_ms: 5,
        cache_read: ReadDelay::None,
    },
    Profile {
        name: "far",
        about: "the origin on another continent (80 ms round trip from caller and edge); edge 2 ms away",
        client_edge_ms: 2,
        client_origin_ms: 40,
        edge_origin_ms: 40,
        cache_read: ReadDelay::None,
    },
    Profile {
        name: "seed",
        about: "the story's v1: Cache API reads with p50 4 ms and p99 30 ms, edge 2 ms away, origin 5 ms from the caller (Global Accelerator) and 40 ms from the edge",
        client_edge_ms: 2,
        client_origin_ms: 5,
        edge_origin_ms: 40,
        cache_read: ReadDelay::LogNormal {
            p50_ms: 4.0,
            p99_ms: 30.0,
        },
    },
];

pub fn by_name(name: &str) -> Option<Profile> {
    ALL.iter().copied().find(|p| p.name == name)
}
