//! Tests of the bridge's side of the rules: the watcher keeps the last good rules in force,
//! reports rejections on its status and metrics, and stops when nobody listens.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;

const DR: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: prod}
spec:
  host: reviews.prod.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

const CANARY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews.prod.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.prod.svc.cluster.local, subset: v1}
      weight: 80
    - destination: {host: reviews.prod.svc.cluster.local, subset: v2}
      weight: 20
";

fn parse(text: &str) -> Result<RuleSet, RulesError> {
    RuleSet::parse("rules.yaml", text)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(path: &std::path::Path, text: &str, stamp: u64) {
    std::fs::write(path, text).unwrap();
    // Distinct modification times, whatever the file system's timestamp granularity.
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + stamp))
        .unwrap();
}

#[tokio::test]
async fn watch_keeps_the_last_good_rules_when_an_edit_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    let file = path.display().to_string();
    write(&path, &format!("{DR}---\n{CANARY}"), 1);

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = RulesMetrics::register(&mut registry);
    let status = Arc::new(RulesStatus::with_metrics(metrics.clone()));
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(RuleSet::default()));
    let task = tokio::spawn(watch(path.clone(), tx, status.clone()));

    let good = parse(&format!("{DR}---\n{CANARY}")).unwrap();
    wait_for("the first rules", || rx.borrow().version == good.version).await;
    assert_eq!(
        status.view().version.as_deref(),
        Some(good.version.as_str())
    );
    assert!(!status.view().failing);

    // Bad: the weights no longer sum to 100. The good rules stay in force.
    write(
        &path,
        &format!("{DR}---\n{}", CANARY.replace("weight: 20", "weight: 30")),
        2,
    );
    wait_for("the rejection", || status.view().rejected_total == 1).await;
    let view = status.view();
    assert!(view.failing);
    assert_eq!(
        view.last_error.as_deref(),
        Some(
            format!(
                "{file}: document 2 (VirtualService prod/reviews): http[0].route[1].weight: \
                 weights sum to 110, expected 100"
            )
            .as_str()
        )
    );
    assert_eq!(view.last_error_problems.len(), 1);
    assert!(view.last_error_at_unix_ms.is_some());
    assert_eq!(view.version.as_deref(), Some(good.version.as_str()));
    assert_eq!(rx.borrow().version, good.version);
    assert_eq!(metrics.rejected_total(), 1);

    // Good again, with different content: published.
    let fixed_text = format!(
        "{DR}---\n{}",
        CANARY
            .replace("weight: 80", "weight: 50")
            .replace("weight: 20", "weight: 50")
    );
    let fixed = parse(&fixed_text).unwrap();
    write(&path, &fixed_text, 3);
    wait_for("the fixed rules", || rx.borrow().version == fixed.version).await;
    let view = status.view();
    assert!(!view.failing);
    assert_eq!(view.rejected_total, 1);
    assert!(
        view.last_error.is_some(),
        "the last rejection stays visible"
    );
    assert_eq!(
        rx.borrow().virtual_services[0].spec.http[0].route[0].weight,
        50
    );

    // The file disappears: rejected once, rules kept.
    std::fs::remove_file(&path).unwrap();
    wait_for("the missing file", || status.view().rejected_total == 2).await;
    assert!(
        status
            .view()
            .last_error
            .unwrap()
            .starts_with(&format!("cannot read rules file {file}"))
    );
    assert_eq!(rx.borrow().version, fixed.version);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("causeway_bridge_rules_rejected_total 2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "causeway_bridge_rules_version_info{{version=\"{}\"}} 1",
            fixed.version
        )),
        "{text}"
    );
    assert!(
        text.contains("causeway_bridge_rules_resources{kind=\"VirtualService\"} 1"),
        "{text}"
    );
    let debug = serde_json::to_value(status.debug(&rx.borrow())).unwrap();
    assert_eq!(debug["status"]["rejected_total"], 2);
    assert_eq!(
        debug["rules"]["virtual_services"][0]["spec"]["http"][0]["route"][0]["weight"],
        50
    );

    // Dropping every receiver stops the watcher.
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
