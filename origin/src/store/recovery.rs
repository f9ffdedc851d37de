//! Sealed plaintexts of recoverable keys (`encrypted_keys`), read only when a caller asks
//! to decrypt and rewritten only by master-key rotation.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreResult, placeholders};

impl Store {
    /// The sealed values of those keys that have one.
    pub async fn sealed_keys(&self, key_ids: &[&str]) -> StoreResult<HashMap<String, String>> {
        if key_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT key_id, encrypted FROM encrypted_keys WHERE key_id IN ({})",
            placeholders(key_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in key_ids {
            query = query.bind(*id);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("key_id")?, r.try_get("encrypted")?)))
            .collect()
    }

    /// One page of `(key_id, sealed)` after `cursor`, in key id order.
    pub async fn sealed_page(
        &self,
        cursor: &str,
        limit: u32,
    ) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT key_id, encrypted FROM encrypted_keys WHERE key_id > $1 ORDER BY key_id LIMIT $2",
        )
        .bind(cursor)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key_id")?, r.try_get("encrypted")?)))
            .collect()
    }

    /// Replaces a sealed value if it is still `was`; false if something else changed it.
    pub async fn reseal(&self, key_id: &str, was: &str, now: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE encrypted_keys SET encrypted = $1 WHERE key_id = $2 AND encrypted = $3",
        )
        .bind(now)
        .bind(key_id)
        .bind(was)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
