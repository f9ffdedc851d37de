//! Which rate-limit override applies to an identifier.
//!
//! An override's identifier may hold `*`, matching any run of characters (none
//! included), as in Unkey: `*@example.com`, `premium_*`, `*beta*`. An exact override wins
//! over any pattern; among patterns the most specific wins (the most literal
//! characters), then the smaller identifier, so the choice never depends on storage
//! order.

use std::collections::HashMap;

/// Whether `pattern` (with `*` wildcards) matches all of `identifier`.
///
/// Greedy with one backtrack point: on a mismatch, the last `*` takes one more
/// character. Linear in practice and O(n·m) at worst, with no recursion, so a hostile
/// pattern such as `*a*a*a*…` cannot blow the stack.
pub fn matches(pattern: &str, identifier: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), identifier.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((star_p, star_s)) = star {
            pi = star_p + 1;
            si = star_s + 1;
            star = Some((star_p, star_s + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

pub fn is_pattern(identifier: &str) -> bool {
    identifier.contains('*')
}

/// Orders patterns best first: more literal characters, then the smaller text.
pub fn specificity_order(a: &str, b: &str) -> std::cmp::Ordering {
    let literal = |p: &str| p.bytes().filter(|&c| c != b'*').count();
    literal(b).cmp(&literal(a)).then_with(|| a.cmp(b))
}

/// One namespace's overrides, ready to answer for any identifier: exact ones by hash,
/// patterns in the order they win.
#[derive(Debug, Clone)]
pub struct Overrides<T> {
    exact: HashMap<String, T>,
    patterns: Vec<(String, T)>,
}

impl<T> Default for Overrides<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            patterns: Vec::new(),
        }
    }
}

impl<T> FromIterator<(String, T)> for Overrides<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iter: I) -> Self {
        let mut out = Self::default();
        for (identifier, value) in iter {
            if is_pattern(&identifier) {
                out.patterns.push((identifier, value));
            } else {
                out.exact.insert(identifier, value);
            }
        }
        out.patterns
            .sort_by(|(a, _), (b, _)| specificity_order(a, b));
        out
    }
}

impl<T> Overrides<T> {
    /// The exact override if there is one, else the most specific matching pattern.
    pub fn find(&self, identifier: &str) -> Option<&T> {
        self.exact.get(identifier).or_else(|| {
            self.patterns
                .iter()
                .find(|(p, _)| matches(p, identifier))
                .map(|(_, v)| v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns() {
        assert!(matches("*@example.com", "ann@example.com"));
        assert!(matches("*@example.com", "@example.com"));
        assert!(!matches("*@example.com", "ann@example.org"));
        assert!(matches("premium_*", "premium_"));
        assert!(matches("*beta*", "my-beta-user"));
        assert!(matches("a*b*c", "abbbc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("*", ""));
        assert!(!matches("", "x"));
        assert!(matches("**", "anything"));
        // A pattern built to backtrack stays fast and right.
        let hostile = "*a".repeat(50) + "b";
        assert!(!matches(&hostile, &"a".repeat(5000)));
    }

    fn choose<'a>(identifier: &str, all: &[&'a str]) -> Option<&'a str> {
        let o: Overrides<&str> = all.iter().map(|p| (p.to_string(), *p)).collect();
        o.find(identifier).copied()
    }

    #[test]
    fn exact_beats_wildcard_beats_nothing() {
        let all = ["*", "*@example.com", "ann@example.com", "*@*.com"];
        assert_eq!(choose("ann@example.com", &all), Some("ann@example.com"));
        assert_eq!(choose("bob@example.com", &all), Some("*@example.com"));
        assert_eq!(choose("bob@other.com", &all), Some("*@*.com"));
        assert_eq!(choose("bob", &all), Some("*"));
        assert_eq!(choose("bob", &["*@example.com"]), None);
        // Equal specificity: the smaller text, whatever the order given.
        assert_eq!(choose("ab", &["a*", "*b"]), Some("*b"));
        assert_eq!(choose("ab", &["*b", "a*"]), Some("*b"));
    }

    proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(p in "[a-c@.]{0,8}", s in "[a-c@.]{0,8}") {
            prop_assert_eq!(matches(&p, &s), p == s);
        }

        #[test]
        fn a_starred_substring_still_matches(s in "[a-d]{0,12}", i in 0usize..13, j in 0usize..13) {
            let (i, j) = (i.min(s.len()), j.min(s.len()));
            let (i, j) = (i.min(j), i.max(j));
            let pattern = format!("{}*{}", &s[..i], &s[j..]);
            prop_assert!(matches(&pattern, &s));
            prop_assert!(matches("*", &s));
        }

        #[test]
        fn choice_ignores_order(mut c in proptest::collection::vec("[ab*]{1,4}", 0..6), s in "[ab]{0,5}") {
            let refs: Vec<&str> = c.iter().map(String::as_str).collect();
            let first = choose(&s, &refs).map(str::to_string);
            c.reverse();
            let refs: Vec<&str> = c.iter().map(String::as_str).collect();
            let second = choose(&s, &refs).map(str::to_string);
            prop_assert_eq!(first, second);
        }
    }
}
