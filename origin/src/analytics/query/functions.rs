//! The functions a query may call, and what each becomes in SQLite and PostgreSQL.
//!
//! Users copy queries from Unkey's docs, which are ClickHouse: `countIf`, `toStartOfHour`,
//! `now() - INTERVAL 7 DAY`. Times here are unix milliseconds in every table, so the
//! time functions are integer arithmetic on milliseconds, and `now()` is the time the
//! query was planned. A function `translate` does not know is refused by name.

use chrono::{NaiveDate, NaiveDateTime};
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Value, visit_expressions_mut};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use super::error::QueryError;

/// The database a query is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// What a call needs besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub dialect: Dialect,
    pub now_ms: i64,
}

/// A call, validated: its arguments already rewritten.
pub struct Call {
    pub name: String,
    pub args: Vec<Expr>,
    pub distinct: bool,
    /// `count(*)`.
    pub star: bool,
}

/// A number literal. A negative one is `(-n)`: a literal's text never starts with `-`,
/// so no printer can put it after another `-` and make a `--` comment of the two.
pub fn number(n: impl std::fmt::Display) -> Expr {
    let text = n.to_string();
    match text.strip_prefix('-') {
        Some(abs) => Expr::Nested(Box::new(Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr: Box::new(Expr::value(Value::Number(abs.to_string(), false))),
        })),
        None => Expr::value(Value::Number(text, false)),
    }
}

/// Parses a fixed expression with `{0}`, `{1}`… standing for the arguments, then puts
/// each argument's tree (parenthesized) where its name stands. Arguments are never
/// printed and read back: a string printed by one dialect and read by another is how
/// the sandbox was once escaped.
fn template(ctx: &Ctx, sql: &str, args: &[Expr]) -> Result<Expr, QueryError> {
    // One pass over the template; an argument becomes an unquoted name no user name can
    // be, since every user name is quoted by then.
    let mut text = String::with_capacity(sql.len() + 16 * args.len());
    let mut used = vec![false; args.len()];
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        match after[..close]
            .parse::<usize>()
            .ok()
            .filter(|i| *i < args.len())
        {
            // An argument used twice would copy its whole tree (see `week_floor`).
            Some(i) if used[i] => {
                return Err(QueryError::Invalid(format!(
                    "internal: a function template uses argument {i} twice"
                )));
            }
            Some(i) => {
                used[i] = true;
                text.push_str(&format!("{ARG}{i}"));
            }
            None => text.push_str(&rest[open..(open + 2 + close).min(rest.len())]),
        }
        rest = &after[(close + 1).min(after.len())..];
    }
    text.push_str(rest);
    let parsed = match ctx.dialect {
        Dialect::Sqlite => Parser::new(&SQLiteDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr()),
        Dialect::Postgres => Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr()),
    };
    let mut expr = parsed
        .map_err(|e| QueryError::Invalid(format!("could not translate a function call: {e}")))?;
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let Expr::Identifier(id) = e {
            let arg = id
                .value
                .strip_prefix(ARG)
                .filter(|_| id.quote_style.is_none())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| args.get(i));
            if let Some(a) = arg {
                *e = Expr::Nested(Box::new(a.clone()));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(expr)
}

/// The name an argument stands under inside a template.
const ARG: &str = "kw_arg_";

fn arity(call: &Call, min: usize, max: usize) -> Result<(), QueryError> {
    let n = call.args.len();
    if n < min || n > max || call.star {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(QueryError::Invalid(format!(
            "{}() takes {want} argument(s), got {n}",
            call.name
        )));
    }
    if call.distinct {
        return Err(QueryError::Invalid(format!(
            "DISTINCT is allowed only in count(), sum() and avg(), not in {}()",
            call.name
        )));
    }
    Ok(())
}

/// A string literal that names a moment: `'2025-01-31'` or `'2025-01-31 12:00:00'`, UTC.
fn moment(e: &Expr) -> Option<Result<i64, QueryError>> {
    let Expr::Value(v) = e else { return None };
    let Value::SingleQuotedString(s) = &v.value else {
        return None;
    };
    let parsed = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        });
    Some(parsed.map(|t| t.and_utc().timestamp_millis()).map_err(|_| {
        QueryError::Invalid(format!(
            "'{s}' is not a time; write 'YYYY-MM-DD' or 'YYYY-MM-DD hh:mm:ss' (UTC)"
        ))
    }))
}

