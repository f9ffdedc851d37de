//! The analytics rewriter under coverage-guided fuzzing, with the round trip as its
//! oracle: whatever text a caller sends, a query that plans is text that hides nothing
//! (no string, comment, backslash or second statement outside its names), that the
//! target's dialect reads back as one query, and whose scope is bound, not spliced.
//! Run with `origin/fuzz/run.sh` (README, "Fuzzing the analytics rewriter").
#![no_main]

use keyway_origin::analytics::query::functions::{Ctx, Dialect};
use keyway_origin::analytics::query::plan_on_own_stack;
use keyway_origin::analytics::query::seal::{hides_nothing, reparse};
use keyway_origin::analytics::query::tables::{RATELIMITS, Scope, VERIFICATIONS};
use libfuzzer_sys::fuzz_target;

const WORKSPACE: &str = "ws_'\\1 --";
const READABLE: &str = "ns\\' /*";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = if flags & 1 == 0 {
        Dialect::Sqlite
    } else {
        Dialect::Postgres
    };
    let catalog = if flags & 2 == 0 {
        &VERIFICATIONS
    } else {
        &RATELIMITS
    };
    let scope = Scope {
        workspace_id: WORKSPACE.into(),
        only: (flags & 4 == 0).then(|| vec![READABLE.into()]),
    };
    let ctx = Ctx {
        dialect,
        now_ms: 1_700_000_000_000,
    };
    let Ok(sealed) = plan_on_own_stack(sql, catalog, &scope, ctx, 100) else {
        return;
    };
    if let Err(what) = hides_nothing(&sealed.sql, dialect) {
        panic!("{what}: {sql:?} => {}", sealed.sql);
    }
    if let Err(e) = reparse(&sealed.sql, dialect) {
        panic!("{e}: {sql:?} => {}", sealed.sql);
    }
    for text in [WORKSPACE, READABLE] {
        assert!(!sealed.sql.contains(text), "{sql:?} => {}", sealed.sql);
    }
    if sealed.sql.contains(" t WHERE ") {
        assert!(
            sealed.params.iter().any(|p| p == WORKSPACE),
            "{sql:?} => {} {:?}",
            sealed.sql,
            sealed.params
        );
    }
    // Every placeholder the text names is bound.
    for n in 1..=sealed.params.len() + 1 {
        let named = match dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        };
        if n > sealed.params.len() {
            assert!(
                !sealed.sql.contains(&format!("{named} ")) && !sealed.sql.ends_with(&named),
                "{sql:?} => {}",
                sealed.sql
            );
        }
    }
});
