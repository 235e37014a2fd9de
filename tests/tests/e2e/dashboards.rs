//! The dashboards, provisioning files and Prometheus rules in `dashboards/`, checked against the
//! real judges: Grafana's published dashboard schema (`@grafana/schema`, see
//! `causeway_tests::grafana`), `promtool` for every PromQL expression and for the rules' unit tests,
//! and the metric contract in `docs/observability.md`, so every query names metrics and labels the
//! bridge and proxy really export (or are contracted to).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use causeway_tests::grafana::GrafanaSchema;
use causeway_tests::paths::workspace_root;
use causeway_tests::promql::{self, Scan};
use causeway_tests::promtool;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mesh::bridge_config;

/// The dashboards the issue asks for, by file.
const DASHBOARDS: [&str; 4] = [
    "bridge.json",
    "mesh-overview.json",
    "proxy.json",
    "service-detail.json",
];

/// Labels whose values name services, workloads or other estate-specific things: a dashboard
/// may only match them against a template variable, never a literal.
const ESTATE_LABELS: [&str; 11] = [
    "namespace",
    "instance",
    "destination_service",
    "destination_workload",
    "source_workload",
    "destination_interface",
    "request_method",
    "destination_version",
    "traffic_class",
    "cluster",
    "registry",
];

/// Keys a Prometheus panel target may have (the dashboard schema leaves targets open).
const TARGET_KEYS: [&str; 10] = [
    "datasource",
    "editorMode",
    "expr",
    "format",
    "instant",
    "interval",
    "legendFormat",
    "range",
    "refId",
    "hide",
];

/// Grafana's built-in variables the dashboards may use.
const BUILT_IN_VARIABLES: [&str; 3] = ["__rate_interval", "__range", "__interval"];

pub(crate) fn dashboards_dir() -> PathBuf {
    workspace_root().join("dashboards")
}

pub(crate) fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

pub(crate) fn load(file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .unwrap_or_else(|error| panic!("{}: {error}", file.display()))
}

pub(crate) fn name_of(file: &Path) -> String {
    file.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        all.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

fn variables(dashboard: &Value) -> &Vec<Value> {
    dashboard["templating"]["list"].as_array().unwrap()
}

/// A PromQL query of a dashboard: where it is, and the expression as written.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) place: String,
    pub(crate) expr: String,
    /// For `label_values(selector, label)` variables: the label whose values it lists.
    lists_label: Option<String>,
}

/// Every panel target expression and every variable query's selector.
pub(crate) fn queries(file: &Path, dashboard: &Value) -> Vec<Query> {
    let name = name_of(file);
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                place: format!("{name}: panel \"{}\" {}", panel["title"], target["refId"]),
                expr: target["expr"].as_str().unwrap().to_owned(),
                lists_label: None,
            });
        }
    }
    for variable in variables(dashboard) {
        if variable["type"] != "query" {
            continue;
        }
        let place = format!("{name}: variable {}", variable["name"]);
        let query = match &variable["query"] {
            Value::String(query) => query.clone(),
            object => object["query"].as_str().unwrap().to_owned(),
        };
        let (selector, label) = promql::label_values(&query)
            .unwrap_or_else(|| panic!("{place}: only label_values(...) queries are supported"));
        let selector =
            selector.unwrap_or_else(|| panic!("{place}: label_values needs a metric selector"));
        queries.push(Query {
            place,
            expr: selector.to_owned(),
            lists_label: Some(label.to_owned()),
        });
    }
    queries
}

// === the metric contract ===

/// The metric contract of `docs/observability.md`.
#[derive(Debug, Default)]
pub(crate) struct Contract {
    /// Metric name (as exported: counters with `_total`) → type and labels.
    pub(crate) metrics: BTreeMap<String, (String, BTreeSet<String>)>,
    /// Labels Prometheus adds to every series at scrape time.
    target_labels: BTreeSet<String>,
}

