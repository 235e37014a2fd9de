//! The bridge's configuration file: its schema, defaults, and validation.
//!
//! The file is YAML. Every field has a default that works on one machine, so an empty file (or no
//! file at all) is a valid configuration. Command-line flags override the file (see [`crate::cli`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::derive::DeriveConfig;
use crate::model::filter::Filter;
use crate::pipeline::Debounce;
use crate::registry::source::{RegistrySource, SourceError};

/// Default address of the xDS (ADS) server, DESIGN.md §9.
pub const DEFAULT_XDS_LISTEN: &str = "127.0.0.1:15010";
/// Default address of the admin HTTP server, DESIGN.md §9.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:15014";

/// The bridge configuration as read from `--config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct BridgeConfig {
    /// Where the xDS (ADS) server listens.
    #[serde(default = "default_xds_listen")]
    pub xds_listen: SocketAddr,
    /// Where the admin HTTP server (`/ready`, `/metrics`, `/debug`) listens.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Registry URLs (see [`crate::registry::source`]); `--registry` adds to these.
    #[serde(default)]
    pub registries: Vec<String>,
    /// Traffic rules file (multi-document YAML: DestinationRule, VirtualService, MetaRouter,
    /// TrafficIsolation), watched for changes.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// ServiceEntry output.
    #[serde(default)]
    pub serviceentry: ServiceEntryOutput,
    /// Host naming and label derivation.
    #[serde(default)]
    pub model: DeriveConfig,
    /// Allow/deny globs on services, namespaces and groups.
    #[serde(default)]
    pub filter: Filter,
    /// Debounce between registry changes and snapshots.
    #[serde(default)]
    pub debounce: Debounce,
    /// How long a service that suddenly loses every endpoint while its registries are healthy is
    /// kept (marked draining) before it is removed, in milliseconds.
    #[serde(default = "default_grace_ms")]
    pub drop_to_zero_grace_ms: u64,
}

/// Where ServiceEntries are written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntryOutput {
    /// A directory to keep one YAML file per service in.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Also print every new snapshot's ServiceEntries to stdout as multi-document YAML.
    #[serde(default)]
    pub stdout: bool,
}

fn default_grace_ms() -> u64 {
    30_000
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
    /// The values parse but cannot work together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A registry URL is wrong.
    #[error(transparent)]
    Registry(#[from] SourceError),
}

fn default_xds_listen() -> SocketAddr {
    parse_default_addr(DEFAULT_XDS_LISTEN)
}

fn default_admin_listen() -> SocketAddr {
    parse_default_addr(DEFAULT_ADMIN_LISTEN)
}

fn parse_default_addr(text: &str) -> SocketAddr {
    // The defaults are compile-time constants checked by a unit test, so the fallback is unreachable
    // in practice; it keeps this free of `unwrap`.
    text.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            xds_listen: default_xds_listen(),
            admin_listen: default_admin_listen(),
            registries: Vec::new(),
            rules: None,
            serviceentry: ServiceEntryOutput::default(),
            model: DeriveConfig::default(),
            filter: Filter::default(),
            debounce: Debounce::default(),
            drop_to_zero_grace_ms: default_grace_ms(),
        }
    }
}

impl BridgeConfig {
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

    /// Parses every registry URL, checking that names are unique.
    pub fn registry_sources(&self) -> Result<Vec<RegistrySource>, ConfigError> {
        let sources = self
            .registries
            .iter()
            .map(|url| RegistrySource::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = std::collections::BTreeSet::new();
        for source in &sources {
            if !names.insert(source.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "two registries are named {:?}; add ?name=… to one of them",
                    source.name
                )));
            }
        }
        Ok(sources)
    }

    /// Checks rules that span several fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.registries.is_empty() {
            return Err(ConfigError::Invalid(
                "no registries: give --registry URL (e.g. zookeeper://127.0.0.1:2181) or \
                 `registries:` in the config file"
                    .to_owned(),
            ));
        }
        self.registry_sources()?;
        if let Some(path) = &self.rules {
            crate::rules::RuleSet::load(path)
                .map_err(|error| ConfigError::Invalid(format!("rules: {error}")))?;
        }
        if self.debounce.quiet_ms > self.debounce.max_ms {
            return Err(ConfigError::Invalid(format!(
                "debounce.quiet_ms ({}) exceeds debounce.max_ms ({})",
                self.debounce.quiet_ms, self.debounce.max_ms
            )));
        }
        if self.xds_listen == self.admin_listen && self.xds_listen.port() != 0 {
            return Err(ConfigError::Invalid(format!(
                "xds_listen and admin_listen are both {}; they need different ports",
                self.xds_listen
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_follow_the_design() {
        let config = BridgeConfig::default();
        assert_eq!(config.xds_listen.to_string(), DEFAULT_XDS_LISTEN);
        assert_eq!(config.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(BridgeConfig::parse("").unwrap(), config);
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = BridgeConfig::parse("xds_listn: 127.0.0.1:1\n").unwrap_err();
        assert!(err.contains("xds_listn"), "{err}");
    }

    #[test]
    fn same_port_for_two_servers_is_invalid() {
        let config = BridgeConfig::parse(
            "xds_listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\nregistries: [zookeeper://h:1]\n",
        )
        .unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("different ports")
        );
    }

    #[test]
    fn a_full_file_parses_and_validates() {
        let config = BridgeConfig::parse(
            "registries:\n  - zookeeper://127.0.0.1:2181/dubbo?name=zk\n  - etcd://127.0.0.1:2379\n\
             serviceentry: {dir: /tmp/se, stdout: true}\n\
             model: {host_suffix: .mesh, default_namespace: dubbo}\n\
             filter: {services: {allow: ['com.acme.*']}}\n\
             debounce: {quiet_ms: 50, max_ms: 500}\n\
             drop_to_zero_grace_ms: 1000\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.registry_sources().unwrap()[0].name, "zk");
        assert_eq!(config.model.host_suffix, ".mesh");
        assert_eq!(config.debounce.max_ms, 500);
    }

    #[test]
    fn registry_problems_are_reported() {
        assert!(
            BridgeConfig::default()
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--registry")
        );
        let dup = BridgeConfig::parse("registries: [zookeeper://a:1?name=x, etcd://b:2?name=x]\n")
            .unwrap();
        assert!(
            dup.validate()
                .unwrap_err()
                .to_string()
                .contains("two registries")
        );
        let bad = BridgeConfig::parse("registries: [mysql://a:1]\n").unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("unknown registry scheme")
        );
    }
}
