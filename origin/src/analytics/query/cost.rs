//! How much work and memory a query can take once the database inlines it, bounded
//! before it runs.
//!
//! SQLite and PostgreSQL flatten subqueries and CTEs: an outer `v || v` over an inner
//! `v || v AS v` becomes `(v || v) || (v || v)`, so twenty nested doublings are a
//! million-node expression. Measured on SQLite 3.40: 18 levels took 109 MB and 0.3 s to
//! prepare, 20 levels 390 MB and 1 s, before a single row was read; the origin once grew
//! to 15 GB on sixteen levels over a 20 KB string. PostgreSQL folds such an expression
//! over bound strings while planning, where neither `statement_timeout` nor a terminate
//! signal reaches it: a 30 KB query of five CTEs took a backend to 17 GB.
//!
//! So every expression gets a size, and every column reference stands for the largest
//! column it could be (the largest of the sources in scope, CTEs and enclosing queries
//! included):
//! - `nodes`: expression nodes once inlined, plus the work of scanning large values (a
//!   node over a value costs one more per KiB, a LIKE the product of its operands' sizes
//!   per KiB). The whole query may not pass `MAX_WORK`.
//! - `bytes`: the longest value the expression can produce. Concatenation adds, every
//!   other function keeps the largest input (none of the allowed ones grows a string
//!   otherwise). No value may pass `MAX_VALUE_BYTES`, and no row `MAX_ROW_BYTES`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, JoinConstraint, JoinOperator as J, ObjectNamePart,
    OrderByKind, Query, Select, SelectItem, SetExpr, TableFactor, TableWithJoins, Value, Visit,
    Visitor,
};

use super::error::QueryError;

/// Work units a query may take: far above any report's needs (a hundred-column report
/// over a few CTEs weighs a few thousand).
pub const MAX_WORK: u64 = 200_000;
/// The longest value a query may build (SQLite's own limit on the analytics connections).
pub const MAX_VALUE_BYTES: u64 = 1024 * 1024;
/// The widest row a query may build: the readers cut a row there too.
pub const MAX_ROW_BYTES: u64 = 1024 * 1024;
/// What a stored column may hold, as far as this estimate goes: ids, outcomes, tags.
/// Tags are up to 20 of 512 characters each, which JSON can write at 6 bytes a character.
const STORED_BYTES: u64 = 64 * 1024;
/// A number, a boolean, a NULL.
const SCALAR_BYTES: u64 = 24;

/// An expression's (or a column's) size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    nodes: u64,
    bytes: u64,
}

impl Size {
    const SCALAR: Size = Size {
        nodes: 1,
        bytes: SCALAR_BYTES,
    };
    const STORED: Size = Size {
        nodes: 1,
        bytes: STORED_BYTES,
    };

    fn max(self, o: Size) -> Size {
        Size {
            nodes: self.nodes.max(o.nodes),
            bytes: self.bytes.max(o.bytes),
        }
    }
}

/// Refuses `q` if it could take more than the bounds above.
pub fn check(q: &Query) -> Result<(), QueryError> {
    let mut w = Walk::default();
    query(q, Size::SCALAR, &mut w)?;
    Ok(())
}

/// What the walk has counted: the work so far, and each CTE's largest column by its
/// (rewritten, so unique) name.
#[derive(Default)]
struct Walk {
    work: u64,
    ctes: HashMap<String, Size>,
}

fn over_work() -> QueryError {
    QueryError::Limit(format!(
        "the query could take more than {MAX_WORK} units of work once its subqueries are inlined; \
         use fewer nested subqueries, or fewer operations over long strings"
    ))
}

fn add(w: &mut Walk, n: u64) -> Result<(), QueryError> {
    w.work = w.work.saturating_add(n);
    if w.work > MAX_WORK {
        return Err(over_work());
    }
    Ok(())
}

/// The largest output column of `q`, with `env` the largest column of the enclosing
/// queries.
fn query(q: &Query, env: Size, w: &mut Walk) -> Result<Size, QueryError> {
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            let size = query(&cte.query, env, w)?;
            w.ctes.insert(cte.alias.name.value.clone(), size);
        }
    }
    let out = set_expr(&q.body, env, w)?;
    if let Some(order) = &q.order_by
        && let OrderByKind::Expressions(items) = &order.kind
    {
        for item in items {
            let s = expr(&item.expr, env.max(out), w)?;
            add(w, s.nodes)?;
        }
    }
    Ok(out)
}

fn set_expr(body: &SetExpr, env: Size, w: &mut Walk) -> Result<Size, QueryError> {
    match body {
        SetExpr::Select(s) => select(s, env, w),
        SetExpr::Query(q) => query(q, env, w),
        SetExpr::SetOperation { left, right, .. } => {
            let l = set_expr(left, env, w)?;
            Ok(l.max(set_expr(right, env, w)?))
        }
        _ => Ok(Size::SCALAR),
    }
}

