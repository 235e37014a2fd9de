//! Dubbo provider URLs as registries store them: URL-encoded once as a whole (ZooKeeper node names,
//! etcd key segments), `{protocol}://[user[:pass]@]{host}:{port}/{path}?{k}={v}&…`.
//!
//! Decoding is lenient in the way PROTOCOLS.md §5.1 asks: `+` and `%20` are both spaces, Java's
//! and Go's escaping both decode, and a bad percent sequence is an error rather than a guess.

use std::collections::BTreeMap;

use crate::model::provider::{Protocol, Provider, RegistryScope, ServiceRef};

/// Why a provider URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DubboUrlError {
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    #[error("bad URL encoding: {0}")]
    Encoding(String),
    /// No `://` after the scheme.
    #[error("no `://` in {0:?}")]
    NoScheme(String),
    /// The authority has no usable port.
    #[error("no valid port in {0:?}")]
    Port(String),
    /// The host is empty.
    #[error("empty host in {0:?}")]
    Host(String),
    /// Neither an `interface` parameter nor a path names the service.
    #[error("no interface in {0:?}")]
    NoInterface(String),
}

/// A parsed Dubbo URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DubboUrl {
    /// The scheme: `dubbo`, `tri`, `rest`, `consumer`, `override`, …
    pub scheme: String,
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path without its leading slash (normally the interface).
    pub path: String,
    /// Query parameters; later duplicates win, as in Java's parser.
    pub params: BTreeMap<String, String>,
}

/// Percent-decodes `input`, with `+` as space (Java's `URLEncoder` and Go's `QueryEscape`).
pub fn url_decode(input: &str) -> Result<String, DubboUrlError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| DubboUrlError::Encoding(format!("bad escape at byte {i}")))?;
                out.push(hex);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DubboUrlError::Encoding("not UTF-8".to_owned()))
}

/// Percent-encodes like Java's `URLEncoder.encode(s, "UTF-8")`: letters, digits and `.-*_` stay,
/// space becomes `+`, every other byte `%XX` in upper case.
pub fn url_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3 / 2);
    for &b in input.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl DubboUrl {
    /// Parses a decoded URL string.
    pub fn parse(url: &str) -> Result<Self, DubboUrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| DubboUrlError::NoScheme(url.to_owned()))?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        // Credentials, if any, sit before the last '@'.
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) =
            split_host_port(host_port).ok_or_else(|| DubboUrlError::Port(url.to_owned()))?;
        if host.is_empty() {
            return Err(DubboUrlError::Host(url.to_owned()));
        }
        let mut params = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.trim();
            if !key.is_empty() {
                params.insert(key.to_owned(), value.trim().to_owned());
            }
        }
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            params,
        })
    }

    /// Decodes a registry node name or key segment (the whole URL, encoded once) and parses it.
    pub fn parse_encoded(encoded: &str) -> Result<Self, DubboUrlError> {
        Self::parse(&url_decode(encoded)?)
    }

    /// The interface: the `interface` parameter, else the path.
    pub fn interface(&self) -> Option<&str> {
        self.params
            .get("interface")
            .map(String::as_str)
            .filter(|i| !i.is_empty())
            .or(Some(self.path.as_str()).filter(|p| !p.is_empty()))
    }

    /// Turns a provider URL into a [`Provider`] in `scope`.
    pub fn into_provider(self, scope: RegistryScope) -> Result<Provider, DubboUrlError> {
        let interface = self
            .interface()
            .ok_or_else(|| DubboUrlError::NoInterface(self.path.clone()))?
            .to_owned();
        let service = ServiceRef::dubbo(
            &interface,
            self.params.get("group").map(String::as_str),
            self.params.get("version").map(String::as_str),
        );
        // Dubbo consumers skip providers with enabled=false or disabled=true (UrlUtils.isMatch).
        let healthy = self.params.get("enabled").map(String::as_str) != Some("false")
            && self.params.get("disabled").map(String::as_str) != Some("true");
        Ok(Provider {
            service,
            protocol: Protocol::from_scheme(&self.scheme),
            host: self.host,
            port: self.port,
            params: self.params,
            scope,
            registry_weight: None,
            healthy,
        })
    }
}

/// Children of the Dubbo root that are not interfaces (config centre, metadata, mapping).
pub const NON_INTERFACE_CHILDREN: &[&str] = &["config", "metadata", "mapping"];

/// URL schemes of registry entries that are not providers.
const NON_PROVIDER_SCHEMES: &[&str] = &[
    "consumer://",
    "override://",
    "route://",
    "condition://",
    "empty://",
];

