//! Registry URLs (`--registry URL`, `registries:` in the config file) and the settings they give.
//!
//! | URL | registry |
//! |---|---|
//! | `zookeeper://host:port[,host:port][/root]` | ZooKeeper; root defaults to `/dubbo` |
//! | `nacos://host:port?namespace=..&group=..` | Nacos 2.x/3.x; `group` may repeat |
//! | `etcd://host:port[,host:port][/prefix]` | etcd v3; prefix defaults to `/dubbo` |
//! | `file:///path/to/services.yaml` | a watched static file |
//!
//! Every URL takes `name=` (the registry's name in labels and metrics; default
//! `<scheme>-<first host>`). ZooKeeper also takes `services_root=` (Spring Cloud, default
//! `/services`, empty to skip), `session_timeout_ms=` and `resync_s=`; Nacos takes
//! `poll_s=` (how often the service list is polled for new services) plus `username=` and
//! `password=` when the server has auth enabled.

use std::path::PathBuf;
use std::time::Duration;

use crate::registry::dubbo_url::url_decode;
use crate::registry::zookeeper::ZooKeeperSource;

/// A registry URL that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry URL {url:?}: {reason}")]
pub struct SourceError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Nacos settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NacosSource {
    /// `host:port` of the HTTP API (gRPC is this port + 1000).
    pub server_addr: String,
    /// Namespace id (`public` is the default namespace).
    pub namespace: String,
    /// Groups to read (default `DEFAULT_GROUP`).
    pub groups: Vec<String>,
    /// How often the service list is polled for new services.
    pub poll_interval: Duration,
    /// User name, when auth is enabled.
    pub username: Option<String>,
    /// Password, when auth is enabled.
    pub password: Option<String>,
}

/// etcd settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSource {
    /// `host:port` endpoints.
    pub endpoints: Vec<String>,
    /// Key prefix of the Dubbo layout, `/dubbo` by default.
    pub prefix: String,
}

/// Which registry and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryKind {
    /// ZooKeeper.
    ZooKeeper(ZooKeeperSource),
    /// Nacos.
    Nacos(NacosSource),
    /// etcd v3.
    Etcd(EtcdSource),
    /// A static YAML file.
    File(PathBuf),
}

/// A named registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySource {
    /// Name used in labels, metrics and logs.
    pub name: String,
    /// Kind and settings.
    pub kind: RegistryKind,
}

