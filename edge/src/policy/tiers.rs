//! Which snapshot caches the Worker uses: `KEYWAY_EDGE_TIERS`.
//!
//! Production wants both. Turning tiers off isolates what each one costs: with the
//! isolate memory off, every lookup pays a Cache API read, which is what a serverless
//! function whose isolates do not survive pays; with both off, every lookup goes to the
//! origin. The lab measures each.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiers {
    pub memory: bool,
    pub cache_api: bool,
}

impl Tiers {
    pub const ALL: Tiers = Tiers {
        memory: true,
        cache_api: true,
    };

    /// Parses a comma-separated list of `memory` and `cache`, or `none`. Anything else is
    /// `None`, so a typo falls back to the default instead of silently disabling caching.
    pub fn parse(s: &str) -> Option<Tiers> {
        let s = s.trim();
        if s == "none" {
            return Some(Tiers {
                memory: false,
                cache_api: false,
            });
        }
        let mut tiers = Tiers {
            memory: false,
            cache_api: false,
        };
        for part in s.split(',') {
            match part.trim() {
                "memory" => tiers.memory = true,
                "cache" => tiers.cache_api = true,
                _ => return None,
            }
        }
        Some(tiers)
    }
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_none() {
        assert_eq!(Tiers::parse("memory,cache"), Some(Tiers::ALL));
        assert_eq!(Tiers::parse(" cache , memory "), Some(Tiers::ALL));
        assert_eq!(
            Tiers::parse("cache"),
            Some(Tiers {
                memory: false,
                cache_api: true
            })
        );
        assert_eq!(
            Tiers::parse("none"),
            Some(Tiers {
                memory: false,
                cache_api: false
            })
        );
    }

    #[test]
    fn rejects_typos_and_empty() {
        assert_eq!(Tiers::parse("memroy"), None);
        assert_eq!(Tiers::parse(""), None);
        assert_eq!(Tiers::parse("memory,"), None);
    }
}
