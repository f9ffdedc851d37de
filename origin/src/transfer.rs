//! `keyway migrate --from URL --to URL`: copies a whole deployment between databases
//! (SQLite and PostgreSQL, either way, or same to same) and proves the copy.
//!
//! The source is read in one snapshot transaction and the target written in one
//! transaction, so a failed copy leaves the target as it was and a copy taken while
//! servers run is still consistent. Credits that servers hold in memory reach the
//! database at their flush, so stop the servers first for a copy with every balance.

use std::collections::BTreeSet;

use anyhow::Context;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::store::Store;
use crate::store::transfer::{
    Checksum, Column, Value, batch_rows, checksum, empty_tables, for_each_row, insert_rows,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub source: Checksum,
    pub target: Checksum,
}

impl TableReport {
    pub fn matches(&self) -> bool {
        self.source == self.target
    }
}

pub struct Options {
    /// Empty the target's tables first instead of refusing a target that holds rows.
    pub overwrite: bool,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

pub async fn copy(from: &Store, to: &Store, options: &Options) -> anyhow::Result<Vec<TableReport>> {
    let tables = same_tables(from, to).await?;
    let mut plan: Vec<(String, Vec<Column>, u64)> = Vec::with_capacity(tables.len());
    let mut held = 0u64;
    for table in &tables {
        let columns = same_columns(from, to, table).await?;
        held += to.count_rows(table).await?;
        plan.push((table.clone(), columns, from.count_rows(table).await?));
    }
    if held > 0 && !options.overwrite {
        anyhow::bail!(
            "the target already holds {held} rows; pass --overwrite to replace everything in it"
        );
    }

    let bars = MultiProgress::new();
    if !options.progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{msg:32} {bar:30} {pos}/{len} rows ({per_sec})")?;

    let mut read = from.snapshot().await?;
    let mut write = to.begin().await?;
    if options.overwrite {
        empty_tables(&mut write, &tables).await?;
    }
    let mut sources = Vec::with_capacity(plan.len());
    for (table, columns, rows) in &plan {
        let bar = bars.add(ProgressBar::new(*rows).with_style(style.clone()));
        bar.set_message(table.clone());
        let per_batch = batch_rows(columns.len());
        let mut batch = Vec::with_capacity(per_batch);
        let mut sum = Checksum::default();
        let mut copied = 0u64;
        let id_column = columns.iter().position(|c| c.name == "id");
        let mut failed_at = 0;
        for_each_row(&mut read, table, columns, async |row| {
            copied += 1;
            failed_at = copied;
            check_row(table, columns, id_column, copied, &row)?;
            sum.add(&row);
            batch.push(row);
            if batch.len() == per_batch {
                insert_rows(&mut write, table, columns, &batch).await?;
                failed_at = 0;
                bar.inc(batch.len() as u64);
                batch.clear();
            }
            Ok(())
        })
        .await
        .with_context(|| match failed_at {
            0 => format!("reading table `{table}`"),
            n => rows_context(table, n, batch.len()),
        })?;
        insert_rows(&mut write, table, columns, &batch)
            .await
            .with_context(|| rows_context(table, copied, batch.len()))?;
        bar.inc(batch.len() as u64);
        bar.finish();
        sources.push(sum);
    }
    write.commit().await?;
    read.rollback().await?;

    // Read the target back rather than trusting the writes.
    let mut back = to.snapshot().await?;
    let mut reports = Vec::with_capacity(plan.len());
    for ((table, columns, _), source) in plan.iter().zip(sources) {
        reports.push(TableReport {
            table: table.clone(),
            source,
            target: checksum(&mut back, table, columns).await?,
        });
    }
    back.rollback().await?;
    Ok(reports)
}

/// Which rows a failed insert held, for its error.
fn rows_context(table: &str, last: u64, n: usize) -> String {
    let first = last.saturating_sub(n as u64) + 1;
    format!("copying table `{table}`, rows {first} to {last}")
}

/// A row the target cannot hold is named before anything is written: PostgreSQL refuses
/// a NUL in text with an encoding error that names no table or row. The row is named by
/// its place in the table and its `id`, never by other values (a hash, a secret).
fn check_row(
    table: &str,
    columns: &[Column],
    id_column: Option<usize>,
    n: u64,
    row: &[Value],
) -> crate::store::StoreResult<()> {
    for (value, column) in row.iter().zip(columns) {
        if let Value::Text(t) = value
            && t.contains('\0')
        {
            let id = id_column
                .and_then(|i| match row.get(i) {
                    Some(Value::Text(id)) => Some(format!(" (id {id:?})")),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(crate::store::StoreError::Corrupt(format!(
                "table `{table}`, row {n}{id}: column `{}` holds a NUL character, which PostgreSQL cannot store; \
                 correct or delete that row in the source and migrate again",
                column.name
            )));
        }
    }
    Ok(())
}

/// Both sides run the same migrations on connecting, so their tables must agree; if not,
/// one side is from another version and copying would drop data.
async fn same_tables(from: &Store, to: &Store) -> anyhow::Result<Vec<String>> {
    let (a, b) = (from.table_names().await?, to.table_names().await?);
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
    if sa != sb {
        let only_from: Vec<_> = sa.difference(&sb).collect();
        let only_to: Vec<_> = sb.difference(&sa).collect();
        anyhow::bail!(
            "the databases' tables differ (only in the source: {only_from:?}; only in the target: {only_to:?}); run the same keyway version on both"
        );
    }
    Ok(a)
}

async fn same_columns(from: &Store, to: &Store, table: &str) -> anyhow::Result<Vec<Column>> {
    let (a, b) = (from.columns(table).await?, to.columns(table).await?);
    let sorted = |c: &[Column]| {
        let mut v: Vec<(String, _)> = c.iter().map(|c| (c.name.clone(), c.kind)).collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    if sorted(&a) != sorted(&b) {
        anyhow::bail!("table {table} has different columns in the source and the target");
    }
    Ok(a)
}