impl Contract {
    pub(crate) fn load() -> Self {
        let doc = std::fs::read_to_string(workspace_root().join("docs/observability.md")).unwrap();
        let mut contract = Self::default();
        for line in doc.lines() {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if cells.len() < 3 {
                continue;
            }
            let Some(name) = cells[0]
                .strip_prefix('`')
                .and_then(|rest| rest.strip_suffix('`'))
            else {
                continue;
            };
            match cells[1] {
                "target label" => {
                    contract.target_labels.insert(name.to_owned());
                }
                kind @ ("counter" | "gauge" | "histogram") => {
                    let labels = if cells[2].starts_with("same as") {
                        let other = backticked(cells[2]);
                        contract.metrics[&other[0]].1.clone()
                    } else {
                        backticked(cells[2]).into_iter().collect()
                    };
                    contract
                        .metrics
                        .insert(name.to_owned(), (kind.to_owned(), labels));
                }
                _ => {}
            }
        }
        assert!(
            contract.metrics.contains_key("istio_requests_total")
                && contract
                    .metrics
                    .contains_key("causeway_bridge_xds_nacks_total")
                && contract.target_labels.contains("namespace"),
            "the contract tables of docs/observability.md were not found: {contract:?}"
        );
        contract
    }

    /// The labels a series of `metric` may carry, or `None` if the contract lacks the metric.
    fn labels_of(&self, metric: &str) -> Option<BTreeSet<String>> {
        let mut labels = self.target_labels.clone();
        if let Some((_, own)) = self.metrics.get(metric) {
            labels.extend(own.iter().cloned());
            return Some(labels);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(base) = metric.strip_suffix(suffix) else {
                continue;
            };
            if let Some((kind, own)) = self.metrics.get(base)
                && kind == "histogram"
            {
                labels.extend(own.iter().cloned());
                if suffix == "_bucket" {
                    labels.insert("le".to_owned());
                }
                return Some(labels);
            }
        }
        None
    }

    /// Problems with the metrics and labels `scan` uses; `recorded` are metrics the rules
    /// record (their names are checked, their labels are the recording rule's business).
    fn check(&self, scan: &Scan, recorded: &BTreeSet<String>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut in_scope = self.target_labels.clone();
        in_scope.insert("le".to_owned());
        if scan.unnamed_selectors > 0 {
            problems.push("a selector without a metric name".to_owned());
        }
        for selector in &scan.selectors {
            if recorded.contains(&selector.metric) {
                // Recording rules group by a subset of their sources' labels.
                in_scope.extend(self.metrics.values().flat_map(|(_, l)| l.iter().cloned()));
                continue;
            }
            let Some(labels) = self.labels_of(&selector.metric) else {
                problems.push(format!(
                    "metric `{}` is not in the contract",
                    selector.metric
                ));
                continue;
            };
            for label in selector.labels() {
                if !labels.contains(label) {
                    problems.push(format!("`{}` has no label `{label}`", selector.metric));
                }
            }
            in_scope.extend(labels);
        }
        for label in &scan.grouping_labels {
            if !in_scope.contains(label) {
                problems.push(format!(
                    "grouping label `{label}` is on none of the metrics used"
                ));
            }
        }
        problems
    }
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

// === Grafana schema ===

#[test]
fn dashboards_match_grafanas_published_schema() {
    causeway_tests::logs::init();
    let schema = GrafanaSchema::prepare().unwrap();
    let files = dashboard_files();
    let names: Vec<String> = files.iter().map(|f| name_of(f)).collect();
    assert_eq!(names, DASHBOARDS, "the dashboards in dashboards/");
    let reports = schema.validate(&files).unwrap();
    assert_eq!(reports.len(), files.len());
    for report in &reports {
        assert!(
            report.errors.is_empty(),
            "{} does not match @grafana/schema {}:\n  {}",
            report.file.display(),
            schema.info().package_version,
            report.errors.join("\n  ")
        );
    }
    for file in &files {
        assert_eq!(
            load(file)["schemaVersion"],
            json!(schema.info().schema_version),
            "{}: schemaVersion must be the one of @grafana/schema {}",
            file.display(),
            schema.info().package_version
        );
    }
}

#[test]
fn schema_check_rejects_misspelt_fields() {
    causeway_tests::logs::init();
    let schema = GrafanaSchema::prepare().unwrap();
    let original = load(&dashboards_dir().join("service-detail.json"));
    let dir = tempfile::tempdir().unwrap();

    // A misspelt field of a panel inside the dashboard.
    let mut panel_typo = original.clone();
    let panel = panel_typo["panels"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["type"] == "timeseries")
        .unwrap();
    let title = panel.as_object_mut().unwrap().remove("title").unwrap();
    panel["titel"] = title;
    // A misspelt option of a panel plugin.
    let mut option_typo = original.clone();
    let panel = option_typo["panels"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["type"] == "stat")
        .unwrap();
    panel["options"]["colourMode"] = json!("value");
    // A misspelt variable field.
    let mut variable_typo = original.clone();
    variable_typo["templating"]["list"][1]["inclueAll"] = json!(true);
    // A wrong type where the schema has an enum.
    let mut enum_typo = original;
    let panel = enum_typo["panels"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["type"] == "timeseries")
        .unwrap();
    panel["options"]["tooltip"]["mode"] = json!("all");

    let cases = [
        ("panel-typo.json", panel_typo, "`titel`"),
        ("option-typo.json", option_typo, "`colourMode`"),
        ("variable-typo.json", variable_typo, "`inclueAll`"),
        ("enum-typo.json", enum_typo, "tooltip/mode"),
    ];
    let mut files = Vec::new();
    for (name, dashboard, _) in &cases {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(dashboard).unwrap()).unwrap();
        files.push(file);
    }
    let reports = schema.validate(&files).unwrap();
    for ((name, _, expected), report) in cases.iter().zip(&reports) {
        assert!(
            report.errors.iter().any(|e| e.contains(expected)),
            "{name}: expected an error naming {expected}, got {:?}",
            report.errors
        );
    }
}

