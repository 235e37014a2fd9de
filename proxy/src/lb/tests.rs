//! Unit tests of endpoint choice: tiers and failover, P2C, round robin, consistent hash.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::routing::{CircuitBreaker, Endpoint, Locality};

fn endpoint(port: u16, weight: u32, priority: u32) -> Endpoint {
    Endpoint {
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        weight,
        healthy: true,
        locality: Locality::default(),
        priority,
        labels: BTreeMap::new(),
        metric_labels: Default::default(),
    }
}

fn cluster(lb: LbPolicy, endpoints: Vec<Endpoint>) -> Cluster {
    Cluster {
        name: "outbound|1||h".into(),
        host: "h".into(),
        port: 1,
        subset: String::new(),
        endpoints,
        lb,
        breaker: CircuitBreaker::default(),
        outlier: None,
        counts: Default::default(),
    }
}

fn counts(balancer: &Balancer, c: &Cluster, key: &RequestKey<'_>, n: usize) -> HashMap<u16, usize> {
    let mut rng = fastrand::Rng::with_seed(42);
    let now = Instant::now();
    let mut out = HashMap::new();
    for _ in 0..n {
        let (i, _) = balancer.choose(c, key, &[], &mut rng, now).unwrap();
        *out.entry(c.endpoints[i].address.port()).or_default() += 1;
    }
    out
}

#[test]
fn lowest_usable_priority_tier_takes_everything() {
    let c = cluster(
        LbPolicy::LeastRequest,
        vec![
            endpoint(1, 1, 1),
            endpoint(2, 1, 0),
            endpoint(3, 1, 0),
            endpoint(4, 1, 2),
        ],
    );
    let b = Balancer::new();
    let got = counts(&b, &c, &RequestKey::default(), 1000);
    assert_eq!(got.get(&1), None);
    assert_eq!(got.get(&4), None);
    assert!(got[&2] > 300 && got[&3] > 300, "{got:?}");

    // Tier 0 ejected (connect failures) and draining: tier 1 takes over.
    let now = Instant::now();
    b.state(c.endpoints[1].address).connect_failed(now);
    b.state(c.endpoints[2].address).set_draining(true);
    let got = counts(&b, &c, &RequestKey::default(), 100);
    assert_eq!(got.get(&1), Some(&100), "{got:?}");

    // Unhealthy endpoints are never used; an excluded one neither.
    let mut c2 = c.clone();
    c2.endpoints[0].healthy = false;
    let mut rng = fastrand::Rng::with_seed(1);
    let (i, _) = b
        .choose(&c2, &RequestKey::default(), &[], &mut rng, now)
        .unwrap();
    assert_eq!(c2.endpoints[i].address.port(), 4);
    assert!(
        b.choose(
            &c2,
            &RequestKey::default(),
            &[c2.endpoints[3].address],
            &mut rng,
            now
        )
        .is_none()
    );

    // Ejection ends.
    let later = now + Duration::from_secs(60);
    assert!(b.state(c.endpoints[1].address).is_usable(later));
}

#[test]
fn p2c_prefers_the_less_loaded_endpoint() {
    let c = cluster(
        LbPolicy::LeastRequest,
        vec![endpoint(1, 1, 0), endpoint(2, 1, 0)],
    );
    let b = Balancer::new();
    let busy = b.state(c.endpoints[0].address);
    for _ in 0..10 {
        busy.start();
    }
    let got = counts(&b, &c, &RequestKey::default(), 200);
    // With two endpoints P2C compares both every time.
    assert_eq!(got.get(&2), Some(&200), "{got:?}");
    // Slow endpoints lose too: same in-flight count, higher latency.
    for _ in 0..10 {
        busy.finish(None);
    }
    busy.finish(Some(Duration::from_millis(50)));
    let fast = b.state(c.endpoints[1].address);
    fast.finish(Some(Duration::from_micros(200)));
    assert!(busy.ewma() > fast.ewma());
    let got = counts(&b, &c, &RequestKey::default(), 100);
    assert_eq!(got.get(&2), Some(&100), "{got:?}");
}

