//! The mixed-estate scenario: the consumer's one proxy carries the Thrift `Inventory`, the gRPC
//! `causeway.demo.Quotes` and the HTTP `catalog` next to the Dubbo greeter, each routed by the
//! rules its protocol uses (a MetaRouter weighted 80/20 for Thrift, a VirtualService header
//! match for gRPC, a VirtualService 50/50 on a path prefix for HTTP), and every call is counted
//! in the proxy's `istio_requests_total` under its protocol.

use std::collections::BTreeMap;

use causeway_proxy::config::ListenProtocol;

use super::{Step, Tally, burst_of, close, step};
use crate::estate::Service;
use crate::mesh::Mesh;
use crate::{catalog, inventory, quotes};

/// The gRPC header that sends a call to v2.
const CANARY_HEADER: &str = "x-canary";

fn rules() -> String {
    let mut yaml = String::new();
    for service in Service::MIXED {
        let host = service.host();
        yaml.push_str(&format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: causeway-demo}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
",
            name = object_name(&host),
        ));
    }
    let inventory = Service::Inventory.host();
    let quotes = Service::Quotes.host();
    let catalog = Service::Catalog.host();
    yaml.push_str(&format!(
        "apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {{name: inventory, namespace: causeway-demo}}
spec:
  hosts: [{inventory}]
  routes:
  - name: split
    match: {{attributes: {{method: {{exact: {method}}}}}}}
    route:
    - {{destination: {{host: {inventory}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {inventory}, subset: v2}}, weight: 20}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: quotes, namespace: causeway-demo}}
spec:
  hosts: [{quotes}]
  http:
  - name: canary
    match: [{{headers: {{{CANARY_HEADER}: {{exact: 'true'}}}}}}]
    route: [{{destination: {{host: {quotes}, subset: v2}}}}]
  - name: stable
    route: [{{destination: {{host: {quotes}, subset: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: causeway-demo}}
spec:
  hosts: [{catalog}]
  http:
  - name: items
    match: [{{uri: {{prefix: /items/}}}}]
    route:
    - {{destination: {{host: {catalog}, subset: v1}}, weight: 50}}
    - {{destination: {{host: {catalog}, subset: v2}}, weight: 50}}
",
        method = inventory::METHOD,
    ));
    yaml
}

/// A Kubernetes object name from a host (dots are fine, but keep names short and plain).
fn object_name(host: &str) -> String {
    host.replace('.', "-")
}

/// Applies the rules and waits until the proxy routes every service by them.
async fn apply(mesh: &Mesh) -> anyhow::Result<()> {
    let (inventory, quotes, catalog) = (
        Service::Inventory.host(),
        Service::Quotes.host(),
        Service::Catalog.host(),
    );
    mesh.apply_rules(&rules(), move |snapshot| {
        let thrift_split = snapshot.thrift.for_host(&inventory).is_some_and(|table| {
            table
                .routes
                .first()
                .is_some_and(|r| r.destinations.entries().len() == 2)
        });
        let http_routes = |host: &str, routes: usize, destinations: usize| {
            snapshot.http.values().any(|table| {
                table.host == host
                    && table.routes.len() == routes
                    && table.routes[0].destinations.entries().len() == destinations
            })
        };
        thrift_split && http_routes(&quotes, 2, 1) && http_routes(&catalog, 1, 2)
    })
    .await
}

/// The proxy's `istio_requests_total` per protocol for the mixed estate's hosts.
fn requests_by_protocol(mesh: &Mesh) -> BTreeMap<&'static str, f64> {
    let text = mesh.proxy.metrics.encode().unwrap_or_default();
    let mut counts = BTreeMap::new();
    for service in Service::MIXED {
        let protocol = format!("request_protocol=\"{}\"", service.protocol());
        let host = format!("destination_service=\"{}\"", service.host());
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .filter(|l| l.contains(&protocol) && l.contains(&host))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        counts.insert(service.protocol(), total);
    }
    counts
}

fn share_step(name: &str, expected_v2: f64, what: &str, calls: usize, tally: Tally) -> Step {
    let passed = close(tally.share("v2"), expected_v2, calls);
    step(
        name.to_owned(),
        format!("v2 share {:.0}% of {what}", expected_v2 * 100.0),
        tally,
        passed,
    )
}

/// Runs the scenario's steps.
pub async fn run(mesh: &Mesh, calls: usize) -> anyhow::Result<Vec<Step>> {
    apply(mesh).await?;
    let before = requests_by_protocol(mesh);
    let mut steps = Vec::new();

    let thrift = inventory::Client::new(mesh.listener(ListenProtocol::Thrift)?);
    let tally = burst_of(calls, || {
        let thrift = thrift.clone();
        async move { thrift.stock("sku-42").await }
    })
    .await;
    steps.push(share_step(
        "mixed thrift 80/20",
        0.2,
        "Inventory:stock",
        calls,
        tally,
    ));

    let authority = format!("{}:50051", Service::Quotes.host());
    let grpc = quotes::Client::connect(mesh.listener(ListenProtocol::Grpc)?, &authority).await?;
    let canary = burst_of(calls / 2, || {
        let grpc = grpc.clone();
        async move { grpc.quote("ACME", &[(CANARY_HEADER, "true")]).await }
    })
    .await;
    let canary_ok = canary.share("v2") == 1.0;
    steps.push(step(
        format!("mixed grpc {CANARY_HEADER}"),
        "100% to v2 (header match)".into(),
        canary,
        canary_ok,
    ));
    let stable = burst_of(calls / 2, || {
        let grpc = grpc.clone();
        async move { grpc.quote("ACME", &[]).await }
    })
    .await;
    let stable_ok = stable.share("v1") == 1.0;
    steps.push(step(
        "mixed grpc default".into(),
        "100% to v1".into(),
        stable,
        stable_ok,
    ));

    let http = catalog::Client::new(mesh.listener(ListenProtocol::Http)?);
    let tally = burst_of(calls, || {
        let http = http.clone();
        async move { http.item(7, &[]).await }
    })
    .await;
    steps.push(share_step(
        "mixed http 50/50",
        0.5,
        "GET /items/*",
        calls,
        tally,
    ));

    // Every call above, counted once under its protocol (the proxy records a call when it
    // completes, before the caller has its answer).
    let after = requests_by_protocol(mesh);
    let expected = BTreeMap::from([
        ("grpc", (calls / 2 * 2) as f64),
        ("http", calls as f64),
        ("thrift", calls as f64),
    ]);
    let counted: BTreeMap<&str, f64> = after
        .iter()
        .map(|(protocol, n)| (*protocol, n - before.get(protocol).copied().unwrap_or(0.0)))
        .collect();
    let measured = expected
        .iter()
        .map(|(protocol, want)| {
            let got = counted.get(protocol).copied().unwrap_or(0.0);
            format!("{protocol} {got:.0}/{want:.0}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    steps.push(Step {
        name: "mixed metrics".into(),
        expected: "each call counted once".into(),
        measured: format!("istio_requests_total {measured}"),
        passed: counted == expected,
    });
    Ok(steps)
}