// === Causeway's own rules for dashboards ===

#[test]
fn every_panel_query_and_variable_uses_the_datasource_variable() {
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut uids = BTreeSet::new();
    for file in dashboard_files() {
        let name = name_of(&file);
        let dashboard = load(&file);
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_owned()),
            "{name}: uid is not unique"
        );
        let vars = variables(&dashboard);
        let first = &vars[0];
        assert_eq!(
            (&first["name"], &first["type"], &first["query"]),
            (
                &json!("datasource"),
                &json!("datasource"),
                &json!("prometheus")
            ),
            "{name}: the first variable must be the Prometheus datasource variable"
        );
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let at = format!("{name}: panel {} \"{}\"", panel["id"], panel["title"]);
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{at}: duplicate id"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(panel["datasource"], datasource, "{at}: datasource");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{at}: no query");
            let mut refs = BTreeSet::new();
            for target in targets {
                assert_eq!(target["datasource"], datasource, "{at}: target datasource");
                assert!(
                    refs.insert(target["refId"].as_str().unwrap()),
                    "{at}: refId"
                );
                for key in target.as_object().unwrap().keys() {
                    assert!(
                        TARGET_KEYS.contains(&key.as_str()),
                        "{at}: unknown target field `{key}`"
                    );
                }
            }
        }
        for variable in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                variable["datasource"], datasource,
                "{name}: variable {}",
                variable["name"]
            );
            assert_eq!(
                (&variable["includeAll"], &variable["multi"]),
                (&json!(true), &json!(true)),
                "{name}: variable {} offers All and multi-select",
                variable["name"]
            );
        }
    }
}

#[test]
fn dashboards_have_the_label_variables_and_use_only_defined_ones() {
    let required: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("bridge.json", &["namespace", "instance", "registry"][..]),
        (
            "mesh-overview.json",
            &["namespace", "service", "protocol"][..],
        ),
        ("proxy.json", &["namespace", "instance", "protocol"][..]),
        (
            "service-detail.json",
            &[
                "namespace",
                "service",
                "interface",
                "method",
                "version",
                "traffic_class",
            ][..],
        ),
    ]);
    for file in dashboard_files() {
        let name = name_of(&file);
        let dashboard = load(&file);
        let defined: BTreeSet<&str> = variables(&dashboard)
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for variable in required[name.as_str()] {
            assert!(
                defined.contains(variable),
                "{name}: no `{variable}` variable"
            );
        }
        for query in queries(&file, &dashboard) {
            for used in referenced_variables(&query.expr) {
                assert!(
                    defined.contains(used.as_str()) || BUILT_IN_VARIABLES.contains(&used.as_str()),
                    "{}: uses undefined variable `${used}`",
                    query.place
                );
            }
        }
    }
}

/// The names of `$name`, `${name}` and `${name:format}` in `text`.
fn referenced_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let inner = rest.strip_prefix('{').unwrap_or(rest);
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

