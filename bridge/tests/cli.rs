//! The binary's command-line contract: `--help`, `--validate` on good and bad files, flag overrides.

use std::process::Command;

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_causeway-bridge"))
}

#[test]
fn help_names_the_common_flags() {
    let output = bridge().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--config",
        "--validate",
        "--xds-listen",
        "--admin-listen",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn validate_accepts_a_good_file_and_rejects_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "xds_listen: 127.0.0.1:25010\nregistries: [\"zookeeper://127.0.0.1:2181\"]\n",
    )
    .unwrap();
    let output = bridge()
        .args(["--validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "configuration is valid"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "xds_listen: not-an-address\n").unwrap();
    let output = bridge()
        .args(["--validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml"),
        "error names the file: {stderr}"
    );
}

#[test]
fn flags_override_the_file_and_are_validated_together() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "xds_listen: 127.0.0.1:25010\n").unwrap();
    let output = bridge()
        .args([
            "--validate",
            "--admin-listen",
            "127.0.0.1:25010",
            "--config",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "same port twice must be rejected"
    );
}

#[test]
fn registries_come_from_flags_and_bad_ones_are_named() {
    let ok = bridge()
        .args([
            "--validate",
            "--registry",
            "zookeeper://127.0.0.1:2181/dubbo",
        ])
        .args(["--registry", "file:///tmp/services.yaml"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let none = bridge().arg("--validate").output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--registry"));
    let bad = bridge()
        .args(["--validate", "--registry", "zookeeper://nohostport"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nohostport"));
}

#[test]
fn json_logs_are_json() {
    let output = bridge()
        .args([
            "--validate",
            "--log-format",
            "json",
            "--config",
            "/nonexistent.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let line = String::from_utf8_lossy(&output.stderr);
    let first = line.lines().next().unwrap();
    assert!(
        first.starts_with('{') && first.contains("\"level\":\"ERROR\""),
        "{first}"
    );
}
