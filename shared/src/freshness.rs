//! The one freshness rule both snapshot caches follow: the origin's moka cache and the
//! edge's tiers (isolate memory, the Cache API).
//!
//! An entry is fresh, then stale, then gone. A fresh entry answers outright. What a stale
//! entry may do depends on who asks ([`Stale`]): a key being verified answers at once and
//! is refreshed in the background; a root key is read again first, so a revoked caller is
//! refused within the fresh time. What happens when that read cannot reach the source is
//! the cache's choice ([`ReloadFails`]). A fault of our own (a corrupt answer) is an
//! error, never a reason to answer from a copy.
//!
//! The two caches differ in two things, each named: whether a stale "not found" may
//! answer ([`NotFound`]), and what a root key does when it cannot be read again
//! ([`ReloadFails`]). The caller passes its choices in [`Rule`].

/// Where an answer came from: `x-keyway-cache` at the edge, a metric label at the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Stale,
    /// A stale root key read again before answering; kept apart from `Miss` so a cold
    /// cache and a revocation check read as different things.
    Reload,
    Miss,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Stale => "stale",
            CacheStatus::Reload => "reload",
            CacheStatus::Miss => "miss",
        }
    }
}

/// What a stale entry may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Answer at once and refresh in the background: keys being verified.
    Serve,
    /// Read again before answering, so a revoked credential is refused within the fresh
    /// time. Root keys.
    Reload,
}

/// What a stale root key does when reading it again cannot reach the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadFails {
    /// The stale copy answers and is stamped anew: the origin. Its source is the database,
    /// and while the database is down no revocation can be written to it either; the new
    /// stamp keeps the following requests from each waiting on it.
    AnswerStale,
    /// Authentication fails closed (the caller gets a 503): the edge. An origin the edge
    /// cannot reach may still be taking revocations from everyone else, so a stale copy
    /// proves nothing once its fresh time is over.
    Refuse,
}

/// Whether a stale "not found" may answer while it is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFound {
    /// Yes: the origin. Every write that creates a key drops its cached "not found" on
    /// the node that makes it, and cluster nodes hear of it through change notices, so a
    /// stale "not found" can only be one that no write has contradicted. Serving it keeps
    /// floods of random keys off the database.
    ServeStale,
    /// No: the edge. Nothing tells an isolate that a key was created, so a "not found"
    /// counts only while fresh (and is kept only that long); after that it is read again.
    FreshOnly,
}

/// How long entries live, and the two options the two caches set differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub fresh_ms: u64,
    /// At least `fresh_ms`.
    pub stale_ms: u64,
    pub not_found: NotFound,
    pub reload_fails: ReloadFails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
    Expired,
}

/// What a lookup does with what the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Answer with the entry: `Hit`.
    Answer,
    /// Answer with the entry (`Stale`) and refresh it in the background.
    AnswerAndRefresh,
    /// Read again before answering (`Reload`); an unavailable source is the rule's
    /// [`ReloadFails`].
    Reload,
    /// Nothing usable: load (`Miss`).
    Load,
}

impl Rule {
    pub fn new(
        fresh_ms: u64,
        stale_ms: u64,
        not_found: NotFound,
        reload_fails: ReloadFails,
    ) -> Rule {
        Rule {
            fresh_ms,
            stale_ms: stale_ms.max(fresh_ms),
            not_found,
            reload_fails,
        }
    }