#[test]
fn no_dashboard_names_a_service() {
    for file in dashboard_files() {
        let dashboard = load(&file);
        for query in queries(&file, &dashboard) {
            let scan = promql::scan(&query.expr).unwrap_or_else(|e| panic!("{}: {e}", query.place));
            for selector in &scan.selectors {
                for matcher in &selector.matchers {
                    if !ESTATE_LABELS.contains(&matcher.label.as_str()) {
                        continue;
                    }
                    // Only `label=~"$variable"`: a literal would tie the dashboard to one estate.
                    let value = matcher.value.as_str();
                    let is_variable = value.starts_with('$')
                        && referenced_variables(value).len() == 1
                        && !value.contains(['|', '*', '.']);
                    assert!(
                        matcher.op == "=~" && is_variable,
                        "{}: `{}{}\"{}\"` must match a template variable",
                        query.place,
                        matcher.label,
                        matcher.op,
                        matcher.value
                    );
                }
            }
        }
    }
}

// === PromQL ===

#[test]
fn every_dashboard_query_parses_with_promtool() {
    let mut all = Vec::new();
    for file in dashboard_files() {
        all.extend(queries(&file, &load(&file)));
    }
    assert!(all.len() > 80, "only {} queries found", all.len());
    let expressions: Vec<String> = all
        .iter()
        .map(|q| promql::substitute_grafana_variables(&q.expr))
        .collect();
    let rejected = promtool::check_expressions(&expressions).unwrap();
    let report: Vec<String> = rejected
        .iter()
        .map(|r| {
            format!(
                "{}: {}\n    {}",
                all[r.index].place, expressions[r.index], r.message
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "promtool rejects:\n{}",
        report.join("\n")
    );
}

#[test]
fn promtool_and_the_contract_catch_broken_queries() {
    let rejected = promtool::check_expressions(&[
        "sum(rate(istio_requests_total[5m])".to_owned(),
        "up".to_owned(),
        promql::substitute_grafana_variables("rate(istio_requests_total[$window])"),
    ])
    .unwrap();
    let indexes: Vec<usize> = rejected.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 2], "{rejected:?}");

    let contract = Contract::load();
    let scan = promql::scan(
        r#"sum by (destination_servce) (rate(istio_request_total{reporter="source"}[1m])) + sum(causeway_proxy_active_connections{direction="up", cluster=~"$c"})"#,
    )
    .unwrap();
    let problems = contract.check(&scan, &BTreeSet::new());
    assert_eq!(
        problems,
        [
            "metric `istio_request_total` is not in the contract",
            "`causeway_proxy_active_connections` has no label `cluster`",
            "grouping label `destination_servce` is on none of the metrics used",
        ]
    );
}

