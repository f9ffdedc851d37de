//! Analytics: events recorded as rows and rollups, kept for a while, and read back
//! through the SQL of `analytics.getVerifications` and `analytics.getRatelimits`.

pub mod functions;
pub mod query;
pub mod reader;
pub mod retention;
pub mod rollup;
pub mod tables;

use crate::config::AnalyticsLimits;

/// What the analytics routes need: their own reader and its bounds.
pub struct Analytics {
    pub reader: reader::Reader,
    pub limits: AnalyticsLimits,
}
