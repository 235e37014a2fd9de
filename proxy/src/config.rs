//! The proxy's configuration file: its schema, defaults, and validation.
//!
//! The file is YAML. Every field has a default, so an empty file (or no file at all) is valid.
//! Command-line flags override the file (see [`crate::cli`]). Besides the listeners and the admin
//! address it holds, for local mode (no control plane), static `services` with their endpoints
//! and the traffic `rules` (the same DestinationRule and MetaRouter YAML the bridge reads); see
//! [`crate::local`] for how they become a routing snapshot.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use causeway_protocols::rules::RulesError;
use serde::Deserialize;

/// Default address of the admin HTTP server, DESIGN.md §9.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:15000";

/// How often local mode checks the config and rules files for changes, by default.
pub const DEFAULT_RELOAD_INTERVAL_MS: u64 = 500;

/// Default upstream request timeout when the caller sends no `timeout` attachment.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// The proxy configuration as read from `--config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ProxyConfig {
    /// Where the admin HTTP server (`/ready`, `/metrics`, `/config_dump`) listens.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Protocol listeners (`--listen PROTO=ADDR` adds to and replaces these).
    #[serde(default)]
    pub listen: Vec<Listen>,
    /// This proxy's locality, `region/zone/subzone`: endpoints in the same zone are preferred.
    #[serde(default)]
    pub locality: String,
    /// The workload this proxy serves (`source_workload` in request metrics).
    #[serde(default = "default_workload")]
    pub workload: String,
    /// Local mode: services and their endpoints.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// Local mode: traffic rules, either multi-document YAML text or (one line) the path of a
    /// rules file, relative to this file.
    #[serde(default)]
    pub rules: Option<String>,
    /// How often the config and rules files are checked for changes, in milliseconds.
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// Dubbo listener settings.
    #[serde(default)]
    pub dubbo: DubboSettings,
    /// Thrift listener settings.
    #[serde(default)]
    pub thrift: ThriftSettings,
    /// xDS mode: the bridge to take services, endpoints and routes from, instead of `services`
    /// and `rules`.
    #[serde(default)]
    pub xds: Option<XdsConfig>,
    /// OTLP span export: the proxy records a span per forwarded request of a sampled trace.
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
}

/// Where the proxy's spans go (OTLP/HTTP, protobuf).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector, `http://host[:port][/base]`; spans are posted to `{base}/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute of the spans.
    #[serde(default = "default_otlp_service_name")]
    pub service_name: String,
}

/// The `service.name` of the proxy's spans unless configured.
pub const DEFAULT_OTLP_SERVICE_NAME: &str = "causeway-proxy";

fn default_otlp_service_name() -> String {
    DEFAULT_OTLP_SERVICE_NAME.to_owned()
}

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsConfig {
    /// The bridge's ADS address, `host:port` (plain HTTP/2) or an `http://` URI.
    pub address: String,
    /// This proxy's node id on the bridge's debug pages; default: the workload name.
    #[serde(default)]
    pub node_id: Option<String>,
}

/// A protocol listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// The protocol spoken there.
    pub protocol: ListenProtocol,
    /// The address to bind.
    pub address: SocketAddr,
    /// Thrift and `auto` listeners: the mesh host every Thrift call on this listener is for
    /// (its route table), so non-multiplexed calls can be routed. Without it a call must be
    /// multiplexed (`Service:method`) and the service name picks the host.
    #[serde(default)]
    pub host: Option<String>,
}

// === impl Listen ===

impl Listen {
    /// A listener not bound to a host.
    pub fn new(protocol: ListenProtocol, address: SocketAddr) -> Self {
        Self {
            protocol,
            address,
            host: None,
        }
    }
}

/// Protocols a listener can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenProtocol {
    /// Dubbo 2 (`dubbo://`) with Hessian 2.
    Dubbo,
    /// Thrift: binary or compact over framed, unframed or THeader, detected per connection.
    Thrift,
    /// Detected per connection from the first bytes (Dubbo or Thrift today). Not a service
    /// protocol.
    Auto,
    /// gRPC: HTTP/2 (prior knowledge) carrying `application/grpc`.
    Grpc,
    /// HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port.
    Http,
}

