//! Credit counters in memory, written behind to the database.
//!
//! Each metered key gets a cell, created from its snapshot on first use. A spend locks
//! only that key's cell (a std mutex, held for nanoseconds, never across an `.await`), so
//! a key with R credits and N > R concurrent verifications yields exactly R successes.
//! An explicit change (updateCredits, updateKey) reads and writes the live balance under
//! the same lock, so a spend racing it is never lost.
//!
//! Durability: dirty cells are written as absolute balances at least every flush interval
//! (1 s by default) and on shutdown. A cell stays dirty until a write of its latest
//! balance succeeds: a failed write is retried at the next flush, and one failure does
//! not stop the others. A crash (kill -9) can therefore lose at most the spends since the
//! last successful write, and only in the key holder's favour: the database then shows
//! more credits than were left, never fewer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use keyway_core::credits::{CreditBalance, Spend, spend};
use keyway_core::snapshot::SnapshotCredits;

use crate::store::{Store, StoreError};

#[derive(Debug)]
struct Cell {
    balance: CreditBalance,
    /// Bumped on every change, so a flush knows whether what it wrote is still the latest.
    version: u64,
    dirty: bool,
}

impl Cell {
    fn set(&mut self, balance: CreditBalance) {
        self.balance = balance;
        self.version += 1;
        self.dirty = true;
    }
}

#[derive(Default)]
pub struct CreditLedger {
    cells: RwLock<HashMap<String, Arc<Mutex<Cell>>>>,
    /// Serializes flushes and explicit balance changes, so an older balance can never be
    /// written over a newer one.
    flush_lock: tokio::sync::Mutex<()>,
}

/// What a flush could not write; those cells stay dirty and are retried.
#[derive(Debug)]
pub struct Unwritten {
    pub key_id: String,
    pub remaining: u64,
    pub error: StoreError,
}

#[derive(Debug, Default)]
pub struct FlushReport {
    pub written: usize,
    pub failed: Vec<Unwritten>,
}

fn lock(cell: &Mutex<Cell>) -> std::sync::MutexGuard<'_, Cell> {
    // A cell holds a few integers; a panic elsewhere cannot leave it half-written.
    cell.lock().unwrap_or_else(|p| p.into_inner())
}

