//! Permission queries such as `api.read AND (api.write OR admin)`.
//!
//! Users write these in verifyKey requests and read our errors in a 400, so errors carry
//! the character position and say what was expected. `*` is an ordinary permission
//! character here, never a glob: a key with `api.*` does not satisfy `api.read`.

use std::fmt;

pub const MAX_QUERY_LENGTH: usize = 1000;
/// Deep nesting is legal but pointless; the cap keeps the recursive parser's stack small.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Permission(String),
    And(Vec<Query>),
    Or(Vec<Query>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 0-based character position of the problem.
    pub position: usize,
    pub message: String,
}

impl QueryError {
    /// A hint for the `fix` field of the 400.
    pub fn fix(&self) -> &'static str {
        "Check your query syntax. AND/OR operators must be between permissions, not at the start or end, and parentheses must be balanced"
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for QueryError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Perm(&'a str),
    And,
    Or,
    Open,
    Close,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Token::Perm(p) => format!("'{p}'"),
            Token::And => "'AND'".into(),
            Token::Or => "'OR'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

pub fn is_permission_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '*' | '/')
}

fn tokenize(input: &str) -> Result<Vec<(usize, Token<'_>)>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().enumerate().peekable();
    while let Some((pos, (byte, c))) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        match c {
            '(' => tokens.push((pos, Token::Open)),
            ')' => tokens.push((pos, Token::Close)),
            c if is_permission_char(c) => {
                let mut end = byte + c.len_utf8();
                while let Some(&(_, (b, n))) = chars.peek() {
                    if !is_permission_char(n) {
                        break;
                    }
                    end = b + n.len_utf8();
                    chars.next();
                }
                let word = &input[byte..end];
                let token = if word.eq_ignore_ascii_case("and") {
                    Token::And
                } else if word.eq_ignore_ascii_case("or") {
                    Token::Or
                } else {
                    Token::Perm(word)
                };
                tokens.push((pos, token));
            }
            other => {
                return Err(QueryError {
                    position: pos,
                    message: format!(
                        "unexpected character '{other}'; permissions may only contain letters, digits and . _ - : * /"
                    ),
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<(usize, Token<'a>)>,
    at: usize,
    end: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&(usize, Token<'a>)> {
        self.tokens.get(self.at)
    }

    fn unexpected(&self, expected: &str) -> QueryError {
        match self.peek() {
            Some((pos, t)) => QueryError {
                position: *pos,
                message: format!("unexpected token {}, expected {expected}", t.describe()),
            },
            None => QueryError {
                position: self.end,
                message: format!("unexpected end of query, expected {expected}"),
            },
        }
    }

    fn or(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut terms = vec![self.and(depth)?];
        while matches!(self.peek(), Some((_, Token::Or))) {
            self.at += 1;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Query::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut terms = vec![self.primary(depth)?];
        while matches!(self.peek(), Some((_, Token::And))) {
            self.at += 1;
            terms.push(self.primary(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Query::And(terms)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Query, QueryError> {
        match self.peek().cloned() {
            Some((_, Token::Perm(p))) => {
                self.at += 1;
                Ok(Query::Permission(p.to_string()))
            }
            Some((pos, Token::Open)) => {
                if depth >= MAX_DEPTH {
                    return Err(QueryError {
                        position: pos,
                        message: format!("parentheses nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                self.at += 1;
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some((_, Token::Close)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(self.unexpected("')'")),
                }
            }
            _ => Err(self.unexpected("a permission name or '('")),
        }
    }
}

impl Query {
    pub fn parse(input: &str) -> Result<Query, QueryError> {
        let len = input.chars().count();
        if len > MAX_QUERY_LENGTH {
            return Err(QueryError {
                position: MAX_QUERY_LENGTH,
                message: format!(
                    "query is {len} characters long; the maximum is {MAX_QUERY_LENGTH}"
                ),
            });
        }
        let tokens = tokenize(input)?;
        if tokens.is_empty() {
            return Err(QueryError {
                position: 0,
                message: "empty permission query".into(),
            });
        }
        let mut parser = Parser {
            tokens,
            at: 0,
            end: len,
        };
        let query = parser.or(0)?;
        if parser.peek().is_some() {
            return Err(parser.unexpected("AND, OR or the end of the query"));
        }
        Ok(query)
    }

    /// Evaluates against a key's permissions; `has` answers for one permission name.
    pub fn allows(&self, has: &impl Fn(&str) -> bool) -> bool {
        match self {
            Query::Permission(p) => has(p),
            Query::And(terms) => terms.iter().all(|t| t.allows(has)),
            Query::Or(terms) => terms.iter().any(|t| t.allows(has)),
        }
    }

    /// Evaluates against a sorted permission list, as snapshots keep them.
    pub fn allows_sorted(&self, sorted: &[String]) -> bool {
        self.allows(&|p: &str| sorted.binary_search_by(|x| x.as_str().cmp(p)).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Query {
        Query::Permission(s.into())
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            Query::parse("a OR b AND c").unwrap(),
            Query::Or(vec![p("a"), Query::And(vec![p("b"), p("c")])])
        );
        assert_eq!(
            Query::parse("api.read and (api.write or admin)").unwrap(),
            Query::And(vec![
                p("api.read"),
                Query::Or(vec![p("api.write"), p("admin")])
            ])
        );
        assert_eq!(Query::parse("  ((x))  ").unwrap(), p("x"));
        assert_eq!(Query::parse("api.*:x/y-z_1").unwrap(), p("api.*:x/y-z_1"));
    }

    #[test]
    fn evaluation_is_literal() {
        let perms = vec![
            "admin".to_string(),
            "api.*".to_string(),
            "api.read".to_string(),
        ];
        let q = |s: &str| Query::parse(s).unwrap().allows_sorted(&perms);
        assert!(q("api.read AND (api.write OR admin)"));
        assert!(!q("api.read AND api.write"));
        assert!(q("api.*"));
        assert!(!q("api.delete"), "'*' is not a glob");
        assert!(q("nope OR admin"));
    }

    #[test]
    fn errors_have_positions() {
        let e = Query::parse("api.read AND").unwrap_err();
        assert_eq!(e.position, 12);
        assert!(e.message.contains("end of query"), "{e}");
        let e = Query::parse("AND api.read").unwrap_err();
        assert_eq!(e.position, 0);
        assert!(e.message.contains("'AND'"));
        let e = Query::parse("(a OR b").unwrap_err();
        assert_eq!(e.position, 7);
        let e = Query::parse("a b").unwrap_err();
        assert_eq!(e.position, 2);
        let e = Query::parse("a AND $x").unwrap_err();
        assert_eq!(e.position, 6);
        assert!(Query::parse("").is_err());
        assert!(Query::parse(&"a".repeat(1001)).is_err());
        assert!(Query::parse(&"a".repeat(1000)).is_ok());
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(Query::parse(&deep).is_err());
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,200}") {
            let _ = Query::parse(&s);
        }

        #[test]
        fn parser_never_panics_on_query_like_input(s in "[a-z.*() ]{0,60}|(AND|OR|and|\\(|\\)| |x){0,80}") {
            if let Err(e) = Query::parse(&s) {
                prop_assert!(e.position <= s.chars().count());
            }
        }
    }
}
