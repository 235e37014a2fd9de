//! The whole path, configured by the control plane: two real Apache Dubbo Java providers (v1 in
//! zone a, v2 in zone b) register in a real ZooKeeper; the bridge discovers them and serves xDS
//! with the operator's rules; causeway-proxy, in xDS mode (no services or rules of its own), takes
//! clusters, endpoints and Dubbo routes from the bridge; a real Java consumer calls the proxy.
//! Shows method routing and an 80/20 split from a MetaRouter, then a rules edit (0/100) taking
//! effect through xDS with no restart, and the proxy's metrics naming the version that answered.

use std::time::Duration;

use causeway_bridge::app as bridge_app;
use causeway_proxy::app as proxy_app;
use causeway_proxy::config::ListenProtocol;
use causeway_tests::assert_eventually;
use causeway_tests::logs;
use causeway_tests::zookeeper::ZooKeeperServer;

use crate::bridge_dubbo_java::{HOST, JavaProvider, REGION, run_consumer, sample};
use crate::mesh::{bridge_config, xds_proxy_config};
use crate::proxy_dubbo_java::answers_by_method_and_version;

const INTERFACE: &str = "io.causeway.demo.api.GreetingService";
/// Calls per method: enough for the 80/20 split to land within ±5% (4 standard deviations).
const CALLS: usize = 1000;

fn rules(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter}}
spec:
  host: {HOST}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {{name: greeter}}
spec:
  hosts: [{HOST}]
  routes:
  - name: slow-to-v2
    match: {{attributes: {{method: {{exact: slow}}}}}}
    route: [{{destination: {{host: {HOST}, subset: v2}}}}]
  - name: canary
    route:
    - {{destination: {{host: {HOST}, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: {HOST}, subset: v2}}, weight: {v2}}}
"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn java_consumer_through_an_xds_configured_proxy_follows_rule_edits() {
    logs::init();
    let zookeeper = ZooKeeperServer::start().await.unwrap();
    let registry = format!("zookeeper://{}", zookeeper.connect_string());
    let program = sample().await.unwrap();
    let (v1, v2) = tokio::join!(
        JavaProvider::start_as(&program, &registry, "v1", "zone-a", &[]),
        JavaProvider::start_as(&program, &registry, "v2", "zone-b", &[]),
    );
    let (v1, v2) = (v1.unwrap(), v2.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rules(80, 20)).unwrap();
    let bridge = bridge_app::start(bridge_config(vec![registry], Some(rules_path.clone())))
        .await
        .unwrap();

    let proxy = proxy_app::start(
        xds_proxy_config(
            bridge.xds_addr,
            &[ListenProtocol::Dubbo],
            &format!("{REGION}/zone-a"),
            "greeter-consumer",
            "consumer-1",
        ),
        None,
    )
    .await
    .unwrap();
    // Both providers' endpoints and the rules' routes have arrived over xDS.
    assert_eventually!(within Duration::from_secs(30); {
        let snapshot = proxy.store.load();
        let ready = |subset: &str, port: u16| {
            // The cluster's port is the service port the bridge chose (the providers listen on
            // different free ports here), so look the cluster up by host and subset.
            snapshot.clusters.values().any(|c| {
                c.host == HOST
                    && c.subset == subset
                    && c.endpoints.iter().any(|e| e.address.port() == port)
            })
        };
        snapshot
            .dubbo_table(INTERFACE, "", "1.0.0")
            .is_some_and(|t| t.routes.len() == 2)
            && ready("v1", v1.port)
            && ready("v2", v2.port)
    }, "the proxy never received both providers and the routes: {:?}", proxy.store.load());

    let url = format!("dubbo://{}", proxy.dubbo_addr().unwrap());
    let calls = CALLS.to_string();
    let call = |methods: &'static str| {
        let program = &program;
        let url = url.clone();
        let calls = calls.clone();
        async move {
            let args = [
                "--url", &url, "--method", methods, "--millis", "0", "--calls", &calls,
            ];
            let run = run_consumer(program, &args).await.unwrap();
            assert!(run.success, "the consumer failed:\n{}", run.stderr);
            answers_by_method_and_version(&run)
        }
    };
    let counts = call("greet,slow").await;
    let count = |counts: &std::collections::HashMap<(String, String), usize>, m: &str, v: &str| {
        counts
            .get(&(m.to_owned(), v.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    println!("80/20: {counts:?}");
    assert_eq!(count(&counts, "slow", "v2"), CALLS, "{counts:?}");
    let v1_share = count(&counts, "greet", "v1") as f64 / CALLS as f64;
    assert!(
        (v1_share - 0.8).abs() <= 0.05,
        "greet v1 share {v1_share}: {counts:?}"
    );

    // The operator moves everything to v2: the bridge pushes new routes, the proxy swaps them in.
    std::fs::write(&rules_path, rules(0, 100)).unwrap();
    assert_eventually!(within Duration::from_secs(30); {
        let snapshot = proxy.store.load();
        snapshot
            .dubbo_table(INTERFACE, "", "1.0.0")
            .is_some_and(|t| t.routes[1].destinations.entries().len() == 1)
    }, "the 0/100 rules never reached the proxy");
    let counts = call("greet").await;
    println!("0/100: {counts:?}");
    assert_eq!(count(&counts, "greet", "v2"), CALLS, "{counts:?}");

    let text = proxy.metrics.encode().unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("istio_requests_total")
            && l.contains("destination_version=\"v2\"")
            && l.contains("request_method=\"greet\"")),
        "{text}"
    );
    assert!(text.contains("causeway_proxy_xds_connected 1"), "{text}");
}
