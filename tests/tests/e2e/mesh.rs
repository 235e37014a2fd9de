//! Set-up shared by the end-to-end tests that run the bridge and proxies in-process: a bridge
//! configuration that answers quickly (loopback port 0 for xDS and admin, a 20 ms / 200 ms
//! debounce so registry and rule edits reach proxies within the tests' patience), and a proxy
//! configuration that takes everything from that bridge over xDS.

use std::net::SocketAddr;
use std::path::PathBuf;

use causeway_bridge::config::BridgeConfig;
use causeway_bridge::pipeline::Debounce;
use causeway_proxy::config::{Listen, ListenProtocol, ProxyConfig, XdsConfig};

/// A bridge on `registries` (and `rules`) with loopback ports and a quick debounce; tests that
/// need more set it with struct update syntax.
pub(crate) fn bridge_config(registries: Vec<String>, rules: Option<PathBuf>) -> BridgeConfig {
    let any_port = "127.0.0.1:0".parse().unwrap();
    BridgeConfig {
        admin_listen: any_port,
        xds_listen: any_port,
        registries,
        rules,
        debounce: Debounce {
            quiet_ms: 20,
            max_ms: 200,
        },
        ..BridgeConfig::default()
    }
}

/// A proxy configured over xDS by the bridge at `xds`, with a listener on port 0 for each of
/// `protocols`, in `locality` (empty: none), as `workload` with node id `node_id`.
pub(crate) fn xds_proxy_config(
    xds: SocketAddr,
    protocols: &[ListenProtocol],
    locality: &str,
    workload: &str,
    node_id: &str,
) -> ProxyConfig {
    ProxyConfig {
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        listen: protocols
            .iter()
            .map(|protocol| Listen::new(*protocol, "127.0.0.1:0".parse().unwrap()))
            .collect(),
        locality: locality.into(),
        workload: workload.into(),
        xds: Some(XdsConfig {
            address: xds.to_string(),
            node_id: Some(node_id.into()),
        }),
        ..ProxyConfig::default()
    }
}
