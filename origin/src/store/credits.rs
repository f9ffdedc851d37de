//! Stored credit balances: written behind by the counters, read to seed Redis, set by
//! updateCredits.

use keyway_core::credits::CreditBalance;
use sqlx::Row;

use super::{Store, StoreResult, to_i64};

impl Store {
    /// Writes an absolute credit balance (the ledger's write-behind and updateCredits).
    pub async fn write_credits(
        &self,
        key_id: &str,
        remaining: Option<u64>,
        last_refill_at: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE keys SET remaining = $1, last_refill_at = $2 WHERE id = $3")
            .bind(remaining.map(to_i64))
            .bind(last_refill_at)
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A key's stored balance, read fresh (cluster mode seeds Redis from it). `None` for
    /// an unlimited or missing key.
    pub async fn read_credits(&self, key_id: &str) -> StoreResult<Option<CreditBalance>> {
        let row = sqlx::query(
            "SELECT remaining, COALESCE(last_refill_at, created_at) AS at FROM keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let remaining: Option<i64> = row.try_get("remaining")?;
        let at: Option<i64> = row.try_get("at")?;
        Ok(remaining.map(|r| CreditBalance {
            remaining: super::to_u64(r),
            last_refill_at: at.unwrap_or(0),
        }))
    }

    /// The ledger's write-behind: never turns an unlimited key back into a metered one.
    pub async fn write_credits_if_metered(
        &self,
        key_id: &str,
        remaining: u64,
        last_refill_at: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE keys SET remaining = $1, last_refill_at = $2 WHERE id = $3 AND remaining IS NOT NULL")
            .bind(to_i64(remaining))
            .bind(last_refill_at)
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
