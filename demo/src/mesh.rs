//! The local mesh: a registry, the bridge, one proxy (the consumer's sidecar, in zone-a, with a
//! Dubbo, a Thrift, a gRPC and an HTTP listener) in xDS mode, Dubbo providers v1 and v2 in zones
//! a and b, and the mixed estate's Thrift, gRPC and HTTP providers v1 and v2 in zone a, all in
//! this process on free loopback ports; the traffic rules live in a file the bridge watches.
//! Dropping the mesh stops everything and removes its temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use causeway_bridge::app::{self as bridge_app, RunningBridge};
use causeway_bridge::config::{BridgeConfig, ServiceEntryOutput};
use causeway_bridge::pipeline::Debounce;
use causeway_proxy::app::{self as proxy_app, RunningProxy};
use causeway_proxy::config::{Listen, ListenProtocol, ProxyConfig, XdsConfig};

use crate::estate::{Registration, Service};
use crate::greeter::{INTERFACE, Identity, Provider, SERVICE_VERSION};
use crate::registry::{REGION, Registry};
use crate::{catalog, inventory, quotes};

/// The zone of the consumer and its proxy.
pub const HOME_ZONE: &str = "zone-a";
/// The other zone.
pub const OTHER_ZONE: &str = "zone-b";

/// Calls each provider works on at once (its "thread pool"): small, so a batch flood can fill it.
pub const PROVIDER_CAPACITY: usize = 24;

/// A provider of the mixed estate (kept to keep it serving).
enum EstateProvider {
    Inventory(inventory::Provider),
    Quotes(quotes::Provider),
    Catalog(catalog::Provider),
}

impl EstateProvider {
    async fn start(service: Service, version: &str, zone: &str) -> anyhow::Result<Self> {
        Ok(match service {
            Service::Inventory => Self::Inventory(inventory::Provider::start(version, zone).await?),
            Service::Quotes => Self::Quotes(quotes::Provider::start(version, zone).await?),
            Service::Catalog => Self::Catalog(catalog::Provider::start(version, zone).await?),
            Service::Greeter => anyhow::bail!("the greeter is not part of the mixed estate"),
        })
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Inventory(p) => p.addr,
            Self::Quotes(p) => p.addr,
            Self::Catalog(p) => p.addr,
        }
    }
}

/// A running local mesh.
pub struct Mesh {
    /// The Dubbo providers, with their registration state.
    providers: Vec<(Provider, bool)>,
    /// The mixed estate's providers.
    estate: Vec<(EstateProvider, Registration)>,
    /// The consumer's proxy.
    pub proxy: RunningProxy,
    /// The bridge.
    pub bridge: RunningBridge,
    /// Where providers are published.
    pub registry: Registry,
    rules: PathBuf,
    /// Where the bridge writes ServiceEntries.
    pub service_entries: PathBuf,
    /// The mesh host of the greeter service, as the bridge named it.
    pub host: String,
    // Last: removed after everything that writes into it has stopped.
    dir: tempfile::TempDir,
}

