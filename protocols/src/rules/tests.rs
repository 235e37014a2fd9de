//! Tests of the rules layer: real-world examples of every kind, every validation error with its
//! exact file/document/field message, all-or-nothing loading, versions and queries.

use std::time::Duration;

use super::common::{Percent, RuleDuration, StringMatch};
use super::destination_rule::{HashKey, LbPolicy, SimpleLb};
use super::virtual_service::{AbortStatus, GrpcCode};
use super::*;

const FILE: &str = "rules.yaml";

fn parse(text: &str) -> Result<RuleSet, RulesError> {
    RuleSet::parse(FILE, text)
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(rules) => panic!("expected a rejection, got {} resources", rules.len()),
        Err(error) => error.problems().iter().map(ToString::to_string).collect(),
    }
}

fn problem(text: &str) -> String {
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].clone()
}

const REVIEWS_DR: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: prod
spec:
  host: reviews.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 250ms
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
";

const REVIEWS_CANARY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: prod
spec:
  hosts:
  - reviews.prod.svc.cluster.local
  http:
  - route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v1
      weight: 80
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v2
      weight: 20
";

#[test]
fn istio_canary_80_20_with_subset_policy_overrides() {
    let rules = parse(&format!("{REVIEWS_DR}---\n{REVIEWS_CANARY}")).unwrap();
    assert_eq!(rules.len(), 2);
    let host = "reviews.prod.svc.cluster.local";
    let vs = rules.virtual_services_for(host);
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0].id(), "prod/reviews");
    assert_eq!(vs[0].kind(), "VirtualService");
    let split: Vec<(Option<&str>, u32)> = vs[0].spec.http[0]
        .route
        .iter()
        .map(|r| (r.destination.subset.as_deref(), r.weight))
        .collect();
    assert_eq!(split, vec![(Some("v1"), 80), (Some("v2"), 20)]);

    let dr = rules.destination_rule(host).unwrap();
    let v2 = dr.spec.effective_policy(Some("v2"));
    assert_eq!(
        v2.load_balancer.unwrap().policy,
        Some(LbPolicy::Simple(SimpleLb::RoundRobin))
    );
    // The subset keeps the host's connection pool: overrides are per field.
    assert_eq!(
        v2.connection_pool.unwrap().tcp.unwrap().connect_timeout,
        Some(RuleDuration(Duration::from_millis(250)))
    );
    let v1 = dr.spec.effective_policy(Some("v1"));
    assert_eq!(
        v1.load_balancer.unwrap().policy,
        Some(LbPolicy::Simple(SimpleLb::LeastRequest))
    );
    let labels = [("version".to_owned(), "v2".to_owned())].into();
    assert!(rules.subset(host, "v2").unwrap().selects(&labels));
    assert!(!rules.subset(host, "v1").unwrap().selects(&labels));
    assert!(rules.meta_routers_for(host).is_empty());
    assert!(rules.isolation_for(host).is_none());
}

const RATINGS: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: ratings
spec:
  host: ratings
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - name: jason
    match:
    - headers:
        end-user:
          exact: jason
        x-canary: {}
      uri:
        prefix: /ratings
      sourceLabels:
        app: reviews
      port: 9080
    fault:
      delay:
        percentage:
          value: 100.0
        fixedDelay: 7s
      abort:
        percentage:
          value: 10
        httpStatus: 500
    route:
    - destination:
        host: ratings
        subset: v1
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream,503
  - route:
    - destination:
        host: ratings
        subset: v1
        port:
          number: 9080
";

#[test]
fn istio_header_match_fault_and_retries() {
    let rules = parse(RATINGS).unwrap();
    let vs = rules.virtual_services_for("ratings")[0];
    assert_eq!(vs.id(), "default/ratings");
    let route = &vs.spec.http[0];
    assert_eq!(route.name.as_deref(), Some("jason"));
    let matched = &route.matches[0];
    assert_eq!(
        matched.headers["end-user"],
        StringMatch::Exact("jason".into())
    );
    assert_eq!(matched.headers["x-canary"], StringMatch::Present);
    assert_eq!(matched.uri, Some(StringMatch::Prefix("/ratings".into())));
    assert_eq!(matched.source_labels["app"], "reviews");
    assert_eq!(matched.port, Some(9080));
    let fault = route.fault.as_ref().unwrap();
    let delay = fault.delay.as_ref().unwrap();
    assert_eq!(delay.fixed_delay.get(), Duration::from_secs(7));
    assert_eq!(delay.percentage, Some(Percent { value: 100.0 }));
    let abort = fault.abort.as_ref().unwrap();
    assert_eq!(abort.status, AbortStatus::HttpStatus(500));
    assert!((abort.percentage.unwrap().fraction() - 0.1).abs() < 1e-9);
    assert_eq!(route.timeout.unwrap().get(), Duration::from_secs(10));
    let retries = route.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 3);
    assert_eq!(
        retries.per_try_timeout.unwrap().get(),
        Duration::from_secs(2)
    );
    assert_eq!(
        retries.conditions(),
        vec!["gateway-error", "connect-failure", "refused-stream", "503"]
    );
    let port = vs.spec.http[1].route[0].destination.port.unwrap();
    assert_eq!(port.number, 9080);
}

