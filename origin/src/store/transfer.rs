//! Whole-database reads and writes for `keyway migrate`: which tables exist, their
//! columns, every row streamed, rows written in batches, and a checksum per table.
//!
//! Tables and columns come from the database's own catalog, not a list kept here, so a
//! table a later migration adds is copied without touching this file. Every column is
//! BIGINT or TEXT (the schema's portable-SQL rule), which is all a value can be.

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, StoreResult};

/// sqlx's own bookkeeping: each side keeps its own.
const SKIPPED: &str = "_sqlx_migrations";
/// PostgreSQL's analytics sandbox (`analytics::reader::postgres`): each database's role
/// and its password, and the grants of queries running now. A server makes its own at
/// start; copying them would hand one database's role password to another.
const SANDBOX_PREFIX: &str = "keyway_analytics_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    BigInt,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// A table's row count and an order-independent digest of its rows: the wrapping sum of
/// each row's SHA-256 (first 8 bytes). SQLite and PostgreSQL sort text differently, so
/// the digest must not depend on the order rows come back in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub digest: u64,
}

impl Checksum {
    pub fn add(&mut self, row: &[Value]) {
        let mut h = Sha256::new();
        for v in row {
            match v {
                Value::Null => h.update([0u8]),
                Value::Int(i) => {
                    h.update([1u8]);
                    h.update(i.to_le_bytes());
                }
                Value::Text(t) => {
                    h.update([2u8]);
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                }
            }
        }
        let d = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        self.rows += 1;
        self.digest = self.digest.wrapping_add(u64::from_le_bytes(first));
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn read_value(row: &AnyRow, i: usize, kind: ColumnType) -> StoreResult<Value> {
    Ok(match kind {
        ColumnType::BigInt => row
            .try_get::<Option<i64>, _>(i)?
            .map_or(Value::Null, Value::Int),
        ColumnType::Text => row
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::Text),
    })
}

impl Store {
    /// The application's tables, sorted.
    pub async fn table_names(&self) -> StoreResult<Vec<String>> {
        let sql = if self.is_sqlite {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        } else {
            "SELECT table_name::text AS name FROM information_schema.tables
              WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        };
        let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(&self.pool).await?;
        Ok(names
            .into_iter()
            .filter(|n| n != SKIPPED && !n.starts_with(SANDBOX_PREFIX))
            .collect())
    }

    /// A table's columns in their declared order.
    pub async fn columns(&self, table: &str) -> StoreResult<Vec<Column>> {
        let rows = if self.is_sqlite {
            sqlx::query("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(&self.pool)
                .await?
        } else {
            sqlx::query(
                "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns
                  WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&self.pool)
            .await?
        };
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                let declared: String = r.try_get("type")?;
                let kind = match declared.to_ascii_lowercase().as_str() {
                    "bigint" | "integer" => ColumnType::BigInt,
                    "text" => ColumnType::Text,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "{table}.{name} has type {other}; the schema uses only BIGINT and TEXT"
                        )));
                    }
                };
                Ok(Column { name, kind })
            })
            .collect()
    }

    pub async fn count_rows(&self, table: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quoted(table)))
            .fetch_one(&self.pool)
            .await?;
        Ok(super::to_u64(n))
    }

    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// A read-only transaction that sees one moment of the whole database, so a copy
    /// taken while servers still write is consistent across tables.
    pub async fn snapshot(&self) -> StoreResult<Transaction<'static, Any>> {
        let mut tx = self.transaction().await?;
        if !self.is_sqlite {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    pub async fn begin(&self) -> StoreResult<Transaction<'static, Any>> {
        self.transaction().await
    }
}

/// Streams every row of `table` to `each`, in no particular order, without holding the
/// table in memory.
pub async fn for_each_row(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    columns: &[Column],
    mut each: impl AsyncFnMut(Vec<Value>) -> StoreResult<()>,
) -> StoreResult<()> {
    let list: Vec<String> = columns.iter().map(|c| quoted(&c.name)).collect();
    let sql = format!("SELECT {} FROM {}", list.join(", "), quoted(table));
    let mut rows = sqlx::query(&sql).fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        let values = columns
            .iter()
            .enumerate()
            .map(|(i, c)| read_value(&row, i, c.kind))
            .collect::<StoreResult<Vec<_>>>()?;
        each(values).await?;
    }
    Ok(())
}

/// The checksum of a whole table, read back.
pub async fn checksum(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    columns: &[Column],
) -> StoreResult<Checksum> {
    let mut sum = Checksum::default();
    for_each_row(tx, table, columns, async |row| {
        sum.add(&row);
        Ok(())
    })
    .await?;
    Ok(sum)
}

/// Empties `tables` inside `tx` (for `--overwrite`).
pub async fn empty_tables(
    tx: &mut Transaction<'static, Any>,
    tables: &[String],
) -> StoreResult<()> {
    for t in tables {
        sqlx::query(&format!("DELETE FROM {}", quoted(t)))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Rows per INSERT for `columns` columns: under SQLite's 32,766 bound parameters.
pub fn batch_rows(columns: usize) -> usize {
    (30_000 / columns.max(1)).clamp(1, 500)
}

/// Inserts `rows` (each in `columns` order) with one multi-row statement.
pub async fn insert_rows(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = columns.iter().map(|c| quoted(&c.name)).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quoted(table),
        names.join(", ")
    );
    let mut n = 0;
    for (r, _) in rows.iter().enumerate() {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for row in rows {
        for (value, column) in row.iter().zip(columns) {
            // A NULL is bound with its column's type: PostgreSQL refuses an untyped one
            // in some positions and a wrongly typed one in all.
            query = match (value, column.kind) {
                (Value::Int(i), _) => query.bind(*i),
                (Value::Text(t), _) => query.bind(t.clone()),
                (Value::Null, ColumnType::BigInt) => query.bind(None::<i64>),
                (Value::Null, ColumnType::Text) => query.bind(None::<String>),
            };
        }
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_ignore_order_and_see_every_value() {
        let a = vec![Value::Text("k".into()), Value::Int(1), Value::Null];
        let b = vec![Value::Text("k".into()), Value::Null, Value::Int(1)];
        let (mut one, mut two) = (Checksum::default(), Checksum::default());
        one.add(&a);
        one.add(&b);
        two.add(&b);
        two.add(&a);
        assert_eq!(one, two);
        let mut changed = Checksum::default();
        changed.add(&a);
        changed.add(&[Value::Text("k".into()), Value::Null, Value::Int(2)]);
        assert_ne!(one, changed);
        // "ab" + "c" is not "a" + "bc", and NULL is not "" or 0.
        let (mut x, mut y) = (Checksum::default(), Checksum::default());
        x.add(&[Value::Text("ab".into()), Value::Text("c".into())]);
        y.add(&[Value::Text("a".into()), Value::Text("bc".into())]);
        assert_ne!(x, y);
        let (mut n, mut e, mut z) = (
            Checksum::default(),
            Checksum::default(),
            Checksum::default(),
        );
        n.add(&[Value::Null]);
        e.add(&[Value::Text(String::new())]);
        z.add(&[Value::Int(0)]);
        assert!(n != e && e != z && n != z);
    }

    #[test]
    fn batches_stay_under_sqlites_parameter_bound() {
        for columns in [1, 7, 11, 60, 40_000] {
            assert!(
                batch_rows(columns) * columns.min(30_000) <= 32_766 || batch_rows(columns) == 1
            );
        }
    }
}