/// The start of the `unit` (in ms) holding `x`.
fn floor_to(ctx: &Ctx, x: &Expr, unit_ms: i64) -> Result<Expr, QueryError> {
    if let Some(t) = moment(x) {
        return Ok(number(t?.div_euclid(unit_ms) * unit_ms));
    }
    template(
        ctx,
        &format!("{{0}} / {unit_ms} * {unit_ms}"),
        std::slice::from_ref(x),
    )
}

/// The start of the calendar `unit` (`month`, `year`) holding `x`, in UTC.
fn calendar_floor(ctx: &Ctx, x: &Expr, unit: &str) -> Result<Expr, QueryError> {
    let sql = match ctx.dialect {
        Dialect::Sqlite => {
            format!(
                "CAST(strftime('%s', {{0}} / 1000, 'unixepoch', 'start of {unit}') AS INTEGER) * 1000"
            )
        }
        Dialect::Postgres => format!(
            "CAST(EXTRACT(EPOCH FROM date_trunc('{unit}', to_timestamp({{0}} / 1000) AT TIME ZONE 'UTC')) AS BIGINT) * 1000"
        ),
    };
    template(ctx, &sql, std::slice::from_ref(x))
}

/// The start of the week holding `x`; 1970-01-01 was a Thursday, so a Sunday-based week
/// is offset by 4 days and a Monday-based one by 3. `x` appears once: a template that
/// used an argument twice doubled the tree at each level of nesting, and twenty nested
/// calls were gigabytes before any bound could look at them.
fn week_floor(ctx: &Ctx, x: &Expr, offset_days: i64) -> Result<Expr, QueryError> {
    template(
        ctx,
        &format!("(({{0}} / {DAY_MS} + {offset_days}) / 7 * 7 - {offset_days}) * {DAY_MS}"),
        std::slice::from_ref(x),
    )
}

fn positive_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok().filter(|n| *n > 0),
            _ => None,
        },
        Expr::Nested(inner) => positive_literal(inner),
        _ => None,
    }
}

/// The functions that are one fixed template of their arguments, the same on both
/// databases: the names, how many arguments, and the SQL.
const TEMPLATES: &[(&[&str], usize, &str)] = &[
    (&["min"], 1, "MIN({0})"),
    (&["max"], 1, "MAX({0})"),
    (&["uniq", "uniqexact"], 1, "COUNT(DISTINCT {0})"),
    (&["countif"], 1, "SUM(CASE WHEN {0} THEN 1 ELSE 0 END)"),
    (&["sumif"], 2, "SUM(CASE WHEN {1} THEN {0} ELSE 0 END)"),
    (&["uniqif"], 2, "COUNT(DISTINCT CASE WHEN {1} THEN {0} END)"),
    (&["abs"], 1, "ABS({0})"),
    (&["ifnull"], 2, "COALESCE({0}, {1})"),
    (&["nullif"], 2, "NULLIF({0}, {1})"),
    (&["if"], 3, "CASE WHEN {0} THEN {1} ELSE {2} END"),
    (&["lower"], 1, "LOWER({0})"),
    (&["upper"], 1, "UPPER({0})"),
    (&["length"], 1, "LENGTH({0})"),
    (&["tostring"], 1, "CAST({0} AS TEXT)"),
    (
        &["toint64", "touint64", "toint32"],
        1,
        "CAST({0} AS BIGINT)",
    ),
    (&["fromunixtimestamp"], 1, "{0} * 1000"),
    (&["tounixtimestamp"], 1, "{0} / 1000"),
];

