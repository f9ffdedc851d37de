//! Credit counters in memory, written behind to the database.
//!
//! Each metered key gets a cell, created from its snapshot on first use. A spend locks
//! only that key's cell (a std mutex, held for nanoseconds, never across an `.await`), so
//! a key with R credits and N > R concurrent verifications yields exactly R successes.
//!
//! Durability: dirty cells are written as absolute balances at least every flush interval
//! (1 s by default) and on shutdown. A crash (kill -9) can therefore lose at most the
//! spends of the last interval, and only in the key holder's favour: the database then
//! shows more credits than were left, never fewer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use keyway_core::credits::{CreditBalance, Spend, spend};
use keyway_core::snapshot::SnapshotCredits;

use crate::store::{Store, StoreResult};

#[derive(Debug)]
struct Cell {
    balance: CreditBalance,
    dirty: bool,
}

#[derive(Default)]
pub struct CreditLedger {
    cells: RwLock<HashMap<String, Arc<Mutex<Cell>>>>,
    /// Serializes flushes and explicit balance changes, so an older balance can never be
    /// written over a newer one.
    flush_lock: tokio::sync::Mutex<()>,
}

fn lock(cell: &Mutex<Cell>) -> std::sync::MutexGuard<'_, Cell> {
    // A cell holds two integers; a panic elsewhere cannot leave it half-written.
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
            c.balance = refilled;
            c.dirty = true;
        }
        let outcome = spend(c.balance.remaining, cost);
        if let Spend::Spent { remaining } = outcome
            && cost > 0
        {
            c.balance.remaining = remaining;
            c.dirty = true;
        }
        outcome
    }

    /// The live balance, if this node holds one.
    pub fn peek(&self, key_id: &str) -> Option<CreditBalance> {
        let map = self.cells.read().unwrap_or_else(|p| p.into_inner());
        map.get(key_id).map(|c| lock(c).balance)
    }

    /// Changes a balance from its live value and makes it durable before returning.
    /// `change` gets the live balance (or `stored` if no cell exists) and returns the new
    /// one, or `None` to make the key unlimited.
    pub async fn change(
        &self,
        store: &Store,
        key_id: &str,
        stored: Option<CreditBalance>,
        change: impl FnOnce(Option<CreditBalance>) -> Option<CreditBalance>,
    ) -> StoreResult<Option<CreditBalance>> {
        let _guard = self.flush_lock.lock().await;
        let live = self.peek(key_id).or(stored);
        let new = change(live);
        match new {
            Some(balance) => {
                let cell = self.cell(key_id, balance);
                let mut c = lock(&cell);
                c.balance = balance;
                c.dirty = false;
            }
            None => {
                self.cells
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(key_id);
            }
        }
        store
            .write_credits(
                key_id,
                new.map(|b| b.remaining),
                new.map(|b| b.last_refill_at),
            )
            .await?;
        Ok(new)
    }

    /// Writes every dirty balance; returns how many. Failed writes stay dirty.
    pub async fn flush(&self, store: &Store) -> StoreResult<usize> {
        let _guard = self.flush_lock.lock().await;
        let dirty: Vec<(String, Arc<Mutex<Cell>>, CreditBalance)> = {
            let map = self.cells.read().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .filter_map(|(id, cell)| {
                    let mut c = lock(cell);
                    c.dirty.then(|| {
                        c.dirty = false;
                        (id.clone(), Arc::clone(cell), c.balance)
                    })
                })
                .collect()
        };
        let mut written = 0;
        for (key_id, cell, balance) in dirty {
            if let Err(e) = store
                .write_credits_if_metered(&key_id, balance.remaining, balance.last_refill_at)
                .await
            {
                lock(&cell).dirty = true;
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
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
}