impl CreditLedger {
    fn cell(&self, key_id: &str, initial: CreditBalance) -> Arc<Mutex<Cell>> {
        if let Some(c) = self
            .cells
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
        {
            return Arc::clone(c);
        }
        let mut map = self.cells.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(key_id.to_string()).or_insert_with(|| {
            Arc::new(Mutex::new(Cell {
                balance: initial,
                version: 0,
                dirty: false,
            }))
        }))
    }

    /// Refills if due, then spends `cost` if the balance covers it.
    pub fn spend(&self, key_id: &str, credits: &SnapshotCredits, cost: u64, now_ms: i64) -> Spend {
        let cell = self.cell(key_id, credits.balance);
        let mut c = lock(&cell);
        let refilled = c.balance.refilled(credits.refill.as_ref(), now_ms);
        if refilled != c.balance {
            c.set(refilled);
        }
        let outcome = spend(c.balance.remaining, cost);
        if let Spend::Spent { remaining } = outcome
            && cost > 0
        {
            let balance = CreditBalance {
                remaining,
                ..c.balance
            };
            c.set(balance);
        }
        outcome
    }

    /// The live balance, if this node holds one.
    /// Forgets a deleted key's cell: cells otherwise live as long as the process, and a
    /// deleted key will never spend again.
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut cells) = self.cells.write() {
            cells.remove(key_id);
        }
    }

    pub fn peek(&self, key_id: &str) -> Option<CreditBalance> {
        let map = self.cells.read().unwrap_or_else(|p| p.into_inner());
        map.get(key_id).map(|c| lock(c).balance)
    }

    /// Changes a balance from its live value, atomically with respect to spends, then
    /// writes it through. `change` gets the live balance (or `stored` if no cell exists)
    /// and returns the new one, or `None` to make the key unlimited.
    ///
    /// The new balance is live once this returns, whatever the write did: a failed write
    /// leaves the cell dirty for the write-behind to retry, as it would after a spend.
    pub async fn change(
        &self,
        store: &Store,
        key_id: &str,
        stored: Option<CreditBalance>,
        change: impl FnOnce(Option<CreditBalance>) -> Option<CreditBalance>,
    ) -> Option<CreditBalance> {
        let _guard = self.flush_lock.lock().await;
        // Under the map's write lock no spend can find or create this key's cell, and the
        // cell's lock is held from the read to the write, so a spend that already holds
        // the cell cannot slip in between them. (It was taken twice, once to read and once
        // to write, and a spend between the two was lost: 1 in about 15 runs of the test
        // below.)
        let (new, written) = {
            let mut map = self.cells.write().unwrap_or_else(|p| p.into_inner());
            match map.get(key_id).map(Arc::clone) {
                Some(cell) => {
                    let mut c = lock(&cell);
                    match change(Some(c.balance)) {
                        None => {
                            drop(c);
                            map.remove(key_id);
                            (None, None)
                        }
                        Some(balance) => {
                            c.set(balance);
                            let version = c.version;
                            drop(c);
                            (Some(balance), Some((cell, version)))
                        }
                    }
                }
                None => match change(stored) {
                    None => (None, None),
                    Some(balance) => {
                        let cell = Arc::new(Mutex::new(Cell {
                            balance,
                            version: 1,
                            dirty: true,
                        }));
                        map.insert(key_id.to_string(), Arc::clone(&cell));
                        (Some(balance), Some((cell, 1)))
                    }
                },
            }
        };
        let result = store
            .write_credits(
                key_id,
                new.map(|b| b.remaining),
                new.map(|b| b.last_refill_at),
            )
            .await;
        match (result, written) {
            (Ok(()), Some((cell, version))) => {
                let mut c = lock(&cell);
                if c.version == version {
                    c.dirty = false;
                }
            }
            (Ok(()), None) => {}
            (Err(e), _) => tracing::warn!(
                key_id,
                error = %e,
                "writing a credit change failed; the write-behind retries it"
            ),
        }
        new
    }

    /// Writes every dirty balance. A failed write leaves its cell dirty and the flush
    /// goes on with the others; the report lists what could not be written.
    pub async fn flush(&self, store: &Store) -> FlushReport {
        let _guard = self.flush_lock.lock().await;
        let dirty: Vec<(String, Arc<Mutex<Cell>>, CreditBalance, u64)> = {
            let map = self.cells.read().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .filter_map(|(id, cell)| {
                    let c = lock(cell);
                    c.dirty
                        .then(|| (id.clone(), Arc::clone(cell), c.balance, c.version))
                })
                .collect()
        };
        let mut report = FlushReport::default();
        for (key_id, cell, balance, version) in dirty {
            match store
                .write_credits_if_metered(&key_id, balance.remaining, balance.last_refill_at)
                .await
            {
                Ok(()) => {
                    let mut c = lock(&cell);
                    // A spend after our read made a newer balance: it stays dirty.
                    if c.version == version {
                        c.dirty = false;
                    }
                    report.written += 1;
                }
                Err(error) => report.failed.push(Unwritten {
                    key_id,
                    remaining: balance.remaining,
                    error,
                }),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_under_threads() {
        let ledger = Arc::new(CreditLedger::default());
        let credits = SnapshotCredits {
            balance: CreditBalance {
                remaining: 100,
                last_refill_at: 0,
            },
            refill: None,
        };
        let ok: usize = (0..8)
            .map(|_| {
                let l = Arc::clone(&ledger);
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| l.spend("k", &credits, 1, 0).admitted())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum();
        assert_eq!(ok, 100);
        assert_eq!(ledger.peek("k").map(|b| b.remaining), Some(0));
    }

    /// Spends racing explicit changes: every spend and every increment must count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_do_not_lose_concurrent_spends() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let ledger = Arc::new(CreditLedger::default());
        let credits = SnapshotCredits {
            balance: CreditBalance {
                remaining: 1_000_000,
                last_refill_at: 0,
            },
            refill: None,
        };
        ledger.spend("k", &credits, 0, 0);
        let spender = {
            let l = Arc::clone(&ledger);
            std::thread::spawn(move || {
                (0..200_000)
                    .filter(|_| l.spend("k", &credits, 1, 0).admitted())
                    .count() as u64
            })
        };
        let mut increments = 0u64;
        while !spender.is_finished() {
            ledger
                .change(&store, "k", None, |live| {
                    live.map(|b| CreditBalance {
                        remaining: b.remaining + 1,
                        ..b
                    })
                })
                .await;
            increments += 1;
        }
        let spent = spender.join().unwrap();
        assert_eq!(spent, 200_000);
        assert_eq!(
            ledger.peek("k").map(|b| b.remaining),
            Some(1_000_000 - spent + increments),
            "{increments} increments raced {spent} spends"
        );
    }
}