impl RegistrySource {
    /// Parses a registry URL.
    pub fn parse(url: &str) -> Result<Self, SourceError> {
        let error = |reason: &str| SourceError {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| error("expected <scheme>://…, e.g. zookeeper://127.0.0.1:2181"))?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = url_decode(v).map_err(|e| error(&e.to_string()))?;
            params.push((k.to_owned(), v));
        }
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let number = |key: &str| -> Result<Option<u64>, SourceError> {
            param(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| error(&format!("{key} must be a number")))
                })
                .transpose()
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        let hosts: Vec<String> = authority
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        for host in hosts.iter().filter(|_| scheme != "file") {
            let port_ok = host
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
            if !port_ok {
                return Err(error(&format!("{host:?} is not host:port")));
            }
        }
        let default_name = |label: &str| format!("{scheme}-{}", label.replace(':', "-"));
        let first_host = hosts.first().cloned().unwrap_or_default();
        let (default, kind) = match scheme {
            "zookeeper" | "zk" => {
                if hosts.is_empty() {
                    return Err(error("no ZooKeeper host"));
                }
                let mut source = ZooKeeperSource {
                    connect: hosts.join(","),
                    ..ZooKeeperSource::default()
                };
                if !path.is_empty() && path != "/" {
                    source.dubbo_root = path.trim_end_matches('/').to_owned();
                }
                if let Some(root) = param("services_root") {
                    source.services_root = root.trim_end_matches('/').to_owned();
                }
                if let Some(ms) = number("session_timeout_ms")? {
                    source.session_timeout = Duration::from_millis(ms);
                }
                if let Some(s) = number("resync_s")? {
                    source.resync_interval = Duration::from_secs(s.max(1));
                }
                (default_name(&first_host), RegistryKind::ZooKeeper(source))
            }
            "nacos" => {
                if hosts.len() != 1 {
                    return Err(error("give exactly one Nacos host:port"));
                }
                let groups: Vec<String> = params
                    .iter()
                    .filter(|(k, _)| k == "group")
                    .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .filter(|g| !g.is_empty())
                    .collect();
                let source = NacosSource {
                    server_addr: first_host.clone(),
                    namespace: param("namespace")
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| "public".to_owned()),
                    groups: if groups.is_empty() {
                        vec!["DEFAULT_GROUP".to_owned()]
                    } else {
                        groups
                    },
                    poll_interval: Duration::from_secs(number("poll_s")?.unwrap_or(5).max(1)),
                    username: param("username"),
                    password: param("password"),
                };
                (default_name(&first_host), RegistryKind::Nacos(source))
            }
            "etcd" => {
                if hosts.is_empty() {
                    return Err(error("no etcd host"));
                }
                let prefix = if path.is_empty() || path == "/" {
                    "/dubbo".to_owned()
                } else {
                    path.trim_end_matches('/').to_owned()
                };
                (
                    default_name(&first_host),
                    RegistryKind::Etcd(EtcdSource {
                        endpoints: hosts,
                        prefix,
                    }),
                )
            }
            "file" => {
                if !authority.is_empty() || path.is_empty() {
                    return Err(error("expected file:///absolute/path.yaml"));
                }
                let path = PathBuf::from(path);
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (default_name(&stem), RegistryKind::File(path))
            }
            other => {
                return Err(error(&format!(
                    "unknown registry scheme {other:?} (zookeeper, nacos, etcd, file)"
                )));
            }
        };
        let name = param("name").unwrap_or(default);
        if name.is_empty() || !crate::model::derive::is_label_value(&name) {
            return Err(error(&format!(
                "name {name:?} must be a valid label value (letters, digits, -_.; at most 63)"
            )));
        }
        Ok(Self { name, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_urls() {
        let s = RegistrySource::parse("zookeeper://10.0.0.1:2181,10.0.0.2:2181/dubbo-prod?name=zk-prod&session_timeout_ms=4000").unwrap();
        assert_eq!(s.name, "zk-prod");
        let RegistryKind::ZooKeeper(zk) = s.kind else {
            panic!()
        };
        assert_eq!(zk.connect, "10.0.0.1:2181,10.0.0.2:2181");
        assert_eq!(zk.dubbo_root, "/dubbo-prod");
        assert_eq!(zk.session_timeout, Duration::from_millis(4000));
        let d = RegistrySource::parse("zookeeper://127.0.0.1:2181").unwrap();
        assert_eq!(d.name, "zookeeper-127.0.0.1-2181");
    }

    #[test]
    fn nacos_etcd_and_file_urls() {
        let n =
            RegistrySource::parse("nacos://127.0.0.1:8848?namespace=dev&group=a&group=b").unwrap();
        let RegistryKind::Nacos(nacos) = n.kind else {
            panic!()
        };
        assert_eq!(nacos.namespace, "dev");
        assert_eq!(nacos.groups, ["a", "b"]);
        let e = RegistrySource::parse("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(
            e.kind,
            RegistryKind::Etcd(EtcdSource {
                endpoints: vec!["127.0.0.1:2379".into()],
                prefix: "/dubbo".into()
            })
        );
        let f = RegistrySource::parse("file:///etc/causeway/services.yaml").unwrap();
        assert_eq!(f.name, "file-services");
        assert_eq!(
            f.kind,
            RegistryKind::File("/etc/causeway/services.yaml".into())
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, needle) in [
            ("127.0.0.1:2181", "scheme"),
            ("zookeeper://host", "host:port"),
            ("redis://h:1", "unknown registry scheme"),
            ("nacos://a:1,b:2", "exactly one"),
            ("file://relative.yaml", "file:///"),
            ("zookeeper://h:1?name=bad name", "label value"),
            ("zookeeper://h:1?resync_s=soon", "number"),
        ] {
            let err = RegistrySource::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
