//! The Redis admission script against the core's arithmetic it mirrors.
//!
//! `admit.lua` re-states `keyway_core::admission::admit` in Lua so that it can run inside
//! Redis. This property test runs generated sequences of verifications (shared counters,
//! several windows, costs, clock steps forwards and back, credits with refills) through a
//! real `redis-server` and through the core, and requires the same answer at every step.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyway_core::admission::LimitCheck;
use keyway_core::admission::{Admission, Balance, Charge, CreditCharge, admit};
use keyway_core::credits::{CreditBalance, Refill, RefillInterval};
use keyway_core::ratelimit::{CounterId, CounterOwner, LimitSpec, WindowState};
use keyway_core::snapshot::SnapshotCredits;
use keyway_origin::cluster::Cluster;
use keyway_origin::metrics::Metrics;
use keyway_origin::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

struct RedisServer(Child, u16);

impl RedisServer {
    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian's redis-server package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer(child, port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Four counters with different windows and limits; steps pick some of them.
const WINDOWS: [(u64, u64); 4] = [(5, 1000), (3, 250), (100, 60_000), (1, 86_400_000)];

#[derive(Debug, Clone)]
struct Step {
    advance_ms: i64,
    limits: Vec<(usize, u64)>,
    credits: Option<u64>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![0i64..50, 0i64..2_000, -300i64..0, Just(86_400_000i64)],
        proptest::sample::subsequence(vec![0usize, 1, 2, 3], 0..=3).prop_flat_map(|ix| {
            ix.into_iter()
                .map(|i| (Just(i), 0u64..4))
                .collect::<Vec<_>>()
        }),
        proptest::option::of(0u64..6),
    )
        .prop_map(|(advance_ms, limits, credits)| Step {
            advance_ms,
            limits,
            credits,
        })
}

#[test]
fn redis_script_matches_the_core() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cluster, store) = rt.block_on(async {
        let store = Store::connect(
            &format!("sqlite://{}", dir.path().join("s.db").display()),
            2,
        )
        .await
        .unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let url = format!("redis://127.0.0.1:{}", redis.1);
        (Cluster::connect(&url, "t:", metrics).await.unwrap(), store)
    });
    let refill = Refill {
        interval: RefillInterval::Daily,
        amount: 7,
        refill_day: None,
    };
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let case = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&proptest::collection::vec(step(), 1..40), |steps| {
        // Each case gets counters and a key of its own.
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key_id = format!("key_{n}");
        let counters: Vec<CounterId> = WINDOWS
            .iter()
            .enumerate()
            .map(|(i, (_, d))| {
                CounterId::new(
                    CounterOwner::AdHoc {
                        key_id: &key_id,
                        name: &i.to_string(),
                    },
                    *d,
                )
            })
            .collect();
        let snapshot_credits = SnapshotCredits {
            balance: CreditBalance {
                remaining: 4,
                last_refill_at: 0,
            },
            refill: Some(refill),
        };
        let mut windows: HashMap<usize, WindowState> = HashMap::new();
        let mut balance = snapshot_credits.balance;
        let mut now: i64 = 1_700_000_000_000;
        for (n, s) in steps.iter().enumerate() {
            now += s.advance_ms;
            let checks: Vec<LimitCheck> = s
                .limits
                .iter()
                .map(|&(i, cost)| LimitCheck {
                    counter: counters[i],
                    id: i.to_string(),
                    name: i.to_string(),
                    spec: LimitSpec {
                        limit: WINDOWS[i].0,
                        duration_ms: WINDOWS[i].1,
                        cost,
                    },
                    auto_apply: false,
                })
                .collect();
            let charge = Charge {
                checks: &checks,
                credits: s.credits.map(|cost| CreditCharge {
                    key_id: &key_id,
                    credits: &snapshot_credits,
                    cost,
                }),
            };
            let mut states: Vec<WindowState> = s
                .limits
                .iter()
                .map(|(i, _)| windows.get(i).copied().unwrap_or_default())
                .collect();
            let specs: Vec<LimitSpec> = checks.iter().map(|c| c.spec).collect();
            let mut next_balance = balance;
            let want: Admission = admit(
                &mut states,
                &specs,
                s.credits.map(|cost| Balance {
                    balance: &mut next_balance,
                    refill: Some(&refill),
                    cost,
                }),
                now,
            );
            let got = rt
                .block_on(cluster.admit(&store, &charge, now))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, &want, "step {} of {:?}", n, steps);
            for ((i, _), st) in s.limits.iter().zip(states) {
                windows.insert(*i, st);
            }
            if s.credits.is_some() {
                balance = next_balance;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