/// Translates one call. `ctx.now_ms` stands for `now()`.
pub fn translate(ctx: &Ctx, call: Call) -> Result<Expr, QueryError> {
    let pg = ctx.dialect == Dialect::Postgres;
    let name = call.name.to_ascii_lowercase();
    let a = &call.args;
    let fixed = TEMPLATES
        .iter()
        .find(|(names, ..)| names.contains(&name.as_str()));
    if let Some((_, n, sql)) = fixed {
        arity(&call, *n, *n)?;
        return template(ctx, sql, a);
    }
    match name.as_str() {
        "count" => {
            if call.star {
                return template(ctx, "COUNT(*)", &[]);
            }
            let c = Call {
                distinct: false,
                ..call
            };
            arity(&c, 1, 1)?;
            if call.distinct {
                template(ctx, "COUNT(DISTINCT {0})", &c.args)
            } else {
                template(ctx, "COUNT({0})", &c.args)
            }
        }
        "sum" | "avg" => {
            let distinct = call.distinct;
            let c = Call {
                distinct: false,
                ..call
            };
            arity(&c, 1, 1)?;
            let f = name.to_ascii_uppercase();
            if distinct {
                template(ctx, &format!("{f}(DISTINCT {{0}})"), &c.args)
            } else {
                template(ctx, &format!("{f}({{0}})"), &c.args)
            }
        }
        "avgif" | "minif" | "maxif" => {
            arity(&call, 2, 2)?;
            let f = name.trim_end_matches("if").to_ascii_uppercase();
            template(ctx, &format!("{f}(CASE WHEN {{1}} THEN {{0}} END)"), a)
        }
        "round" => {
            arity(&call, 1, 2)?;
            // PostgreSQL rounds to digits only on NUMERIC.
            match (pg, a.len()) {
                (false, 1) => template(ctx, "ROUND({0})", a),
                (false, _) => template(ctx, "ROUND({0}, {1})", a),
                (true, 1) => template(ctx, "ROUND(CAST({0} AS NUMERIC))", a),
                (true, _) => template(ctx, "ROUND(CAST({0} AS NUMERIC), CAST({1} AS INTEGER))", a),
            }
        }
        "coalesce" => {
            arity(&call, 1, usize::MAX)?;
            template(ctx, &format!("COALESCE({})", placeholders(a.len())), a)
        }
        "greatest" | "least" => {
            arity(&call, 2, usize::MAX)?;
            // SQLite's many-argument MAX and MIN are its GREATEST and LEAST.
            let f = match (pg, name.as_str()) {
                (true, "greatest") => "GREATEST",
                (true, _) => "LEAST",
                (false, "greatest") => "MAX",
                (false, _) => "MIN",
            };
            template(ctx, &format!("{f}({})", placeholders(a.len())), a)
        }
        "concat" => {
            arity(&call, 1, usize::MAX)?;
            let parts = (0..a.len())
                .map(|i| format!("COALESCE(CAST({{{i}}} AS TEXT), '')"))
                .collect::<Vec<_>>()
                .join(" || ");
            template(ctx, &parts, a)
        }
        "substring" | "substr" => {
            arity(&call, 2, 3)?;
            if a.len() == 2 {
                template(ctx, "SUBSTR({0}, {1})", a)
            } else {
                template(ctx, "SUBSTR({0}, {1}, {2})", a)
            }
        }
        "tofloat64" => {
            arity(&call, 1, 1)?;
            let t = if pg { "DOUBLE PRECISION" } else { "REAL" };
            template(ctx, &format!("CAST({{0}} AS {t})"), a)
        }
        "now" | "now64" => {
            arity(&call, 0, 1)?;
            Ok(number(ctx.now_ms))
        }
        "today" => {
            arity(&call, 0, 0)?;
            Ok(number(ctx.now_ms.div_euclid(DAY_MS) * DAY_MS))
        }
        "yesterday" => {
            arity(&call, 0, 0)?;
            Ok(number(ctx.now_ms.div_euclid(DAY_MS) * DAY_MS - DAY_MS))
        }
        "tostartofminute" => one(&call).and_then(|x| floor_to(ctx, x, MINUTE_MS)),
        "tostartoffiveminutes" | "tostartoffiveminute" => {
            one(&call).and_then(|x| floor_to(ctx, x, 5 * MINUTE_MS))
        }
        "tostartoffifteenminutes" => one(&call).and_then(|x| floor_to(ctx, x, 15 * MINUTE_MS)),
        "tostartofhour" => one(&call).and_then(|x| floor_to(ctx, x, HOUR_MS)),
        "tostartofday" | "todate" => one(&call).and_then(|x| floor_to(ctx, x, DAY_MS)),
        "tostartofweek" => one(&call).and_then(|x| week_floor(ctx, x, 4)),
        "tomonday" => one(&call).and_then(|x| week_floor(ctx, x, 3)),
        "tostartofmonth" => one(&call).and_then(|x| calendar_floor(ctx, x, "month")),
        "tostartofyear" => one(&call).and_then(|x| calendar_floor(ctx, x, "year")),
        "tostartofinterval" => {
            arity(&call, 2, 2)?;
            let unit = positive_literal(&a[1]).ok_or_else(|| {
                QueryError::Invalid(
                    "toStartOfInterval() takes a time and an INTERVAL, e.g. INTERVAL 5 MINUTE"
                        .into(),
                )
            })?;
            floor_to(ctx, &a[0], unit)
        }
        "todatetime" | "todatetime64" | "fromunixtimestamp64milli" | "tounixtimestamp64milli" => {
            arity(&call, 1, 2)?;
            // Every time is already unix milliseconds; a time written as text becomes one.
            match moment(&a[0]) {
                Some(t) => Ok(number(t?)),
                None => Ok(Expr::Nested(Box::new(a[0].clone()))),
            }
        }
        "has" => {
            arity(&call, 2, 2)?;
            // Tags are stored as a JSON array of strings.
            if pg {
                template(
                    ctx,
                    "jsonb_exists(CAST({0} AS JSONB), CAST({1} AS TEXT))",
                    a,
                )
            } else {
                template(
                    ctx,
                    "EXISTS (SELECT 1 FROM json_each({0}) AS j WHERE j.value = {1})",
                    a,
                )
            }
        }
        _ => Err(QueryError::Function(call.name)),
    }
}