impl fmt::Display for ListenProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dubbo => f.write_str("dubbo"),
            Self::Thrift => f.write_str("thrift"),
            Self::Auto => f.write_str("auto"),
            Self::Grpc => f.write_str("grpc"),
            Self::Http => f.write_str("http"),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    /// `PROTO=ADDR[,host=HOST]`, as `--listen` takes it.
    fn from_str(text: &str) -> Result<Self, String> {
        let (protocol, rest) = text.split_once('=').ok_or_else(|| {
            format!("expected PROTO=ADDR, e.g. dubbo=127.0.0.1:20880, got `{text}`")
        })?;
        let protocol = match protocol {
            "dubbo" => ListenProtocol::Dubbo,
            "thrift" => ListenProtocol::Thrift,
            "auto" => ListenProtocol::Auto,
            "grpc" => ListenProtocol::Grpc,
            "http" => ListenProtocol::Http,
            other => {
                return Err(format!(
                    "unknown protocol `{other}`; expected dubbo, thrift, grpc, http or auto"
                ));
            }
        };
        let mut parts = rest.split(',');
        let address = parts.next().unwrap_or_default();
        let address = address
            .parse()
            .map_err(|e| format!("invalid address `{address}`: {e}"))?;
        let mut listen = Self::new(protocol, address);
        for option in parts {
            match option.split_once('=') {
                Some(("host", host)) if !host.is_empty() && protocol != ListenProtocol::Dubbo => {
                    listen.host = Some(host.to_owned());
                }
                _ => {
                    return Err(format!(
                        "unknown listener option `{option}`; thrift and auto listeners take `host=HOST`"
                    ));
                }
            }
        }
        Ok(listen)
    }
}

