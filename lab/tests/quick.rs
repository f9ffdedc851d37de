//! `compare --quick` end to end: builds and starts the real parts, drives every scenario
//! under every profile, then `check` confirms the report is complete and well-formed.
//! Timings are never asserted: this machine is shared and noisy.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

#[test]
fn quick_compare_writes_a_complete_report() {
    let out = tempfile::tempdir().expect("temp dir");
    let lab = env!("CARGO_BIN_EXE_keyway-lab");
    let run = Command::new(lab)
        .args(["compare", "--quick", "--out"])
        .arg(out.path())
        .output()
        .expect("running keyway-lab compare --quick");
    assert!(
        run.status.success(),
        "compare --quick failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("target origin-hot throughput"), "{stdout}");
    assert!(stdout.contains("bytes per hot key"), "{stdout}");

    let check = Command::new(lab)
        .arg("check")
        .arg(out.path())
        .output()
        .expect("running keyway-lab check");
    assert!(
        check.status.success(),
        "check failed:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The check itself must fail on a broken report, or it proves nothing.
    let report = out.path().join("report.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report.json")).expect("json");
    json["profiles"][1]["rows"] = serde_json::json!([]);
    std::fs::write(&report, serde_json::to_vec(&json).expect("json")).expect("write");
    let broken = Command::new(lab)
        .arg("check")
        .arg(out.path())
        .output()
        .expect("running keyway-lab check");
    assert!(
        !broken.status.success(),
        "check accepted a report with no rows"
    );
}