fn one(call: &Call) -> Result<&Expr, QueryError> {
    arity(call, 1, 1)?;
    Ok(&call.args[0])
}

fn placeholders(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{{i}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dialect: Dialect) -> Ctx {
        Ctx {
            dialect,
            now_ms: 1_700_000_000_123,
        }
    }

    fn ident(s: &str) -> Expr {
        Expr::Identifier(s.into())
    }

    fn call(name: &str, args: Vec<Expr>) -> Call {
        Call {
            name: name.into(),
            args,
            distinct: false,
            star: false,
        }
    }

    fn sql(d: Dialect, name: &str, args: Vec<Expr>) -> String {
        translate(&ctx(d), call(name, args)).unwrap().to_string()
    }

    #[test]
    fn clickhouse_spellings_translate() {
        let s = Dialect::Sqlite;
        assert_eq!(
            sql(s, "countIf", vec![ident("ok")]),
            "SUM(CASE WHEN (ok) THEN 1 ELSE 0 END)"
        );
        assert_eq!(
            sql(s, "toStartOfHour", vec![ident("time")]),
            "(time) / 3600000 * 3600000"
        );
        assert_eq!(sql(s, "now", vec![]), "1700000000123");
        assert_eq!(sql(s, "today", vec![]), "1699920000000");
        assert_eq!(
            sql(
                s,
                "toStartOfDay",
                vec![Expr::value(Value::SingleQuotedString(
                    "2023-11-14 22:13:20".into()
                ))]
            ),
            "1699920000000"
        );
        assert!(
            sql(Dialect::Postgres, "toStartOfMonth", vec![ident("time")])
                .contains("date_trunc('month'")
        );
        assert!(
            sql(
                s,
                "has",
                vec![
                    ident("tags"),
                    Expr::value(Value::SingleQuotedString("a".into()))
                ]
            )
            .contains("json_each")
        );
        assert_eq!(
            sql(s, "greatest", vec![ident("a"), ident("b")]),
            "MAX((a), (b))"
        );
        assert_eq!(
            sql(Dialect::Postgres, "greatest", vec![ident("a"), ident("b")]),
            "GREATEST((a), (b))"
        );
    }

    #[test]
    fn weeks_start_on_sunday_or_monday() {
        // 2023-11-14 (Tuesday) → Sunday 2023-11-12 and Monday 2023-11-13, by the formula.
        let ms = 1_699_920_000_000_i64 + 5 * HOUR_MS;
        let week = |off: i64| ((ms / DAY_MS + off) / 7 * 7 - off) * DAY_MS;
        assert_eq!(week(4), 1_699_747_200_000);
        assert_eq!(week(3), 1_699_833_600_000);
        // The same for every day of a few years, against the two-step formula.
        for day in 0..2_000i64 {
            for off in [3, 4] {
                assert_eq!((day + off) / 7 * 7 - off, day - (day + off) % 7, "{day}");
            }
        }
        assert!(
            sql(Dialect::Sqlite, "toStartOfWeek", vec![ident("time")])
                .matches("time")
                .count()
                == 1
        );
    }

    #[test]
    fn unknown_functions_and_bad_arity_are_refused() {
        let c = ctx(Dialect::Sqlite);
        assert_eq!(
            translate(&c, call("load_extension", vec![ident("x")])).unwrap_err(),
            QueryError::Function("load_extension".into())
        );
        let e = translate(&c, call("countIf", vec![])).unwrap_err();
        assert!(e.to_string().contains("countIf() takes 1 argument"), "{e}");
        let e = translate(
            &c,
            call(
                "toDate",
                vec![Expr::value(Value::SingleQuotedString("yesterday".into()))],
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not a time"), "{e}");
    }
}
