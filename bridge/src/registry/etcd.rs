//! The etcd v3 adapter: Dubbo interface-level providers under
//! `<prefix>/<URLEncode(interface)>/providers/<URLEncode(provider URL)>` (PROTOCOLS.md §5.4).
//!
//! This module owns one etcd registry's list + watch loop. A pass lists the whole prefix at one
//! revision (paged, keys only: Dubbo keeps everything in the key, and the value is only a lease
//! id or a hash), reports it as a full resync, then watches the prefix from the next revision.
//! Leases need no care of their own: an expired or revoked lease deletes its keys, and the watch
//! reports those deletions. A pass ends, and the next one re-lists, when the watch falls behind a
//! compaction, when the periodic resync is due, or when etcd stops answering. Only the last one
//! reports the registry down (once per outage); the model keeps the last known providers
//! meanwhile, and the first successful re-list brings it back up.

use std::future::Future;
use std::time::Duration;

use etcd_client as etcd;

use crate::model::provider::Provider;
use crate::registry::dubbo_url::{NON_INTERFACE_CHILDREN, parse_provider_node};
use crate::registry::source::EtcdSource;
use crate::registry::{EventSink, RegistryEvent, StoreClosed};

/// Delay between reconnection attempts while etcd is unreachable.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// Full re-list interval, on top of the re-list after every reconnect and compaction.
const RESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// How long one request (a list page, opening the watch) may take before etcd counts as
/// unreachable; the client's balanced channel would otherwise wait for an endpoint forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys per list page, so a large registry never exceeds the 4 MiB gRPC message limit.
const LIST_PAGE_SIZE: i64 = 1000;
/// Where a key sits in the Dubbo layout.
#[derive(Debug, PartialEq, Eq)]
enum KeyKind<'a> {
    /// `<prefix>/<iface>/providers/<encoded url>`, with the last segment.
    Provider(&'a str),
    /// Directory keys, consumers, configurators, routers, anything else.
    Other,
}

/// Classifies `key` against the Dubbo root `prefix` (without a trailing slash).
fn classify<'a>(prefix: &str, key: &'a str) -> KeyKind<'a> {
    let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
        return KeyKind::Other;
    };
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [iface, "providers", node]
            if !iface.is_empty() && !node.is_empty() && !NON_INTERFACE_CHILDREN.contains(iface) =>
        {
            KeyKind::Provider(node)
        }
        _ => KeyKind::Other,
    }
}

/// What a raw etcd key means: `None` when it is not a provider key, else the key as text and the
/// provider it names (`Ok(None)` when Dubbo would ignore it, `Err` when it is malformed).
type ProviderEntry = (String, Result<Option<Provider>, String>);

fn provider_entry(prefix: &str, raw: &[u8]) -> Option<ProviderEntry> {
    let key = String::from_utf8_lossy(raw);
    let parsed = match classify(prefix, &key) {
        KeyKind::Other => return None,
        // Escaped URLs are ASCII; a lossy decode would parse into a made-up provider.
        KeyKind::Provider(_) if std::str::from_utf8(raw).is_err() => {
            Err("key is not UTF-8".to_owned())
        }
        KeyKind::Provider(node) => parse_provider_node(node),
    };
    Some((key.into_owned(), parsed))
}

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // All bytes 0xff (or empty): to the end of the key space.
    vec![0]
}

/// Why one pass of the adapter ended.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Closed(#[from] StoreClosed),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("etcd ended the watch stream")]
    StreamEnded,
    #[error("etcd canceled the watch: {0}")]
    Canceled(String),
    #[error("etcd sent a response without a header")]
    NoHeader,
}

/// Why a pass ended while etcd was answering: the next pass re-lists without reporting an outage.
#[derive(Debug)]
enum Relist {
    /// The watch (or a list page) fell behind a compaction at this revision.
    Compacted(i64),
    /// The periodic resync is due.
    Periodic,
}

