//! Envoy's routing priorities and what hangs on them: a cluster's circuit-breaker thresholds are
//! given per priority (CDS `circuit_breakers.thresholds[].priority`), and the proxy counts each
//! priority's requests, pending requests and connections apart, so a flood at one priority never
//! fills the other's. A request's priority comes from its TrafficIsolation class or its HTTP
//! route (RDS `RouteAction.priority`); without either it is DEFAULT.
//!
//! Note the two meanings of "priority" in the proxy: this one (routing priority, DEFAULT/HIGH,
//! per request) and an endpoint's locality failover priority (0, 1, 2, …, per endpoint).

use serde::Serialize;

/// A request's routing priority (Envoy's `RoutingPriority`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Envoy's `DEFAULT` (0): a DestinationRule's `connectionPool`.
    #[default]
    Default,
    /// Envoy's `HIGH` (1): a TrafficIsolation's `highPriorityConnectionPool`.
    High,
}

// === impl Priority ===

impl Priority {
    /// Every priority, in Envoy's order.
    pub const ALL: [Self; 2] = [Self::Default, Self::High];

    /// The metric label value: `default` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::High => "high",
        }
    }

    /// A request's priority: its traffic class's when the class says HIGH, else its route's
    /// (RDS `RouteAction.priority`; Dubbo and Thrift routes have none, so DEFAULT).
    pub fn of_request(class: Self, route: Self) -> Self {
        class.max(route)
    }

    /// The priority of Envoy's `RoutingPriority` value; `None` for a value Envoy does not
    /// define (Envoy rejects those too).
    pub fn from_envoy(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Default),
            1 => Some(Self::High),
            _ => None,
        }
    }
}

/// One value per priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerPriority<T> {
    /// DEFAULT's.
    pub default: T,
    /// HIGH's.
    pub high: T,
}

// === impl PerPriority ===

impl<T> PerPriority<T> {
    /// The value of `priority`.
    pub fn at(&self, priority: Priority) -> &T {
        match priority {
            Priority::Default => &self.default,
            Priority::High => &self.high,
        }
    }

    /// The value of `priority`, to change it.
    pub fn at_mut(&mut self, priority: Priority) -> &mut T {
        match priority {
            Priority::Default => &mut self.default,
            Priority::High => &mut self.high,
        }
    }

    /// Applies `f` to both values.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerPriority<U> {
        PerPriority {
            default: f(&self.default),
            high: f(&self.high),
        }
    }
}

/// The circuit-breaker thresholds of one priority of a cluster (Envoy's
/// `CircuitBreakers.Thresholds`, Istio's `connectionPool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Requests of the priority in flight to the whole cluster before new ones are refused.
    pub max_requests: u32,
    /// Upstream connections to the cluster's endpoints opened by the priority's requests, at
    /// once (Dubbo multiplexes one connection per endpoint; Thrift pools one connection per call
    /// in flight).
    pub max_connections: u32,
    /// Requests of the priority waiting at once for an upstream connection to open (or, Dubbo,
    /// for room in a provider connection's queue) before new ones are refused.
    pub max_pending: u32,
}

impl Default for Thresholds {
    /// Envoy's defaults, the same for every priority.
    fn default() -> Self {
        Self {
            max_requests: 1024,
            max_connections: 1024,
            max_pending: 1024,
        }
    }
}

/// A cluster's circuit breakers: thresholds per priority (a priority the configuration leaves
/// out keeps Envoy's defaults) and the connect timeout upstream connections get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitBreaker {
    /// The thresholds of each priority (`/config_dump` shows `default` and `high`).
    #[serde(flatten)]
    pub thresholds: PerPriority<Thresholds>,
    /// Time allowed to open an upstream connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

// === impl CircuitBreaker ===

impl CircuitBreaker {
    /// The thresholds that hold requests of `priority`.
    pub fn at(&self, priority: Priority) -> &Thresholds {
        self.thresholds.at(priority)
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        // A connect timeout short enough for failover to be quick.
        Self {
            thresholds: PerPriority::default(),
            connect_timeout_ms: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_priority_has_its_own_thresholds_and_envoys_values() {
        let mut breaker = CircuitBreaker::default();
        breaker.thresholds.at_mut(Priority::Default).max_requests = 2;
        assert_eq!(breaker.at(Priority::Default).max_requests, 2);
        assert_eq!(breaker.at(Priority::High), &Thresholds::default());
        assert_eq!(Priority::from_envoy(0), Some(Priority::Default));
        assert_eq!(Priority::from_envoy(1), Some(Priority::High));
        assert_eq!(Priority::from_envoy(2), None);
        // A HIGH class or a HIGH route makes a HIGH request.
        use Priority::{Default as D, High as H};
        let requests = [(D, D), (D, H), (H, D), (H, H)].map(|(c, r)| Priority::of_request(c, r));
        assert_eq!(requests, [D, H, H, H]);
        // The config dump shows both priorities side by side.
        let json = serde_json::to_value(breaker).unwrap();
        assert_eq!(json["default"]["max_requests"], 2);
        assert_eq!(json["high"]["max_requests"], 1024);
        assert_eq!(json["connect_timeout_ms"], 1000);
    }
}
