//! The concurrency decision for one request of one class, given what every class of the host has
//! in flight. Pure, so every case is a unit test.
//!
//! Two limits apply (`docs/rules.md`, TrafficIsolation):
//! - the class's own budget: at most `max_concurrency` in flight (`concurrency_limit`);
//! - the host's capacity (its connection-pool limit, scaled down when endpoints are unhealthy):
//!   a class may only use what is left after the *unused* budgets of the classes shed after it
//!   (higher `shed_order`) are set aside. So when the host fills up, the class with the lowest
//!   `shed_order` is refused first (`overload`) while the later classes still find their
//!   reserved share free; classes with equal `shed_order` reserve nothing for each other.
//!   Capacity is per routing priority: the caller passes only the classes of the request's
//!   priority and that priority's capacity.

/// Why a request was refused without being forwarded (the `reason` label of
/// `causeway_proxy_shed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The class's `maxConcurrency` is reached.
    ConcurrencyLimit,
    /// The host is full and this class is shed before others.
    Overload,
    /// The local rate limit's bucket is empty.
    RateLimit,
}

impl ShedReason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConcurrencyLimit => "concurrency_limit",
            Self::Overload => "overload",
            Self::RateLimit => "rate_limit",
        }
    }
}

/// One class's load as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLoad {
    /// Requests in flight now.
    pub in_flight: u32,
    /// Its budget.
    pub max_concurrency: u32,
    /// Its place in the shedding order.
    pub shed_order: i32,
}

/// Whether one more request of `classes[class]` may go, on a host that takes `capacity`
/// requests at once in total. `None`: admit.
pub fn decide(classes: &[ClassLoad], class: usize, capacity: u32) -> Option<ShedReason> {
    let own = classes.get(class)?;
    if own.in_flight >= own.max_concurrency {
        return Some(ShedReason::ConcurrencyLimit);
    }
    let total: u64 = classes.iter().map(|c| u64::from(c.in_flight)).sum();
    let reserved: u64 = classes
        .iter()
        .filter(|c| c.shed_order > own.shed_order)
        .map(|c| u64::from(c.max_concurrency.saturating_sub(c.in_flight)))
        .sum();
    if total + reserved >= u64::from(capacity) {
        return Some(ShedReason::Overload);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(in_flight: u32, max_concurrency: u32, shed_order: i32) -> ClassLoad {
        ClassLoad {
            in_flight,
            max_concurrency,
            shed_order,
        }
    }

    #[test]
    fn a_class_never_exceeds_its_budget() {
        let classes = [load(20, 20, 0), load(0, 200, 10)];
        assert_eq!(
            decide(&classes, 0, 1024),
            Some(ShedReason::ConcurrencyLimit)
        );
        assert_eq!(decide(&classes, 1, 1024), None);
        let classes = [load(19, 20, 0), load(0, 200, 10)];
        assert_eq!(decide(&classes, 0, 1024), None);
    }

    #[test]
    fn batch_cannot_take_the_users_reserved_share() {
        // Capacity 64; user reserves 48, so batch (budget 48 too) gets at most 16 while users
        // are idle.
        let batch = |n| load(n, 48, 0);
        let user = |n| load(n, 48, 10);
        assert_eq!(decide(&[batch(15), user(0)], 0, 64), None);
        assert_eq!(
            decide(&[batch(16), user(0)], 0, 64),
            Some(ShedReason::Overload)
        );
        // Users still get their whole budget with batch at its share.
        assert_eq!(decide(&[batch(16), user(47)], 1, 64), None);
        assert_eq!(
            decide(&[batch(16), user(48)], 1, 64),
            Some(ShedReason::ConcurrencyLimit)
        );
    }

    #[test]
    fn the_last_class_in_the_order_is_shed_only_when_the_host_is_full() {
        let classes = [load(10, 48, 0), load(30, 48, 10), load(24, 48, 20)];
        // 64 in flight on a 64-capacity host: everyone is refused, the last class by overload.
        assert_eq!(decide(&classes, 2, 64), Some(ShedReason::Overload));
        let classes = [load(10, 48, 0), load(30, 48, 10), load(23, 48, 20)];
        assert_eq!(decide(&classes, 2, 64), None);
        // The middle class must leave the last one's unused 25.
        assert_eq!(decide(&classes, 1, 64), Some(ShedReason::Overload));
    }

    #[test]
    fn equal_shed_orders_reserve_nothing_for_each_other() {
        let classes = [load(30, 48, 5), load(0, 48, 5)];
        assert_eq!(decide(&classes, 0, 64), None);
        let classes = [load(40, 48, 5), load(24, 48, 5)];
        assert_eq!(decide(&classes, 0, 64), Some(ShedReason::Overload));
    }

    #[test]
    fn an_unknown_class_is_admitted() {
        assert_eq!(decide(&[], 3, 0), None);
    }
}