/// Dubbo listener settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DubboSettings {
    /// Largest accepted body, in bytes (Java's `payload`, 8 MiB by default); larger requests are
    /// answered with BAD_REQUEST.
    pub max_body_len: usize,
    /// Upstream timeout for requests without a `timeout` attachment, in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for DubboSettings {
    fn default() -> Self {
        Self {
            max_body_len: causeway_protocols::dubbo::DEFAULT_MAX_BODY_LEN,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

/// Thrift listener settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThriftSettings {
    /// Largest accepted frame (or unframed message), in bytes; larger input closes the
    /// connection (a frame cannot be answered before it is read).
    pub max_frame_size: usize,
    /// Upstream timeout per call, in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for ThriftSettings {
    fn default() -> Self {
        Self {
            max_frame_size: causeway_protocols::thrift::DEFAULT_MAX_FRAME_SIZE,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

/// A service of the mesh, with static endpoints (local mode).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The mesh host (what rules name), e.g. `io.causeway.demo.api.greetingservice-1-0-0`.
    pub host: String,
    /// The service port (in cluster names; also the default endpoint port).
    pub port: u16,
    /// The protocol: `dubbo` (the default), `thrift`, `grpc` or `http`.
    #[serde(default = "default_service_protocol")]
    pub protocol: ListenProtocol,
    /// What the Dubbo requests for this service name.
    pub dubbo: Option<DubboService>,
    /// The Thrift identity of a `thrift` service.
    #[serde(default)]
    pub thrift: Option<ThriftService>,
    /// gRPC and HTTP services: extra authorities the service answers to (besides `<host>` and
    /// `<host>:<port>`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// gRPC services: the methods the provider offers (`SayHello`), the only values
    /// `request_method` may take (others are counted as `other`).
    #[serde(default)]
    pub methods: Vec<String>,
    /// The providers.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
}

/// The Dubbo identity of a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DubboService {
    /// The exact interface name.
    pub interface: String,
    /// The Dubbo group; requests of any group match when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// The Dubbo service version; requests of any version match when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Methods the provider offers: the values `request_method` may take in metrics (others
    /// are counted as `other`). Methods named exactly by routes are added.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// The Thrift identity of a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThriftService {
    /// The multiplexed service name (`Calculator` in `Calculator:add`) that resolves to this
    /// host; absent: only listeners bound to the host (`host=`) reach it.
    #[serde(default)]
    pub service: Option<String>,
    /// Methods the service offers: the only values `request_method` may take (others are
    /// counted as `other`). Methods named exactly by routes are added.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// A static endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The IP address.
    pub address: IpAddr,
    /// The port; the service port when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// Labels (`version`, `app`, ...), selected by DestinationRule subsets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `region/zone/subzone`.
    #[serde(default)]
    pub locality: String,
    /// Load-balancing weight.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// `false` keeps the endpoint out of load balancing.
    #[serde(default = "default_true")]
    pub healthy: bool,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file named by `--config`.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The traffic rules are invalid or unreadable.
    #[error("invalid rules: {0}")]
    Rules(#[from] RulesError),
    /// A value is well-formed YAML but not usable.
    #[error("invalid config: {field}: {message}")]
    Invalid {
        /// Where, e.g. `services[0].endpoints[1].weight`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn default_admin_listen() -> SocketAddr {
    // A compile-time constant checked by a unit test; the fallback keeps this free of `unwrap`.
    DEFAULT_ADMIN_LISTEN
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn default_workload() -> String {
    "unknown".to_owned()
}

fn default_reload_interval_ms() -> u64 {
    DEFAULT_RELOAD_INTERVAL_MS
}

fn default_service_protocol() -> ListenProtocol {
    ListenProtocol::Dubbo
}

fn default_weight() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            admin_listen: default_admin_listen(),
            listen: Vec::new(),
            locality: String::new(),
            workload: default_workload(),
            services: Vec::new(),
            rules: None,
            reload_interval_ms: DEFAULT_RELOAD_INTERVAL_MS,
            dubbo: DubboSettings::default(),
            thrift: ThriftSettings::default(),
            xds: None,
            otlp: None,
        }
    }
}

impl ProxyConfig {
    /// Reads and parses a YAML configuration file. An empty file yields the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses YAML text; the error is the parser's message.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Where the rules come from: inline text, a file, or nothing. A one-line value is a path,
    /// resolved against `base` (the config file's directory).
    pub fn rules_source(&self, base: Option<&Path>) -> RulesSource {
        match self.rules.as_deref().map(str::trim) {
            None | Some("") => RulesSource::None,
            Some(text) if !text.contains('\n') => {
                let path = PathBuf::from(text);
                let path = match base {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path,
                };
                RulesSource::File(path)
            }
            Some(text) => RulesSource::Inline(text.to_owned()),
        }
    }
}

/// Where the traffic rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// No rules: every service routes to all its endpoints.
    None,
    /// Multi-document YAML inside the config file.
    Inline(String),
    /// A separate rules file (watched like the config file).
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_takes_an_endpoint_and_defaults_the_service_name() {
        let config = ProxyConfig::parse("otlp: {endpoint: \"http://127.0.0.1:4318\"}\n").unwrap();
        let otlp = config.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://127.0.0.1:4318");
        assert_eq!(otlp.service_name, DEFAULT_OTLP_SERVICE_NAME);
        assert!(ProxyConfig::parse("otlp: {endpoint: x, colour: red}\n").is_err());
        assert_eq!(ProxyConfig::parse("").unwrap().otlp, None);
    }

    #[test]
    fn defaults_follow_the_design() {
        assert_eq!(
            ProxyConfig::default().admin_listen.to_string(),
            DEFAULT_ADMIN_LISTEN
        );
        assert_eq!(ProxyConfig::parse("").unwrap(), ProxyConfig::default());
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = ProxyConfig::parse("admin: 127.0.0.1:1\n").unwrap_err();
        assert!(err.contains("admin"), "{err}");
    }

    #[test]
    fn listen_flags_parse() {
        let l: Listen = "dubbo=127.0.0.1:20880".parse().unwrap();
        assert_eq!(l.protocol, ListenProtocol::Dubbo);
        assert_eq!(l.address.port(), 20880);
        assert_eq!(
            "grpc=127.0.0.1:1".parse::<Listen>().unwrap().protocol,
            ListenProtocol::Grpc
        );
        assert!(
            "quic=127.0.0.1:1"
                .parse::<Listen>()
                .unwrap_err()
                .contains("unknown protocol")
        );
        let t: Listen = "thrift=127.0.0.1:9090,host=calc.mesh".parse().unwrap();
        assert_eq!(t.protocol, ListenProtocol::Thrift);
        assert_eq!(t.host.as_deref(), Some("calc.mesh"));
        assert_eq!(
            "auto=127.0.0.1:1".parse::<Listen>().unwrap().protocol,
            ListenProtocol::Auto
        );
        assert!(
            "dubbo=127.0.0.1:1,host=x"
                .parse::<Listen>()
                .unwrap_err()
                .contains("listener option")
        );
        assert!(
            "dubbo"
                .parse::<Listen>()
                .unwrap_err()
                .contains("PROTO=ADDR")
        );
        assert!(
            "dubbo=nowhere"
                .parse::<Listen>()
                .unwrap_err()
                .contains("invalid address")
        );
    }

    #[test]
    fn rules_are_inline_or_a_path() {
        let mut c = ProxyConfig::default();
        assert_eq!(c.rules_source(None), RulesSource::None);
        c.rules = Some("rules.yaml".into());
        assert_eq!(
            c.rules_source(Some(Path::new("/etc/causeway"))),
            RulesSource::File("/etc/causeway/rules.yaml".into())
        );
        c.rules = Some("---\nkind: X\n".into());
        assert!(matches!(c.rules_source(None), RulesSource::Inline(_)));
    }

    #[test]
    fn a_full_local_config_parses() {
        let c = ProxyConfig::parse(
            "listen: [{protocol: dubbo, address: 127.0.0.1:20880}]\n\
             locality: eu/eu-a\n\
             services:\n\
             - host: demo.greeter\n\
             \x20 port: 20880\n\
             \x20 dubbo: {interface: demo.Greeter, version: 1.0.0, methods: [greet]}\n\
             \x20 endpoints:\n\
             \x20 - {address: 127.0.0.1, port: 20881, labels: {version: v1}, locality: eu/eu-a}\n",
        )
        .unwrap();
        assert_eq!(c.services[0].endpoints[0].weight, 1);
        assert_eq!(c.services[0].protocol, ListenProtocol::Dubbo);
    }
}
