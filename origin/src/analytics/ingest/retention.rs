//! Deletes analytics rows older than their table's retention, oldest first, a small
//! batch per statement with a pause between, so the hot path's writes never queue behind
//! a long delete. Every node of a cluster may run it: deleting twice is harmless.

use std::time::Duration;

use tokio::sync::watch;

use crate::analytics::ingest::rollup::Granularity;
use crate::config::Retention;
use crate::store::Store;

const DAY_MS: f64 = 86_400_000.0;

/// Each analytics table and how long it keeps rows (ms); tables kept forever are left out.
pub fn tables(r: &Retention) -> Vec<(String, i64)> {
    let mut out = vec![
        ("key_verifications".to_string(), r.raw_days),
        ("ratelimit_events".to_string(), r.raw_days),
    ];
    for g in Granularity::ALL {
        let days = match g {
            Granularity::Minute => r.minute_days,
            Granularity::Hour => r.hour_days,
            Granularity::Day => r.day_days,
            Granularity::Month => r.month_days,
        };
        out.push((format!("key_verifications_{}", g.suffix()), days));
        out.push((format!("ratelimits_{}", g.suffix()), days));
    }
    out.into_iter()
        .filter(|(_, days)| days.is_finite() && *days > 0.0)
        .map(|(t, days)| (t, (days * DAY_MS).min(i64::MAX as f64) as i64))
        .collect()
}

/// Runs until `stop` changes.
pub fn spawn(
    store: Store,
    r: &Retention,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let tables = tables(r);
    let every = Duration::try_from_secs_f64(r.interval_seconds.clamp(0.05, 86_400.0))
        .unwrap_or(Duration::from_secs(60));
    let batch = r.batch.max(1);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = stop.changed() => return,
            }
            for (table, keep_ms) in &tables {
                let before = crate::ids::now_ms().saturating_sub(*keep_ms);
                loop {
                    if *stop.borrow() {
                        return;
                    }
                    match super::sql::delete_older_than(&store, table, before, batch).await {
                        Ok(n) if n >= u64::from(batch) => {
                            // More to go: let the writers in between batches.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(n) => {
                            if n > 0 {
                                tracing::debug!(table, deleted = n, "retention");
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(table, error = %e, "retention could not delete old rows; retrying next pass");
                            break;
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_keeps_a_table_forever() {
        let r = Retention {
            raw_days: 7.0,
            minute_days: 0.0,
            hour_days: 30.0,
            day_days: 365.0,
            month_days: f64::NAN,
            interval_seconds: 60.0,
            batch: 10,
        };
        let t = tables(&r);
        assert!(t.contains(&("key_verifications".into(), 7 * 86_400_000)));
        assert!(t.contains(&("ratelimits_per_hour".into(), 30 * 86_400_000)));
        assert!(!t.iter().any(|(n, _)| n.ends_with("per_minute")));
        assert!(!t.iter().any(|(n, _)| n.ends_with("per_month")));
        assert_eq!(t.len(), 6);
    }
}
