//! The `causeway-demo` namespace manifests (`demo/k8s/`) are checked as Kubernetes would read them
//! and against each other: every object has a known `apiVersion`/`kind`, a DNS-safe name and the
//! namespace; selectors match pod labels; every referenced ConfigMap, volume and named port exists;
//! every image is one this repository builds or a pinned upstream one; the Causeway containers'
//! arguments parse with the binaries' own command-line definitions; the rules ConfigMap holds valid
//! rules; and the generated ConfigMaps (dashboards, provisioning, Prometheus rules) equal the files
//! in `dashboards/` (`CAUSEWAY_UPDATE_K8S=1` regenerates them).

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser as _;
use serde_json::Value;

const NAMESPACE: &str = "causeway-demo";
const GENERATED: &str = "generated-configmaps.yaml";

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The ConfigMaps built from files in `dashboards/`, as YAML.
fn generated() -> String {
    let dashboards = repo().join("dashboards");
    let mut out = String::from(
        "# Generated from dashboards/ by demo/tests/k8s.rs (CAUSEWAY_UPDATE_K8S=1); do not edit.\n",
    );
    let maps: [(&str, PathBuf, &str); 4] = [
        ("grafana-dashboards", dashboards.clone(), ".json"),
        (
            "grafana-datasources",
            dashboards.join("provisioning/datasources"),
            ".yaml",
        ),
        (
            "grafana-dashboard-providers",
            dashboards.join("provisioning/dashboards"),
            ".yaml",
        ),
        ("prometheus-rules", dashboards.join("prometheus"), ".yml"),
    ];
    for (i, (name, dir, ext)) in maps.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(ext))
            .collect();
        files.sort();
        let mut data = serde_json::Map::new();
        for file in files {
            let key = file.file_name().unwrap().to_string_lossy().to_string();
            // Prometheus loads `*.yaml` from its rules folder.
            let key = key.replace(".yml", ".yaml");
            data.insert(key, Value::String(std::fs::read_to_string(&file).unwrap()));
        }
        let map = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data,
        });
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(&map).unwrap());
    }
    out
}

/// Every document of every manifest, with the file it came from.
fn objects() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            out.push((file.file_name().unwrap().to_string_lossy().to_string(), doc));
        }
    }
    out
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str()
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[test]
fn generated_configmaps_match_the_dashboards() {
    let path = k8s_dir().join(GENERATED);
    if std::env::var_os("CAUSEWAY_UPDATE_K8S").is_some() {
        std::fs::write(&path, generated()).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated(),
        "{} is out of date: run `CAUSEWAY_UPDATE_K8S=1 cargo test -p causeway-demo --test k8s`",
        path.display()
    );
}

