//! A Dubbo request's metric labels, from routing to its answer.
//!
//! Until a request reaches an endpoint it carries only what routing learned of its destination
//! (host, interface, method); the listener's values fill in the rest if it ends there. Once it
//! is at an endpoint it takes the label set of its route and endpoint, which every request to
//! them shares: one reference count per request instead of one per label value (ten each way
//! per request were a few percent of the proxy's CPU at saturation). Each caller connection
//! keeps the sets it has made ([`LabelSets`]), without a lock.

use std::borrow::Cow;
use std::sync::Arc;

use crate::fasthash::FastMap;
use crate::metrics::{RequestLabels, ResponseFlags, status_label};
use crate::routing::EndpointLabels;

/// Label sets a caller connection keeps before it starts over.
const MAX_LABEL_SETS: usize = 256;

/// What routing learned of a request's destination: a rejected request is labelled with as
/// much as was known, the listener's values standing in for the rest.
#[derive(Debug, Default)]
pub(crate) struct Destination {
    /// The mesh host.
    pub service: Option<Arc<str>>,
    /// The interface label value.
    pub interface: Option<Arc<str>>,
    /// The method label value (an advertised method, or `other`).
    pub method: Option<Arc<str>>,
}

/// A request's labels while it is in flight.
#[derive(Debug)]
pub(crate) enum Labels {
    /// Not at an endpoint (yet): what routing learned.
    Routing(Destination),
    /// At an endpoint: the shared label set of its route and endpoint, with OK's code.
    Endpoint(Arc<RequestLabels>),
}

impl Labels {
    /// The host, interface and method label values; `base`'s where routing did not learn them.
    pub(crate) fn route_values<'a>(&'a self, base: &'a RequestLabels) -> [&'a Arc<str>; 3] {
        match self {
            Self::Routing(destination) => [
                destination
                    .service
                    .as_ref()
                    .unwrap_or(&base.destination_service),
                destination
                    .interface
                    .as_ref()
                    .unwrap_or(&base.destination_interface),
                destination.method.as_ref().unwrap_or(&base.request_method),
            ],
            Self::Endpoint(set) => [
                &set.destination_service,
                &set.destination_interface,
                &set.request_method,
            ],
        }
    }

    /// The labels of the request, ended with the Dubbo `status` and `flags`: the shared set
    /// itself for the usual OK answer from an endpoint, else a set made for it.
    pub(crate) fn finished(
        &self,
        base: &RequestLabels,
        status: u8,
        flags: ResponseFlags,
    ) -> Cow<'_, RequestLabels> {
        let mut labels = match self {
            Self::Endpoint(set) if status == OK && flags == ResponseFlags::None => {
                return Cow::Borrowed(&**set);
            }
            Self::Endpoint(set) => (**set).clone(),
            Self::Routing(_) => {
                let [service, interface, method] = self.route_values(base);
                RequestLabels {
                    destination_service: service.clone(),
                    destination_interface: interface.clone(),
                    request_method: method.clone(),
                    ..base.clone()
                }
            }
        };
        if status != OK {
            labels.response_code = status_label(status);
        }
        labels.response_flags = flags;
        Cow::Owned(labels)
    }
}

/// Dubbo's OK status, the code every label set starts with.
const OK: u8 = causeway_protocols::dubbo::Status::OK.0;

/// The label sets of the (route, endpoint) pairs one caller connection has sent requests to.
#[derive(Debug, Default)]
pub(crate) struct LabelSets(FastMap<[usize; 5], Arc<RequestLabels>>);

impl LabelSets {
    /// The label set of a request with `labels` at an endpoint labelled `endpoint`: the one made
    /// before for the same values, else a new one (`base` gives the listener's values).
    pub(crate) fn at_endpoint(
        &mut self,
        labels: &Labels,
        endpoint: &EndpointLabels,
        base: &RequestLabels,
    ) -> Arc<RequestLabels> {
        let [service, interface, method] = labels.route_values(base);
        // The values are shared, so their addresses say which they are; a set holds its
        // values, so no address in a key can be reused while the key exists.
        let at = |value: &Arc<str>| Arc::as_ptr(value).cast::<u8>() as usize;
        let key = [
            at(service),
            at(interface),
            at(method),
            at(&endpoint.version),
            at(&endpoint.app),
        ];
        if let Some(set) = self.0.get(&key) {
            return set.clone();
        }
        if self.0.len() >= MAX_LABEL_SETS {
            self.0.clear();
        }
        let set = Arc::new(endpoint_labels(labels, endpoint, base));
        self.0.insert(key, set.clone());
        set
    }
}

