//! Analytics events, written in batches.

use keyway_core::wire::Event;

use super::{Store, StoreResult, flag, to_i64};

/// Rows per INSERT: well under SQLite's bound-parameter limit at 11 columns.
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Writes all events in one transaction, so a batch lands whole or not at all.
    pub async fn insert_events(&self, events: &[Event]) -> StoreResult<()> {
        let (verifications, ratelimits): (Vec<&Event>, Vec<&Event>) = events
            .iter()
            .partition(|e| matches!(e, Event::Verification(_)));
        let mut tx = self.pool.begin().await?;
        for chunk in verifications.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO key_verifications (time, request_id, workspace_id, api_id, key_id, identity_id, outcome, spent_credits, tags, latency_us, served_by) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 11, self.is_sqlite);
            let mut q = sqlx::query(&sql);
            for e in chunk {
                if let Event::Verification(v) = e {
                    q = q
                        .bind(v.time_ms)
                        .bind(v.request_id.clone())
                        .bind(v.workspace_id.clone())
                        .bind(v.api_id.clone())
                        .bind(v.key_id.clone())
                        .bind(v.identity_id.clone())
                        .bind(v.outcome.as_str())
                        .bind(to_i64(v.spent_credits))
                        .bind(serde_json::to_string(&v.tags).unwrap_or_else(|_| "[]".into()))
                        .bind(to_i64(v.latency_us))
                        .bind(v.served_by.as_str());
                }
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in ratelimits.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO ratelimit_events (time, request_id, workspace_id, namespace, identifier, passed, latency_us, served_by) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 8, self.is_sqlite);
            let mut q = sqlx::query(&sql);
            for e in chunk {
                if let Event::Ratelimit(r) = e {
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
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
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
    #[test]
    fn placeholders_number_in_order() {
        let mut s = String::new();
        super::push_placeholders(&mut s, 2, 2, false);
        assert_eq!(s, "($1, $2), ($3, $4)");
        let mut s = String::new();
        super::push_placeholders(&mut s, 2, 2, true);
        assert_eq!(s, "(?, ?), (?, ?)");
    }
}
