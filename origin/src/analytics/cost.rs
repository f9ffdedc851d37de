//! How large a query becomes once the database inlines it, bounded before it runs.
//!
//! SQLite and PostgreSQL flatten subqueries in FROM: an outer `v || v` over an inner
//! `v || v AS v` becomes `(v || v) || (v || v)`, so twenty nested doublings are a
//! million-node expression. Measured on SQLite 3.40: 18 levels took 109 MB and 0.3 s to
//! prepare, 20 levels 390 MB and 1 s, before a single row was read, and a 32 KB query
//! of fourteen CTEs once grew the origin to 2.87 GB. Two rules bound it:
//! - every CTE is `MATERIALIZED` (the rewriter marks it), so a reference to one is one
//!   column, not its whole expression;
//! - every other column reference is weighed as the heaviest column it could stand for
//!   (the heaviest of the sources in scope, the enclosing queries' included), and the
//!   total over the whole query may not pass `MAX_INLINED`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Query, Select, SelectItem, SetExpr, TableFactor, TableWithJoins, Visit, Visitor,
};

use super::query::QueryError;

/// Expression nodes a query may grow to once inlined: far above any report's needs (a
/// hundred-column report over a few CTEs weighs a few thousand).
pub const MAX_INLINED: u64 = 200_000;

/// Refuses `q` if its inlined size is over `MAX_INLINED`.
pub fn check(q: &Query) -> Result<(), QueryError> {
    let mut w = Weights::default();
    query(q, 1, &mut w)?;
    Ok(())
}

/// What the walk has counted: the running total, and each CTE's heaviest column by its
/// (rewritten, so unique) name.
#[derive(Default)]
struct Weights {
    total: u64,
    ctes: std::collections::HashMap<String, u64>,
}

fn over() -> QueryError {
    QueryError::Limit(format!(
        "the query grows past {MAX_INLINED} expression nodes once its subqueries are inlined; \
         use WITH for repeated parts, or fewer nested subqueries"
    ))
}

fn add(total: &mut Weights, w: u64) -> Result<(), QueryError> {
    total.total = total.total.saturating_add(w);
    if total.total > MAX_INLINED {
        return Err(over());
    }
    Ok(())
}

/// The heaviest output column of `q`, with `env` the weight of an outer column.
fn query(q: &Query, env: u64, total: &mut Weights) -> Result<u64, QueryError> {
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            let w = query(&cte.query, env, total)?;
            total.ctes.insert(cte.alias.name.value.clone(), w);
        }
    }
    let out = set_expr(&q.body, env, total)?;
    if let Some(order) = &q.order_by
        && let sqlparser::ast::OrderByKind::Expressions(items) = &order.kind
    {
        for item in items {
            let w = expr(&item.expr, env.max(out), total)?;
            add(total, w)?;
        }
    }
    Ok(out)
}

fn set_expr(body: &SetExpr, env: u64, total: &mut Weights) -> Result<u64, QueryError> {
    match body {
        SetExpr::Select(s) => select(s, env, total),
        SetExpr::Query(q) => query(q, env, total),
        SetExpr::SetOperation { left, right, .. } => {
            let l = set_expr(left, env, total)?;
            Ok(l.max(set_expr(right, env, total)?))
        }
        _ => Ok(1),
    }
}

fn select(s: &Select, env: u64, total: &mut Weights) -> Result<u64, QueryError> {
    let mut sources = 1;
    let mut conditions = Vec::new();
    for from in &s.from {
        sources = sources.max(table_with_joins(from, env, total, &mut conditions)?);
    }
    let local = sources.max(env);
    let mut out = 1;
    for item in &s.projection {
        let w = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                expr(e, local, total)?
            }
            _ => sources,
        };
        add(total, w)?;
        out = out.max(w);
    }
    let group = match &s.group_by {
        sqlparser::ast::GroupByExpr::Expressions(exprs, _) => exprs.iter().collect(),
        _ => Vec::new(),
    };
    for e in conditions
        .into_iter()
        .chain(s.selection.as_ref())
        .chain(s.having.as_ref())
        .chain(group)
    {
        let w = expr(e, local, total)?;
        add(total, w)?;
    }
    Ok(out)
}

fn table_with_joins<'q>(
    t: &'q TableWithJoins,
    env: u64,
    total: &mut Weights,
    conditions: &mut Vec<&'q Expr>,
) -> Result<u64, QueryError> {
    let mut w = table_factor(&t.relation, env, total, conditions)?;
    for join in &t.joins {
        w = w.max(table_factor(&join.relation, env, total, conditions)?);
        use sqlparser::ast::{JoinConstraint, JoinOperator as J};
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
    Ok(w)
}

fn table_factor<'q>(
    f: &'q TableFactor,
    env: u64,
    total: &mut Weights,
    conditions: &mut Vec<&'q Expr>,
) -> Result<u64, QueryError> {
    match f {
        TableFactor::Derived { subquery, .. } => query(subquery, env, total),
        TableFactor::NestedJoin {
            table_with_joins: nested,
            ..
        } => table_with_joins(nested, env, total, conditions),
        // A CTE weighs what its columns do; a stored table's column is one value.
        TableFactor::Table { name, .. } => Ok(match name.0.as_slice() {
            [sqlparser::ast::ObjectNamePart::Identifier(id)] => {
                total.ctes.get(&id.value).copied().unwrap_or(1)
            }
            _ => 1,
        }),
        _ => Ok(1),
    }
}

/// An expression's weight: one per node, a column reference as heavy as `local`, and a
/// nested query as one value (its own cost counted into `total`).
fn expr(e: &Expr, local: u64, total: &mut Weights) -> Result<u64, QueryError> {
    let mut w = Weigher {
        local,
        total,
        weight: 0,
        depth: 0,
        failed: None,
    };
    let _ = e.visit(&mut w);
    match w.failed {
        Some(err) => Err(err),
        None if w.weight > MAX_INLINED => Err(over()),
        None => Ok(w.weight),
    }
}

struct Weigher<'t> {
    local: u64,
    total: &'t mut Weights,
    weight: u64,
    /// Queries entered below the expression: their nodes are theirs, not this one's.
    depth: usize,
    failed: Option<QueryError>,
}

impl Visitor for Weigher<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            if let Err(e) = query(q, self.local, self.total) {
                self.failed = Some(e);
                return ControlFlow::Break(());
            }
            self.weight = self.weight.saturating_add(1);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            let w = match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => self.local,
                _ => 1,
            };
            self.weight = self.weight.saturating_add(w);
            if self.weight > MAX_INLINED {
                self.failed = Some(over());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}