/// A new label set of a request with `labels` at an endpoint labelled `endpoint`, with OK's code.
pub(crate) fn endpoint_labels(
    labels: &Labels,
    endpoint: &EndpointLabels,
    base: &RequestLabels,
) -> RequestLabels {
    let [service, interface, method] = labels.route_values(base);
    RequestLabels {
        destination_service: service.clone(),
        destination_interface: interface.clone(),
        request_method: method.clone(),
        destination_version: endpoint.version.clone(),
        destination_workload: endpoint.app.clone(),
        response_code: status_label(OK),
        response_flags: ResponseFlags::None,
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Protocol, Reporter};

    fn base() -> RequestLabels {
        let unknown: Arc<str> = Arc::from("unknown");
        RequestLabels {
            reporter: Reporter::Source,
            source_workload: Arc::from("caller"),
            destination_service: unknown.clone(),
            destination_workload: unknown.clone(),
            destination_version: unknown.clone(),
            request_protocol: Protocol::Dubbo,
            response_code: status_label(OK),
            grpc_response_status: Arc::from(""),
            response_flags: ResponseFlags::None,
            request_method: Arc::from("other"),
            destination_interface: unknown,
        }
    }

    fn endpoint(version: &str) -> EndpointLabels {
        EndpointLabels {
            version: Arc::from(version),
            app: Arc::from("greeter"),
            ..EndpointLabels::default()
        }
    }

    fn routed() -> Labels {
        Labels::Routing(Destination {
            service: Some(Arc::from("greeter.svc")),
            interface: Some(Arc::from("com.acme.Greeter")),
            method: Some(Arc::from("greet")),
        })
    }

    #[test]
    fn requests_to_the_same_route_and_endpoint_share_one_set() {
        let (base, v1, v2) = (base(), endpoint("v1"), endpoint("v2"));
        let mut sets = LabelSets::default();
        let first = routed();
        let one = sets.at_endpoint(&first, &v1, &base);
        // Another request of the same route: the table's shared values again.
        let Labels::Routing(d) = &first else {
            unreachable!()
        };
        let second = Labels::Routing(Destination {
            service: d.service.clone(),
            interface: d.interface.clone(),
            method: d.method.clone(),
        });
        assert!(Arc::ptr_eq(&one, &sets.at_endpoint(&second, &v1, &base)));
        let other = sets.at_endpoint(&second, &v2, &base);
        assert!(!Arc::ptr_eq(&one, &other));
        assert_eq!(&*other.destination_version, "v2");
        assert_eq!(&*one.destination_service, "greeter.svc");
        assert_eq!(&*one.request_method, "greet");
        assert_eq!(&*one.destination_workload, "greeter");
        assert_eq!(&*one.response_code, "20");
    }

    #[test]
    fn an_ok_answer_uses_the_set_and_anything_else_its_own_labels() {
        let base = base();
        let set = Labels::Endpoint(Arc::new(endpoint_labels(&routed(), &endpoint("v1"), &base)));
        let Labels::Endpoint(shared) = &set else {
            unreachable!()
        };
        assert!(matches!(
            set.finished(&base, OK, ResponseFlags::None),
            Cow::Borrowed(l) if std::ptr::eq(l, &**shared)
        ));
        let timeout = set.finished(&base, 31, ResponseFlags::UpstreamTimeout);
        assert_eq!(&*timeout.response_code, "31");
        assert_eq!(timeout.response_flags, ResponseFlags::UpstreamTimeout);
        assert_eq!(&*timeout.destination_version, "v1");
        // The shared set is untouched.
        assert_eq!(&*shared.response_code, "20");
    }

    #[test]
    fn a_request_that_never_reached_an_endpoint_has_what_routing_learned() {
        let base = base();
        let partial = Labels::Routing(Destination {
            service: Some(Arc::from("greeter.svc")),
            ..Destination::default()
        });
        let labels = partial.finished(&base, 60, ResponseFlags::NoRoute);
        assert_eq!(&*labels.destination_service, "greeter.svc");
        assert_eq!(&*labels.destination_interface, "unknown");
        assert_eq!(&*labels.request_method, "other");
        assert_eq!(&*labels.destination_version, "unknown");
        assert_eq!(&*labels.response_code, "60");
        assert_eq!(labels.response_flags, ResponseFlags::NoRoute);
    }
}
