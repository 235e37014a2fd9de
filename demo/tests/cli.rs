//! The binary's command-line contract: `--help`, and `--validate` on good and bad config files.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn demo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_causeway-demo"))
}

#[test]
fn help_and_validate_work() {
    let output = demo().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("--config") && help.contains("--validate"),
        "{help}"
    );

    let output = demo()
        .args(["--validate", "--config", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("demo.yaml");
    std::fs::write(&good, "scenario: canary\ncalls: 200\n").unwrap();
    let output = demo()
        .args(["--validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "scenario: rollout\n").unwrap();
    let output = demo()
        .args(["--validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("rollout"),
        "{output:?}"
    );
}
