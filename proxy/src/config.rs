//! The proxy's configuration file: its schema, defaults, and validation.
//!
//! The file is YAML. Every field has a default, so an empty file (or no file at all) is valid.
//! Command-line flags override the file (see [`crate::cli`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default address of the admin HTTP server, DESIGN.md §9.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:15000";

/// The proxy configuration as read from `--config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ProxyConfig {
    /// Where the admin HTTP server (`/ready`, `/metrics`, `/config_dump`) listens.
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
}

fn default_admin_listen() -> SocketAddr {
    // A compile-time constant checked by a unit test; the fallback keeps this free of `unwrap`.
    DEFAULT_ADMIN_LISTEN
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            admin_listen: default_admin_listen(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