#[test]
fn p2c_follows_weights_when_idle() {
    let c = cluster(
        LbPolicy::LeastRequest,
        vec![endpoint(1, 3, 0), endpoint(2, 1, 0), endpoint(3, 1, 0)],
    );
    let got = counts(&Balancer::new(), &c, &RequestKey::default(), 10_000);
    // Idle, scores divide by weight, so the heavy endpoint wins most duels it is in.
    assert!(got[&1] > got[&2] * 2, "{got:?}");
}

#[test]
fn round_robin_cycles_by_weight() {
    let c = cluster(
        LbPolicy::RoundRobin,
        vec![endpoint(1, 2, 0), endpoint(2, 1, 0)],
    );
    let got = counts(&Balancer::new(), &c, &RequestKey::default(), 300);
    assert_eq!(got[&1], 200);
    assert_eq!(got[&2], 100);
}

#[test]
fn consistent_hash_is_sticky_and_moves_little() {
    let eps: Vec<Endpoint> = (1..=5).map(|p| endpoint(p, 1, 0)).collect();
    let c = cluster(LbPolicy::ConsistentHash(HashOn::Method), eps.clone());
    let b = Balancer::new();
    let mut rng = fastrand::Rng::with_seed(3);
    let now = Instant::now();
    let pick = |c: &Cluster, method: &str, rng: &mut fastrand::Rng| {
        let key = RequestKey {
            method,
            ..RequestKey::default()
        };
        let (i, _) = b.choose(c, &key, &[], rng, now).unwrap();
        c.endpoints[i].address.port()
    };
    let methods: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
    let before: Vec<u16> = methods.iter().map(|m| pick(&c, m, &mut rng)).collect();
    let again: Vec<u16> = methods.iter().map(|m| pick(&c, m, &mut rng)).collect();
    assert_eq!(before, again, "same key, same endpoint");
    let mut spread: HashMap<u16, usize> = HashMap::new();
    for p in &before {
        *spread.entry(*p).or_default() += 1;
    }
    assert_eq!(spread.len(), 5);
    assert!(spread.values().all(|&n| n > 50), "{spread:?}");

    // Removing endpoint 5 only moves the keys it owned.
    let smaller = cluster(LbPolicy::ConsistentHash(HashOn::Method), eps[..4].to_vec());
    let after: Vec<u16> = methods
        .iter()
        .map(|m| pick(&smaller, m, &mut rng))
        .collect();
    for (b, a) in before.iter().zip(&after) {
        if *b != 5 {
            assert_eq!(a, b);
        }
    }

    // Hash on an attachment.
    let c = cluster(
        LbPolicy::ConsistentHash(HashOn::Attachment("user".into())),
        eps,
    );
    let lookup = |k: &str| (k == "user").then(|| "alice".to_owned());
    let key = RequestKey {
        attachment: Some(&lookup),
        ..RequestKey::default()
    };
    let first = b.choose(&c, &key, &[], &mut rng, now).unwrap().0;
    for _ in 0..20 {
        assert_eq!(b.choose(&c, &key, &[], &mut rng, now).unwrap().0, first);
    }
}

#[test]
fn ejection_backs_off() {
    let s = EndpointState::default();
    let now = Instant::now();
    let first = s.connect_failed(now);
    // Failures during the ejection are the same outage: no doubling.
    assert!(s.connect_failed(now) <= first);
    let later = now + first;
    let second = s.connect_failed(later);
    assert!(second > first);
    assert!(!s.is_usable(later));
    s.connected();
    assert!(s.is_usable(later));
    s.finish(None);
    assert_eq!(s.in_flight(), 0, "finish without start saturates");
}

#[test]
fn a_stale_slow_sample_decays() {
    let s = EndpointState::default();
    let idle = EndpointState::default();
    s.start();
    s.finish(Some(Duration::from_millis(50)));
    let now = Instant::now();
    assert!(s.load_score(now) > 10.0 * idle.load_score(now));
    let later = now + Duration::from_secs(10);
    assert!(
        s.load_score(later) < 1.01 * idle.load_score(later),
        "decayed to the floor"
    );
    // Sub-millisecond differences are ties.
    let fast = EndpointState::default();
    fast.start();
    fast.finish(Some(Duration::from_micros(100)));
    assert_eq!(fast.load_score(now), idle.load_score(now));
}

