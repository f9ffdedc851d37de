//! Write epochs per stripe of key hashes, so a load can tell whether a write to *its*
//! key landed while it read.
//!
//! The caches once kept one epoch for everything: every invalidation anywhere (every
//! cluster notice included) threw away every load in flight, so under a steady stream of
//! writes cold keys kept reading the database and stale ones never refreshed. Each
//! digest now maps to one of `STRIPES` counters (SHA-256 digests spread evenly), and
//! `bump_all` covers the drops that are not per key. A write to another key disturbs a
//! load only when both land on the same stripe: one chance in 4,096.

use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 4096;

pub struct Epochs {
    all: AtomicU64,
    stripes: Box<[AtomicU64]>,
}

/// What a load saw before it read; compare it with `Epochs::read` afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen(u64, u64);

impl Default for Epochs {
    fn default() -> Self {
        Self {
            all: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The stripe a digest's epoch is kept in.
pub fn stripe_of(digest: &[u8; 32]) -> usize {
    usize::from(u16::from_le_bytes([digest[0], digest[1]])) % STRIPES
}

impl Epochs {
    fn stripe(&self, digest: &[u8; 32]) -> &AtomicU64 {
        &self.stripes[stripe_of(digest)]
    }

    pub fn read(&self, digest: &[u8; 32]) -> Seen {
        Seen(
            self.all.load(Ordering::Acquire),
            self.stripe(digest).load(Ordering::Acquire),
        )
    }

    /// A write to `digest`'s key committed.
    pub fn bump(&self, digest: &[u8; 32]) {
        self.stripe(digest).fetch_add(1, Ordering::AcqRel);
    }

    /// Everything is dropped (a node that may have missed notices starts over).
    pub fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_moves_its_own_stripe_and_all_moves_every_one() {
        let e = Epochs::default();
        let a = [1u8; 32];
        let mut b = [1u8; 32];
        b[0] = 2;
        let seen_a = e.read(&a);
        let seen_b = e.read(&b);
        e.bump(&b);
        assert_eq!(
            e.read(&a),
            seen_a,
            "another key's write leaves a's loads alone"
        );
        assert_ne!(e.read(&b), seen_b);
        e.bump_all();
        assert_ne!(e.read(&a), seen_a);
    }
}
