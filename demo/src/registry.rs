//! How the demo's providers appear in a registry, as a Dubbo provider would publish itself:
//! - ZooKeeper (when the Debian `zookeeper` package is installed; the demo starts its own server
//!   on a free port): one ephemeral node per provider under `/dubbo/<interface>/providers`,
//!   holding the provider URL with its version and locality parameters;
//! - otherwise the bridge's static file registry, rewritten whenever a provider comes or goes.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use causeway_bridge::registry::dubbo_url::url_encode;
use causeway_tests::zookeeper::ZooKeeperServer;
use zookeeper_client as zk;

use crate::greeter::{INTERFACE, Identity, METHODS, SERVICE_VERSION};

/// The demo's region: every provider and the proxy sit in it, in zones `zone-a` and `zone-b`.
pub const REGION: &str = "local";

/// A registry the demo publishes providers to.
pub enum Registry {
    /// A ZooKeeper server the demo started, and a client session to it.
    ZooKeeper {
        /// The server the demo started (stopped when the demo ends); `None` for a server it
        /// only connects to (`causeway-demo provider` in Kubernetes).
        server: Option<ZooKeeperServer>,
        /// Where the server is, `host:port`.
        connect: String,
        /// The session providers are registered with (boxed: it is far larger than the file
        /// variant).
        client: Box<zk::Client>,
    },
    /// The bridge's static file registry.
    File {
        /// The file the bridge watches.
        path: PathBuf,
        /// The providers listed in it.
        providers: Vec<(Identity, SocketAddr)>,
    },
}

/// The Dubbo URL a provider registers (`aeraki_meta_app_version` becomes the `version` label).
fn provider_url(identity: &Identity, addr: SocketAddr) -> String {
    format!(
        "dubbo://{addr}/{INTERFACE}?interface={INTERFACE}&version={SERVICE_VERSION}\
         &methods={}&application=greeter&side=provider&aeraki_meta_app_version={}\
         &region={REGION}&zone={}",
        METHODS.join(","),
        identity.version,
        identity.zone
    )
}

fn node_path(identity: &Identity, addr: SocketAddr) -> String {
    format!(
        "/dubbo/{INTERFACE}/providers/{}",
        url_encode(&provider_url(identity, addr))
    )
}

impl Registry {
    /// ZooKeeper when it is installed, else the file registry in `dir`.
    pub async fn start(prefer_file: bool, dir: &std::path::Path) -> anyhow::Result<Self> {
        if !prefer_file && std::path::Path::new("/usr/share/java/zookeeper.jar").exists() {
            let server = ZooKeeperServer::start().await?;
            let connect = server.connect_string();
            let mut registry = Self::connect_zookeeper(&connect).await?;
            if let Self::ZooKeeper { server: slot, .. } = &mut registry {
                *slot = Some(server);
            }
            return Ok(registry);
        }
        let path = dir.join("registry.yaml");
        let registry = Self::File {
            path,
            providers: Vec::new(),
        };
        registry.write_file()?;
        Ok(registry)
    }

    /// A session to a ZooKeeper server at `connect` (`host:port`), with Dubbo's provider folders.
    pub async fn connect_zookeeper(connect: &str) -> anyhow::Result<Self> {
        {
            let client = zk::Client::connect(connect)
                .await
                .with_context(|| format!("connect to ZooKeeper at {connect}"))?;
            let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            for path in [
                "/dubbo".to_owned(),
                format!("/dubbo/{INTERFACE}"),
                format!("/dubbo/{INTERFACE}/providers"),
            ] {
                match client.create(&path, b"", &persistent).await {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(error) => return Err(error).with_context(|| format!("create {path}")),
                }
            }
            Ok(Self::ZooKeeper {
                server: None,
                connect: connect.to_owned(),
                client: Box::new(client),
            })
        }
    }

    /// What the bridge's `--registry` should be.
    pub fn bridge_url(&self) -> String {
        match self {
            Self::ZooKeeper { connect, .. } => format!("zookeeper://{connect}"),
            Self::File { path, .. } => format!("file://{}", path.display()),
        }
    }

    /// One line saying which registry is in use.
    pub fn describe(&self) -> String {
        match self {
            Self::ZooKeeper { connect, .. } => format!(
                "ZooKeeper at {connect} (started by the demo; providers register as Dubbo does)"
            ),
            Self::File { path, .. } => format!(
                "the bridge's static file registry {} (ZooKeeper is not installed: \
                 `apt-get install zookeeper` to use it)",
                path.display()
            ),
        }
    }

    /// Publishes a provider.
    pub async fn register(&mut self, identity: &Identity, addr: SocketAddr) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => {
                let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
                let path = node_path(identity, addr);
                match client.create(&path, b"", &ephemeral).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(error) => Err(error).context("register a provider in ZooKeeper"),
                }
            }
            Self::File { providers, .. } => {
                providers.push((identity.clone(), addr));
                self.write_file()
            }
        }
    }

    /// Withdraws a provider (what a Dubbo provider does when it shuts down gracefully).
    pub async fn deregister(
        &mut self,
        identity: &Identity,
        addr: SocketAddr,
    ) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => {
                match client.delete(&node_path(identity, addr), None).await {
                    Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                    Err(error) => Err(error).context("deregister a provider from ZooKeeper"),
                }
            }
            Self::File { providers, .. } => {
                providers.retain(|(_, a)| *a != addr);
                self.write_file()
            }
        }
    }

    fn write_file(&self) -> anyhow::Result<()> {
        let Self::File { path, providers } = self else {
            return Ok(());
        };
        let mut text = format!(
            "services:\n- interface: {INTERFACE}\n  version: {SERVICE_VERSION}\n  protocol: dubbo\n  methods: [{}]\n  endpoints:\n",
            METHODS.join(", ")
        );
        if providers.is_empty() {
            text = "services: []\n".to_owned();
        }
        for (identity, addr) in providers {
            text.push_str(&format!(
                "  - {{address: {}, port: {}, labels: {{version: {}, region: {REGION}, zone: {}}}}}\n",
                addr.ip(),
                addr.port(),
                identity.version,
                identity.zone
            ));
        }
        // Write then rename: the bridge never reads a half-written file.
        let temp = path.with_extension("yaml.tmp");
        std::fs::write(&temp, text).context("write the registry file")?;
        std::fs::rename(&temp, path).context("replace the registry file")?;
        Ok(())
    }
}
