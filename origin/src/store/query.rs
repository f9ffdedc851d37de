//! The shape every read in the store shares: one statement, its arguments bound in
//! order, and a function that reads a row. Each method says only those three things.

use sqlx::Any;
use sqlx::any::{AnyArguments, AnyRow};

use super::{Store, StoreResult};

pub(super) type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Reads one row into a value; a row that cannot be read is corrupt, not a default.
pub(super) type ReadRow<T> = fn(&AnyRow) -> StoreResult<T>;

impl Store {
    /// The row `sql` finds, if any.
    pub(super) async fn find<'q, T>(
        &self,
        sql: &'q str,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
        read: ReadRow<T>,
    ) -> StoreResult<Option<T>> {
        let row = bind(sqlx::query(sql)).fetch_optional(&self.pool).await?;
        row.as_ref().map(read).transpose()
    }

    /// Every row `sql` finds.
    pub(super) async fn find_all<'q, T>(
        &self,
        sql: &'q str,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
        read: ReadRow<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = bind(sqlx::query(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(read).collect()
    }

    /// Runs each of `statements` with `id` as `$1`, in one transaction: a delete and the
    /// links that point at what it deletes.
    pub(super) async fn delete_with_links(&self, id: &str, statements: &[&str]) -> StoreResult<()> {
        let mut tx = self.transaction().await?;
        for sql in statements {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