fn select(s: &Select, env: Size, w: &mut Walk) -> Result<Size, QueryError> {
    let mut sources = Size::SCALAR;
    let mut conditions = Vec::new();
    for from in &s.from {
        sources = sources.max(table_with_joins(from, env, w, &mut conditions)?);
    }
    let local = sources.max(env);
    let mut out = Size::SCALAR;
    let mut row_bytes = 0u64;
    for item in &s.projection {
        let size = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                expr(e, local, w)?
            }
            // Every column of the sources: at most their largest, times a few dozen.
            _ => Size {
                nodes: sources.nodes,
                bytes: sources.bytes.saturating_mul(16),
            },
        };
        add(w, size.nodes)?;
        row_bytes = row_bytes.saturating_add(size.bytes);
        out = out.max(size);
    }
    if row_bytes > MAX_ROW_BYTES {
        return Err(QueryError::Limit(format!(
            "a row of this query could be wider than {MAX_ROW_BYTES} bytes; select fewer or shorter values"
        )));
    }
    let group = match &s.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.iter().collect(),
        _ => Vec::new(),
    };
    for e in conditions
        .into_iter()
        .chain(s.selection.as_ref())
        .chain(s.having.as_ref())
        .chain(group)
    {
        let size = expr(e, local, w)?;
        add(w, size.nodes)?;
    }
    Ok(out)
}

fn table_with_joins<'q>(
    t: &'q TableWithJoins,
    env: Size,
    w: &mut Walk,
    conditions: &mut Vec<&'q Expr>,
) -> Result<Size, QueryError> {
    let mut size = table_factor(&t.relation, env, w, conditions)?;
    for join in &t.joins {
        size = size.max(table_factor(&join.relation, env, w, conditions)?);
        let constraint = match &join.join_operator {
            J::Join(c)
            | J::Inner(c)
            | J::Left(c)
            | J::LeftOuter(c)
            | J::Right(c)
            | J::RightOuter(c)
            | J::FullOuter(c)
            | J::CrossJoin(c) => Some(c),
            _ => None,
        };
        if let Some(JoinConstraint::On(e)) = constraint {
            conditions.push(e);
        }
    }
    Ok(size)
}

fn table_factor<'q>(
    f: &'q TableFactor,
    env: Size,
    w: &mut Walk,
    conditions: &mut Vec<&'q Expr>,
) -> Result<Size, QueryError> {
    match f {
        TableFactor::Derived { subquery, .. } => query(subquery, env, w),
        TableFactor::NestedJoin {
            table_with_joins: nested,
            ..
        } => table_with_joins(nested, env, w, conditions),
        // A CTE is as large as its columns; a stored table's column is a stored value.
        TableFactor::Table { name, .. } => Ok(match name.0.as_slice() {
            [ObjectNamePart::Identifier(id)] => {
                w.ctes.get(&id.value).copied().unwrap_or(Size::STORED)
            }
            _ => Size::STORED,
        }),
        _ => Ok(Size::STORED),
    }
}

/// An expression's size, its nested queries' work counted into `w`.
fn expr(e: &Expr, local: Size, w: &mut Walk) -> Result<Size, QueryError> {
    let mut sizer = Sizer {
        local,
        walk: w,
        frames: vec![Frame::default()],
        depth: 0,
        failed: None,
    };
    let _ = e.visit(&mut sizer);
    if let Some(err) = sizer.failed {
        return Err(err);
    }
    let top = sizer.frames.pop().unwrap_or_default();
    Ok(Size {
        nodes: top.nodes,
        bytes: top.max_bytes.max(top.sum_bytes),
    })
}

/// One expression being sized: what its children added up to so far.
#[derive(Default)]
struct Frame {
    concat: bool,
    /// A LIKE: its work is the product of its operands' sizes.
    like: bool,
    nodes: u64,
    sum_bytes: u64,
    max_bytes: u64,
    /// The operands' sizes, for a LIKE.
    operands: Vec<u64>,
    /// The node's own value, for a literal or a column.
    own: Option<Size>,
}

/// Sizes an expression bottom-up with a stack of frames: the visitor calls in before and
/// after each node's children.
struct Sizer<'w> {
    local: Size,
    walk: &'w mut Walk,
    frames: Vec<Frame>,
    /// Queries entered below the expression: their nodes are theirs, not this one's.
    depth: usize,
    failed: Option<QueryError>,
}

impl Sizer<'_> {
    fn fail(&mut self, e: QueryError) -> ControlFlow<()> {
        self.failed.get_or_insert(e);
        ControlFlow::Break(())
    }

    /// Adds a finished child's size to its parent.
    fn give(&mut self, child: Size) {
        if let Some(parent) = self.frames.last_mut() {
            parent.nodes = parent.nodes.saturating_add(child.nodes);
            parent.sum_bytes = parent.sum_bytes.saturating_add(child.bytes);
            parent.max_bytes = parent.max_bytes.max(child.bytes);
            parent.operands.push(child.bytes);
        }
    }
}

