//! The isolate's counters, served at `/_keyway/stats` to a caller holding the edge secret.

#[derive(Default)]
pub struct Stats {
    pub shadow_compared: u64,
    pub shadow_mismatches: u64,
    pub shadow_skipped: u64,
    pub events_sent: u64,
    pub events_lost: u64,
    pub body_read_failures: u64,
}

impl Stats {
    pub fn to_json(&self, cached_snapshots: usize) -> Vec<u8> {
        serde_json::json!({
            "shadowCompared": self.shadow_compared,
            "shadowMismatches": self.shadow_mismatches,
            "shadowSkipped": self.shadow_skipped,
            "eventsSent": self.events_sent,
            "eventsLost": self.events_lost,
            "bodyReadFailures": self.body_read_failures,
            "cachedSnapshots": cached_snapshots,
        })
        .to_string()
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_reported() {
        let s = Stats {
            shadow_compared: 1,
            shadow_mismatches: 2,
            shadow_skipped: 3,
            events_sent: 4,
            events_lost: 5,
            body_read_failures: 6,
        };
        let v: serde_json::Value = serde_json::from_slice(&s.to_json(7)).unwrap();
        let got: Vec<u64> = [
            "shadowCompared",
            "shadowMismatches",
            "shadowSkipped",
            "eventsSent",
            "eventsLost",
            "bodyReadFailures",
            "cachedSnapshots",
        ]
        .iter()
        .map(|k| v[*k].as_u64().unwrap())
        .collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6, 7]);
    }
}
