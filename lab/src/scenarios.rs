//! The scenarios: which server a request goes to, and what it asks.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    Baseline,
    Origin,
    Edge,
}

/// The process (or Worker inside workerd) that answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    HelloAxum,
    Origin,
    /// A second origin on the same database with `KEYWAY_CACHE_CAPACITY=0`.
    OriginCold,
    HelloWorkerd,
    /// A Rust Worker answering a fixed body through the `worker` crate entry point.
    HelloRustWorker,
    /// An edge Worker, by its name in the workerd config.
    Edge(&'static str),
}

impl Server {
    /// Whether the caller reaches it over the client-edge link (else client-origin).
    pub fn at_edge(self) -> bool {
        matches!(
            self,
            Server::HelloWorkerd | Server::HelloRustWorker | Server::Edge(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The permission-checked key: decidable anywhere.
    Plain,
    /// The key with credits and a rate limit: decided where the counters are.
    Stateful,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub model: Model,
    pub server: Server,
    pub ask: Ask,
    pub about: &'static str,
    /// What the edge's `x-keyway-served-by` and `x-keyway-cache` must say, checked once
    /// per run so a scenario cannot silently measure another path.
    pub expect_served_by: Option<&'static str>,
    pub expect_cache: Option<&'static str>,
}

/// Edge Worker names in the workerd config (Cap'n Proto wants camelCase), with their `KEYWAY_EDGE_TIERS` and route.
pub const EDGE_WORKERS: [(&str, &str, &str); 4] = [
    ("edgeAll", "memory,cache", "edge"),
    ("edgeCache", "cache", "edge"),
    ("edgeNone", "none", "edge"),
    ("edgeProxy", "memory,cache", "origin"),
];

/// The axum hello-world paced at origin-hot's half rate, for the tail-latency ratio.
/// Not in `ALL`: it runs right after origin-hot, at the rate origin-hot set.
pub const HELLO_AT_ORIGIN_RATE: Scenario = Scenario {
    name: "hello-axum-at-origin-rate",
    model: Model::Baseline,
    server: Server::HelloAxum,
    ask: Ask::Plain,
    about: "axum hello-world at origin-hot's half rate",
    expect_served_by: None,
    expect_cache: None,
};

/// The scenarios the throughput targets compare, run again in alternating rounds.
pub const THROUGHPUT_TARGETS: [&str; 5] = [
    "hello-axum",
    "origin-hot",
    "hello-workerd",
    "hello-rust-worker",
    "edge-hit",
];

pub const ALL: [Scenario; 11] = [
    Scenario {
        name: "hello-axum",
        model: Model::Baseline,
        server: Server::HelloAxum,
        ask: Ask::Plain,
        about: "axum hello-world where the origin runs: the origin stack's limit",
        expect_served_by: None,
        expect_cache: None,
    },
    Scenario {
        name: "hello-workerd",
        model: Model::Baseline,
        server: Server::HelloWorkerd,
        ask: Ask::Plain,
        about: "JS hello-world Worker in the same workerd: the edge stack's limit",
        expect_served_by: None,
        expect_cache: None,
    },
    Scenario {
        name: "hello-rust-worker",
        model: Model::Baseline,
        server: Server::HelloRustWorker,
        ask: Ask::Plain,
        about: "Rust hello-world Worker through the worker crate's entry point, same workerd: the floor of any Rust Worker",
        expect_served_by: None,
        expect_cache: None,
    },
    Scenario {
        name: "origin-hot",
        model: Model::Origin,
        server: Server::Origin,
        ask: Ask::Plain,
        about: "origin, key snapshot in its memory",
        expect_served_by: None,
        expect_cache: None,
    },
    Scenario {
        name: "origin-cold",
        model: Model::Origin,
        server: Server::OriginCold,
        ask: Ask::Plain,
        about: "origin with KEYWAY_CACHE_CAPACITY=0: every verification reads SQLite",
        expect_served_by: None,
        expect_cache: None,
    },
    Scenario {
        name: "origin-stateful",
        model: Model::Origin,
        server: Server::Origin,
        ask: Ask::Stateful,
        about: "origin, key with credits and a rate limit (counters in memory)",
        expect_served_by: None,
        expect_cache: None,
    },
    Scenario {
        name: "edge-hit",
        model: Model::Edge,
        server: Server::Edge("edgeAll"),
        ask: Ask::Plain,
        about: "edge, snapshot in isolate memory",
        expect_served_by: Some("edge"),
        expect_cache: Some("hit"),
    },
    Scenario {
        name: "edge-cache",
        model: Model::Edge,
        server: Server::Edge("edgeCache"),
        ask: Ask::Plain,
        about: "edge with KEYWAY_EDGE_TIERS=cache: root key and key read from the Cache API each request",
        expect_served_by: Some("edge"),
        expect_cache: Some("hit"),
    },
    Scenario {
        name: "edge-miss",
        model: Model::Edge,
        server: Server::Edge("edgeNone"),
        ask: Ask::Plain,
        about: "edge with KEYWAY_EDGE_TIERS=none: every request fetches both snapshots from the origin",
        expect_served_by: Some("edge"),
        expect_cache: Some("miss"),
    },
    Scenario {
        name: "edge-stateful",
        model: Model::Edge,
        server: Server::Edge("edgeAll"),
        ask: Ask::Stateful,
        about: "edge, credits key: decision forwarded to the origin",
        expect_served_by: Some("origin"),
        expect_cache: None,
    },
    Scenario {
        name: "edge-route-origin",
        model: Model::Edge,
        server: Server::Edge("edgeProxy"),
        ask: Ask::Plain,
        about: "edge with KEYWAY_ROUTE=origin: the Worker as a plain proxy",
        expect_served_by: Some("origin"),
        expect_cache: None,
    },
];
