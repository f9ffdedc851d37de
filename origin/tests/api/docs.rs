//! `docs/configuration.md` against `keyway serve --help`: the same options, each with the
//! same environment variable and default, so the two cannot drift apart.

use std::collections::BTreeMap;
use std::process::Command;

/// `--flag` → (environment variable, default), `-` where there is none.
type Options = BTreeMap<String, (String, String)>;

fn from_help() -> Options {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut options = Options::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("--") {
            let flag = rest.split_whitespace().next().unwrap_or_default();
            if flag == "help" {
                current = None;
                continue;
            }
            let flag = format!("--{flag}");
            options.insert(flag.clone(), ("-".into(), "-".into()));
            current = Some(flag);
        } else if let Some(flag) = &current {
            let entry = options.get_mut(flag).unwrap();
            if let Some(env) = trimmed.strip_prefix("[env: ") {
                entry.0 = env.trim_end_matches(']').trim_end_matches('=').into();
            } else if let Some(default) = trimmed.strip_prefix("[default: ") {
                entry.1 = default.trim_end_matches(']').into();
            }
        }
    }
    options
}

fn from_doc() -> Options {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    let cell = |s: &str| s.trim().trim_matches('`').to_string();
    doc.lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').collect();
            (cell(cells[0]), (cell(cells[1]), cell(cells[2])))
        })
        .collect()
}

#[test]
fn configuration_doc_matches_serve_help() {
    let (help, doc) = (from_help(), from_doc());
    assert!(help.len() > 20, "the help was read: {help:?}");
    let missing: Vec<_> = help.keys().filter(|k| !doc.contains_key(*k)).collect();
    let extra: Vec<_> = doc.keys().filter(|k| !help.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md lacks {missing:?} and lists {extra:?}, which `keyway serve --help` does not"
    );
    for (flag, want) in &help {
        assert_eq!(
            &doc[flag], want,
            "{flag}: (environment, default) in the doc"
        );
    }
}
