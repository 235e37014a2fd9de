//! The binary's command-line contract: `--help`, `--validate`, and an honest failure while the mesh
//! runner is not built.

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
}

#[test]
fn running_without_the_mesh_runner_fails_loudly() {
    let output = demo().output().unwrap();
    assert!(!output.status.success());
}
