//! The official Unkey SDK, driven from Node, against the real binary.
//!
//! The Node script (`tests/sdk/`) starts its own server; this test runs it so that
//! `cargo test --workspace` covers SDK compatibility too. It fails, never skips, when
//! Node or the npm packages are missing.

use std::path::Path;
use std::process::Command;

#[test]
fn unkey_sdk_works_against_keyway() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    assert!(
        root.join("node_modules/@unkey/api").exists(),
        "node_modules/@unkey/api is missing: run `npm ci` in {}",
        root.display()
    );
    let out = Command::new("node")
        .args(["--test", "tests/sdk/"])
        .current_dir(root)
        .env("KEYWAY_BIN", env!("CARGO_BIN_EXE_keyway"))
        .output()
        .expect("node must be installed to run the Unkey SDK tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Unkey SDK tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "{stdout}"
    );
}