/// Parses a provider node name (ZooKeeper) or last key segment (etcd): the whole provider URL,
/// encoded once. `Ok(None)` for entries Dubbo itself ignores there: no encoded `://`, consumers
/// and rules written by misconfigured tools, another category.
pub fn parse_provider_node(node: &str) -> Result<Option<Provider>, String> {
    // Java encodes `://` as upper-case escapes, but nothing forbids a lower-case writer.
    if !node.to_ascii_uppercase().contains("%3A%2F%2F") && !node.contains("://") {
        return Ok(None);
    }
    let decoded = url_decode(node).map_err(|e| e.to_string())?;
    // Checked before parsing: consumers legitimately have port 0.
    let lower = decoded.to_ascii_lowercase();
    if NON_PROVIDER_SCHEMES
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        return Ok(None);
    }
    let url = DubboUrl::parse(&decoded).map_err(|e| e.to_string())?;
    if url.params.get("category").is_some_and(|c| c != "providers") {
        return Ok(None);
    }
    url.into_provider(RegistryScope::Global)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn split_host_port(host_port: &str) -> Option<(&str, u16)> {
    // IPv6 literals come bracketed: [::1]:20880.
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port.parse().ok().filter(|p| *p != 0)?));
    }
    let (host, port) = host_port.rsplit_once(':')?;
    Some((host, port.parse().ok().filter(|p| *p != 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAVA_NODE: &str = "dubbo%3A%2F%2F30.225.21.30%3A20880%2Forg.apache.dubbo.registry.service.DemoService2%3Fanyhost%3Dtrue%26application%3Ddemo-provider2%26group%3Dgreeting%26interface%3Dorg.apache.dubbo.registry.service.DemoService2%26methods%3DsayHello%2CsayBye%26side%3Dprovider%26version%3D1.0.0";

    #[test]
    fn decodes_a_java_node_name() {
        let url = DubboUrl::parse_encoded(JAVA_NODE).unwrap();
        assert_eq!(url.scheme, "dubbo");
        assert_eq!((url.host.as_str(), url.port), ("30.225.21.30", 20880));
        assert_eq!(url.params["methods"], "sayHello,sayBye");
        let provider = url.into_provider(RegistryScope::default()).unwrap();
        assert_eq!(
            provider.service,
            ServiceRef::dubbo(
                "org.apache.dubbo.registry.service.DemoService2",
                Some("greeting"),
                Some("1.0.0")
            )
        );
        assert!(provider.healthy);
    }

    #[test]
    fn encoding_round_trips_like_java() {
        let raw = "dubbo://1.2.3.4:20880/a.B?methods=x,y&name=a b&star=*";
        let encoded = url_encode(raw);
        assert_eq!(
            encoded,
            "dubbo%3A%2F%2F1.2.3.4%3A20880%2Fa.B%3Fmethods%3Dx%2Cy%26name%3Da+b%26star%3D*"
        );
        assert_eq!(url_decode(&encoded).unwrap(), raw);
        assert_eq!(url_decode("a%20b+c").unwrap(), "a b c");
    }

    #[test]
    fn garbage_is_rejected_not_guessed() {
        assert!(matches!(url_decode("%zz"), Err(DubboUrlError::Encoding(_))));
        assert!(matches!(url_decode("%4"), Err(DubboUrlError::Encoding(_))));
        assert!(matches!(
            DubboUrl::parse("no-scheme"),
            Err(DubboUrlError::NoScheme(_))
        ));
        assert!(matches!(
            DubboUrl::parse("dubbo://1.2.3.4/x"),
            Err(DubboUrlError::Port(_))
        ));
        assert!(matches!(
            DubboUrl::parse("dubbo://1.2.3.4:0/x"),
            Err(DubboUrlError::Port(_))
        ));
        assert!(matches!(
            DubboUrl::parse("dubbo://:80/x"),
            Err(DubboUrlError::Host(_))
        ));
        let no_iface = DubboUrl::parse("dubbo://1.2.3.4:80/").unwrap();
        assert!(no_iface.into_provider(RegistryScope::default()).is_err());
    }

    #[test]
    fn ipv6_credentials_and_disabled_providers() {
        let url = DubboUrl::parse("tri://u:p@[fe80::1]:50051/a.B?enabled=false").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("fe80::1", 50051));
        let provider = url.into_provider(RegistryScope::default()).unwrap();
        assert_eq!(provider.protocol, Protocol::Triple);
        assert!(!provider.healthy);
    }

    #[test]
    fn zero_version_is_no_version() {
        assert_eq!(
            ServiceRef::dubbo("a.B", Some(""), Some("0.0.0")),
            ServiceRef::Dubbo {
                interface: "a.B".into(),
                group: None,
                version: None
            }
        );
    }
}
