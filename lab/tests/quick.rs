//! `compare --quick` end to end: builds and starts the real parts, drives every scenario
//! under every profile, then `check` confirms the report is complete and well-formed.
//! Timings are never asserted: this machine is shared and noisy.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use keyway_testkit::process::run_to_end;

#[test]
fn quick_compare_and_cluster_write_complete_reports() {
    let out = tempfile::tempdir().expect("temp dir");
    let lab = env!("CARGO_BIN_EXE_keyway-lab");
    let stdout = run_to_end(
        Command::new(lab)
            .args(["compare", "--quick", "--out"])
            .arg(out.path()),
        "keyway-lab compare --quick",
    )
    .unwrap();
    assert!(stdout.contains("target origin-hot throughput"), "{stdout}");
    assert!(stdout.contains("bytes per hot key"), "{stdout}");

    run_to_end(
        Command::new(lab).arg("check").arg(out.path()),
        "keyway-lab check",
    )
    .unwrap();

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

    // The cluster part (run after compare, not beside it, so the two do not measure each
    // other).
    run_to_end(
        Command::new(lab)
            .args(["cluster", "--quick", "--out"])
            .arg(out.path()),
        "keyway-lab cluster --quick",
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json");
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{json}");
    for r in rows {
        assert!(r["paced"]["requests"].as_u64().unwrap_or(0) > 0, "{r}");
        assert_eq!(r["paced"]["errors"], 0, "{r}");
        assert_eq!(r["max"]["errors"], 0, "{r}");
    }
    assert!(json["stateful_p50_added_ms"].is_number(), "{json}");
    let md = std::fs::read_to_string(out.path().join("cluster.md")).expect("cluster.md");
    assert!(md.contains("| stateful | cluster |"), "{md}");
}