#[test]
fn grpc_virtual_service_with_abort_status_and_mirror() {
    let rules = parse(
        "\
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: greeter, namespace: default}
spec:
  host: greeter.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: default}
spec:
  hosts: [greeter.default.svc.cluster.local]
  http:
  - match:
    - uri:
        regex: /helloworld\\.Greeter/(SayHello|SayHi)
    fault:
      abort:
        percentage: {value: 0.5}
        grpcStatus: UNAVAILABLE
    mirror:
      host: greeter.default.svc.cluster.local
      subset: v2
    mirrorPercentage: {value: 25}
    route:
    - destination: {host: greeter.default.svc.cluster.local, subset: v1}
",
    )
    .unwrap();
    let route = &rules.virtual_services[0].spec.http[0];
    let Some(StringMatch::Regex(pattern)) = &route.matches[0].uri else {
        panic!("expected a regex");
    };
    // Regexes match the whole value, as in Envoy.
    assert!(pattern.is_match("/helloworld.Greeter/SayHello"));
    assert!(!pattern.is_match("/helloworld.Greeter/SayHello/extra"));
    assert!(!pattern.is_match("x/helloworld.Greeter/SayHi"));
    let abort = route.fault.as_ref().unwrap().abort.as_ref().unwrap();
    assert_eq!(abort.status, AbortStatus::GrpcStatus(GrpcCode::Unavailable));
    assert_eq!(GrpcCode::Unavailable.code(), 14);
    assert_eq!(route.mirror.as_ref().unwrap().subset.as_deref(), Some("v2"));
    assert_eq!(route.mirror_percentage, Some(Percent { value: 25.0 }));
}

const DEMO_HOST: &str = "org.apache.dubbo.samples.basic.api.demoservice";

fn demo_rules(router_routes: &str) -> String {
    format!(
        "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dubbo-sample-provider
  namespace: meta-dubbo
spec:
  host: {DEMO_HOST}
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: method
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: batchjob
    labels:
      service_group: batchjob
---
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata:
  name: test-metaprotocol-dubbo-route
  namespace: meta-dubbo
spec:
  hosts:
  - {DEMO_HOST}
  routes:
{router_routes}"
    )
}

// No leading `\` continuation here: it would eat the first line's indentation.
const DEMO_ROUTES: &str = "  - name: v2
    match:
      attributes:
        interface:
          exact: org.apache.dubbo.samples.basic.api.DemoService
        method:
          exact: sayHello
        foo:
          exact: bar
    route:
    - destination:
        host: org.apache.dubbo.samples.basic.api.demoservice
        subset: v2
    requestMutation:
    - key: foo
      value: baz
  - name: split
    match:
      attributes:
        method:
          prefix: say
        tenant:
          regex: 'team-[a-z]+'
    route:
    - destination:
        host: org.apache.dubbo.samples.basic.api.demoservice
        subset: v1
      weight: 20
    - destination:
        host: org.apache.dubbo.samples.basic.api.demoservice
        subset: v2
      weight: 80
    mirror:
      host: org.apache.dubbo.samples.basic.api.demoservice
      subset: v2
    mirrorPercentage:
      value: 50
  - name: shadow
    route:
    - destination:
        host: org.apache.dubbo.samples.basic.api.demoservice
        subset: v1
        port:
          number: 20880
    requestMirrorPolicies:
    - destination:
        host: org.apache.dubbo.samples.basic.api.demoservice
        subset: batchjob
      percentage:
        value: 10
  localRateLimit:
    tokenBucket:
      fillInterval: 60s
      maxTokens: 10
      tokensPerFill: 10
    conditions:
    - match:
        attributes:
          method:
            exact: sayHello
      tokenBucket:
        fillInterval: 10s
        maxTokens: 2
        tokensPerFill: 2
";

#[test]
fn aeraki_meta_router_by_method_and_attachment() {
    let rules = parse(&demo_rules(DEMO_ROUTES)).unwrap();
    let routers = rules.meta_routers_for(DEMO_HOST);
    assert_eq!(routers.len(), 1);
    let spec = &routers[0].spec;
    assert_eq!(routers[0].id(), "meta-dubbo/test-metaprotocol-dubbo-route");
    let attributes = &spec.routes[0].matches.as_ref().unwrap().attributes;
    assert_eq!(attributes["method"], StringMatch::Exact("sayHello".into()));
    assert_eq!(attributes["foo"], StringMatch::Exact("bar".into()));
    assert!(attributes["interface"].matches("org.apache.dubbo.samples.basic.api.DemoService"));
    assert_eq!(spec.routes[0].request_mutation[0].value, "baz");
    let split = &spec.routes[1];
    assert!(split.matches.as_ref().unwrap().attributes["tenant"].matches("team-blue"));
    assert!(!split.matches.as_ref().unwrap().attributes["tenant"].matches("team-42"));
    assert_eq!(split.route[1].weight, 80);
    // Both mirror spellings read the same way.
    let mirrors = split.mirrors();
    assert_eq!(mirrors.len(), 1);
    assert_eq!(mirrors[0].percentage, Some(Percent { value: 50.0 }));
    let shadow = spec.routes[2].mirrors();
    assert_eq!(shadow[0].destination.subset.as_deref(), Some("batchjob"));
    let limit = spec.local_rate_limit.as_ref().unwrap();
    assert_eq!(limit.token_bucket.as_ref().unwrap().max_tokens, 10);
    assert_eq!(
        limit.conditions[0].token_bucket.fill_interval.get(),
        Duration::from_secs(10)
    );
    let dr = rules.destination_rule(DEMO_HOST).unwrap();
    let Some(LbPolicy::ConsistentHash(hash)) = &dr
        .spec
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap()
        .policy
    else {
        panic!("expected a consistent hash");
    };
    assert_eq!(hash.key, HashKey::HttpHeaderName("method".into()));
}

