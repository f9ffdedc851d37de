//! The last step before a query runs: the text that runs is the tree that was vetted.
//!
//! A hostile review escaped the analytics sandbox through the gap between sqlparser's
//! ClickHouse reading of a string (`\'` is an escaped quote) and its printer, which left
//! that quote undoubled; SQLite and PostgreSQL then read the rest of the string as SQL.
//! Any printer and any dialect can disagree like that, so no string reaches the text:
//! - every string literal becomes a bound parameter (equal strings share one, so an
//!   expression in GROUP BY still matches the same one in the select list);
//! - every identifier must be plain (`[A-Za-z_][A-Za-z0-9_]*`) or quoted with the
//!   target's quote and free of quotes, backslashes, brackets and control characters;
//! - every number must look like a number;
//! - the printed text, outside its quoted names, may hold no quote, comment, backslash,
//!   semicolon or dollar quote (`hides_nothing`, a scan that shares nothing with sqlparser);
//! - the printed text is parsed again with the target database's own dialect and must
//!   give exactly the tree that was checked, or the query is refused.

use std::ops::ControlFlow;

use sqlparser::ast::{Ident, Query, Statement, Value, ValueWithSpan, VisitMut, VisitorMut};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use super::error::QueryError;
use super::functions::Dialect;

/// A query ready to run: text with no string in it, and the strings it binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub sql: String,
    /// `?1`/`$1` is `params[0]`.
    pub params: Vec<String>,
}

/// How deep the re-parse may nest; our rewrite adds a few levels over the user's 64.
const MAX_DEPTH: usize = 128;

/// Binds, checks and prints `query`, then proves the text parses back to it.
pub fn seal(mut query: Query, dialect: Dialect) -> Result<Sealed, QueryError> {
    let mut binder = Binder {
        dialect,
        params: Vec::new(),
        refused: None,
    };
    let _ = query.visit(&mut binder);
    if let Some(e) = binder.refused {
        return Err(e);
    }
    let sql = query.to_string();
    // Checked on the text itself, without sqlparser: whatever the printer did, nothing
    // but names, numbers, keywords, operators and placeholders may be in it.
    hides_nothing(&sql, dialect).map_err(|what| {
        QueryError::Invalid(format!(
            "the query could not be rendered safely for the database ({what}); simplify it"
        ))
    })?;
    let reparsed = reparse(&sql, dialect)?;
    if *reparsed != query {
        return Err(QueryError::Invalid(
            "the query could not be rendered unambiguously for the database; simplify it".into(),
        ));
    }
    Ok(Sealed {
        sql,
        params: binder.params,
    })
}

/// `sql` as the target database's dialect reads it: exactly one query.
pub fn reparse(sql: &str, dialect: Dialect) -> Result<Box<Query>, QueryError> {
    let d: &dyn SqlDialect = match dialect {
        Dialect::Sqlite => &SQLiteDialect {},
        Dialect::Postgres => &PostgreSqlDialect {},
    };
    let statements = Parser::new(d)
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            QueryError::Invalid(format!(
                "the query could not be rendered for the database: {e}"
            ))
        })?;
    match <[Statement; 1]>::try_from(statements) {
        Ok([Statement::Query(q)]) => Ok(q),
        _ => Err(QueryError::Invalid(
            "the query did not render as exactly one SELECT".into(),
        )),
    }
}

struct Binder {
    dialect: Dialect,
    params: Vec<String>,
    refused: Option<QueryError>,
}

impl Binder {
    fn refuse(&mut self, e: QueryError) -> ControlFlow<()> {
        self.refused.get_or_insert(e);
        ControlFlow::Break(())
    }

    fn placeholder(&mut self, s: String) -> Value {
        let n = match self.params.iter().position(|p| *p == s) {
            Some(i) => i + 1,
            None => {
                self.params.push(s);
                self.params.len()
            }
        };
        Value::Placeholder(match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        })
    }
}

impl VisitorMut for Binder {
    type Break = ();

    fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
        match &mut v.value {
            Value::SingleQuotedString(s) => {
                let s = std::mem::take(s);
                if s.contains('\0') {
                    return self.refuse(QueryError::Invalid(
                        "a string in the query holds a NUL character".into(),
                    ));
                }
                v.value = self.placeholder(s);
                ControlFlow::Continue(())
            }
            Value::Number(n, _) if plain_number(n) => ControlFlow::Continue(()),
            Value::Boolean(_) | Value::Null => ControlFlow::Continue(()),
            other => {
                let e = QueryError::Invalid(format!(
                    "the literal `{other}` is not allowed in an analytics query"
                ));
                self.refuse(e)
            }
        }
    }

    fn pre_visit_ident(&mut self, id: &mut Ident) -> ControlFlow<()> {
        let quote = match self.dialect {
            Dialect::Sqlite => '`',
            Dialect::Postgres => '"',
        };
        let ok = match id.quote_style {
            None => plain_ident(&id.value),
            Some(q) if q == quote => quoted_ident(&id.value),
            Some(_) => false,
        };
        if ok {
            return ControlFlow::Continue(());
        }
        let e = QueryError::Invalid(format!(
            "the name {:?} is not allowed: names may not hold quotes, backslashes, brackets or control characters",
            id.value
        ));
        self.refuse(e)
    }
}

/// The sealed text, outside its quoted names, holds no string, comment or second
/// statement: whatever the caller wrote, only names, numbers, keywords, operators and
/// placeholders are left.
pub fn hides_nothing(sql: &str, dialect: Dialect) -> Result<(), String> {
    let quote = match dialect {
        Dialect::Sqlite => '`',
        Dialect::Postgres => '"',
    };
    let mut outside = String::new();
    let mut in_name = false;
    for c in sql.chars() {
        if c == quote {
            in_name = !in_name;
            outside.push(' ');
        } else if !in_name {
            outside.push(c);
        }
    }
    if in_name {
        return Err("an unclosed name".into());
    }
    for bad in ["'", "--", "/*", ";", "\\", "\"", "`", "[", "$$", "\0"] {
        if outside.contains(bad) {
            return Err(format!("{bad:?} outside a name"));
        }
    }
    // A `$` is only ever a placeholder's.
    let mut chars = outside.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && !chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            return Err("a `$` that is not a placeholder".into());
        }
    }
    Ok(())
}