fn outlier_cluster(n: u16, policy: crate::routing::OutlierPolicy) -> Cluster {
    let mut c = cluster(
        LbPolicy::LeastRequest,
        (1..=n).map(|p| endpoint(p, 1, 0)).collect(),
    );
    c.outlier = Some(policy);
    c
}

#[test]
fn consecutive_errors_eject_for_base_times_count_then_return() {
    let policy = crate::routing::OutlierPolicy {
        consecutive_errors: Some(3),
        consecutive_gateway_errors: None,
        interval_ms: 1000,
        base_ejection_ms: 1000,
        max_ejection_percent: 100,
    };
    let c = outlier_cluster(3, policy);
    let b = Balancer::new();
    let s = b.state(c.endpoints[0].address);
    let now = Instant::now();
    assert_eq!(b.report(&c, &s, Verdict::Error, now), None);
    assert_eq!(b.report(&c, &s, Verdict::Error, now), None);
    // A success resets the count.
    assert_eq!(b.report(&c, &s, Verdict::Success, now), None);
    assert_eq!(b.report(&c, &s, Verdict::Error, now), None);
    assert_eq!(b.report(&c, &s, Verdict::Ignored, now), None);
    assert_eq!(b.report(&c, &s, Verdict::GatewayError, now), None);
    assert_eq!(
        b.report(&c, &s, Verdict::Error, now),
        Some(EjectionReason::ConsecutiveErrors)
    );
    assert!(!s.is_usable(now));
    assert_eq!(b.ejected_count(&c, now), 1);
    let got = counts(&b, &c, &RequestKey::default(), 200);
    assert_eq!(got.get(&1), None, "an ejected endpoint takes nothing");
    let back = now + Duration::from_millis(1000);
    assert!(s.is_usable(back), "returns after the base ejection time");
    // Ejected again at once: twice the base.
    for _ in 0..2 {
        b.report(&c, &s, Verdict::Error, back);
    }
    assert!(b.report(&c, &s, Verdict::Error, back).is_some());
    assert!(!s.is_usable(back + Duration::from_millis(1999)));
    assert!(s.is_usable(back + Duration::from_millis(2000)));
}

#[test]
fn gateway_errors_and_the_maximum_ejected_share() {
    let policy = crate::routing::OutlierPolicy {
        consecutive_errors: None,
        consecutive_gateway_errors: Some(2),
        interval_ms: 1000,
        base_ejection_ms: 30_000,
        max_ejection_percent: 10,
    };
    let c = outlier_cluster(3, policy);
    let b = Balancer::new();
    let now = Instant::now();
    let first = b.state(c.endpoints[0].address);
    let second = b.state(c.endpoints[1].address);
    // Errors that are not gateway errors do not count for this detector.
    for _ in 0..5 {
        assert_eq!(b.report(&c, &first, Verdict::Error, now), None);
    }
    b.report(&c, &first, Verdict::GatewayError, now);
    assert_eq!(
        b.report(&c, &first, Verdict::GatewayError, now),
        Some(EjectionReason::ConsecutiveGatewayErrors)
    );
    // 10 % of 3 rounds to none, but one endpoint may always go; a second may not.
    b.report(&c, &second, Verdict::GatewayError, now);
    assert_eq!(b.report(&c, &second, Verdict::GatewayError, now), None);
    assert!(second.is_usable(now));
    assert_eq!(b.ejected_count(&c, now), 1);
}

#[test]
fn without_a_policy_results_eject_nothing() {
    let c = cluster(LbPolicy::LeastRequest, vec![endpoint(1, 1, 0)]);
    let b = Balancer::new();
    let s = b.state(c.endpoints[0].address);
    let now = Instant::now();
    for _ in 0..100 {
        assert_eq!(b.report(&c, &s, Verdict::GatewayError, now), None);
    }
    assert!(s.is_usable(now));
}
