//! The SQLite event writer: its own connection, on the writer's own thread, through
//! `rusqlite`.
//!
//! Through sqlx each batch was built as one statement with thousands of bound values on
//! a runtime worker, then handed to sqlx's SQLite thread: both the building and the
//! hand-over ran beside the requests. Here a batch is bound straight into prepared
//! statements that live as long as the connection: a multi-row insert for full chunks,
//! a one-row insert for the rest, and one upsert per rollup table.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use keyway_core::wire::RatelimitEvent;
use rusqlite::{Connection, OpenFlags, Statement, Transaction, TransactionBehavior};

use super::sql::{RATELIMIT_INSERT, VERIFICATION_INSERT, ratelimit_upsert, verification_upsert};
use super::{EventView, Recorded, RequestIdView, VerificationView, views};
use crate::analytics::ingest::rollup::{Granularity, Rollups, tags_of};
use crate::config::EventMode;
use crate::store::{flag, to_i64};

/// Rows per multi-row insert. 64 × 11 values is far under SQLite's limit on bound
/// values, and larger chunks measured no faster.
const CHUNK: usize = 64;

pub struct SqliteWriter {
    conn: Connection,
}

impl SqliteWriter {
    /// Opens `path`, which the store has already created and migrated.
    pub fn open(path: &Path) -> rusqlite::Result<SqliteWriter> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The same settings as the store's pool: WAL so readers go on during a write,
        // and a busy wait so the API's own writes and ours take turns instead of failing.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteWriter { conn })
    }

    /// Writes a batch in one transaction, so it lands whole or not at all.
    pub fn write(&mut self, events: &[Recorded], mode: EventMode) -> rusqlite::Result<()> {
        let events = views(events);
        let tags = tags_of(&events);
        // IMMEDIATE takes the write lock at the start: a deferred transaction that must
        // upgrade can fail with SQLITE_BUSY without waiting.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if mode.raw() {
            insert_raw(&tx, &events, &tags)?;
        }
        if mode.rollup() {
            upsert_rollups(&tx, &Rollups::of(&events, &tags))?;
        }
        tx.commit()
    }
}

fn values(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    vec![row; rows].join(", ")
}