/// `12`, `1.5`, `.5`, `1e9`, `2.5E-3`: digits, one point, one exponent.
fn plain_number(n: &str) -> bool {
    let (mantissa, exponent) = match n.find(['e', 'E']) {
        Some(i) => (&n[..i], Some(&n[i + 1..])),
        None => (n, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && frac.is_none_or(digits)
        && (!whole.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok && n.len() <= 64
}

fn plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn quoted_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '`' | '\'' | '\\' | '[' | ']'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn numbers_must_look_like_numbers() {
        for n in ["0", "12", "1.5", ".5", "5.", "1e9", "2.5E-3", "7e+2"] {
            assert!(plain_number(n), "{n}");
        }
        for n in [
            "", ".", "0x1F", "1e", "1.2.3", "1'", "1--", "1 ", "e5", "1_000",
        ] {
            assert!(!plain_number(n), "{n}");
        }
    }

    #[test]
    fn identifiers_are_plain_or_safely_quoted() {
        assert!(plain_ident("key_id") && plain_ident("_x1"));
        assert!(!plain_ident("1x") && !plain_ident("a b") && !plain_ident(""));
        assert!(quoted_ident("Total verifications") && quoted_ident("größe"));
        for bad in ["a\"b", "a`b", "a\\", "a'b", "[x]", "a\0b", "a\nb", ""] {
            assert!(!quoted_ident(bad), "{bad:?}");
        }
    }

    use crate::analytics::query::functions::Ctx;
    use crate::analytics::query::plan;
    use crate::analytics::query::tables::{RATELIMITS, Scope, VERIFICATIONS};
    use proptest::prelude::*;

    /// Characters every dialect reads differently somewhere: quotes of each kind,
    /// backslashes, comment and statement markers, dollar quotes, PostgreSQL's `E'` and
    /// `U&'`, SQLite's brackets, control characters and non-ASCII text.
    pub(crate) fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => prop::sample::select(vec![
                '\'', '\\', '"', '`', '-', '/', '*', ';', '$', 'E', 'U', '&', '[', ']', '(',
                ')', ',', ' ', '\n', '\t', '\r', 'a', 'z', '0', '9', '{', '}', '%', '?',
                ':', '@', '#', '=', '|',
            ]),
            1 => any::<char>(),
        ]
    }

    pub(crate) fn hostile_string() -> impl Strategy<Value = String> {
        prop::collection::vec(hostile_char(), 0..24).prop_map(|c| c.into_iter().collect())
    }

    /// `v` as a ClickHouse string literal, escaping quotes either way ClickHouse reads.
    pub(crate) fn clickhouse_literal(v: &str, doubled: bool) -> String {
        let body = v
            .replace('\\', "\\\\")
            .replace('\'', if doubled { "''" } else { "\\'" });
        format!("'{body}'")
    }

    /// A piece of a select list: a literal, a name, a call, or text as it comes.
    fn item() -> impl Strategy<Value = String> {
        prop_oneof![
            (hostile_string(), any::<bool>()).prop_map(|(v, d)| clickhouse_literal(&v, d)),
            (hostile_string(), any::<bool>())
                .prop_map(|(v, d)| format!("concat(key_id, {}) AS x", clickhouse_literal(&v, d))),
            (hostile_string(), any::<bool>()).prop_map(|(v, d)| format!(
                "countIf(outcome = {}) AS n",
                clickhouse_literal(&v, d)
            )),
            hostile_string().prop_map(|v| format!("1 AS `{v}`")),
            hostile_string().prop_map(|v| format!("1 AS \"{v}\"")),
            hostile_string().prop_map(|v| format!("key_id /* {v} */")),
            hostile_string().prop_map(|v| format!("key_id -- {v}\n")),
            hostile_string().prop_map(|v| format!("E'{v}'")),
            hostile_string().prop_map(|v| format!("U&'{v}'")),
            hostile_string().prop_map(|v| format!("$${v}$$")),
            hostile_string().prop_map(|v| format!("[{v}]")),
            hostile_string(),
            Just("key_id".to_string()),
            Just("toStartOfMonth(time) AS m".to_string()),
        ]
    }

    fn hostile_query() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(item(), 1..4),
            prop::sample::select(vec!["key_verifications_v1", "ratelimits_v1"]),
            prop::option::of(item()),
        )
            .prop_map(|(items, table, filter)| {
                let mut q = format!("SELECT {} FROM {table}", items.join(", "));
                if let Some(f) = filter {
                    q.push_str(&format!(" WHERE {f}"));
                }
                q
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn what_runs_is_what_was_checked(query in hostile_query(), pg in any::<bool>()) {
            let dialect = if pg { Dialect::Postgres } else { Dialect::Sqlite };
            let catalog = if query.contains("ratelimits_v1") { &RATELIMITS } else { &VERIFICATIONS };
            let scope = Scope { workspace_id: "ws_'1\\".into(), only: Some(vec!["api_'\\x".into()]) };
            let ctx = Ctx { dialect, now_ms: 1_700_000_000_000 };
            if let Ok(sealed) = plan(&query, catalog, &scope, ctx, 100) {
                prop_assert!(hides_nothing(&sealed.sql, dialect).is_ok(),
                    "{query}\n=> {}\n{:?}", sealed.sql, hides_nothing(&sealed.sql, dialect));
                // Where a table is read, its scope is bound, never spliced.
                if sealed.sql.contains(" t WHERE ") {
                    prop_assert!(sealed.params.contains(&"ws_'1\\".to_string()));
                }
                let again = reparse(&sealed.sql, dialect);
                prop_assert!(again.is_ok(), "{query}\n=> {}", sealed.sql);
            }
        }

        /// Queries that are valid whatever their strings hold must plan, so the property
        /// above is not passed by refusing everything.
        #[test]
        fn hostile_strings_in_valid_queries_plan(
            values in prop::collection::vec((hostile_string(), any::<bool>()), 1..4),
            pg in any::<bool>(),
        ) {
            let dialect = if pg { Dialect::Postgres } else { Dialect::Sqlite };
            let items: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, (v, d))| format!("concat(key_id, {}) AS c{i}", clickhouse_literal(v, *d)))
                .collect();
            let query = format!(
                "SELECT {} FROM key_verifications_v1 WHERE outcome <> {}",
                items.join(", "),
                clickhouse_literal(&values[0].0, !values[0].1)
            );
            let scope = Scope { workspace_id: "ws_'1\\".into(), only: Some(vec!["ns \\' --".into()]) };
            let ctx = Ctx { dialect, now_ms: 0 };
            match plan(&query, &VERIFICATIONS, &scope, ctx, 100) {
                Ok(sealed) => {
                    prop_assert!(hides_nothing(&sealed.sql, dialect).is_ok(), "{}", sealed.sql);
                    prop_assert!(sealed.params.contains(&"ws_'1\\".to_string()));
                    prop_assert!(sealed.params.contains(&"ns \\' --".to_string()));
                    for (v, _) in &values {
                        prop_assert!(sealed.params.contains(v), "{v:?} in {:?}", sealed.params);
                    }
                }
                Err(e) => prop_assert!(values.iter().any(|(v, _)| v.contains('\0')), "{query}: {e}"),
            }
        }
    }
}
