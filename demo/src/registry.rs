//! How the demo's providers appear in a registry, as a Dubbo provider would publish itself:
//! - ZooKeeper (when the Debian `zookeeper` package is installed; the demo starts its own server
//!   on a free port): one ephemeral node per provider, the one its framework writes
//!   ([`crate::estate::Registration::zookeeper_entry`]: a provider URL with its version and
//!   locality parameters under `/dubbo/<interface>/providers`, or a Spring Cloud instance);
//! - otherwise the bridge's static file registry, rewritten whenever a provider comes or goes.

use std::path::PathBuf;

use anyhow::Context as _;
use causeway_tests::zookeeper::ZooKeeperServer;
use zookeeper_client as zk;

use crate::estate::{Registration, file_registry};

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
        providers: Vec<Registration>,
    },
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

    /// A session to a ZooKeeper server at `connect` (`host:port`).
    pub async fn connect_zookeeper(connect: &str) -> anyhow::Result<Self> {
        let client = zk::Client::connect(connect)
            .await
            .with_context(|| format!("connect to ZooKeeper at {connect}"))?;
        Ok(Self::ZooKeeper {
            server: None,
            connect: connect.to_owned(),
            client: Box::new(client),
        })
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
    pub async fn register(&mut self, registration: &Registration) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => {
                let entry = registration.zookeeper_entry();
                let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                for parent in &entry.parents {
                    match client.create(parent, b"", &persistent).await {
                        Ok(_) | Err(zk::Error::NodeExists) => {}
                        Err(error) => {
                            return Err(error).with_context(|| format!("create {parent}"));
                        }
                    }
                }
                let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
                match client.create(&entry.path, &entry.data, &ephemeral).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(error) => Err(error).context("register a provider in ZooKeeper"),
                }
            }
            Self::File { providers, .. } => {
                providers.push(registration.clone());
                self.write_file()
            }
        }
    }

    /// Withdraws a provider (what a provider does when it shuts down gracefully).
    pub async fn deregister(&mut self, registration: &Registration) -> anyhow::Result<()> {
        match self {
            Self::ZooKeeper { client, .. } => {
                match client
                    .delete(&registration.zookeeper_entry().path, None)
                    .await
                {
                    Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                    Err(error) => Err(error).context("deregister a provider from ZooKeeper"),
                }
            }
            Self::File { providers, .. } => {
                providers.retain(|r| r != registration);
                self.write_file()
            }
        }
    }

    /// The node a provider that registered itself (the Java sample) wrote for `interface` at
    /// `port`: its path and data, so the demo can withdraw and restore it as a zone outage
    /// with graceful shutdown would. ZooKeeper only.
    pub async fn find_provider_node(
        &self,
        interface: &str,
        port: u16,
    ) -> anyhow::Result<(String, Vec<u8>)> {
        let Self::ZooKeeper { client, .. } = self else {
            anyhow::bail!("providers register themselves only in ZooKeeper");
        };
        let parent = format!("/dubbo/{interface}/providers");
        // Node names are URL-encoded provider URLs: `dubbo%3A%2F%2F<ip>%3A<port>%2F…`.
        let needle = format!("%3A{port}%2F");
        let children = client
            .list_children(&parent)
            .await
            .with_context(|| format!("list {parent}"))?;
        let name = children
            .into_iter()
            .find(|child| child.contains(&needle))
            .with_context(|| format!("no provider node for port {port} under {parent}"))?;
        let path = format!("{parent}/{name}");
        let (data, _) = client
            .get_data(&path)
            .await
            .with_context(|| format!("read {path}"))?;
        Ok((path, data))
    }

    /// Deletes a node another session wrote (see [`Registry::find_provider_node`]).
    pub async fn remove_node(&self, path: &str) -> anyhow::Result<()> {
        let Self::ZooKeeper { client, .. } = self else {
            anyhow::bail!("only ZooKeeper has provider nodes");
        };
        match client.delete(path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("delete {path}")),
        }
    }

    /// Writes a removed node back (ephemeral, under the demo's session).
    pub async fn restore_node(&self, path: &str, data: &[u8]) -> anyhow::Result<()> {
        let Self::ZooKeeper { client, .. } = self else {
            anyhow::bail!("only ZooKeeper has provider nodes");
        };
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        match client.create(path, data, &ephemeral).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("create {path}")),
        }
    }

    /// `host:port` of the ZooKeeper server, when this is ZooKeeper.
    pub fn zookeeper_connect(&self) -> Option<&str> {
        match self {
            Self::ZooKeeper { connect, .. } => Some(connect),
            Self::File { .. } => None,
        }
    }

    fn write_file(&self) -> anyhow::Result<()> {
        let Self::File { path, providers } = self else {
            return Ok(());
        };
        let text = file_registry(providers);
        // Write then rename: the bridge never reads a half-written file.
        let temp = path.with_extension("yaml.tmp");
        std::fs::write(&temp, text).context("write the registry file")?;
        std::fs::rename(&temp, path).context("replace the registry file")?;
        Ok(())
    }
}