#[test]
fn dashboard_queries_use_only_contract_metrics_and_labels() {
    let contract = Contract::load();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for file in dashboard_files() {
        for query in queries(&file, &load(&file)) {
            let mut scan =
                promql::scan(&query.expr).unwrap_or_else(|e| panic!("{}: {e}", query.place));
            used.extend(scan.selectors.iter().map(|s| s.metric.clone()));
            // A variable's listed label must be one its metric carries.
            scan.grouping_labels.extend(query.lists_label.clone());
            for problem in contract.check(&scan, &BTreeSet::new()) {
                problems.push(format!("{}: {problem}\n    {}", query.place, query.expr));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The dashboards cover every request metric family and the bridge's xDS health.
    for metric in [
        "istio_requests_total",
        "istio_request_duration_milliseconds_bucket",
        "causeway_bridge_xds_nacks_total",
        "causeway_proxy_upstream_overflow_total",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(metric), "no dashboard uses {metric}");
    }
}

// === Prometheus rules ===

pub(crate) fn rule_files() -> Vec<PathBuf> {
    let dir = dashboards_dir().join("prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    files.sort();
    files
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct Rule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[test]
fn prometheus_rules_pass_promtool_check_and_unit_tests() {
    let files = rule_files();
    let names: Vec<String> = files.iter().map(|f| name_of(f)).collect();
    assert_eq!(names, ["alert-rules.yml", "recording-rules.yml"]);
    let checked = promtool::check_rules(&files).unwrap();
    assert_eq!(
        checked.text.matches("SUCCESS").count(),
        2,
        "{}",
        checked.text
    );

    let mut tests: Vec<PathBuf> = std::fs::read_dir(dashboards_dir().join("prometheus/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    tests.sort();
    assert_eq!(tests.len(), 3, "{tests:?}");
    let tested = promtool::test_rules(&tests).unwrap();
    assert_eq!(tested.text.matches("SUCCESS").count(), 3, "{}", tested.text);
}

#[test]
fn rules_use_only_contract_metrics_and_every_alert_is_tested() {
    let contract = Contract::load();
    let mut rules = Vec::new();
    for file in rule_files() {
        let parsed: RuleFile = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for group in parsed.groups {
            for rule in group.rules {
                rules.push((format!("{}: {}", name_of(&file), group.name), rule));
            }
        }
    }
    let recorded: BTreeSet<String> = rules.iter().filter_map(|(_, r)| r.record.clone()).collect();
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    for (place, rule) in &rules {
        let scan = promql::scan(&rule.expr).unwrap_or_else(|e| panic!("{place}: {e}"));
        for problem in contract.check(&scan, &recorded) {
            problems.push(format!("{place}: {problem}"));
        }
        if let Some(alert) = &rule.alert {
            alerts.insert(alert.clone());
            let severity = rule.labels.get("severity").map(String::as_str);
            assert!(
                matches!(severity, Some("critical" | "warning")),
                "{place}: alert {alert} needs severity critical or warning"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule.annotations.contains_key(key),
                    "{place}: alert {alert} has no {key}"
                );
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every alert has a promtool unit test that expects it to fire, and is documented.
    let mut tests = String::new();
    for entry in std::fs::read_dir(dashboards_dir().join("prometheus/tests")).unwrap() {
        tests.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let doc = std::fs::read_to_string(workspace_root().join("docs/observability.md")).unwrap();
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "alert {alert} has no promtool test"
        );
        assert!(
            doc.contains(&format!("`{alert}`")),
            "alert {alert} is not in docs/observability.md"
        );
    }
    for alert in [
        "CausewayErrorBudgetBurnFast",
        "CausewayErrorBudgetBurnSlow",
        "CausewayRegistryDown",
        "CausewayRegistryStale",
        "CausewayXdsNacks",
        "CausewayOutlierEjectionStorm",
    ] {
        assert!(alerts.contains(alert), "missing alert {alert}");
    }
}

#[test]
fn provisioning_files_point_at_the_dashboards() {
    let dir = dashboards_dir().join("provisioning");
    let datasources = std::fs::read_to_string(dir.join("datasources/causeway.yaml")).unwrap();
    let providers = std::fs::read_to_string(dir.join("dashboards/causeway.yaml")).unwrap();

    #[derive(Deserialize)]
    struct Datasources {
        #[serde(rename = "apiVersion")]
        api_version: u32,
        datasources: Vec<BTreeMap<String, serde_json::Value>>,
    }
    #[derive(Deserialize)]
    struct Providers {
        #[serde(rename = "apiVersion")]
        api_version: u32,
        providers: Vec<BTreeMap<String, serde_json::Value>>,
    }
    let datasources: Datasources = serde_saphyr::from_str(&datasources).unwrap();
    let providers: Providers = serde_saphyr::from_str(&providers).unwrap();
    assert_eq!((datasources.api_version, providers.api_version), (1, 1));
    assert_eq!(datasources.datasources[0]["type"], "prometheus");
    let provider = &providers.providers[0];
    assert_eq!(provider["type"], "file");
    assert!(provider["options"]["path"].is_string());
}

// === the contract against a running bridge ===

/// One metric family of an OpenMetrics exposition: its type and the label names of its series.
#[derive(Debug, Default)]
pub(crate) struct Family {
    pub(crate) kind: String,
    pub(crate) labels: BTreeSet<String>,
}

/// Families by the name Prometheus stores (counters with `_total`), from OpenMetrics text.
pub(crate) fn exposition(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let stored = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            families.entry(stored).or_default().kind = kind.to_owned();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let mut name = &line[..name_end];
            for suffix in ["_bucket", "_sum", "_count", "_created"] {
                if let Some(base) = name.strip_suffix(suffix)
                    && families.get(base).is_some_and(|f| f.kind == "histogram")
                {
                    name = base;
                }
            }
            let family = families.entry(name.to_owned()).or_default();
            if let Some(labels) = line[name_end..]
                .strip_prefix('{')
                .and_then(|rest| rest.split_once('}'))
                .map(|(labels, _)| labels)
            {
                for pair in labels.split(',').filter(|p| !p.is_empty()) {
                    let label = pair.split_once('=').unwrap().0;
                    if label != "le" {
                        family.labels.insert(label.to_owned());
                    }
                }
            }
        }
    }
    families
}

/// An xDS client of the bridge at `xds` that rejects every response it is sent (it subscribes to
/// clusters), so the bridge's NACK counters have series; abort the task to stop it.
pub(crate) async fn nack_every_response(xds: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use envoy_types::pb::google::rpc::Status;

    // An xDS client that rejects every cluster response it is sent.
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{xds}"))
        .await
        .unwrap();
    let (requests, outgoing) = tokio::sync::mpsc::channel(4);
    let cluster_type = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    requests
        .send(DiscoveryRequest {
            node: Some(Node {
                id: "dashboards-test".to_owned(),
                ..Node::default()
            }),
            type_url: cluster_type.to_owned(),
            ..DiscoveryRequest::default()
        })
        .await
        .unwrap();
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    tokio::spawn(async move {
        while let Ok(Some(response)) = responses.message().await {
            let nack = DiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce.clone(),
                error_detail: Some(Status {
                    code: 3,
                    message: "rejected by the dashboards test".to_owned(),
                    ..Status::default()
                }),
                ..DiscoveryRequest::default()
            };
            if requests.send(nack).await.is_err() {
                break;
            }
        }
    })
}

/// A bridge with a registry file, a rules file and an ADS client that NACKs every cluster
/// response, so every bridge metric family has series. Returns the bridge, its metrics text once
/// all of that shows, and the client task.
async fn busy_bridge(
    dir: &Path,
) -> (
    causeway_bridge::app::RunningBridge,
    String,
    tokio::task::JoinHandle<()>,
) {
    use causeway_bridge::app;

    let registry = dir.join("services.yaml");
    std::fs::write(
        &registry,
        "services:
  - interface: com.acme.Greeter
    version: 1.0.0
    methods: [greet]
    endpoints:
      - address: 10.0.0.1
        port: 20880
        labels: {version: v1}
",
    )
    .unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: greeter
  namespace: default
spec:
  host: com.acme.greeter-1-0-0
  subsets:
    - name: v1
      labels: {version: v1}
",
    )
    .unwrap();
    let bridge = app::start(bridge_config(
        vec![format!("file://{}?name=static", registry.display())],
        Some(rules),
    ))
    .await
    .unwrap();
    let url = format!("http://{}/metrics", bridge.admin_addr);
    let http = reqwest::Client::new();
    let metrics = || {
        let request = http.get(&url).send();
        async move { request.await.unwrap().text().await.unwrap() }
    };
    // Connect once the registry is in the snapshot, so the first push is not superseded.
    causeway_tests::assert_eventually!(
        metrics().await.contains("causeway_bridge_services 1"),
        "the bridge's snapshot has the service"
    );

    let nacker = nack_every_response(bridge.xds_addr).await;

    causeway_tests::assert_eventually!(
        {
            let text = metrics().await;
            text.contains("causeway_bridge_registry_up{registry=\"static\"} 1")
                && text.contains("causeway_bridge_xds_nacks_total{type=\"cds\"}")
                && text.contains("causeway_bridge_xds_clients{")
                && text.contains("causeway_bridge_rules_resources{")
        },
        "the bridge's metrics show the registry up, the NACK, the client and the rules"
    );
    let text = metrics().await;
    (bridge, text, nacker)
}

/// The bridge rows of the contract marked `exported` must be what a running bridge exports: the
/// same names, types and labels, so the bridge dashboard and alerts query real series.
#[tokio::test(flavor = "multi_thread")]
async fn the_bridge_exports_its_contract_metrics() {
    causeway_tests::logs::init();
    let dir = tempfile::tempdir().unwrap();
    let (_bridge, text, nacker) = busy_bridge(dir.path()).await;
    let exported = exposition(&text);
    let contract = Contract::load();
    let doc = std::fs::read_to_string(workspace_root().join("docs/observability.md")).unwrap();
    let mut checked = 0;
    for (name, (kind, labels)) in &contract.metrics {
        let row = doc
            .lines()
            .find(|line| line.starts_with(&format!("| `{name}` |")))
            .unwrap();
        if !(row.contains("| bridge |") && row.contains("| exported |")) {
            continue;
        }
        let family = exported
            .get(name)
            .unwrap_or_else(|| panic!("the bridge does not export {name}:\n{text}"));
        assert_eq!(&family.kind, kind, "{name}: type");
        assert_eq!(&family.labels, labels, "{name}: labels");
        checked += 1;
    }
    assert_eq!(checked, 16, "bridge rows of the contract");
    // Nothing the bridge exports is missing from the contract.
    for name in exported.keys() {
        assert!(
            contract.metrics.contains_key(name),
            "{name} is exported but not in docs/observability.md"
        );
    }
    nacker.abort();
}
