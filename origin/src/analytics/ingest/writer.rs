//! Where a batch of events goes: SQLite through the writer's own connection, anything
//! else through the store's pool.

use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

use super::sqlite::SqliteWriter;
use super::{Recorded, views};
use crate::config::EventMode;
use crate::store::Store;

pub enum Writer {
    /// A SQLite file: written directly on the writer thread.
    Sqlite(SqliteWriter),
    /// PostgreSQL, or an in-memory SQLite that only the store's pool can see: written
    /// through sqlx, driven from the writer thread on the server's runtime.
    Store {
        store: Store,
        runtime: tokio::runtime::Handle,
    },
}

impl Writer {
    /// Chooses by the database URL. Call it on the runtime, after the store has
    /// migrated the database.
    pub fn for_database(url: &str, store: Store) -> anyhow::Result<Writer> {
        if url.starts_with("sqlite:") && !url.contains(":memory:") && !url.contains("mode=memory") {
            let options = SqliteConnectOptions::from_str(url)?;
            return Ok(Writer::Sqlite(SqliteWriter::open(options.get_filename())?));
        }
        Ok(Writer::Store {
            store,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Writes one batch whole or not at all.
    pub fn write(&mut self, events: &[Recorded], mode: EventMode) -> anyhow::Result<()> {
        match self {
            Writer::Sqlite(w) => Ok(w.write(events, mode)?),
            Writer::Store { store, runtime } => {
                Ok(runtime.block_on(super::sql::insert_events(store, &views(events), mode))?)
            }
        }
    }
}
