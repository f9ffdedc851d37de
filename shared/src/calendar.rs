//! UTC calendar arithmetic for lazy credit refills.
//!
//! Refills happen "at each UTC midnight" or "on day N of each month"; computing the most
//! recent such moment from `now` lets a refill be applied when a key is next used, with
//! no scheduled job that could fall behind or run twice.

use chrono::{DateTime, Datelike, NaiveDate};

const DAY_MS: i64 = 86_400_000;

/// Unix ms of the UTC midnight that starts the day containing `now_ms`.
pub fn start_of_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS) * DAY_MS
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    match (
        NaiveDate::from_ymd_opt(year, month, 1),
        NaiveDate::from_ymd_opt(ny, nm, 1),
    ) {
        (Some(a), Some(b)) => u32::try_from((b - a).num_days()).unwrap_or(31),
        _ => 31,
    }
}

fn midnight_ms(year: i32, month: u32, day: u32) -> Option<i64> {
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// The refill moment of `refill_day` in the given month: that day's midnight, with the
/// day clamped to the month's last day (day 31 refills on 30 April and 28/29 February).
pub fn monthly_moment(year: i32, month: u32, refill_day: u8) -> Option<i64> {
    let day = u32::from(refill_day.clamp(1, 31)).min(days_in_month(year, month));
    midnight_ms(year, month, day)
}

/// The latest monthly refill moment at or before `now_ms`.
pub fn last_monthly_moment(now_ms: i64, refill_day: u8) -> Option<i64> {
    let now = DateTime::from_timestamp_millis(now_ms)?;
    let (y, m) = (now.year(), now.month());
    let this_month = monthly_moment(y, m, refill_day)?;
    if this_month <= now_ms {
        return Some(this_month);
    }
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    monthly_moment(py, pm, refill_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        midnight_ms(y, m, d).unwrap()
    }

    #[test]
    fn month_lengths() {
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2025, 4), 30);
        assert_eq!(days_in_month(2025, 12), 31);
    }

    #[test]
    fn day_31_clamps_to_month_end() {
        assert_eq!(monthly_moment(2025, 4, 31), Some(ms(2025, 4, 30)));
        assert_eq!(monthly_moment(2024, 2, 31), Some(ms(2024, 2, 29)));
        assert_eq!(monthly_moment(2023, 2, 30), Some(ms(2023, 2, 28)));
    }

    #[test]
    fn last_moment_crosses_year() {
        // 5 Jan 2026 with refill day 15 → 15 Dec 2025.
        assert_eq!(
            last_monthly_moment(ms(2026, 1, 5), 15),
            Some(ms(2025, 12, 15))
        );
        assert_eq!(
            last_monthly_moment(ms(2026, 1, 15), 15),
            Some(ms(2026, 1, 15))
        );
        // 1 Mar 2024, refill day 31 → 29 Feb 2024 (leap year clamp).
        assert_eq!(
            last_monthly_moment(ms(2024, 3, 1), 31),
            Some(ms(2024, 2, 29))
        );
    }

    #[test]
    fn start_of_day_handles_negative_times() {
        assert_eq!(start_of_day(-1), -DAY_MS);
        assert_eq!(start_of_day(DAY_MS + 5), DAY_MS);
    }
}