#[test]
fn manifests_are_valid_and_consistent() {
    let objects = objects();
    let known: BTreeSet<(&str, &str)> = [
        ("v1", "Namespace"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "ServiceAccount"),
        ("apps/v1", "Deployment"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ]
    .into();
    let mut config_maps = BTreeSet::new();
    let mut service_accounts = BTreeSet::new();
    let mut pods: Vec<(String, BTreeMap<String, String>, Vec<Value>)> = Vec::new();
    for (file, object) in &objects {
        let api = str_at(object, &["apiVersion"]).unwrap_or_default();
        let kind = str_at(object, &["kind"]).unwrap_or_default();
        assert!(known.contains(&(api, kind)), "{file}: unknown {api} {kind}");
        let name = str_at(object, &["metadata", "name"]).unwrap_or_default();
        assert!(dns_label(name), "{file}: bad name `{name}`");
        if kind != "Namespace" {
            assert_eq!(
                str_at(object, &["metadata", "namespace"]),
                Some(NAMESPACE),
                "{file}: {kind} {name}"
            );
        }
        match kind {
            "ConfigMap" => {
                config_maps.insert(name.to_owned());
            }
            "ServiceAccount" => {
                service_accounts.insert(name.to_owned());
            }
            "Deployment" => {
                let selector = labels(object.pointer("/spec/selector/matchLabels"));
                let pod_labels = labels(object.pointer("/spec/template/metadata/labels"));
                assert!(!selector.is_empty(), "{file}: {name} has no selector");
                for (k, v) in &selector {
                    assert_eq!(pod_labels.get(k), Some(v), "{file}: {name} selector {k}");
                }
                let containers = object
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap();
                pods.push((name.to_owned(), pod_labels, containers));
            }
            _ => {}
        }
    }
    let images: BTreeSet<&str> = [
        "causeway:dev",
        "zookeeper:3.8",
        "prom/prometheus:v2.53.0",
        "grafana/grafana:13.2.3",
    ]
    .into();
    for (file, object) in &objects {
        let kind = str_at(object, &["kind"]).unwrap_or_default();
        let name = str_at(object, &["metadata", "name"]).unwrap_or_default();
        if kind == "Deployment" {
            let spec = object.pointer("/spec/template/spec").unwrap();
            if let Some(account) = spec.get("serviceAccountName").and_then(Value::as_str) {
                assert!(
                    service_accounts.contains(account),
                    "{file}: {name}: {account}"
                );
            }
            let volumes: BTreeSet<String> = spec
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| {
                    if let Some(map) = str_at(v, &["configMap", "name"]) {
                        assert!(config_maps.contains(map), "{file}: {name}: ConfigMap {map}");
                    }
                    str_at(v, &["name"]).unwrap().to_owned()
                })
                .collect();
            for container in spec["containers"].as_array().unwrap() {
                let image = str_at(container, &["image"]).unwrap();
                assert!(images.contains(image), "{file}: {name}: image {image}");
                let ports: BTreeSet<&str> = container
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| str_at(p, &["name"]))
                    .collect();
                for mount in container
                    .get("volumeMounts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let volume = str_at(mount, &["name"]).unwrap();
                    assert!(volumes.contains(volume), "{file}: {name}: volume {volume}");
                }
                for probe in ["readinessProbe", "livenessProbe"] {
                    let port = container
                        .get(probe)
                        .and_then(|p| p.pointer("/httpGet/port").or(p.pointer("/tcpSocket/port")));
                    if let Some(port) = port.and_then(Value::as_str) {
                        assert!(ports.contains(port), "{file}: {name}: probe port {port}");
                    }
                }
                check_arguments(file, name, container);
            }
        }
        if kind == "Service" {
            let selector = labels(object.pointer("/spec/selector"));
            let backing: Vec<_> = pods
                .iter()
                .filter(|(_, l, _)| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
                .collect();
            assert!(
                !backing.is_empty(),
                "{file}: Service {name} selects no pods"
            );
            for port in object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .unwrap()
            {
                if let Some(target) = str_at(port, &["targetPort"]) {
                    let exposed = backing.iter().any(|(_, _, containers)| {
                        containers.iter().any(|c| {
                            c.get("ports").and_then(Value::as_array).is_some_and(|ps| {
                                ps.iter().any(|p| str_at(p, &["name"]) == Some(target))
                            })
                        })
                    });
                    assert!(
                        exposed,
                        "{file}: Service {name}: no container port {target}"
                    );
                }
            }
        }
    }
}

/// The Causeway containers' command lines parse with the binaries' own definitions.
fn check_arguments(file: &str, name: &str, container: &Value) {
    let Some(command) = container
        .get("command")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_str)
    else {
        return;
    };
    let mut argv = vec![command.to_owned()];
    argv.extend(
        container
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    match command {
        "causeway-bridge" => {
            causeway_bridge::cli::Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
        }
        "causeway-proxy" => {
            causeway_proxy::cli::Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
        }
        "causeway-demo" => {
            let mut help = argv.clone();
            help.push("--help".to_owned());
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_causeway-demo"))
                .args(&argv[1..])
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{file}: {name}: {help:?}: {output:?}"
            );
        }
        other => panic!("{file}: {name}: unknown command {other}"),
    }
}

#[test]
fn the_rules_configmap_holds_valid_rules() {
    let (_, map) = objects()
        .into_iter()
        .find(|(_, o)| str_at(o, &["metadata", "name"]) == Some("causeway-rules"))
        .unwrap();
    let text = str_at(&map, &["data", "rules.yaml"]).unwrap();
    let rules = causeway_protocols::rules::RuleSet::parse("causeway-rules", text).unwrap();
    assert_eq!(rules.len(), 3);
}

#[test]
fn the_dockerfile_builds_every_binary_the_manifests_run() {
    let dockerfile = std::fs::read_to_string(k8s_dir().join("Dockerfile")).unwrap();
    for binary in ["causeway-bridge", "causeway-proxy", "causeway-demo"] {
        assert!(
            dockerfile.contains(&format!("-p {binary}"))
                && dockerfile.contains(&format!("release/{binary}")),
            "{binary}"
        );
    }
    assert!(dockerfile.contains("-t causeway:dev"));
}
