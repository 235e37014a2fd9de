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

use causeway_tests::java::JavaProgram;

use crate::estate::{Registration, Service};
use crate::greeter::{INTERFACE, Identity, Provider, SERVICE_VERSION};
use crate::java::JavaProvider;
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

/// How a greeter provider runs.
enum GreeterBackend {
    /// In this process ([`crate::greeter`]); the demo registers it.
    Rust { _provider: Provider },
    /// The Apache Dubbo Java sample in a JVM of its own, which registered itself: the demo
    /// keeps its ZooKeeper node (path, data) to withdraw and restore it.
    Java {
        _provider: JavaProvider,
        node: (String, Vec<u8>),
    },
}

/// One greeter provider and whether it is in the registry.
struct Greeter {
    backend: GreeterBackend,
    registration: Registration,
    registered: bool,
}

/// What the mesh runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeshOptions {
    /// Use the bridge's file registry even when ZooKeeper is installed.
    pub prefer_file_registry: bool,
    /// Run the Apache Dubbo Java sample as the greeter providers (needs ZooKeeper, Java, Maven).
    pub java: bool,
}

/// A running local mesh.
pub struct Mesh {
    /// The greeter providers.
    greeters: Vec<Greeter>,
    /// The Java sample, when the greeters are Java providers.
    java: Option<JavaProgram>,
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
    pub async fn start(options: MeshOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("causeway-demo-")
            .tempdir()
            .context("create the demo's directory")?;
        let mut registry = Registry::start(options.prefer_file_registry, dir.path()).await?;
        // Checked before anything else starts: the Java providers register themselves.
        let java = match (options.java, registry.zookeeper_connect()) {
            (false, _) => None,
            (true, None) => anyhow::bail!(
                "--java needs ZooKeeper (the Java sample registers itself there): install the \
                 `zookeeper` package and drop --file-registry"
            ),
            (true, Some(_)) => Some(crate::java::program().await?),
        };
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
        let greeters = match &java {
            Some(program) => start_java_greeters(program, &registry).await?,
            None => start_rust_greeters(&mut registry).await?,
        };
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
                    methods: Vec::new(),
                };
                registry.register(&registration).await?;
                estate.push((provider, registration));
            }
        }
        let mut mesh = Self {
            greeters,
            java,
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

    /// Takes a zone's greeter providers out, as a zone outage with graceful shutdown does: they
    /// leave the registry, and once the proxy no longer routes to them, they stop.
    pub async fn stop_zone(&mut self, zone: &str) -> anyhow::Result<()> {
        self.set_zone(zone, false).await
    }

    /// Brings a zone's greeter providers back.
    pub async fn start_zone(&mut self, zone: &str) -> anyhow::Result<()> {
        self.set_zone(zone, true).await
    }

    async fn set_zone(&mut self, zone: &str, registered: bool) -> anyhow::Result<()> {
        for greeter in &mut self.greeters {
            if greeter.registration.zone != zone || greeter.registered == registered {
                continue;
            }
            match (&greeter.backend, registered) {
                (GreeterBackend::Rust { .. }, true) => {
                    self.registry.register(&greeter.registration).await?;
                }
                (GreeterBackend::Rust { .. }, false) => {
                    self.registry.deregister(&greeter.registration).await?;
                }
                (GreeterBackend::Java { node, .. }, true) => {
                    self.registry.restore_node(&node.0, &node.1).await?;
                }
                (GreeterBackend::Java { node, .. }, false) => {
                    self.registry.remove_node(&node.0).await?;
                }
            }
            greeter.registered = registered;
        }
        let remaining = self.greeters.iter().filter(|g| g.registered).count();
        self.wait_for_endpoints(remaining).await
    }

    /// The Java sample, when the greeters are Java providers (`--java`).
    pub fn java(&self) -> Option<&JavaProgram> {
        self.java.as_ref()
    }

    /// The demo's working directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// The four in-process greeters: v1 and v2 in each zone, registered by the demo.
async fn start_rust_greeters(registry: &mut Registry) -> anyhow::Result<Vec<Greeter>> {
    let mut greeters = Vec::new();
    for (version, zone) in GREETER_PLACES {
        let provider = Provider::start(Identity {
            version: version.into(),
            zone: zone.into(),
            slow_latency: Duration::from_millis(20),
            capacity: PROVIDER_CAPACITY,
            latencies: Vec::new(),
            methods: Vec::new(),
        })
        .await
        .context("start a provider")?;
        let registration = provider.identity.registration(provider.addr);
        registry.register(&registration).await?;
        greeters.push(Greeter {
            backend: GreeterBackend::Rust {
                _provider: provider,
            },
            registration,
            registered: true,
        });
    }
    Ok(greeters)
}

/// The four greeters as Apache Dubbo Java sample providers, started together (a JVM takes
/// seconds) and registering themselves in ZooKeeper.
async fn start_java_greeters(
    program: &JavaProgram,
    registry: &Registry,
) -> anyhow::Result<Vec<Greeter>> {
    let zookeeper = registry
        .zookeeper_connect()
        .context("the Java providers need ZooKeeper")?
        .to_owned();
    let mut started = Vec::new();
    for (version, zone) in GREETER_PLACES {
        let provider = JavaProvider::start(program, &zookeeper, version, zone).await?;
        started.push((provider, version, zone));
    }
    let mut greeters = Vec::new();
    for (mut provider, version, zone) in started {
        provider.ready().await?;
        let node = registry
            .find_provider_node(INTERFACE, provider.addr.port())
            .await?;
        let registration = Registration {
            service: Service::Greeter,
            version: version.into(),
            zone: zone.into(),
            addr: provider.addr,
            methods: Vec::new(),
        };
        greeters.push(Greeter {
            backend: GreeterBackend::Java {
                _provider: provider,
                node,
            },
            registration,
            registered: true,
        });
    }
    Ok(greeters)
}

/// Where the greeter providers run: v1 and v2 in each zone.
const GREETER_PLACES: [(&str, &str); 4] = [
    ("v1", HOME_ZONE),
    ("v2", HOME_ZONE),
    ("v1", OTHER_ZONE),
    ("v2", OTHER_ZONE),
];