const ORDERS_LOCALITY: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: orders
  namespace: shop
  labels:
    team: orders
  resourceVersion: \"4711\"
  uid: 0b5c8a3e-1111-2222-3333-444455556666
  creationTimestamp: \"2024-05-01T10:00:00Z\"
spec:
  host: com.acme.order.orderservice-1-2-0
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover:
        - from: cn-north
          to: cn-east
        failoverPriority:
        - topology.istio.io/network
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 30ms
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 1000
        maxRequestsPerConnection: 10
        maxRetries: 3
        idleTimeout: 1.5s
    outlierDetection:
      consecutive5xxErrors: 5
      consecutiveGatewayErrors: 3
      interval: 10s
      baseEjectionTime: 2m
      maxEjectionPercent: 50
      minHealthPercent: 20
status: {}
";

#[test]
fn locality_failover_and_circuit_breaking() {
    let rules = parse(ORDERS_LOCALITY).unwrap();
    let dr = rules
        .destination_rule("com.acme.order.orderservice-1-2-0")
        .unwrap();
    assert_eq!(dr.metadata.labels["team"], "orders");
    let policy = dr.spec.traffic_policy.as_ref().unwrap();
    let locality = policy
        .load_balancer
        .as_ref()
        .unwrap()
        .locality_lb_setting
        .as_ref()
        .unwrap();
    assert_eq!(locality.enabled, Some(true));
    assert_eq!(locality.failover[0].from, "cn-north");
    assert_eq!(locality.failover[0].to, "cn-east");
    assert_eq!(
        locality.failover_priority,
        vec!["topology.istio.io/network"]
    );
    let http = policy
        .connection_pool
        .as_ref()
        .unwrap()
        .http
        .as_ref()
        .unwrap();
    assert_eq!(http.http2_max_requests, Some(1000));
    assert_eq!(
        http.idle_timeout.unwrap().get(),
        Duration::from_millis(1500)
    );
    let outlier = policy.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_5xx_errors, Some(5));
    assert_eq!(
        outlier.base_ejection_time.unwrap().get(),
        Duration::from_secs(120)
    );
    assert_eq!(outlier.min_health_percent, Some(20));
}

