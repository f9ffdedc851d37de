//! Analytics events, written in batches: the raw rows, and the rollups added to what
//! their tables hold; and retention's deletes. Through the store's pool and transactions.

use std::borrow::Cow;

use crate::analytics::ingest::EventView;
use crate::analytics::ingest::rollup::{Granularity, Rollups, tags_of};
use crate::config::EventMode;
use crate::store::{Store, StoreResult, flag, to_i64};

/// Rows per INSERT: well under SQLite's bound-parameter limit at 11 columns.
const ROWS_PER_STATEMENT: usize = 500;

/// The raw tables' inserts, up to `VALUES `; both event writers append their own
/// placeholders.
pub(crate) const VERIFICATION_INSERT: &str = "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) VALUES ";
pub(crate) const RATELIMIT_INSERT: &str = "INSERT INTO ratelimit_events (time, request_id, workspace_id, namespace, identifier, passed, latency_us, served_by) VALUES ";

/// Adds rows into a verification rollup table (`values`: placeholders for 9 columns).
pub(crate) fn verification_upsert(table: &str, values: &str) -> String {
    format!(
        "INSERT INTO {table} (time, workspace_id, api_id, key_id, identity_id, outcome, tags, count, spent_credits) VALUES {values} ON CONFLICT (time, workspace_id, api_id, key_id, identity_id, outcome, tags) DO UPDATE SET count = {table}.count + excluded.count, spent_credits = {table}.spent_credits + excluded.spent_credits"
    )
}

/// Adds rows into a rate-limit rollup table (`values`: placeholders for 6 columns).
pub(crate) fn ratelimit_upsert(table: &str, values: &str) -> String {
    format!(
        "INSERT INTO {table} (time, workspace_id, namespace, identifier, passed, count) VALUES {values} ON CONFLICT (time, workspace_id, namespace, identifier, passed) DO UPDATE SET count = {table}.count + excluded.count"
    )
}

/// Writes a batch in one transaction, so it lands whole or not at all: the raw rows
/// and the rollups, as `mode` says.
pub async fn insert_events(
    store: &Store,
    events: &[EventView<'_>],
    mode: EventMode,
) -> StoreResult<()> {
    let tags = tags_of(events);
    let mut tx = store.transaction().await?;
    if mode.raw() {
        insert_raw(store, &mut tx, events, &tags).await?;
    }
    if mode.rollup() {
        upsert_rollups(store, &mut tx, &Rollups::of(events, &tags)).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_raw(
    store: &Store,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[EventView<'_>],
    tags: &[Cow<'static, str>],
) -> StoreResult<()> {
    let (verifications, ratelimits): (Vec<_>, Vec<_>) = events
        .iter()
        .zip(tags)
        .partition(|(e, _)| matches!(e, EventView::Verification(_)));
    for chunk in verifications.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(VERIFICATION_INSERT);
        push_placeholders(&mut sql, chunk.len(), 11, store.is_sqlite());
        let mut q = sqlx::query(&sql);
        for (e, tags) in chunk {
            if let EventView::Verification(v) = e {
                q = q
                    .bind(v.time_ms)
                    .bind(v.request_id.to_string())
                    .bind(v.workspace_id)
                    .bind(v.api_id)
                    .bind(v.key_id)
                    .bind(v.identity_id)
                    .bind(v.outcome.as_str())
                    .bind(to_i64(v.spent_credits))
                    .bind(tags.as_ref())
                    .bind(to_i64(v.latency_us))
                    .bind(v.served_by.as_str());
            }
        }
        q.execute(&mut **tx).await?;
    }
    for chunk in ratelimits.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(RATELIMIT_INSERT);
        push_placeholders(&mut sql, chunk.len(), 8, store.is_sqlite());
        let mut q = sqlx::query(&sql);
        for (e, _) in chunk {
            if let EventView::Ratelimit(r) = e {
                q = q
                    .bind(r.time_ms)
                    .bind(r.request_id.clone())
                    .bind(r.workspace_id.clone())
                    .bind(r.namespace.clone())
                    .bind(r.identifier.clone())
                    .bind(flag(r.passed))
                    .bind(to_i64(r.latency_us))
                    .bind(r.served_by.as_str());
            }
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds each rollup row to the stored one (or inserts it). Rows are unique within a
/// batch, which PostgreSQL's ON CONFLICT requires of one statement.
async fn upsert_rollups(
    store: &Store,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rollups: &Rollups<'_>,
) -> StoreResult<()> {
    for g in Granularity::ALL {
        let rows: Vec<_> = rollups.verifications(g).iter().collect();
        let table = format!("key_verifications_{}", g.suffix());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut values = String::new();
            push_placeholders(&mut values, chunk.len(), 9, store.is_sqlite());
            let sql = verification_upsert(&table, &values);
            let mut q = sqlx::query(&sql);
            for (k, t) in chunk {
                q = q
                    .bind(k.time)
                    .bind(k.workspace_id)
                    .bind(k.api_id)
                    .bind(k.key_id)
                    .bind(k.identity_id)
                    .bind(k.outcome)
                    .bind(k.tags)
                    .bind(t.count)
                    .bind(t.spent_credits);
            }
            q.execute(&mut **tx).await?;
        }
        let rows: Vec<_> = rollups.ratelimits(g).iter().collect();
        let table = format!("ratelimits_{}", g.suffix());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut values = String::new();
            push_placeholders(&mut values, chunk.len(), 6, store.is_sqlite());
            let sql = ratelimit_upsert(&table, &values);
            let mut q = sqlx::query(&sql);
            for (k, n) in chunk {
                q = q
                    .bind(k.time)
                    .bind(k.workspace_id)
                    .bind(k.namespace)
                    .bind(k.identifier)
                    .bind(flag(k.passed))
                    .bind(**n);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Deletes up to `limit` rows of an analytics table older than `before` (unix ms);
/// returns how many went. `table` is one of the analytics tables (never user input).
pub async fn delete_older_than(
    store: &Store,
    table: &str,
    before: i64,
    limit: u32,
) -> StoreResult<u64> {
    // SQLite and PostgreSQL have no DELETE ... LIMIT in common; both can delete by
    // their physical row id from a limited select.
    let row_id = if store.is_sqlite() { "rowid" } else { "ctid" };
    let p = if store.is_sqlite() {
        ["?", "?"]
    } else {
        ["$1", "$2"]
    };
    let sql = format!(
        "DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM {table} WHERE time < {} LIMIT {})",
        p[0], p[1]
    );
    let done = sqlx::query(&sql)
        .bind(before)
        .bind(i64::from(limit))
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Multi-row VALUES placeholders. SQLite gets anonymous `?`: for named or numbered
/// parameters, sqlx resolves each one through `sqlite3_bind_parameter_name`, a linear
/// scan, which made a 5,500-parameter insert quadratic and cost a third of the server's
/// CPU under load (measured with perf). PostgreSQL needs `$N`.
fn push_placeholders(sql: &mut String, rows: usize, cols: usize, anonymous: bool) {
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if anonymous {
                sql.push('?');
            } else {
                sql.push_str(&format!("${n}"));
            }
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::push_placeholders;

    #[test]
    fn placeholders_number_in_order() {
        let mut s = String::new();
        push_placeholders(&mut s, 2, 2, false);
        assert_eq!(s, "($1, $2), ($3, $4)");
        let mut s = String::new();
        push_placeholders(&mut s, 2, 2, true);
        assert_eq!(s, "(?, ?), (?, ?)");
    }
}
