//! The README's main command, as a test: the demo binary walks every scenario in its short mode
//! against ZooKeeper (installed by the test command) and against the bridge's file registry, and
//! exits 0 only when every step measured what it expected.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn demo(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_causeway-demo"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_scenario_passes_with_zookeeper() {
    let (ok, text) = demo(&["--quick"]);
    assert!(ok, "{text}");
    assert!(text.contains("ZooKeeper at 127.0.0.1:"), "{text}");
    for step in [
        "canary 80/20",
        "method slow",
        "locality zone-a down",
        "batch flood, no rule",
        "batch flood, isolated",
        "mixed thrift 80/20",
        "mixed grpc x-canary",
        "mixed http 50/50",
        "mixed metrics",
    ] {
        assert!(text.contains(&format!("✓ {step}")), "{step}: {text}");
    }
    assert!(text.contains("All 17 steps passed."), "{text}");
}

#[test]
fn every_scenario_passes_with_the_file_registry() {
    let (ok, text) = demo(&["--quick", "--file-registry"]);
    assert!(ok, "{text}");
    assert!(text.contains("static file registry"), "{text}");
    assert!(text.contains("All 17 steps passed."), "{text}");
}

#[test]
fn the_apache_dubbo_java_sample_takes_the_rust_providers_place() {
    let (ok, text) = demo(&["--quick", "--java"]);
    assert!(ok, "{text}");
    assert!(text.contains("the Apache Dubbo Java sample"), "{text}");
    for step in [
        "canary 80/20",
        "method slow",
        "locality zone-a down",
        "java consumer 80/20",
        "mixed metrics",
    ] {
        assert!(text.contains(&format!("✓ {step}")), "{step}: {text}");
    }
    // Batch needs the Rust providers' `report` and small thread pools: skipped, and refused
    // when asked for by name.
    assert!(!text.contains("batch"), "{text}");
    assert!(text.contains("All 15 steps passed."), "{text}");
    let (ok, text) = demo(&["--quick", "--java", "--scenario", "batch"]);
    assert!(!ok && text.contains("run it without --java"), "{text}");
    let (ok, text) = demo(&["--quick", "--java", "--file-registry"]);
    assert!(!ok && text.contains("--java needs ZooKeeper"), "{text}");
}
