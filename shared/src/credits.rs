//! Credit arithmetic: spending and lazy refills.
//!
//! The origin owns the counters (atomics, written behind to the database); this module
//! only says what a counter value becomes. Refills are computed from the last refill time
//! and `now`, so a key that was idle for a month refills on its next use.

use serde::{Deserialize, Serialize};

use crate::calendar;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    Daily,
    Monthly,
}

impl RefillInterval {
    pub fn as_str(self) -> &'static str {
        match self {
            RefillInterval::Daily => "daily",
            RefillInterval::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(Self::Daily),
            "monthly" => Some(Self::Monthly),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refill {
    pub interval: RefillInterval,
    pub amount: u64,
    /// Day of month for monthly refills, 1..=31; `None` means the 1st.
    pub refill_day: Option<u8>,
}

impl Refill {
    /// The latest refill moment at or before `now_ms`.
    pub fn last_moment(&self, now_ms: i64) -> Option<i64> {
        match self.interval {
            RefillInterval::Daily => Some(calendar::start_of_day(now_ms)),
            RefillInterval::Monthly => {
                calendar::last_monthly_moment(now_ms, self.refill_day.unwrap_or(1))
            }
        }
    }
}

/// A key's credit balance at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreditBalance {
    pub remaining: u64,
    /// When the balance was last refilled (or the key created, before any refill).
    pub last_refill_at: i64,
}

impl CreditBalance {
    /// The balance after any refill due by `now_ms`. A refill resets the balance to the
    /// refill amount (it does not add to it), as Unkey does.
    pub fn refilled(self, refill: Option<&Refill>, now_ms: i64) -> CreditBalance {
        let Some(refill) = refill else { return self };
        match refill.last_moment(now_ms) {
            Some(moment) if moment > self.last_refill_at => CreditBalance {
                remaining: refill.amount,
                last_refill_at: moment,
            },
            _ => self,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// The cost was taken; this is what remains.
    Spent { remaining: u64 },
    /// Not enough credits; nothing was taken.
    Exceeded { remaining: u64 },
}

impl Spend {
    pub fn remaining(self) -> u64 {
        match self {
            Spend::Spent { remaining } | Spend::Exceeded { remaining } => remaining,
        }
    }

    pub fn admitted(self) -> bool {
        matches!(self, Spend::Spent { .. })
    }
}

/// Takes `cost` from `remaining` if it is there. A cost of 0 always passes and takes
/// nothing; remaining can never go below zero.
pub fn spend(remaining: u64, cost: u64) -> Spend {
    match remaining.checked_sub(cost) {
        Some(left) => Spend::Spent { remaining: left },
        None => Spend::Exceeded { remaining },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn spend_basics() {
        assert_eq!(spend(3, 1), Spend::Spent { remaining: 2 });
        assert_eq!(spend(0, 1), Spend::Exceeded { remaining: 0 });
        assert_eq!(spend(0, 0), Spend::Spent { remaining: 0 });
        assert_eq!(spend(5, 6), Spend::Exceeded { remaining: 5 });
    }

    #[test]
    fn daily_refill_at_midnight() {
        let r = Refill {
            interval: RefillInterval::Daily,
            amount: 100,
            refill_day: None,
        };
        let b = CreditBalance {
            remaining: 3,
            last_refill_at: ms(2025, 3, 10) + 5,
        };
        assert_eq!(b.refilled(Some(&r), ms(2025, 3, 10) + DAY - 1), b);
        let after = b.refilled(Some(&r), ms(2025, 3, 11) + 1);
        assert_eq!(
            after,
            CreditBalance {
                remaining: 100,
                last_refill_at: ms(2025, 3, 11)
            }
        );
        // Idempotent within the same day.
        assert_eq!(after.refilled(Some(&r), ms(2025, 3, 11) + 1000), after);
    }

    #[test]
    fn monthly_refill_clamps_and_skips() {
        let r = Refill {
            interval: RefillInterval::Monthly,
            amount: 10,
            refill_day: Some(31),
        };
        let b = CreditBalance {
            remaining: 0,
            last_refill_at: ms(2024, 1, 31),
        };
        // 28 Feb 2024 is before the clamped 29 Feb moment.
        assert_eq!(b.refilled(Some(&r), ms(2024, 2, 28)).remaining, 0);
        let feb = b.refilled(Some(&r), ms(2024, 2, 29) + 1);
        assert_eq!(
            feb,
            CreditBalance {
                remaining: 10,
                last_refill_at: ms(2024, 2, 29)
            }
        );
        // Idle for months: one refill, to the latest moment.
        let later = b.refilled(Some(&r), ms(2024, 7, 4));
        assert_eq!(later.last_refill_at, ms(2024, 6, 30));
    }

    proptest! {
        #[test]
        fn credits_never_negative_nor_overspent(
            start in 0u64..1_000,
            costs in proptest::collection::vec(0u64..20, 0..200),
        ) {
            let mut remaining = start;
            let mut spent = 0u64;
            for cost in costs {
                match spend(remaining, cost) {
                    Spend::Spent { remaining: r } => {
                        prop_assert_eq!(r + cost, remaining);
                        spent += cost;
                        remaining = r;
                    }
                    Spend::Exceeded { remaining: r } => {
                        prop_assert!(cost > remaining);
                        prop_assert_eq!(r, remaining);
                    }
                }
            }
            prop_assert!(spent <= start);
            prop_assert_eq!(spent + remaining, start);
        }

        #[test]
        fn monthly_moment_is_right_day(
            now in 0i64..4_102_444_800_000,
            day in 1u8..=31,
        ) {
            let r = Refill { interval: RefillInterval::Monthly, amount: 1, refill_day: Some(day) };
            let moment = r.last_moment(now).unwrap();
            prop_assert!(moment <= now);
            // Never more than a month (plus clamp slack) behind.
            prop_assert!(now - moment < 32 * DAY);
            let d = chrono::DateTime::from_timestamp_millis(moment).unwrap();
            let dim = crate::calendar::days_in_month(d.year(), d.month());
            prop_assert_eq!(d.day(), u32::from(day).min(dim));
            prop_assert_eq!(moment % DAY, 0);
            // No later moment fits before now: next month's moment is after now.
            let (ny, nm) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
            let next = crate::calendar::monthly_moment(ny, nm, day).unwrap();
            prop_assert!(next > now);
        }

        #[test]
        fn daily_moment_is_midnight_before_now(now in -1_000_000_000_000i64..4_102_444_800_000) {
            let r = Refill { interval: RefillInterval::Daily, amount: 1, refill_day: None };
            let m = r.last_moment(now).unwrap();
            prop_assert!(m <= now && now - m < DAY);
            prop_assert_eq!(m.rem_euclid(DAY), 0);
        }
    }
}
