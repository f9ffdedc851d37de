//! Rollups of analytics events, aggregated in memory per flush: each batch of events
//! becomes one row per time bucket and dimension set, which the store adds to what the
//! table holds. Pure: bucketing and tallying, no I/O.

use std::borrow::Cow;
use std::collections::HashMap as StdHashMap;

use crate::analytics::ingest::EventView;
use chrono::{DateTime, Datelike, TimeZone, Utc};

/// Rollup maps hash every event's dimensions; SipHash's resistance to chosen keys buys
/// nothing here (the dimensions are ids we issued) and cost 4% of the writer's time.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::FixedState>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    Month,
}

impl Granularity {
    pub const ALL: [Granularity; 4] = [
        Granularity::Minute,
        Granularity::Hour,
        Granularity::Day,
        Granularity::Month,
    ];

    /// The tables' suffix: `key_verifications_per_minute`, `ratelimits_per_day`, ...
    pub fn suffix(self) -> &'static str {
        match self {
            Granularity::Minute => "per_minute",
            Granularity::Hour => "per_hour",
            Granularity::Day => "per_day",
            Granularity::Month => "per_month",
        }
    }

    /// The start of the bucket holding `time_ms` (unix ms, UTC).
    pub fn bucket(self, time_ms: i64) -> i64 {
        const MINUTE: i64 = 60_000;
        let floor = |size: i64| time_ms.div_euclid(size) * size;
        match self {
            Granularity::Minute => floor(MINUTE),
            Granularity::Hour => floor(60 * MINUTE),
            Granularity::Day => floor(24 * 60 * MINUTE),
            Granularity::Month => DateTime::<Utc>::from_timestamp_millis(time_ms)
                .and_then(|t| {
                    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
                        .single()
                })
                .map_or_else(|| floor(24 * 60 * MINUTE), |t| t.timestamp_millis()),
        }
    }

    fn index(self) -> usize {
        match self {
            Granularity::Minute => 0,
            Granularity::Hour => 1,
            Granularity::Day => 2,
            Granularity::Month => 3,
        }
    }
}

/// A rollup row's dimensions, borrowed from the batch's events: aggregating allocates
/// nothing per event.
#[derive(Debug, Clone, Copy, Eq, Hash)]
pub struct VerificationKey<'a> {
    pub time: i64,
    pub workspace_id: &'a str,
    pub api_id: &'a str,
    pub key_id: &'a str,
    /// Empty for a key without an identity.
    pub identity_id: &'a str,
    pub outcome: &'static str,
    /// The tags as the raw table stores them (a JSON array).
    pub tags: &'a str,
}

/// The origin's events of one key borrow their ids from the same cached snapshots, so
/// most comparisons are of a string with itself: comparing addresses first skips the
/// `memcmp` that took a twelfth of the writer's time.
impl PartialEq for VerificationKey<'_> {
    fn eq(&self, o: &Self) -> bool {
        fn same(a: &str, b: &str) -> bool {
            std::ptr::eq(a, b) || a == b
        }
        self.time == o.time
            && same(self.key_id, o.key_id)
            && same(self.workspace_id, o.workspace_id)
            && same(self.api_id, o.api_id)
            && same(self.identity_id, o.identity_id)
            && same(self.outcome, o.outcome)
            && same(self.tags, o.tags)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: i64,
    pub spent_credits: i64,
}