fn insert_raw(
    tx: &Transaction<'_>,
    events: &[EventView<'_>],
    tags: &[Cow<'static, str>],
) -> rusqlite::Result<()> {
    let mut verifications = Vec::with_capacity(events.len());
    let mut ratelimits = Vec::new();
    for (e, t) in events.iter().zip(tags) {
        match *e {
            EventView::Verification(v) => verifications.push((v, t.as_ref())),
            EventView::Ratelimit(r) => ratelimits.push(r),
        }
    }
    insert_chunked(
        tx,
        &verifications,
        VERIFICATION_INSERT,
        11,
        bind_verification,
    )?;
    insert_chunked(tx, &ratelimits, RATELIMIT_INSERT, 8, bind_ratelimit)
}

/// Binds full chunks into the multi-row statement and the rest one row at a time, each
/// through a cached statement.
fn insert_chunked<T>(
    tx: &Transaction<'_>,
    rows: &[T],
    columns: &str,
    cols: usize,
    bind: fn(&mut Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut chunks = rows.chunks_exact(CHUNK);
    if chunks.len() > 0 {
        let mut many = tx.prepare_cached(&format!("{columns}{}", values(CHUNK, cols)))?;
        for chunk in &mut chunks {
            for (i, row) in chunk.iter().enumerate() {
                bind(&mut many, i * cols, row)?;
            }
            many.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut one = tx.prepare_cached(&format!("{columns}{}", values(1, cols)))?;
        for row in rest {
            bind(&mut one, 0, row)?;
            one.raw_execute()?;
        }
    }
    Ok(())
}

fn bind_verification(
    s: &mut Statement<'_>,
    at: usize,
    (v, tags): &(VerificationView<'_>, &str),
) -> rusqlite::Result<()> {
    s.raw_bind_parameter(at + 1, v.time_ms)?;
    let mut buf = [0; 36];
    let request_id = match v.request_id {
        RequestIdView::Text(s) => s,
        RequestIdView::Origin(r) => r.render_in(&mut buf),
    };
    s.raw_bind_parameter(at + 2, request_id)?;
    s.raw_bind_parameter(at + 3, v.workspace_id)?;
    s.raw_bind_parameter(at + 4, v.api_id)?;
    s.raw_bind_parameter(at + 5, v.key_id)?;
    s.raw_bind_parameter(at + 6, v.identity_id)?;
    s.raw_bind_parameter(at + 7, v.outcome.as_str())?;
    s.raw_bind_parameter(at + 8, to_i64(v.spent_credits))?;
    s.raw_bind_parameter(at + 9, tags)?;
    s.raw_bind_parameter(at + 10, to_i64(v.latency_us))?;
    s.raw_bind_parameter(at + 11, v.served_by.as_str())
}

fn bind_ratelimit(s: &mut Statement<'_>, at: usize, r: &&RatelimitEvent) -> rusqlite::Result<()> {
    s.raw_bind_parameter(at + 1, r.time_ms)?;
    s.raw_bind_parameter(at + 2, &r.request_id)?;
    s.raw_bind_parameter(at + 3, &r.workspace_id)?;
    s.raw_bind_parameter(at + 4, &r.namespace)?;
    s.raw_bind_parameter(at + 5, &r.identifier)?;
    s.raw_bind_parameter(at + 6, flag(r.passed))?;
    s.raw_bind_parameter(at + 7, to_i64(r.latency_us))?;
    s.raw_bind_parameter(at + 8, r.served_by.as_str())
}

/// Adds each rollup row to the stored one, or inserts it.
fn upsert_rollups(tx: &Transaction<'_>, rollups: &Rollups<'_>) -> rusqlite::Result<()> {
    for g in Granularity::ALL {
        let table = format!("key_verifications_{}", g.suffix());
        let mut upsert = tx.prepare_cached(&verification_upsert(&table, &values(1, 9)))?;
        for (k, t) in rollups.verifications(g) {
            upsert.execute(rusqlite::params![
                k.time,
                k.workspace_id,
                k.api_id,
                k.key_id,
                k.identity_id,
                k.outcome,
                k.tags,
                t.count,
                t.spent_credits
            ])?;
        }
        let table = format!("ratelimits_{}", g.suffix());
        let mut upsert = tx.prepare_cached(&ratelimit_upsert(&table, &values(1, 6)))?;
        for (k, n) in rollups.ratelimits(g) {
            upsert.execute(rusqlite::params![
                k.time,
                k.workspace_id,
                k.namespace,
                k.identifier,
                flag(k.passed),
                n
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::api::keys::VerifyCode;
    use keyway_core::wire::{Event, ServedBy, VerificationEvent};

    fn verification(i: usize) -> Recorded {
        Recorded::Wire(Event::Verification(VerificationEvent {
            time_ms: 1_700_000_000_000 + i as i64,
            request_id: format!("req_{i}"),
            workspace_id: "ws".into(),
            api_id: "api".into(),
            key_id: format!("key_{}", i % 3),
            identity_id: i.is_multiple_of(2).then(|| "id_1".into()),
            outcome: if i.is_multiple_of(5) {
                VerifyCode::RateLimited
            } else {
                VerifyCode::Valid
            },
            spent_credits: 2,
            tags: vec![format!("t{}", i % 2)],
            latency_us: 7,
            served_by: ServedBy::Origin,
        }))
    }

    fn ratelimit(i: usize) -> Recorded {
        Recorded::Wire(Event::Ratelimit(RatelimitEvent {
            time_ms: 1_700_000_000_000 + i as i64,
            request_id: format!("req_r{i}"),
            workspace_id: "ws".into(),
            namespace: "ns".into(),
            identifier: "user".into(),
            passed: !i.is_multiple_of(4),
            latency_us: 3,
            served_by: ServedBy::Edge,
        }))
    }

    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let conn = Connection::open(&path).unwrap();
        // Every migration, in order, as the store applies them.
        let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(migrations)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            conn.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
        (dir, path)
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Both statement shapes (full chunks and the rest), both event kinds, and two
    /// flushes adding into the same rollup rows.
    #[test]
    fn batches_land_in_raw_rows_and_rollups() {
        let (_dir, path) = database();
        let mut w = SqliteWriter::open(&path).unwrap();
        let mut events: Vec<Recorded> = (0..150).map(verification).collect();
        events.extend((0..70).map(ratelimit));
        w.write(&events, EventMode::RawAndRollup).unwrap();
        w.write(&events[..10], EventMode::RawAndRollup).unwrap();

        let c = Connection::open(&path).unwrap();
        assert_eq!(count(&c, "SELECT count(*) FROM key_verifications"), 160);
        assert_eq!(count(&c, "SELECT count(*) FROM ratelimit_events"), 70);
        assert_eq!(
            count(
                &c,
                "SELECT count(*) FROM key_verifications WHERE identity_id IS NULL"
            ),
            80
        );
        assert_eq!(
            count(&c, "SELECT sum(spent_credits) FROM key_verifications"),
            320
        );
        let row: (String, String, String, i64) = c
            .query_row(
                "SELECT request_id, outcome, tags, latency_us FROM key_verifications WHERE request_id = 'req_149'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            ("req_149".into(), "VALID".into(), r#"["t1"]"#.into(), 7)
        );
        for g in Granularity::ALL {
            let table = format!("key_verifications_{}", g.suffix());
            assert_eq!(count(&c, &format!("SELECT sum(count) FROM {table}")), 160);
            assert_eq!(
                count(&c, &format!("SELECT sum(spent_credits) FROM {table}")),
                320
            );
            let table = format!("ratelimits_{}", g.suffix());
            assert_eq!(
                count(
                    &c,
                    &format!("SELECT sum(count) FROM {table} WHERE passed = 1")
                ),
                52
            );
        }
        // 3 keys × 2 identities × 2 outcomes × 2 tags, as far as they occur, in one minute.
        assert_eq!(
            count(&c, "SELECT count(*) FROM key_verifications_per_minute"),
            count(
                &c,
                "SELECT count(*) FROM (SELECT DISTINCT key_id, identity_id, outcome, tags FROM key_verifications)"
            )
        );
    }

    #[test]
    fn rollup_mode_writes_no_raw_rows() {
        let (_dir, path) = database();
        let mut w = SqliteWriter::open(&path).unwrap();
        let events: Vec<Recorded> = (0..100).map(verification).collect();
        w.write(&events, EventMode::Rollup).unwrap();
        let c = Connection::open(&path).unwrap();
        assert_eq!(count(&c, "SELECT count(*) FROM key_verifications"), 0);
        assert_eq!(
            count(&c, "SELECT sum(count) FROM key_verifications_per_day"),
            100
        );
    }
}
