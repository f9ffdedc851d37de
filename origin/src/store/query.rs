//! The shape every read in the store shares: one statement, its arguments bound in
//! order, and a function that reads a row. Each method says only those three things.

use std::collections::HashMap;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, FromRow, Row};

use super::{Store, StoreResult, placeholders};

pub(super) type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// A value read from one row (`sqlx::FromRow`, by column name); a row that cannot be
/// read is corrupt, not a default.
pub(super) trait ReadRow: for<'r> FromRow<'r, AnyRow> {}

impl<T: for<'r> FromRow<'r, AnyRow>> ReadRow for T {}

fn read<T: ReadRow>(row: &AnyRow) -> StoreResult<T> {
    Ok(T::from_row(row)?)
}

impl Store {
    /// The row `sql` finds, if any.
    pub(super) async fn find<'q, T: ReadRow>(
        &self,
        sql: &'q str,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
    ) -> StoreResult<Option<T>> {
        let row = bind(sqlx::query(sql)).fetch_optional(&self.pool).await?;
        row.as_ref().map(read).transpose()
    }

    /// Every row `sql` finds.
    pub(super) async fn find_all<'q, T: ReadRow>(
        &self,
        sql: &'q str,
        bind: impl FnOnce(Query<'q>) -> Query<'q>,
    ) -> StoreResult<Vec<T>> {
        let rows = bind(sqlx::query(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(read).collect()
    }

    /// One page of a workspace's rows: `sql` takes the workspace as `$1`, the cursor (the
    /// last id of the previous page, empty for the first) as `$2` and the limit as `$3`.
    pub(super) async fn page<'q, T: ReadRow>(
        &self,
        sql: &'q str,
        workspace_id: &'q str,
        cursor: Option<&'q str>,
        limit: u32,
    ) -> StoreResult<Vec<T>> {
        let bind = |q: Query<'q>| {
            q.bind(workspace_id)
                .bind(cursor.unwrap_or(""))
                .bind(i64::from(limit))
        };
        self.find_all(sql, bind).await
    }

    /// The rows of `sql` for each of `ids` in one query, grouped by the `owner` column.
    /// `sql` says `{ids}` where the placeholders go; an id without rows is absent.
    pub(super) async fn find_grouped<T: ReadRow>(
        &self,
        sql: &str,
        ids: &[&str],
        owner: &str,
    ) -> StoreResult<HashMap<String, Vec<T>>> {
        let mut out: HashMap<String, Vec<T>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let sql = sql.replace("{ids}", &placeholders(ids.len()));
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        for r in query.fetch_all(&self.pool).await? {
            out.entry(r.try_get(owner)?).or_default().push(read(&r)?);
        }
        Ok(out)
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