impl Tally {
    fn add(&mut self, count: i64, spent_credits: i64) {
        self.count += count;
        self.spent_credits = self.spent_credits.saturating_add(spent_credits);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatelimitKey<'a> {
    pub time: i64,
    pub workspace_id: &'a str,
    pub namespace: &'a str,
    pub identifier: &'a str,
    pub passed: bool,
}

/// One batch's rollups, per granularity.
#[derive(Debug, Default)]
pub struct Rollups<'a> {
    verifications: [HashMap<VerificationKey<'a>, Tally>; 4],
    ratelimits: [HashMap<RatelimitKey<'a>, i64>; 4],
}

/// Tags as stored: a JSON array in the order the caller sent them.
pub fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// Each event's tags as stored, computed once for the raw rows and the rollups alike
/// (empty for rate-limit events, which have none).
/// Most events have no tags: theirs is one shared `[]`, which costs no allocation and
/// compares by address in the rollup maps.
pub fn tags_of(events: &[EventView<'_>]) -> Vec<Cow<'static, str>> {
    events
        .iter()
        .map(|e| match e {
            EventView::Verification(v) if v.tags.is_empty() => Cow::Borrowed("[]"),
            EventView::Verification(v) => Cow::Owned(tags_json(v.tags)),
            EventView::Ratelimit(_) => Cow::Borrowed(""),
        })
        .collect()
}

impl<'a> Rollups<'a> {
    /// Tallies per minute, then folds the minute rows into hours, days and months: a
    /// minute bucket lies wholly inside one of each, and there are far fewer rows than
    /// events. `tags` is `tags_of(events)`.
    pub fn of(events: &[EventView<'a>], tags: &'a [Cow<'static, str>]) -> Rollups<'a> {
        let mut r = Rollups::default();
        let minute = Granularity::Minute.index();
        for (e, tags) in events.iter().zip(tags) {
            match *e {
                EventView::Verification(v) => {
                    let key = VerificationKey {
                        time: Granularity::Minute.bucket(v.time_ms),
                        workspace_id: v.workspace_id,
                        api_id: v.api_id,
                        key_id: v.key_id,
                        identity_id: v.identity_id.unwrap_or_default(),
                        outcome: v.outcome.as_str(),
                        tags,
                    };
                    let credits = i64::try_from(v.spent_credits).unwrap_or(i64::MAX);
                    r.verifications[minute]
                        .entry(key)
                        .or_default()
                        .add(1, credits);
                }
                EventView::Ratelimit(rl) => {
                    let key = RatelimitKey {
                        time: Granularity::Minute.bucket(rl.time_ms),
                        workspace_id: &rl.workspace_id,
                        namespace: &rl.namespace,
                        identifier: &rl.identifier,
                        passed: rl.passed,
                    };
                    *r.ratelimits[minute].entry(key).or_default() += 1;
                }
            }
        }
        for g in &Granularity::ALL[1..] {
            let mut verifications: HashMap<VerificationKey<'a>, Tally> = HashMap::default();
            for (k, t) in &r.verifications[minute] {
                let key = VerificationKey {
                    time: g.bucket(k.time),
                    ..*k
                };
                verifications
                    .entry(key)
                    .or_default()
                    .add(t.count, t.spent_credits);
            }
            let mut ratelimits: HashMap<RatelimitKey<'a>, i64> = HashMap::default();
            for (k, n) in &r.ratelimits[minute] {
                let key = RatelimitKey {
                    time: g.bucket(k.time),
                    ..*k
                };
                *ratelimits.entry(key).or_default() += n;
            }
            r.verifications[g.index()] = verifications;
            r.ratelimits[g.index()] = ratelimits;
        }
        r
    }

    pub fn verifications(&self, g: Granularity) -> &HashMap<VerificationKey<'a>, Tally> {
        &self.verifications[g.index()]
    }

    pub fn ratelimits(&self, g: Granularity) -> &HashMap<RatelimitKey<'a>, i64> {
        &self.ratelimits[g.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::api::keys::VerifyCode;
    use keyway_core::wire::{Event, RatelimitEvent, ServedBy, VerificationEvent};
    use proptest::prelude::*;

    fn views(events: &[Event]) -> Vec<EventView<'_>> {
        events.iter().map(EventView::from).collect()
    }

    fn verification(time_ms: i64, key: &str, outcome: VerifyCode, credits: u64) -> Event {
        Event::Verification(VerificationEvent {
            time_ms,
            request_id: "req".into(),
            workspace_id: "ws".into(),
            api_id: "api".into(),
            key_id: key.into(),
            identity_id: None,
            outcome,
            spent_credits: credits,
            tags: vec!["a".into()],
            latency_us: 10,
            served_by: ServedBy::Origin,
        })
    }

    #[test]
    fn buckets_start_at_their_boundary() {
        // 2026-11-24T13:47:31.250Z
        let t = 1_795_528_051_250;
        assert_eq!(Granularity::Minute.bucket(t), 1_795_528_020_000);
        assert_eq!(Granularity::Hour.bucket(t), 1_795_525_200_000);
        assert_eq!(Granularity::Day.bucket(t), 1_795_478_400_000);
        // 2026-11-01T00:00:00Z
        assert_eq!(Granularity::Month.bucket(t), 1_793_491_200_000);
    }

    #[test]
    fn a_hot_key_is_one_row_per_bucket() {
        let events: Vec<Event> = (0..1000)
            .map(|i| verification(1_795_528_020_000 + i, "k1", VerifyCode::Valid, 2))
            .chain([verification(
                1_795_528_020_000,
                "k1",
                VerifyCode::UsageExceeded,
                0,
            )])
            .collect();
        let events = views(&events);
        let tags = tags_of(&events);
        let r = Rollups::of(&events, &tags);
        for g in Granularity::ALL {
            let rows = r.verifications(g);
            assert_eq!(rows.len(), 2, "{g:?}");
            let valid = rows
                .iter()
                .find(|(k, _)| k.outcome == "VALID")
                .map(|(_, t)| *t);
            assert_eq!(
                valid,
                Some(Tally {
                    count: 1000,
                    spent_credits: 2000
                })
            );
        }
    }

    #[test]
    fn ratelimits_split_by_passed() {
        let rl = |passed| {
            Event::Ratelimit(RatelimitEvent {
                time_ms: 0,
                request_id: "r".into(),
                workspace_id: "ws".into(),
                namespace: "ns".into(),
                identifier: "id".into(),
                passed,
                latency_us: 1,
                served_by: ServedBy::Origin,
            })
        };
        let events = [rl(true), rl(true), rl(false)];
        let events = views(&events);
        let tags = tags_of(&events);
        let r = Rollups::of(&events, &tags);
        let rows = r.ratelimits(Granularity::Day);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.values().sum::<i64>(), 3);
    }

    proptest! {
        #[test]
        fn every_bucket_holds_its_time(t in -1_000_000_000_000_000i64..4_000_000_000_000i64) {
            for g in Granularity::ALL {
                let b = g.bucket(t);
                prop_assert!(b <= t);
                prop_assert!(t - b < 31 * 86_400_000, "{g:?}");
                prop_assert_eq!(g.bucket(b), b);
            }
        }

        #[test]
        fn rollups_count_every_event(times in proptest::collection::vec(0i64..10_000_000_000, 0..200)) {
            let events: Vec<Event> = times.iter().map(|t| verification(*t, "k", VerifyCode::Valid, 1)).collect();
            let n = events.len();
            let events = views(&events);
            let tags = tags_of(&events);
            let r = Rollups::of(&events, &tags);
            for g in Granularity::ALL {
                let total: i64 = r.verifications(g).values().map(|t| t.count).sum();
                prop_assert_eq!(total, n as i64);
            }
        }
    }
}
