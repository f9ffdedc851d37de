//! The public analytics tables, as Unkey names them, and what each one reads.
//!
//! A query never names a stored table. Each public name becomes a subquery over its
//! stored table that selects only the public columns and only the caller's rows: its
//! workspace, and the APIs (or namespaces) its root key may read. Everything a query can
//! reach is inside those subqueries.

/// Which rows a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub workspace_id: String,
    /// `None`: every API (or namespace) of the workspace; `Some`: only these.
    pub only: Option<Vec<String>>,
}

/// One public table: its name, the stored table behind it and the columns it exposes.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub stored: &'static str,
    /// `public name = SQL over the stored row` (the stored table is aliased `t`).
    columns: &'static [(&'static str, &'static str)],
    /// The stored column a grant restricts (`api_id`, `namespace`).
    restrict: &'static str,
    /// Stored rollups of rate limits keep passed and rejected requests apart; Unkey's
    /// public shape has one row with both counts.
    group_by: Option<&'static str>,
}

/// The rows of one analytics route: verifications or rate limits.
#[derive(Debug)]
pub struct Catalog {
    /// Which route's rows: the databases' own scope checks name it too, so a query
    /// through one route cannot read the other's tables even past the rewriter.
    pub kind: Kind,
    pub tables: &'static [Table],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Verifications,
    Ratelimits,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Verifications => "verifications",
            Kind::Ratelimits => "ratelimits",
        }
    }
}

