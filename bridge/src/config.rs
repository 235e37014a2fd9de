//! The bridge's configuration file: its schema, defaults, and validation.
//!
//! The file is YAML. Every field has a default that works on one machine, so an empty file (or no
//! file at all) is a valid configuration. Command-line flags override the file (see [`crate::cli`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

    /// Checks rules that span several fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        let config =
            BridgeConfig::parse("xds_listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\n")
                .unwrap();
        assert!(config.validate().is_err());
    }
}
