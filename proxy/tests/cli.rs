//! The binary's command-line contract: `--help` and `--validate` on good and bad files.

use std::process::Command;

fn proxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
}

#[test]
fn help_names_the_common_flags() {
    let output = proxy().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in ["--config", "--validate", "--admin-listen", "--log-format"] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn validate_accepts_a_good_file_and_rejects_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "admin_listen: 127.0.0.1:25000\n").unwrap();
    let output = proxy()
        .args(["--validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "listeners: [dubbo]\n").unwrap();
    let output = proxy()
        .args(["--validate", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("listeners"),
        "error names the field: {stderr}"
    );
}