impl Catalog {
    pub fn find(&self, name: &str) -> Option<&'static Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub fn names(&self) -> String {
        self.tables
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The external id of the row's identity, looked up in the same workspace.
const EXTERNAL_ID: &str = "COALESCE((SELECT i.external_id FROM identities i WHERE i.id = t.identity_id AND i.workspace_id = t.workspace_id), '')";

const VERIFICATION_ROLLUP: &[(&str, &str)] = &[
    ("time", "t.time"),
    ("workspace_id", "t.workspace_id"),
    ("key_space_id", "t.api_id"),
    ("api_id", "t.api_id"),
    ("identity_id", "t.identity_id"),
    ("external_id", EXTERNAL_ID),
    ("key_id", "t.key_id"),
    ("outcome", "t.outcome"),
    ("tags", "t.tags"),
    ("count", "t.count"),
    ("spent_credits", "t.spent_credits"),
];

const RATELIMIT_ROLLUP: &[(&str, &str)] = &[
    ("time", "t.time"),
    ("workspace_id", "t.workspace_id"),
    ("namespace_id", "t.namespace"),
    ("namespace", "t.namespace"),
    ("identifier", "t.identifier"),
    (
        "passed",
        "SUM(CASE WHEN t.passed = 1 THEN t.count ELSE 0 END)",
    ),
    ("total", "SUM(t.count)"),
];

const RATELIMIT_GROUP: &str = "t.time, t.workspace_id, t.namespace, t.identifier";

pub static VERIFICATIONS: Catalog = Catalog {
    kind: Kind::Verifications,
    tables: &[
        Table {
            name: "key_verifications_v1",
            stored: "key_verifications",
            columns: &[
                ("request_id", "t.request_id"),
                ("time", "t.time"),
                ("workspace_id", "t.workspace_id"),
                ("key_space_id", "t.api_id"),
                ("api_id", "t.api_id"),
                ("identity_id", "COALESCE(t.identity_id, '')"),
                ("external_id", EXTERNAL_ID),
                ("key_id", "t.key_id"),
                ("outcome", "t.outcome"),
                ("tags", "t.tags"),
                ("spent_credits", "t.spent_credits"),
                ("latency", "t.latency_us / 1000.0"),
                ("served_by", "t.served_by"),
            ],
            restrict: "api_id",
            group_by: None,
        },
        Table {
            name: "key_verifications_per_minute_v1",
            stored: "key_verifications_per_minute",
            columns: VERIFICATION_ROLLUP,
            restrict: "api_id",
            group_by: None,
        },
        Table {
            name: "key_verifications_per_hour_v1",
            stored: "key_verifications_per_hour",
            columns: VERIFICATION_ROLLUP,
            restrict: "api_id",
            group_by: None,
        },
        Table {
            name: "key_verifications_per_day_v1",
            stored: "key_verifications_per_day",
            columns: VERIFICATION_ROLLUP,
            restrict: "api_id",
            group_by: None,
        },
        Table {
            name: "key_verifications_per_month_v1",
            stored: "key_verifications_per_month",
            columns: VERIFICATION_ROLLUP,
            restrict: "api_id",
            group_by: None,
        },
    ],
};

pub static RATELIMITS: Catalog = Catalog {
    kind: Kind::Ratelimits,
    tables: &[
        Table {
            name: "ratelimits_v1",
            stored: "ratelimit_events",
            columns: &[
                ("request_id", "t.request_id"),
                ("time", "t.time"),
                ("workspace_id", "t.workspace_id"),
                ("namespace_id", "t.namespace"),
                ("namespace", "t.namespace"),
                ("identifier", "t.identifier"),
                ("passed", "t.passed"),
                ("latency", "t.latency_us / 1000.0"),
                ("served_by", "t.served_by"),
            ],
            restrict: "namespace",
            group_by: None,
        },
        Table {
            name: "ratelimits_per_minute_v1",
            stored: "ratelimits_per_minute",
            columns: RATELIMIT_ROLLUP,
            restrict: "namespace",
            group_by: Some(RATELIMIT_GROUP),
        },
        Table {
            name: "ratelimits_per_hour_v1",
            stored: "ratelimits_per_hour",
            columns: RATELIMIT_ROLLUP,
            restrict: "namespace",
            group_by: Some(RATELIMIT_GROUP),
        },
        Table {
            name: "ratelimits_per_day_v1",
            stored: "ratelimits_per_day",
            columns: RATELIMIT_ROLLUP,
            restrict: "namespace",
            group_by: Some(RATELIMIT_GROUP),
        },
        Table {
            name: "ratelimits_per_month_v1",
            stored: "ratelimits_per_month",
            columns: RATELIMIT_ROLLUP,
            restrict: "namespace",
            group_by: Some(RATELIMIT_GROUP),
        },
    ],
};

/// Every stored table an analytics query may read, with the column a grant restricts
/// and the route it belongs to: what the databases' own sandbox is built from.
pub fn stored_tables() -> impl Iterator<Item = (&'static str, &'static str, Kind)> {
    [&VERIFICATIONS, &RATELIMITS]
        .into_iter()
        .flat_map(|c| c.tables.iter().map(|t| (t.stored, t.restrict, c.kind)))
}

/// The one other stored table the subqueries read (`external_id`), and its columns.
pub const IDENTITIES: (&str, &[&str]) = ("identities", &["id", "workspace_id", "external_id"]);

/// The name that stands for the caller's `i`th scope value in a subquery's text, until
/// `query` puts the value itself in the parsed tree: values are never printed into SQL.
pub fn scope_slot(i: usize) -> String {
    format!("kw_scope_{i}")
}

impl Table {
    /// The subquery that stands for this table: public columns, the caller's rows. The
    /// scope's values (workspace, then each readable id) appear as `scope_slot(i)` names.
    pub fn subquery(&self, scope: &Scope) -> (String, Vec<String>) {
        let columns = self
            .columns
            .iter()
            .map(|(name, sql)| format!("{sql} AS {name}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut values = vec![scope.workspace_id.clone()];
        let mut sql = format!(
            "SELECT {columns} FROM {} t WHERE t.workspace_id = {}",
            self.stored,
            scope_slot(0)
        );
        if let Some(only) = &scope.only {
            // An empty grant list never reaches here (it is a 403), but an empty IN ()
            // would be a syntax error in PostgreSQL: make it match nothing instead.
            if only.is_empty() {
                sql.push_str(" AND 1 = 0");
            } else {
                let slots = (1..=only.len()).map(scope_slot).collect::<Vec<_>>();
                values.extend(only.iter().cloned());
                sql.push_str(&format!(
                    " AND t.{} IN ({})",
                    self.restrict,
                    slots.join(", ")
                ));
            }
        }
        if let Some(g) = self.group_by {
            sql.push_str(&format!(" GROUP BY {g}"));
        }
        (sql, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subqueries_restrict_to_the_scope() {
        let t = VERIFICATIONS.find("KEY_VERIFICATIONS_V1").unwrap();
        let (all, values) = t.subquery(&Scope {
            workspace_id: "ws_1".into(),
            only: None,
        });
        assert!(all.contains("FROM key_verifications t WHERE t.workspace_id = kw_scope_0"));
        assert!(!all.contains(" IN "));
        assert_eq!(values, ["ws_1"]);
        let (some, values) = t.subquery(&Scope {
            workspace_id: "ws_'x".into(),
            only: Some(vec!["api_1".into(), "api_\\'2".into()]),
        });
        assert!(some.ends_with("AND t.api_id IN (kw_scope_1, kw_scope_2)"));
        assert_eq!(values, ["ws_'x", "api_1", "api_\\'2"]);
        let (none, _) = t.subquery(&Scope {
            workspace_id: "ws_1".into(),
            only: Some(vec![]),
        });
        assert!(none.ends_with("AND 1 = 0"));
    }
}
