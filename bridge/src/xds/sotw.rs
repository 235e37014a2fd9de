//! State-of-the-world ADS, one connection, without I/O.
//!
//! Per type the connection remembers what the client subscribed to, the version and nonce last
//! sent, the version last ACKed and the last NACK. The rules (Envoy's xDS protocol):
//! - a request whose `response_nonce` is not the nonce last sent for its type is stale: ignored;
//! - a request carrying `error_detail` is a NACK: recorded, nothing is resent until the resources
//!   change (resending the same version would loop);
//! - an empty name list subscribes LDS/CDS/MCP types by wildcard, other types to nothing; `*`
//!   subscribes by wildcard explicitly;
//! - a first request (no nonce) is answered unless it carries the exact version the client would
//!   get, which is how a reconnecting client with up-to-date resources avoids a resend;
//! - each response carries every subscribed resource of its type, versioned by their hashes.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use crate::xds::resources::{ResourceSet, TypeResources, is_wildcard_type};

/// What a client subscribed to for one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Every resource of the type.
    Wildcard,
    /// These names only.
    Names(BTreeSet<String>),
}

impl Subscription {
    fn from_names(type_url: &str, names: &[String]) -> Self {
        if names.iter().any(|n| n == "*") || (names.is_empty() && is_wildcard_type(type_url)) {
            Self::Wildcard
        } else {
            Self::Names(names.iter().cloned().collect())
        }
    }

    /// The subscribed names present in `resources`, in name order.
    pub fn select<'a>(&'a self, resources: &'a TypeResources) -> Vec<&'a String> {
        match self {
            Self::Wildcard => {
                // The map iterates shard by shard; a state-of-the-world response lists by name.
                let mut names: Vec<&String> = resources.resources.keys().collect();
                names.sort_unstable();
                names
            }
            Self::Names(names) => names
                .iter()
                .filter(|n| resources.resources.contains_key(n))
                .collect(),
        }
    }
}

/// What the connection knows about one type, for the admin page.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TypeStatus {
    /// Subscribed names (`["*"]` for wildcard).
    pub subscribed: Vec<String>,
    /// Version of the last response.
    pub last_sent_version: Option<String>,
    /// Version the client last ACKed.
    pub acked_version: Option<String>,
    /// The client's message on its last NACK, cleared by the next ACK.
    pub last_nack: Option<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    subscription: Option<Subscription>,
    last_sent_version: Option<String>,
    last_sent_nonce: Option<String>,
    acked_version: Option<String>,
    last_nack: Option<String>,
}

/// What handling a request did, besides the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// First request for the type on this stream.
    Initial,
    /// ACK of the last response.
    Ack,
    /// NACK of the last response, with the client's message.
    Nack(String),
    /// A request for an older response: ignored.
    Stale,
}

/// One SotW ADS stream.
#[derive(Debug, Default)]
pub struct SotwConnection {
    types: BTreeMap<String, TypeState>,
    next_nonce: u64,
}

impl SotwConnection {
    /// Handles one request: returns what it was and the response to send, if any.
    pub fn handle_request(
        &mut self,
        request: &DiscoveryRequest,
        resources: &ResourceSet,
    ) -> (RequestKind, Option<DiscoveryResponse>) {
        let type_url = request.type_url.clone();
        let current = resources.of_type(&type_url);
        let state = self.types.entry(type_url.clone()).or_default();
        let kind = if request.response_nonce.is_empty() {
            RequestKind::Initial
        } else if state.last_sent_nonce.as_deref() != Some(request.response_nonce.as_str()) {
            return (RequestKind::Stale, None);
        } else if let Some(error) = &request.error_detail {
            state.last_nack = Some(error.message.clone());
            RequestKind::Nack(error.message.clone())
        } else {
            state.acked_version = Some(request.version_info.clone());
            state.last_nack = None;
            RequestKind::Ack
        };
        let subscription = Subscription::from_names(&type_url, &request.resource_names);
        let subscription_changed = state.subscription.as_ref() != Some(&subscription);
        state.subscription = Some(subscription);
        let wanted_version = state
            .subscription
            .as_ref()
            .map(|s| current.version_of(s.select(current).into_iter()));
        let respond = match &kind {
            RequestKind::Initial => {
                if !request.version_info.is_empty()
                    && Some(&request.version_info) == wanted_version.as_ref()
                {
                    // Reconnected with exactly what it would get: nothing to send.
                    state.last_sent_version = Some(request.version_info.clone());
                    state.acked_version = Some(request.version_info.clone());
                    false
                } else {
                    true
                }
            }
            RequestKind::Ack => subscription_changed || state.last_sent_version != wanted_version,
            RequestKind::Nack(_) => subscription_changed,
            RequestKind::Stale => false,
        };
        let response = respond.then(|| self.respond(&type_url, current));
        (kind, response)
    }

    /// After the resources changed: the responses for every subscribed type whose content
    /// differs from what was last sent.
    pub fn handle_update(&mut self, resources: &ResourceSet) -> Vec<DiscoveryResponse> {
        let stale: Vec<String> = self
            .types
            .iter()
            .filter_map(|(type_url, state)| {
                let subscription = state.subscription.as_ref()?;
                let current = resources.of_type(type_url);
                let version = current.version_of(subscription.select(current).into_iter());
                (state.last_sent_version.as_ref() != Some(&version)).then(|| type_url.clone())
            })
            .collect();
        stale
            .into_iter()
            .map(|type_url| self.respond(&type_url, resources.of_type(&type_url)))
            .collect()
    }

    fn respond(&mut self, type_url: &str, current: &TypeResources) -> DiscoveryResponse {
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let state = self.types.entry(type_url.to_owned()).or_default();
        let selected: Vec<&String> = state
            .subscription
            .as_ref()
            .map(|s| s.select(current))
            .unwrap_or_default();
        let version = current.version_of(selected.iter().copied());
        let resources = selected
            .iter()
            .filter_map(|name| current.resources.get(name))
            .map(|r| r.body.clone())
            .collect();
        state.last_sent_version = Some(version.clone());
        state.last_sent_nonce = Some(nonce.clone());
        DiscoveryResponse {
            version_info: version,
            resources,
            type_url: type_url.to_owned(),
            nonce,
            ..DiscoveryResponse::default()
        }
    }

    /// Per-type status for the admin page.
    pub fn status(&self) -> BTreeMap<String, TypeStatus> {
        self.types
            .iter()
            .map(|(type_url, state)| {
                let subscribed = match &state.subscription {
                    Some(Subscription::Wildcard) => vec!["*".to_owned()],
                    Some(Subscription::Names(names)) => names.iter().cloned().collect(),
                    None => Vec::new(),
                };
                (
                    type_url.clone(),
                    TypeStatus {
                        subscribed,
                        last_sent_version: state.last_sent_version.clone(),
                        acked_version: state.acked_version.clone(),
                        last_nack: state.last_nack.clone(),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