    /// How an entry of this age reads.
    pub fn freshness(&self, age_ms: u64) -> Freshness {
        if age_ms < self.fresh_ms {
            Freshness::Fresh
        } else if age_ms < self.stale_ms {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    /// How long an answer may be kept at all: a "not found" that may not be served stale
    /// is worth keeping only while it is fresh.
    pub fn keep_ms(&self, found: bool) -> u64 {
        if found || self.not_found == NotFound::ServeStale {
            self.stale_ms
        } else {
            self.fresh_ms
        }
    }

    /// The step for an entry (`Some((found, freshness))`) or its absence.
    pub fn step(&self, entry: Option<(bool, Freshness)>, stale: Stale) -> Step {
        let Some((found, freshness)) = entry else {
            return Step::Load;
        };
        match freshness {
            Freshness::Fresh => Step::Answer,
            Freshness::Expired => Step::Load,
            Freshness::Stale if !found && self.not_found == NotFound::FreshOnly => Step::Load,
            Freshness::Stale => match stale {
                Stale::Serve => Step::AnswerAndRefresh,
                Stale::Reload => Step::Reload,
            },
        }
    }
}

/// An age in whole milliseconds from two clock readings in milliseconds; a reading from
/// before the entry was stored (clocks of two isolates) counts as age zero.
pub fn age_ms(stored_ms: f64, now_ms: f64) -> u64 {
    let age = now_ms - stored_ms;
    if age.is_finite() && age > 0.0 {
        age as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORIGIN: Rule = Rule {
        fresh_ms: 100,
        stale_ms: 1000,
        not_found: NotFound::ServeStale,
        reload_fails: ReloadFails::AnswerStale,
    };
    const EDGE: Rule = Rule {
        not_found: NotFound::FreshOnly,
        reload_fails: ReloadFails::Refuse,
        ..ORIGIN
    };

    #[test]
    fn fresh_then_stale_then_expired() {
        assert_eq!(ORIGIN.freshness(0), Freshness::Fresh);
        assert_eq!(ORIGIN.freshness(99), Freshness::Fresh);
        assert_eq!(ORIGIN.freshness(100), Freshness::Stale);
        assert_eq!(ORIGIN.freshness(999), Freshness::Stale);
        assert_eq!(ORIGIN.freshness(1000), Freshness::Expired);
    }

    #[test]
    fn steps() {
        // (found, age in ms, what a stale entry gets, the step), for both rules.
        let shared = [
            (true, 5, Stale::Reload, Step::Answer),
            (true, 500, Stale::Serve, Step::AnswerAndRefresh),
            (true, 500, Stale::Reload, Step::Reload),
            (true, 5000, Stale::Serve, Step::Load),
            (false, 5, Stale::Serve, Step::Answer),
        ];
        for rule in [ORIGIN, EDGE] {
            assert_eq!(rule.step(None, Stale::Serve), Step::Load);
            for (found, age, stale, step) in shared {
                let got = rule.step(Some((found, rule.freshness(age))), stale);
                assert_eq!(got, step, "{found} {age} {stale:?}");
            }
        }
        // The one difference: a stale "not found".
        let differs = [
            (ORIGIN, Stale::Serve, Step::AnswerAndRefresh),
            (EDGE, Stale::Serve, Step::Load),
            (EDGE, Stale::Reload, Step::Load),
        ];
        for (rule, stale, step) in differs {
            assert_eq!(rule.step(Some((false, rule.freshness(500))), stale), step);
        }
        assert_eq!((ORIGIN.keep_ms(false), EDGE.keep_ms(false)), (1000, 100));
        assert_eq!((ORIGIN.keep_ms(true), EDGE.keep_ms(true)), (1000, 1000));
    }

    #[test]
    fn stale_is_never_shorter_than_fresh() {
        let r = Rule::new(500, 10, NotFound::FreshOnly, ReloadFails::Refuse);
        assert_eq!(r.stale_ms, 500);
        assert_eq!(r.freshness(499), Freshness::Fresh);
        assert_eq!(r.freshness(500), Freshness::Expired);
    }

    #[test]
    fn ages() {
        assert_eq!(age_ms(1000.0, 1500.9), 500);
        assert_eq!(age_ms(2000.0, 1000.0), 0);
        assert_eq!(age_ms(f64::NAN, 1000.0), 0);
    }

    proptest! {
        /// An entry only ever ages forward: fresh, then stale, then expired, never back.
        #[test]
        fn freshness_is_monotonic(fresh in 0u64..10_000, stale in 0u64..20_000, a in 0u64..40_000, b in 0u64..40_000) {
            let r = Rule::new(fresh, stale, NotFound::ServeStale, ReloadFails::AnswerStale);
            let rank = |f| match f { Freshness::Fresh => 0, Freshness::Stale => 1, Freshness::Expired => 2 };
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(rank(r.freshness(lo)) <= rank(r.freshness(hi)));
        }
    }
}