/// Runs the adapter until the bridge shuts down.
pub async fn run(source: EtcdSource, sink: EventSink) {
    let mut reported_down = false;
    loop {
        match pass(&source, &sink, &mut reported_down).await {
            Ok(Relist::Compacted(revision)) => {
                tracing::info!(
                    registry = sink.registry(),
                    revision,
                    "etcd compacted past the watch; re-listing"
                );
            }
            Ok(Relist::Periodic) => {}
            Err(PassError::Closed(_)) => return,
            Err(error) => {
                if reported_down {
                    tracing::debug!(registry = sink.registry(), %error, "etcd still unreachable");
                } else {
                    tracing::warn!(registry = sink.registry(), %error, "etcd unreachable; reconnecting");
                    reported_down = true;
                    if sink.send(RegistryEvent::Down).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
        }
    }
}

/// One pass: connect, list, report, then follow the watch until it must be re-listed.
async fn pass(
    source: &EtcdSource,
    sink: &EventSink,
    reported_down: &mut bool,
) -> Result<Relist, PassError> {
    let mut client = within(etcd::Client::connect(endpoints(source), Some(options()))).await?;
    let listing = match list(&mut client, &source.prefix).await {
        Err(PassError::Etcd(error)) if is_compacted(&error) => return Ok(Relist::Compacted(0)),
        other => other?,
    };
    let revision = listing.revision;
    listing.report(&source.prefix, sink).await?;
    *reported_down = false;
    tracing::debug!(
        registry = sink.registry(),
        revision,
        "etcd listed; watching"
    );
    // Watching from the listed revision + 1 misses nothing however late the watch starts; if
    // that revision is compacted by then, etcd cancels the watch and the next pass re-lists.
    let watch_options = etcd::WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1)
        .with_prev_key()
        .with_progress_notify();
    let mut watch = within(client.watch(root_prefix(&source.prefix), Some(watch_options))).await?;
    let resync_due = tokio::time::sleep(RESYNC_INTERVAL);
    tokio::pin!(resync_due);
    loop {
        let response = tokio::select! {
            message = watch.message() => message?.ok_or(PassError::StreamEnded)?,
            () = &mut resync_due => return Ok(Relist::Periodic),
        };
        if response.canceled() {
            if response.compact_revision() > 0 {
                return Ok(Relist::Compacted(response.compact_revision()));
            }
            return Err(PassError::Canceled(response.cancel_reason().to_owned()));
        }
        for event in response.events() {
            handle_event(sink, &source.prefix, event).await?;
        }
    }
}

/// Reports one watch event: a put upserts (or is malformed), a delete removes.
async fn handle_event(
    sink: &EventSink,
    prefix: &str,
    event: &etcd::Event,
) -> Result<(), StoreClosed> {
    let Some(kv) = event.kv() else {
        return Ok(());
    };
    let Some((key, parsed)) = provider_entry(prefix, kv.key()) else {
        return Ok(());
    };
    match event.event_type() {
        etcd::EventType::Delete => sink.send(RegistryEvent::Remove(key)).await,
        etcd::EventType::Put => match parsed {
            Ok(Some(provider)) => sink.send(RegistryEvent::Upsert(key, provider)).await,
            Ok(None) => Ok(()),
            Err(reason) => sink.malformed(&key, reason).await,
        },
    }
}

/// Every provider key under the prefix at one revision. Only the raw keys are kept: they are
/// parsed while they are streamed to the store, so a large registry is never held parsed whole.
#[derive(Debug, Default)]
struct Listing {
    revision: i64,
    keys: Vec<Vec<u8>>,
}

impl Listing {
    fn add(&mut self, raw_key: &[u8]) {
        self.keys.push(raw_key.to_vec());
    }

    /// Streams the listing as a resync (malformed keys reported on the way), then `Up`.
    async fn report(self, prefix: &str, sink: &EventSink) -> Result<(), StoreClosed> {
        sink.send(RegistryEvent::ResyncBegin).await?;
        let mut providers = 0usize;
        for raw_key in self.keys {
            match provider_entry(prefix, &raw_key) {
                Some((key, Ok(Some(provider)))) => {
                    providers += 1;
                    sink.send(RegistryEvent::Upsert(key, provider)).await?;
                }
                Some((key, Err(reason))) => sink.malformed(&key, reason).await?,
                Some((_, Ok(None))) | None => {}
            }
        }
        sink.send(RegistryEvent::ResyncEnd).await?;
        tracing::debug!(
            registry = sink.registry(),
            providers,
            revision = self.revision,
            "etcd resync"
        );
        sink.send(RegistryEvent::Up).await
    }
}

/// Lists every key under the prefix, page by page, all pages at the first page's revision.
async fn list(client: &mut etcd::Client, prefix: &str) -> Result<Listing, PassError> {
    let root = root_prefix(prefix);
    let end = prefix_end(root.as_bytes());
    let mut listing = Listing::default();
    let mut from = root.into_bytes();
    loop {
        let mut options = etcd::GetOptions::new()
            .with_range(end.clone())
            .with_keys_only()
            .with_limit(LIST_PAGE_SIZE);
        if listing.revision > 0 {
            options = options.with_revision(listing.revision);
        }
        let response = within(client.get(from.clone(), Some(options))).await?;
        if listing.revision == 0 {
            listing.revision = response.header().ok_or(PassError::NoHeader)?.revision();
        }
        for kv in response.kvs() {
            // Only provider keys are kept; directories, consumers and rules are dropped here.
            if matches!(
                classify(prefix, &String::from_utf8_lossy(kv.key())),
                KeyKind::Provider(_)
            ) {
                listing.add(kv.key());
            }
        }
        match response.kvs().last() {
            Some(last) if response.more() => {
                // The smallest key after the last one listed.
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok(listing),
        }
    }
}

/// Whether a request failed because the revision it asked for was compacted.
fn is_compacted(error: &etcd::Error) -> bool {
    matches!(error, etcd::Error::GRpcStatus(status) if status.message().contains("compacted"))
}

/// The key prefix that holds the Dubbo layout, with its trailing slash (so `/dubbo` does not
/// also match `/dubbox`).
fn root_prefix(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}

/// Endpoint URLs; registry URLs give bare `host:port`.
fn endpoints(source: &EtcdSource) -> Vec<String> {
    source
        .endpoints
        .iter()
        .map(|e| {
            if e.contains("://") {
                e.clone()
            } else {
                format!("http://{e}")
            }
        })
        .collect()
}

fn options() -> etcd::ConnectOptions {
    etcd::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        // A half-open connection (a peer gone without a FIN) would leave the watch silent forever.
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true)
}

/// Bounds one request by [`REQUEST_TIMEOUT`].
async fn within<T>(request: impl Future<Output = Result<T, etcd::Error>>) -> Result<T, PassError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| PassError::Timeout(REQUEST_TIMEOUT))?
        .map_err(PassError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::provider::{Protocol, ServiceRef};
    use crate::registry::dubbo_url::url_encode;

    const JAVA_URL: &str = "dubbo://10.0.0.7:20880/com.acme.OrderService?anyhost=true&application=orders&interface=com.acme.OrderService&methods=place,cancel&side=provider&version=1.0.0&zone=z1";

    #[test]
    fn classifies_keys() {
        assert_eq!(
            classify("/dubbo", "/dubbo/a.B/providers/dubbo%3A%2F%2Fx"),
            KeyKind::Provider("dubbo%3A%2F%2Fx")
        );
        for other in [
            "/dubbo",
            "/dubbo/a.B",
            "/dubbo/a.B/providers",
            "/dubbo/a.B/providers/",
            "/dubbo/a.B/consumers/consumer%3A%2F%2Fx",
            "/dubbo/a.B/configurators/override%3A%2F%2Fx",
            "/dubbo/a.B/routers/route%3A%2F%2Fx",
            "/dubbo/config/providers/x",
            "/dubbox/a.B/providers/x",
            "/dubbo//providers/x",
            "/dubbo/a.B/providers/x/y",
        ] {
            assert_eq!(classify("/dubbo", other), KeyKind::Other, "{other}");
        }
        assert_eq!(
            classify("/prod/dubbo", "/prod/dubbo/a.B/providers/n"),
            KeyKind::Provider("n")
        );
    }

    #[test]
    fn parses_a_java_provider_key() {
        let provider = parse_provider_node(&url_encode(JAVA_URL)).unwrap().unwrap();
        assert_eq!(
            provider.service,
            ServiceRef::dubbo("com.acme.OrderService", None, Some("1.0.0"))
        );
        assert_eq!(provider.protocol, Protocol::Dubbo);
        assert_eq!((provider.host.as_str(), provider.port), ("10.0.0.7", 20880));
        assert_eq!(provider.params["zone"], "z1");
        assert_eq!(
            provider.scope,
            crate::model::provider::RegistryScope::Global
        );
    }

    #[test]
    fn parses_a_go_style_key() {
        // dubbo-go: Go query escaping, parameters sorted, lower-case escapes are decoded too.
        let node = "tri%3a%2f%2f10.0.0.8%3a20000%2fcom.acme.Api%3Fgroup%3Dg1%26interface%3Dcom.acme.Api%26version%3D2.0";
        let provider = parse_provider_node(node).unwrap().unwrap();
        assert_eq!(provider.protocol, Protocol::Triple);
        assert_eq!(
            provider.service,
            ServiceRef::dubbo("com.acme.Api", Some("g1"), Some("2.0"))
        );
    }

    #[test]
    fn ignores_what_dubbo_ignores_and_rejects_garbage() {
        assert_eq!(parse_provider_node("not-a-url"), Ok(None));
        let consumer = url_encode("consumer://10.0.0.1/a.B?category=consumers&side=consumer");
        assert_eq!(parse_provider_node(&consumer), Ok(None));
        let rule = url_encode("dubbo://10.0.0.1:1/a.B?category=configurators");
        assert_eq!(parse_provider_node(&rule), Ok(None));
        assert!(
            parse_provider_node("dubbo%3A%2F%2F10.0.0.1%2Fa.B").is_err(),
            "no port"
        );
        assert!(
            parse_provider_node("dubbo%3A%2F%2F%zz").is_err(),
            "bad escape"
        );
    }

    #[test]
    fn provider_entries_flag_non_utf8_keys() {
        assert!(provider_entry("/dubbo", b"/dubbo/a.B/consumers/x").is_none());
        let (key, parsed) =
            provider_entry("/dubbo", b"/dubbo/a.B/providers/\xff%3A%2F%2F").unwrap();
        assert!(key.starts_with("/dubbo/a.B/providers/"));
        assert_eq!(parsed, Err("key is not UTF-8".to_owned()));
        let raw = format!(
            "/dubbo/com.acme.OrderService/providers/{}",
            url_encode(JAVA_URL)
        );
        let (key, parsed) = provider_entry("/dubbo", raw.as_bytes()).unwrap();
        assert_eq!(key, raw);
        assert_eq!(parsed.unwrap().unwrap().port, 20880);
    }

    #[tokio::test]
    async fn a_listing_streams_providers_and_malformed_keys_as_a_resync() {
        let mut listing = Listing::default();
        let good = format!(
            "/dubbo/com.acme.OrderService/providers/{}",
            url_encode(JAVA_URL)
        );
        listing.add(good.as_bytes());
        listing.add(b"/dubbo/x.Y/providers/dubbo%3A%2F%2Fnoport%2Fx.Y");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        listing
            .report("/dubbo", &EventSink::new("etcd", tx))
            .await
            .unwrap();
        let mut events = Vec::new();
        while let Ok(message) = rx.try_recv() {
            events.push(message.event);
        }
        assert!(matches!(events[0], RegistryEvent::ResyncBegin));
        assert!(matches!(&events[1], RegistryEvent::Upsert(key, _) if *key == good));
        assert!(matches!(
            &events[2],
            RegistryEvent::Malformed { key, .. } if key == "/dubbo/x.Y/providers/dubbo%3A%2F%2Fnoport%2Fx.Y"
        ));
        assert!(matches!(events[3], RegistryEvent::ResyncEnd));
        assert!(matches!(events[4], RegistryEvent::Up));
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end(b"/dubbo/"), b"/dubbo0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), [0]);
        assert_eq!(root_prefix("/dubbo"), "/dubbo/");
        assert_eq!(root_prefix("/dubbo/"), "/dubbo/");
    }

    #[test]
    fn endpoints_get_a_scheme() {
        let source = EtcdSource {
            endpoints: vec!["127.0.0.1:2379".into(), "https://etcd:2379".into()],
            prefix: "/dubbo".into(),
        };
        assert_eq!(
            endpoints(&source),
            ["http://127.0.0.1:2379", "https://etcd:2379"]
        );
    }
}
