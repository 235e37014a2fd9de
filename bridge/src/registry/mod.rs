//! Registry adapters and the contract they share.
//!
//! Each adapter runs as its own task, lists and watches one registry, and reports what it sees
//! through an [`EventSink`] as [`RegistryEvent`]s keyed by the registry's own entry key (a znode
//! path, an etcd key, a Nacos instance id). Adapters never decide what an event means for the
//! mesh: the model store does. Watching is list + watch + resync: after any reconnect an adapter
//! sends a full [`RegistryEvent::Resync`], never trusting the watch alone.

pub mod dubbo_app;
pub mod dubbo_url;
pub mod etcd;
pub mod file;
pub mod metadata_service;
pub mod nacos;
pub mod source;
pub mod zookeeper;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::model::provider::Provider;

/// What an adapter observed.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    /// The registry's complete current contents; replaces everything reported before.
    Resync(BTreeMap<String, Provider>),
    /// A streamed resync starts: the `Upsert`s up to [`RegistryEvent::ResyncEnd`] are the
    /// registry's complete contents. Large registries stream rather than send one
    /// [`RegistryEvent::Resync`], so neither side ever holds the whole registry twice.
    ResyncBegin,
    /// A streamed resync is complete: entries not upserted since `ResyncBegin` are removed.
    ResyncEnd,
    /// One entry appeared or changed.
    Upsert(String, Provider),
    /// One entry disappeared.
    Remove(String),
    /// The adapter is connected and its view is current (sent after a successful resync).
    Up,
    /// The registry is unreachable; its last known entries stay in force, marked stale.
    Down,
    /// An entry could not be understood and was skipped.
    Malformed {
        /// The entry's key or path.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// An event with its origin and arrival time (for change-to-snapshot latency).
#[derive(Debug, Clone)]
pub struct RegistryMessage {
    /// Registry name.
    pub registry: Arc<str>,
    /// What happened.
    pub event: RegistryEvent,
    /// When the adapter saw it.
    pub observed: Instant,
}

/// The model store's receiving end is gone: the bridge is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the model store has stopped")]
pub struct StoreClosed;

/// The channel an adapter reports into, bound to its registry name.
#[derive(Debug, Clone)]
pub struct EventSink {
    registry: Arc<str>,
    sender: mpsc::Sender<RegistryMessage>,
    logged_malformed: Arc<Mutex<HashSet<String>>>,
}

impl EventSink {
    /// A sink for `registry` sending into `sender`.
    pub fn new(registry: &str, sender: mpsc::Sender<RegistryMessage>) -> Self {
        Self {
            registry: Arc::from(registry),
            sender,
            logged_malformed: Arc::default(),
        }
    }

    /// The registry name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Sends one event; fails only when the bridge is shutting down.
    pub async fn send(&self, event: RegistryEvent) -> Result<(), StoreClosed> {
        self.sender
            .send(RegistryMessage {
                registry: self.registry.clone(),
                event,
                observed: Instant::now(),
            })
            .await
            .map_err(|_| StoreClosed)
    }

    /// Reports a malformed entry, logging it once per key (a bad znode that stays bad is not
    /// logged again on every resync, but is still counted).
    pub async fn malformed(&self, key: &str, reason: String) -> Result<(), StoreClosed> {
        let first_time = self
            .logged_malformed
            .lock()
            .map(|mut seen| seen.insert(key.to_owned()))
            .unwrap_or(true);
        if first_time {
            tracing::warn!(registry = %self.registry, path = key, %reason, "skipping malformed registry entry");
        }
        self.send(RegistryEvent::Malformed {
            key: key.to_owned(),
            reason,
        })
        .await
    }
}