#[test]
fn locality_distribute() {
    let rules = parse(
        "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders}
spec:
  host: '*.acme.svc'
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: cn-north/zone-a/*
          to:
            cn-north/zone-a/*: 80
            cn-north/zone-b/*: 20
",
    )
    .unwrap();
    // A wildcard DestinationRule applies to the hosts under it.
    let dr = rules.destination_rule("orders.acme.svc").unwrap();
    let locality = dr
        .spec
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap();
    assert_eq!(locality.policy, None);
    let distribute = &locality.locality_lb_setting.as_ref().unwrap().distribute[0];
    assert_eq!(distribute.to["cn-north/zone-a/*"], 80);
    assert!(rules.destination_rule("acme.svc").is_none());
}

const ISOLATION: &str = "\
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata:
  name: orders-batch-isolation
  namespace: shop
spec:
  host: com.acme.order.orderservice-1-2-0
  classes:
  - name: batch
    match:
      attributes:
        batch:
          exact: \"true\"
      headers:
        x-caller-app:
          prefix: report-
    maxConcurrency: 20
    subset: batchjob
    shedOrder: 0
  - name: user
    maxConcurrency: 200
    shedOrder: 10
  defaultClass: user
";

const ORDERS_SUBSETS: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: orders
  namespace: shop
spec:
  host: com.acme.order.orderservice-1-2-0
  subsets:
  - name: batchjob
    labels:
      service_group: batchjob
";

#[test]
fn traffic_isolation_user_vs_batch() {
    let rules = parse(&format!("{ORDERS_SUBSETS}---\n{ISOLATION}")).unwrap();
    let isolation = rules
        .isolation_for("com.acme.order.orderservice-1-2-0")
        .unwrap();
    let spec = &isolation.spec;
    assert_eq!(
        spec.host_names().collect::<Vec<_>>(),
        vec!["com.acme.order.orderservice-1-2-0"]
    );
    let batch = spec.class("batch").unwrap();
    assert_eq!(batch.max_concurrency, 20);
    assert_eq!(batch.subset.as_deref(), Some("batchjob"));
    assert!(batch.matches.attributes["batch"].matches("true"));
    assert!(batch.matches.headers["x-caller-app"].matches("report-nightly"));
    assert_eq!(spec.fallback_class().unwrap().name, "user");
    let order: Vec<&str> = spec
        .shedding_order()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(order, vec!["batch", "user"]);
}

const PRIORITIES: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: orders, namespace: shop}
spec:
  host: com.acme.orders
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 2}
---
apiVersion: causeway.io/v1alpha1
kind: TrafficIsolation
metadata: {name: orders, namespace: shop}
spec:
  host: com.acme.orders
  classes:
  - name: user
    match: {headers: {x-caller-app: {prefix: shop-}}}
    maxConcurrency: 200
    priority: HIGH
  - name: batch
    match: {headers: {x-caller-app: {prefix: report-}}}
    maxConcurrency: 20
  highPriorityConnectionPool:
    tcp: {maxConnections: 8}
    http: {http2MaxRequests: 50, http1MaxPendingRequests: 5, maxRetries: 1}
";

#[test]
fn traffic_isolation_priorities_and_the_high_priority_pool() {
    use super::destination_rule::BreakerLimits;
    use super::isolation::Priority;
    let rules = parse(PRIORITIES).unwrap();
    let spec = &rules.isolation_for("com.acme.orders").unwrap().spec;
    assert_eq!(spec.class("user").unwrap().priority, Priority::High);
    // Absent means DEFAULT.
    assert_eq!(spec.class("batch").unwrap().priority, Priority::Default);
    assert!(spec.has_high_priority_class());
    let pool = spec.high_priority_connection_pool.as_ref().unwrap();
    assert_eq!(
        pool.breaker_limits(),
        BreakerLimits {
            max_connections: Some(8),
            max_pending_requests: Some(5),
            max_requests: Some(50),
            max_retries: Some(1),
        }
    );
    // Both halves are present: nothing to warn about.
    assert_eq!(rules.warnings, Vec::new());
    // A file that uses no priority keeps the version it had before priorities existed: the
    // DEFAULT priority is not serialised.
    let plain = parse(&format!("{ORDERS_SUBSETS}---\n{ISOLATION}")).unwrap();
    let explicit = parse(&format!(
        "{ORDERS_SUBSETS}---\n{}",
        ISOLATION.replace(
            "    shedOrder: 10\n",
            "    shedOrder: 10\n    priority: DEFAULT\n"
        )
    ))
    .unwrap();
    assert_eq!(plain.version, explicit.version);
    let json = serde_json::to_string(&plain.traffic_isolations).unwrap();
    assert!(!json.contains("priority"), "{json}");
}

#[test]
fn the_high_priority_pool_takes_only_breaker_thresholds() {
    let text = PRIORITIES.replace(
        "    tcp: {maxConnections: 8}\n",
        "    tcp: {maxConnections: 8, connectTimeout: 1s}\n",
    );
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (TrafficIsolation shop/orders): \
         highPriorityConnectionPool.tcp.connectTimeout: not a per-priority threshold: set it in \
         the host's DestinationRule `connectionPool` (allowed here: `tcp.maxConnections`, \
         `http.http1MaxPendingRequests`, `http.http2MaxRequests`, `http.maxRetries`)"
    );
    let text = PRIORITIES.replace(
        "maxRetries: 1}",
        "maxRetries: 1, maxRequestsPerConnection: 10, idleTimeout: 30s}",
    );
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains("highPriorityConnectionPool.http.maxRequestsPerConnection: not a"),
        "{found:#?}"
    );
    assert!(
        found[1].contains("highPriorityConnectionPool.http.idleTimeout: not a"),
        "{found:#?}"
    );
    // The schema is strict like the DestinationRule's: unknown fields and bad values name
    // their path.
    let text = PRIORITIES.replace(
        "    tcp: {maxConnections: 8}\n",
        "    tcp: {maxConections: 8}\n",
    );
    assert!(
        problem(&text).starts_with(
            "rules.yaml: document 2 (TrafficIsolation shop/orders): \
             highPriorityConnectionPool.tcp.maxConections: unknown field `maxConections`"
        ),
        "{}",
        problem(&text)
    );
    let text = PRIORITIES.replace("priority: HIGH", "priority: URGENT");
    assert!(
        problem(&text).starts_with(
            "rules.yaml: document 2 (TrafficIsolation shop/orders): classes[0].priority: \
             unknown variant `URGENT`, expected one of DEFAULT, HIGH"
        ),
        "{}",
        problem(&text)
    );
    let text = PRIORITIES.replace("http2MaxRequests: 50", "http2MaxRequests: -1");
    assert!(
        problem(&text).starts_with(
            "rules.yaml: document 2 (TrafficIsolation shop/orders): \
             highPriorityConnectionPool.http.http2MaxRequests: "
        ),
        "{}",
        problem(&text)
    );
}

#[test]
fn half_configured_priorities_are_accepted_with_a_warning() {
    // A HIGH pool no class uses.
    let unused = parse(&PRIORITIES.replace("    priority: HIGH\n", "")).unwrap();
    let warnings: Vec<String> = unused.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "rules.yaml: document 2 (TrafficIsolation shop/orders): highPriorityConnectionPool: \
             no class has `priority: HIGH`, so these thresholds hold only requests whose Envoy \
             route asks for HIGH priority, which Causeway's own routes never do"
        ]
    );
    // A HIGH class without a HIGH pool, while the DestinationRule limits DEFAULT on purpose.
    let without_pool = PRIORITIES
        .split("  highPriorityConnectionPool:")
        .next()
        .unwrap()
        .to_owned();
    let escaped = parse(&without_pool).unwrap();
    let warnings: Vec<String> = escaped.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "rules.yaml: document 2 (TrafficIsolation shop/orders): classes[0].priority: HIGH \
             requests are held to Envoy's default HIGH thresholds (1024 connections, pending \
             and active requests, 3 retries), not to the `connectionPool` of DestinationRule \
             shop/orders: give this TrafficIsolation a `highPriorityConnectionPool`"
        ]
    );
    // Without DEFAULT limits there is nothing to escape from.
    let unlimited = without_pool.replace(
        "      http: {http2MaxRequests: 2}\n",
        "      tcp: {connectTimeout: 1s}\n",
    );
    assert_eq!(parse(&unlimited).unwrap().warnings, Vec::new());
    // Warnings are shown with the rules (the bridge's /debug/rules) but are not the version.
    let json = serde_json::to_value(&escaped).unwrap();
    assert_eq!(json["warnings"][0], warnings[0].as_str());
    assert_eq!(escaped.version, parse(&without_pool).unwrap().version);
}

#[test]
fn durations_as_istio_writes_them() {
    for (text, expected) in [
        ("1s", Duration::from_secs(1)),
        ("100ms", Duration::from_millis(100)),
        ("1.5s", Duration::from_millis(1500)),
        ("2m", Duration::from_secs(120)),
        ("1h30m", Duration::from_secs(5400)),
        ("0.25ms", Duration::from_micros(250)),
        ("10us", Duration::from_micros(10)),
        ("7ns", Duration::from_nanos(7)),
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
    ] {
        assert_eq!(RuleDuration::parse(text).unwrap().get(), expected, "{text}");
    }
    for (text, reason) in [
        ("", "invalid duration \"\": empty"),
        (
            "10",
            "invalid duration \"10\": missing unit (use h, m, s, ms, us or ns)",
        ),
        (
            "10x",
            "invalid duration \"10x\": unknown unit \"x\" (use h, m, s, ms, us or ns)",
        ),
        ("-1s", "invalid duration \"-1s\": must not be negative"),
        (
            "1..5s",
            "invalid duration \"1..5s\": \"1..5\" is not a number",
        ),
        ("s", "invalid duration \"s\": \"\" is not a number"),
    ] {
        assert_eq!(RuleDuration::parse(text).unwrap_err(), reason, "{text}");
    }
    // Serialized in the largest exact unit, so equal durations hash equally.
    assert_eq!(RuleDuration::parse("1.5s").unwrap().to_string(), "1500ms");
    assert_eq!(RuleDuration::parse("120s").unwrap().to_string(), "2m");
}

// ---- Validation errors: each names file, document, resource and field. ----

#[test]
fn weights_must_sum_to_100() {
    let text = format!(
        "{REVIEWS_DR}---\n{}---\n{}",
        REVIEWS_CANARY,
        "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: greeter
spec:
  hosts: [reviews.prod.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.prod.svc.cluster.local, subset: v1}
      weight: 70
    - destination: {host: reviews.prod.svc.cluster.local, subset: v2}
      weight: 20
"
    );
    assert_eq!(
        problem(&text),
        "rules.yaml: document 3 (VirtualService default/greeter): http[0].route[1].weight: \
         weights sum to 90, expected 100"
    );
}

#[test]
fn unknown_kind_and_api_version() {
    assert_eq!(
        problem(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n"
        ),
        "rules.yaml: document 1 (Gateway default/gw): kind: unsupported kind `Gateway` \
         (expected DestinationRule, VirtualService, MetaRouter or TrafficIsolation)"
    );
    assert_eq!(
        problem(
            "apiVersion: networking.istio.io/v2\nkind: DestinationRule\nmetadata: {name: r, namespace: ns}\nspec: {host: a}\n"
        ),
        "rules.yaml: document 1 (DestinationRule ns/r): apiVersion: unsupported apiVersion \
         `networking.istio.io/v2` for DestinationRule (expected networking.istio.io/v1, \
         networking.istio.io/v1beta1, networking.istio.io/v1alpha3)"
    );
    assert_eq!(
        problem(
            "apiVersion: networking.istio.io/v1\nkind: MetaRouter\nmetadata: {name: r}\nspec: {hosts: [a]}\n"
        ),
        "rules.yaml: document 1 (MetaRouter default/r): apiVersion: unsupported apiVersion \
         `networking.istio.io/v1` for MetaRouter (expected metaprotocol.aeraki.io/v1alpha1)"
    );
    assert_eq!(
        problem("apiVersion: causeway.io/v1alpha1\nmetadata: {name: r}\n"),
        "rules.yaml: document 1: kind: missing `kind`"
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let text = RATINGS.replace("      attempts: 3", "      attemps: 3");
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (VirtualService default/ratings): http[0].retries.attemps: \
         unknown field `attemps`, expected one of attempts, perTryTimeout, retryOn at line 45, \
         column 7"
    );
    let text = RATINGS.replace(
        "  hosts:\n  - ratings\n",
        "  hosts:\n  - ratings\n  gateways: [mesh]\n",
    );
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (VirtualService default/ratings): gateways: unknown field \
         `gateways`, expected one of hosts, http at line 18, column 3"
    );
    assert_eq!(
        problem(
            "apiVersion: causeway.io/v1alpha1\nkind: TrafficIsolation\nmetadata: {name: t, namespce: x}\nspec: {host: a, classes: [{name: c, maxConcurrency: 1, match: {headers: {a: {}}}}]}\n"
        ),
        "rules.yaml: document 1 (TrafficIsolation default/t): metadata.namespce: unknown field \
         `namespce`, expected one of name, namespace, labels, annotations, uid, \
         resourceVersion, generation, creationTimestamp, deletionTimestamp, \
         deletionGracePeriodSeconds, managedFields, selfLink, finalizers, ownerReferences, \
         generateName at line 3, column 21"
    );
}

#[test]
fn bad_regex() {
    let text = RATINGS.replace("prefix: /ratings", "regex: '/ratings/(unclosed'");
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (VirtualService default/ratings): http[0].match[0].uri: \
         invalid regex `/ratings/(unclosed`: unclosed group at line 26, column 9"
    );
}

#[test]
fn bad_duration() {
    let text = RATINGS.replace("timeout: 10s", "timeout: 10x");
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (VirtualService default/ratings): http[0].timeout: invalid \
         duration \"10x\": unknown unit \"x\" (use h, m, s, ms, us or ns) at line 43, column 14"
    );
}

#[test]
fn percentage_outside_0_to_100() {
    let text = RATINGS.replace("value: 10\n", "value: 150\n");
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (VirtualService default/ratings): \
         http[0].fault.abort.percentage.value: percentage 150 is outside 0..100 at line 37, \
         column 18"
    );
    let text = ORDERS_LOCALITY.replace("maxEjectionPercent: 50", "maxEjectionPercent: 101");
    assert_eq!(
        problem(&text),
        "rules.yaml: document 1 (DestinationRule shop/orders): \
         trafficPolicy.outlierDetection.maxEjectionPercent: percentage 101 is outside 0..100"
    );
}

#[test]
fn duplicate_subset_names() {
    let text = REVIEWS_DR.replace("  - name: v2\n", "  - name: v1\n");
    assert_eq!(
        problem(&text),
        "rules.yaml: document 1 (DestinationRule prod/reviews): subsets[1].name: duplicate \
         subset name `v1`"
    );
}

#[test]
fn route_to_a_subset_the_destination_rule_does_not_define() {
    let text = format!(
        "{REVIEWS_DR}---\n{}",
        REVIEWS_CANARY.replace("subset: v2", "subset: v3")
    );
    assert_eq!(
        problem(&text),
        "rules.yaml: document 2 (VirtualService prod/reviews): \
         http[0].route[1].destination.subset: subset `v3` is not defined by DestinationRule \
         prod/reviews for host `reviews.prod.svc.cluster.local` (defined: v1, v2)"
    );
    // Without any DestinationRule for the host.
    assert_eq!(
        problems(REVIEWS_CANARY),
        vec![
            "rules.yaml: document 1 (VirtualService prod/reviews): \
             http[0].route[0].destination.subset: subset `v1` is not defined: no \
             DestinationRule for host `reviews.prod.svc.cluster.local`",
            "rules.yaml: document 1 (VirtualService prod/reviews): \
             http[0].route[1].destination.subset: subset `v2` is not defined: no \
             DestinationRule for host `reviews.prod.svc.cluster.local`",
        ]
    );
}

#[test]
fn empty_hosts() {
    assert_eq!(
        problem(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: []\n  http:\n  - route:\n    - destination: {host: a}\n"
        ),
        "rules.yaml: document 1 (VirtualService default/v): hosts: at least one host is required"
    );
    assert_eq!(
        problem(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: ''}\n"
        ),
        "rules.yaml: document 1 (DestinationRule default/d): host: host must not be empty"
    );
    assert_eq!(
        problem(
            "apiVersion: metaprotocol.aeraki.io/v1alpha1\nkind: MetaRouter\nmetadata: {name: m}\nspec:\n  hosts: ['']\n  routes:\n  - route:\n    - destination: {host: a}\n"
        ),
        "rules.yaml: document 1 (MetaRouter default/m): hosts[0]: host must not be empty"
    );
    assert_eq!(
        problem(
            "apiVersion: causeway.io/v1alpha1\nkind: TrafficIsolation\nmetadata: {name: t}\nspec:\n  classes: [{name: c, maxConcurrency: 1}]\n  defaultClass: c\n"
        ),
        "rules.yaml: document 1 (TrafficIsolation default/t): host: give `host` or `hosts`"
    );
}

#[test]
fn other_semantic_errors_name_their_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            demo_rules(DEMO_ROUTES).replace("weight: 80", "weight: 70"),
            "rules.yaml: document 2 (MetaRouter meta-dubbo/test-metaprotocol-dubbo-route): \
             routes[1].route[1].weight: weights sum to 90, expected 100",
        ),
        (
            demo_rules(DEMO_ROUTES).replace("maxTokens: 2", "maxTokens: 0"),
            "rules.yaml: document 2 (MetaRouter meta-dubbo/test-metaprotocol-dubbo-route): \
             localRateLimit.conditions[0].tokenBucket.maxTokens: must be positive",
        ),
        (
            demo_rules(DEMO_ROUTES).replace("subset: batchjob", "subset: batch"),
            "rules.yaml: document 2 (MetaRouter meta-dubbo/test-metaprotocol-dubbo-route): \
             routes[2].requestMirrorPolicies[0].destination.subset: subset `batch` is not \
             defined by DestinationRule meta-dubbo/dubbo-sample-provider for host \
             `org.apache.dubbo.samples.basic.api.demoservice` (defined: v1, v2, batchjob)",
        ),
        (
            ORDERS_LOCALITY.replace("to: cn-east", "to: cn-north"),
            "rules.yaml: document 1 (DestinationRule shop/orders): \
             trafficPolicy.loadBalancer.localityLbSetting.failover[0].to: failover from \
             `cn-north` to itself",
        ),
        (
            ORDERS_LOCALITY.replace("interval: 10s", "interval: 0s"),
            "rules.yaml: document 1 (DestinationRule shop/orders): \
             trafficPolicy.outlierDetection.interval: must be at least 1ms, got 0s",
        ),
        (
            RATINGS.replace("gateway-error,", "gateway-eror,"),
            "rules.yaml: document 2 (VirtualService default/ratings): http[0].retries.retryOn: \
             unknown retry condition `gateway-eror`",
        ),
        (
            RATINGS.replace("httpStatus: 500", "httpStatus: 700"),
            "rules.yaml: document 2 (VirtualService default/ratings): http[0].fault.abort: \
             httpStatus 700 is outside 200..599 at line 36, column 9",
        ),
        (
            RATINGS.replace("number: 9080", "number: 0"),
            "rules.yaml: document 2 (VirtualService default/ratings): \
             http[1].route[0].destination.port.number: port 0 is outside 1..65535",
        ),
        (
            format!(
                "{ORDERS_SUBSETS}---\n{}",
                ISOLATION.replace("subset: batchjob", "subset: batch")
            ),
            "rules.yaml: document 2 (TrafficIsolation shop/orders-batch-isolation): \
             classes[0].subset: subset `batch` is not defined by DestinationRule shop/orders \
             for host `com.acme.order.orderservice-1-2-0` (defined: batchjob)",
        ),
        (
            format!("{ORDERS_SUBSETS}---\n{ORDERS_SUBSETS}"),
            "rules.yaml: document 2 (DestinationRule shop/orders): metadata.name: duplicate \
             DestinationRule shop/orders (also in document 1)",
        ),
        (
            format!(
                "{ORDERS_SUBSETS}---\n{}",
                ORDERS_SUBSETS.replace("name: orders", "name: orders-2")
            ),
            "rules.yaml: document 2 (DestinationRule shop/orders-2): host: host \
             `com.acme.order.orderservice-1-2-0` already has DestinationRule shop/orders \
             (document 1)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(problem(&text), expected);
    }
    // A typo in `defaultClass` leaves the match-less class without a role: both are reported.
    let text = format!(
        "{ORDERS_SUBSETS}---\n{}",
        ISOLATION.replace("defaultClass: user", "defaultClass: users")
    );
    assert_eq!(
        problems(&text),
        vec![
            "rules.yaml: document 2 (TrafficIsolation shop/orders-batch-isolation): \
             classes[1].match: a class other than the default class needs at least one \
             attribute or header condition",
            "rules.yaml: document 2 (TrafficIsolation shop/orders-batch-isolation): \
             defaultClass: `users` is not one of the classes",
        ]
    );
}

#[test]
fn yaml_syntax_errors_give_file_lines() {
    let text = format!("{ORDERS_SUBSETS}---\nkind: [unclosed\n");
    let found = problem(&text);
    assert!(found.starts_with("rules.yaml: document 2: "), "{found}");
    assert!(found.contains("line 13"), "{found}");
}

// ---- All-or-nothing, versions. ----

#[test]
fn one_bad_document_rejects_the_whole_file_and_every_problem_is_listed() {
    let text = format!(
        "{REVIEWS_DR}---\n{}---\n{}",
        REVIEWS_CANARY.replace("weight: 20", "weight: 10"),
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n"
    );
    let error = parse(&text).unwrap_err();
    let found: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("rules.yaml: document 2 (VirtualService prod/reviews)"));
    assert!(found[1].starts_with("rules.yaml: document 3 (Sidecar default/s): kind:"));
    assert_eq!(error.to_string(), found.join("; "));
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let text = format!("# rules\n---\n---\n# nothing here\n---\n{REVIEWS_DR}---\n");
    assert_eq!(parse(&text).unwrap().len(), 1);
    let bad = format!(
        "---\n---\n{}",
        REVIEWS_DR.replace("LEAST_REQUEST", "FASTEST")
    );
    assert!(
        problem(&bad).starts_with(
            "rules.yaml: document 2 (DestinationRule prod/reviews): \
             trafficPolicy.loadBalancer.simple: unknown variant `FASTEST`"
        ),
        "{}",
        problem(&bad)
    );
    assert!(parse("").unwrap().is_empty());
}

#[test]
fn version_is_deterministic_and_content_based() {
    let a = format!("{REVIEWS_DR}---\n{REVIEWS_CANARY}---\n{ORDERS_LOCALITY}");
    let b = format!("{ORDERS_LOCALITY}---\n{REVIEWS_CANARY}---\n# reordered\n{REVIEWS_DR}");
    let first = parse(&a).unwrap();
    let second = parse(&b).unwrap();
    assert_eq!(first.version, second.version);
    assert_eq!(first, second);
    assert_eq!(first.version.len(), 16);
    // Equal durations in different spellings are the same rules.
    let respelled = parse(&a.replace("connectTimeout: 250ms", "connectTimeout: 0.25s")).unwrap();
    assert_eq!(respelled.version, first.version);
    let changed = parse(
        &a.replace("weight: 80", "weight: 79")
            .replace("weight: 20", "weight: 21"),
    )
    .unwrap();
    assert_ne!(changed.version, first.version);
    assert_ne!(RuleSet::default().version, first.version);
    assert_eq!(RuleSet::default().version, parse("").unwrap().version);
}

#[test]
fn queries_prefer_the_most_specific_host() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-all}
spec:
  hosts: ['*']
  http: [{route: [{destination: {host: fallback}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-suffix}
spec:
  hosts: ['*.acme.svc']
  http: [{route: [{destination: {host: suffix}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: c-exact}
spec:
  hosts: [orders.acme.svc]
  http: [{route: [{destination: {host: exact}}]}]
";
    let rules = parse(text).unwrap();
    let names: Vec<&str> = rules
        .virtual_services_for("orders.acme.svc")
        .iter()
        .map(|vs| vs.metadata.name.as_str())
        .collect();
    assert_eq!(names, vec!["c-exact", "b-suffix", "a-all"]);
    let names: Vec<&str> = rules
        .virtual_services_for("users.other.svc")
        .iter()
        .map(|vs| vs.metadata.name.as_str())
        .collect();
    assert_eq!(names, vec!["a-all"]);
}

// ---- Watching and metrics. ----

#[test]
fn string_matches() {
    assert!(StringMatch::Exact("a".into()).matches("a"));
    assert!(!StringMatch::Exact("a".into()).matches("ab"));
    assert!(StringMatch::Prefix("a".into()).matches("ab"));
    assert!(StringMatch::Present.matches(""));
    let error = parse(&RATINGS.replace("prefix: /ratings", "prefix: /ratings\n        exact: /r"))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("http[0].match[0].uri: give only one of `exact`, `prefix` and `regex`"),
        "{error}"
    );
}

#[test]
fn every_example_in_the_docs_is_valid() {
    let docs = include_str!("../../../docs/rules.md");
    let mut examples = 0;
    for block in docs.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap_or_default();
        // Each example stands alone, so a subset defined by a DestinationRule shown elsewhere is
        // the only acceptable complaint.
        if let Err(error) = parse(yaml) {
            for problem in error.problems() {
                assert!(problem.message.contains("is not defined"), "{problem}");
            }
        }
        examples += 1;
    }
    assert!(examples >= 5, "found {examples} examples");
}

const META_RESILIENCE: &str = "\
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: {name: calc}
spec:
  hosts: [calc]
  routes:
  - route: [{destination: {host: calc}}]
    timeout: 2s
    retries: {attempts: 2, perTryTimeout: 500ms, retryOn: 'reset, timeout,exception'}
    fault:
      delay: {percentage: {value: 10}, fixedDelay: 50ms}
      abort: {percentage: {value: 5}, dubboStatus: server_threadpool_exhausted_error, thriftException: 1}
";

#[test]
fn meta_router_resilience_extension_parses_names_and_numbers() {
    let rules = parse(META_RESILIENCE).unwrap();
    let router = &rules.meta_routers_for("calc")[0];
    let route = &router.spec.routes[0];
    assert_eq!(route.timeout, Some(RuleDuration(Duration::from_secs(2))));
    let retries = route.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 2);
    assert_eq!(retries.conditions(), ["reset", "timeout", "exception"]);
    let abort = route.fault.as_ref().unwrap().abort.as_ref().unwrap();
    assert_eq!(abort.dubbo_status.map(|s| s.0), Some(100));
    assert_eq!(abort.thrift_exception.map(|t| t.0), Some(1));
    // No retryOn: connect failures and resets.
    let default = meta_resilience::MetaRetry {
        attempts: 1,
        per_try_timeout: None,
        retry_on: None,
    };
    assert_eq!(default.conditions(), ["connect-failure", "reset"]);
}

#[test]
fn meta_router_resilience_extension_rejects_what_it_cannot_do() {
    let text = META_RESILIENCE.replace("exception'", "5xx'");
    assert!(
        problem(&text).contains("routes[0].retries.retryOn: unknown retry condition `5xx`"),
        "{}",
        problem(&text)
    );
    let text = META_RESILIENCE.replace(
        "dubboStatus: server_threadpool_exhausted_error",
        "dubboStatus: 20",
    );
    assert!(
        problem(&text).contains("not a Dubbo error status"),
        "{}",
        problem(&text)
    );
    let text = META_RESILIENCE.replace("thriftException: 1", "thriftException: NOPE");
    assert!(
        problem(&text).contains("not a TApplicationException type"),
        "{}",
        problem(&text)
    );
    let text = META_RESILIENCE.replace("timeout: 2s", "timeout: 0s");
    assert!(
        problem(&text).contains("routes[0].timeout: must be at least 1ms"),
        "{}",
        problem(&text)
    );
}