impl Mesh {
    /// Starts everything and waits until the proxy has routes to every provider.
    pub async fn start(prefer_file_registry: bool) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("causeway-demo-")
            .tempdir()
            .context("create the demo's directory")?;
        let mut registry = Registry::start(prefer_file_registry, dir.path()).await?;
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, "").context("write the rules file")?;
        let service_entries = dir.path().join("serviceentries");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let bridge = bridge_app::start(BridgeConfig {
            registries: vec![registry.bridge_url()],
            rules: Some(rules.clone()),
            serviceentry: ServiceEntryOutput {
                dir: Some(service_entries.clone()),
                stdout: false,
            },
            xds_listen: any,
            admin_listen: any,
            debounce: Debounce {
                quiet_ms: 20,
                max_ms: 200,
            },
            drop_to_zero_grace_ms: 1_000,
            ..BridgeConfig::default()
        })
        .await
        .context("start the bridge")?;
        let proxy = proxy_app::start(
            ProxyConfig {
                admin_listen: any,
                listen: vec![
                    Listen::new(ListenProtocol::Dubbo, any),
                    Listen::new(ListenProtocol::Thrift, any),
                    Listen::new(ListenProtocol::Grpc, any),
                    Listen::new(ListenProtocol::Http, any),
                ],
                locality: format!("{REGION}/{HOME_ZONE}"),
                workload: "greeter-consumer".into(),
                xds: Some(XdsConfig {
                    address: bridge.xds_addr.to_string(),
                    node_id: Some("greeter-consumer-1".into()),
                }),
                ..ProxyConfig::default()
            },
            None,
        )
        .await
        .context("start the proxy")?;
        let mut providers = Vec::new();
        for (version, zone) in [
            ("v1", HOME_ZONE),
            ("v2", HOME_ZONE),
            ("v1", OTHER_ZONE),
            ("v2", OTHER_ZONE),
        ] {
            let provider = Provider::start(Identity {
                version: version.into(),
                zone: zone.into(),
                slow_latency: Duration::from_millis(20),
                capacity: PROVIDER_CAPACITY,
            })
            .await
            .context("start a provider")?;
            registry
                .register(&provider.identity.registration(provider.addr))
                .await?;
            providers.push((provider, true));
        }
        let mut estate = Vec::new();
        for service in Service::MIXED {
            for version in ["v1", "v2"] {
                let provider = EstateProvider::start(service, version, HOME_ZONE)
                    .await
                    .with_context(|| format!("start a {} provider", service.protocol()))?;
                let registration = Registration {
                    service,
                    version: version.into(),
                    zone: HOME_ZONE.into(),
                    addr: provider.addr(),
                };
                registry.register(&registration).await?;
                estate.push((provider, registration));
            }
        }
        let mut mesh = Self {
            providers,
            estate,
            proxy,
            bridge,
            registry,
            rules,
            service_entries,
            host: String::new(),
            dir,
        };
        mesh.host = mesh.wait_for_host().await?;
        mesh.wait_for_endpoints(4).await?;
        for service in Service::MIXED {
            mesh.wait_for_cluster(&service.host(), 2).await?;
        }
        Ok(mesh)
    }

    async fn wait_for_host(&self) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .bridge
                .snapshots
                .borrow()
                .services
                .values()
                .find_map(|s| {
                    let dubbo = s.dubbo.as_ref()?;
                    (dubbo.interface == INTERFACE
                        && dubbo.version.as_deref() == Some(SERVICE_VERSION))
                    .then(|| s.host.clone())
                });
            if let Some(host) = found {
                return Ok(host);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the bridge never published {INTERFACE}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the proxy's whole-service cluster of the greeter has `count` endpoints.
    pub async fn wait_for_endpoints(&self, count: usize) -> anyhow::Result<()> {
        self.wait_for_cluster(&self.host, count).await
    }

    /// Waits until the proxy's whole-service cluster of `host` has `count` endpoints.
    async fn wait_for_cluster(&self, host: &str, count: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let snapshot = self.proxy.store.load();
            let have = snapshot
                .clusters
                .values()
                .find(|c| c.host == host && c.subset.is_empty())
                .map_or(0, |c| c.endpoints.len());
            if have == count {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the proxy has {have} endpoints of {host}, expected {count}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The proxy's listener for `protocol`.
    pub fn listener(&self, protocol: ListenProtocol) -> anyhow::Result<SocketAddr> {
        self.proxy
            .addr(protocol)
            .with_context(|| format!("the proxy has no {protocol:?} listener"))
    }

    /// The mixed estate's providers: service, version and address.
    pub fn estate(&self) -> impl Iterator<Item = &Registration> {
        self.estate.iter().map(|(_, registration)| registration)
    }

    /// The proxy's Dubbo listener, where the consumer points.
    pub fn proxy_addr(&self) -> anyhow::Result<SocketAddr> {
        self.proxy
            .dubbo_addr()
            .context("the proxy has no Dubbo listener")
    }

    /// Replaces the traffic rules and waits until the proxy routes by them (`check` says when).
    pub async fn apply_rules(
        &self,
        yaml: &str,
        check: impl Fn(&causeway_proxy::routing::Snapshot) -> bool,
    ) -> anyhow::Result<()> {
        let temp = self.rules.with_extension("yaml.tmp");
        std::fs::write(&temp, yaml).context("write the rules")?;
        std::fs::rename(&temp, &self.rules).context("replace the rules")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check(&self.proxy.store.load()) {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the proxy never received the new rules"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Takes a zone's providers out, as a zone outage with graceful shutdown does: they leave the
    /// registry, and once the proxy no longer routes to them, they stop.
    pub async fn stop_zone(&mut self, zone: &str) -> anyhow::Result<()> {
        let mut remaining = 0;
        for (provider, registered) in &mut self.providers {
            if provider.identity.zone == zone && *registered {
                self.registry
                    .deregister(&provider.identity.registration(provider.addr))
                    .await?;
                *registered = false;
            }
        }
        for (_, registered) in &self.providers {
            remaining += usize::from(*registered);
        }
        self.wait_for_endpoints(remaining).await
    }

    /// Brings a zone's providers back.
    pub async fn start_zone(&mut self, zone: &str) -> anyhow::Result<()> {
        let mut total = 0;
        for (provider, registered) in &mut self.providers {
            if provider.identity.zone == zone && !*registered {
                self.registry
                    .register(&provider.identity.registration(provider.addr))
                    .await?;
                *registered = true;
            }
            total += usize::from(*registered);
        }
        self.wait_for_endpoints(total).await
    }

    /// The demo's working directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