impl Visitor for Sizer<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            let before = self.walk.work;
            match query(q, self.local, self.walk) {
                // A nested query weighs all of its work: when the database flattens the
                // query it stands in, it copies the whole subquery into every place the
                // column is used (`v + v` over it doubles it, level after level).
                Ok(size) => self.give(Size {
                    nodes: self.walk.work.saturating_sub(before).max(1),
                    bytes: size.bytes,
                }),
                Err(e) => return self.fail(e),
            }
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        let own = match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => Some(self.local),
            Expr::Value(v) => Some(Size {
                nodes: 1,
                bytes: match &v.value {
                    Value::SingleQuotedString(s) => s.len() as u64,
                    _ => SCALAR_BYTES,
                },
            }),
            _ => None,
        };
        self.frames.push(Frame {
            concat: matches!(
                e,
                Expr::BinaryOp {
                    op: BinaryOperator::StringConcat,
                    ..
                }
            ),
            like: matches!(e, Expr::Like { .. } | Expr::ILike { .. }),
            own,
            ..Frame::default()
        });
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _e: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        let Some(f) = self.frames.pop() else {
            return ControlFlow::Continue(());
        };
        let bytes = match f.own {
            Some(own) => own.bytes,
            None if f.concat => f.sum_bytes,
            None if f.like => SCALAR_BYTES,
            None => f.max_bytes.max(SCALAR_BYTES),
        };
        // Scanning large inputs is work too: a KiB costs a node, a LIKE its product.
        let scan = if f.like {
            f.operands.iter().product::<u64>() / 1024
        } else {
            f.sum_bytes / 1024
        };
        let nodes = f
            .own
            .map_or(1, |o| o.nodes)
            .saturating_add(f.nodes)
            .saturating_add(scan);
        if bytes > MAX_VALUE_BYTES {
            return self.fail(QueryError::Limit(format!(
                "a value of this query could grow past {MAX_VALUE_BYTES} bytes; \
                 build shorter strings"
            )));
        }
        if nodes > MAX_WORK {
            return self.fail(over_work());
        }
        self.give(Size { nodes, bytes });
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn size_of(sql: &str) -> Result<(), QueryError> {
        let q = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_query())
            .unwrap();
        check(&q)
    }

    #[test]
    fn reports_pass_and_bombs_do_not() {
        size_of("SELECT key_id, count(*) AS n FROM t WHERE outcome = 'VALID' GROUP BY key_id")
            .unwrap();
        size_of("WITH a AS (SELECT key_id AS k FROM t) SELECT k || '-' || k AS x FROM a").unwrap();
        let big = "a".repeat(30_000);
        // Eight copies of a 30 KB literal, five times over: PostgreSQL folded it to 17 GB.
        let pg = format!(
            "WITH a AS (SELECT '{big}' AS v), b AS (SELECT v||v||v||v||v||v||v||v AS v FROM a), \
             c AS (SELECT v||v||v||v||v||v||v||v AS v FROM b), d AS (SELECT v||v||v||v||v||v||v||v AS v FROM c) \
             SELECT length(v) AS n FROM d"
        );
        let e = size_of(&pg).unwrap_err();
        assert!(e.to_string().contains("grow past"), "{e}");
        // A LIKE over long strings is work.
        size_of(&format!(
            "SELECT '{}' LIKE '%a%' AS a FROM t",
            "a".repeat(30_000)
        ))
        .unwrap();
        let like = format!(
            "WITH a AS (SELECT '{}' AS v), b AS (SELECT v||v||v||v||v||v||v||v AS v FROM a) \
             SELECT v LIKE '{}' AS x FROM b",
            "a".repeat(25_000),
            "%a_".repeat(1000)
        );
        let e = size_of(&like).unwrap_err();
        assert!(e.to_string().contains("units of work"), "{e}");
        // A subquery copied into every use of its column, level after level.
        let inlist = (0..1000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut dup = format!(
            "WITH c1 AS (SELECT (SELECT count(*) FROM t WHERE x IN ({inlist})) AS v FROM t)"
        );
        for k in 2..=12 {
            dup.push_str(&format!(", c{k} AS (SELECT v+v AS v FROM c{})", k - 1));
        }
        dup.push_str(" SELECT v FROM c12");
        let e = size_of(&dup).unwrap_err();
        assert!(e.to_string().contains("units of work"), "{e}");
        // A wide row.
        let cols = (0..20)
            .map(|i| format!("tags AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let e = size_of(&format!("SELECT {cols} FROM t")).unwrap_err();
        assert!(e.to_string().contains("wider than"), "{e}");
    }
}
