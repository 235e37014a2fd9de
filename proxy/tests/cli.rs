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

#[test]
fn validate_checks_services_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(
        &path,
        "services:\n- host: demo.greeter\n  port: 20880\n  dubbo: {interface: demo.Greeter}\n  endpoints: [{address: 127.0.0.1, weight: 0}]\n",
    )
    .unwrap();
    let output = proxy()
        .args(["--validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("services[0].endpoints[0].weight"),
        "{stderr}"
    );

    std::fs::write(
        &path,
        "listen: [{protocol: dubbo, address: 127.0.0.1:20880}]\nservices:\n- host: demo.greeter\n  port: 20880\n  dubbo: {interface: demo.Greeter}\n  endpoints: [{address: 127.0.0.1}]\nrules: rules.yaml\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("rules.yaml"), "apiVersion: metaprotocol.aeraki.io/v1alpha1\nkind: MetaRouter\nmetadata: {name: r}\nspec:\n  hosts: [demo.greeter]\n  routes: [{route: [{destination: {host: demo.greeter, subset: v9}}]}]\n").unwrap();
    let output = proxy()
        .args(["--validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("v9"),
        "the rules file is checked too: {stderr}"
    );

    std::fs::write(dir.path().join("rules.yaml"), "").unwrap();
    let output = proxy()
        .args(["--validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn listen_flags_name_the_protocols_built() {
    let output = proxy()
        .args(["--validate", "--listen", "quic=127.0.0.1:9090"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown protocol"), "{stderr}");
    for listen in [
        "dubbo=127.0.0.1:20880",
        "thrift=127.0.0.1:9090,host=calc.mesh",
        "auto=127.0.0.1:9091",
        "grpc=127.0.0.1:9092",
        "http=127.0.0.1:9093",
    ] {
        let output = proxy()
            .args(["--validate", "--listen", listen])
            .output()
            .unwrap();
        assert!(output.status.success(), "{listen}: {output:?}");
    }
}

#[test]
fn validate_checks_the_otlp_endpoint() {
    let output = proxy()
        .args(["--validate", "--otlp-endpoint", "http://127.0.0.1:4318"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let output = proxy()
        .args(["--validate", "--otlp-endpoint", "https://collector:4318"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("otlp.endpoint"), "{stderr}");
}
