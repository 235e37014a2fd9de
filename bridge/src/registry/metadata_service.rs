//! A minimal Dubbo client for the provider-side `MetadataService` (PROTOCOLS.md §5.2): a Dubbo 3
//! application instance with `dubbo.metadata.storage-type=local` (Dubbo's default) keeps its
//! `MetadataInfo` document to itself, so the bridge asks the provider for it.
//!
//! One call per (application, revision) — the caller caches the answer, as revisions are content
//! hashes — over a fresh TCP connection: `getMetadataInfo(String revision)` on
//! `org.apache.dubbo.metadata.MetadataService`, group = application name, version `1.0.0`, as a
//! two-way Hessian 2 request on the dubbo protocol (§1.6). The provider answers in the request's
//! serialization, so the response is Hessian 2 too: a result flag, then an
//! `org.apache.dubbo.metadata.MetadataInfo` object whose `services` map holds
//! `MetadataInfo$ServiceInfo` objects. Fields are looked up by name, never by position, because
//! hessian-lite chooses the field order and Dubbo versions add fields.
//!
//! The whole exchange (connect, write, read) runs under one deadline, so a provider that accepts
//! the connection and never answers cannot stall the registry adapter.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use causeway_protocols::dubbo::{
    Call, DubboCodec, DubboError, Frame, FrameError, ResultKind, encode_request,
};
use causeway_protocols::hessian::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder as _;

use crate::registry::dubbo_app::{
    CuratorInstance, ENDPOINTS_KEY, METADATA_SERVICE_KEY, MetadataInfo, ServiceInfo,
};

/// The MetadataService interface, also the request's service path.
pub const METADATA_SERVICE: &str = "org.apache.dubbo.metadata.MetadataService";
/// The MetadataService version every Dubbo 3 provider exports.
pub const METADATA_SERVICE_VERSION: &str = "1.0.0";
/// The method returning the `MetadataInfo` of one revision.
const METHOD: &str = "getMetadataInfo";
/// Its parameter descriptor: one `String`.
const PARAM_TYPES: &str = "Ljava/lang/String;";
/// The dubbo protocol version Java sends since 2.6.3; it also makes the provider answer with
/// the `*_WITH_ATTACHMENTS` result flags, which the response reader handles.
const DUBBO_VERSION: &str = "2.0.2";
/// The request id of the single call on each connection.
const REQUEST_ID: i64 = 1;
/// A metadata document is a few kilobytes per interface; anything near this is not one.
const MAX_RESPONSE_BODY: usize = 4 * 1024 * 1024;

/// Why a provider's metadata could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The instance names no usable MetadataService port.
    #[error("the instance gives no MetadataService port ({0})")]
    NoPort(String),
    /// The MetadataService is exported over a protocol this client does not speak.
    #[error("the MetadataService speaks {0:?}; only the dubbo protocol is supported")]
    UnsupportedProtocol(String),
    /// The whole exchange took longer than allowed.
    #[error("the MetadataService at {addr} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port` called.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// Connecting, writing or reading failed.
    #[error("the MetadataService at {addr}: {source}")]
    Io {
        /// `host:port` called.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The provider closed the connection before answering.
    #[error("the MetadataService at {addr} closed the connection without answering")]
    Closed {
        /// `host:port` called.
        addr: String,
    },
    /// The bytes received are not a Dubbo frame.
    #[error("the MetadataService's response: {0}")]
    Frame(#[from] FrameError),
    /// Encoding the request or reading the response body failed.
    #[error("the MetadataService call: {0}")]
    Dubbo(#[from] DubboError),
    /// The provider answered with a non-OK status (no such service, server error, …).
    #[error("the MetadataService answered status {status}: {message}")]
    Status {
        /// The status byte, named when known.
        status: String,
        /// The provider's message.
        message: String,
    },
    /// `getMetadataInfo` threw.
    #[error("getMetadataInfo threw {0}")]
    Exception(String),
    /// The provider does not know the revision (it answered `null`).
    #[error("the provider has no metadata for revision {0}")]
    UnknownRevision(String),
    /// The provider answered with another revision's document (it changed in between).
    #[error("asked for revision {asked}, the provider answered revision {answered}")]
    RevisionMismatch {
        /// The revision asked for.
        asked: String,
        /// The revision in the answer.
        answered: String,
    },
    /// The answer is not a `MetadataInfo` as Dubbo writes it.
    #[error("unexpected MetadataInfo: {0}")]
    Invalid(String),
}

/// Calls `getMetadataInfo(revision)` on the MetadataService of `instance`, reached at `address`
/// (normally the instance's address) on the port named by `dubbo.metadata-service.url-params`,
/// else the instance's dubbo endpoint or port. `timeout` bounds the whole exchange.
pub async fn fetch_metadata(
    address: &str,
    instance: &CuratorInstance,
    revision: &str,
    timeout: Duration,
) -> Result<MetadataInfo, MetadataError> {
    let port = metadata_service_port(instance)?;
    let addr = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let call = async {
        let mut stream = TcpStream::connect((address, port))
            .await
            .map_err(|source| io_error(&addr, source))?;
        // One small request; without this it could wait for Nagle's timer.
        stream
            .set_nodelay(true)
            .map_err(|source| io_error(&addr, source))?;
        let request = request_frame(&instance.name, revision, timeout)?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|source| io_error(&addr, source))?;
        read_response(&mut stream, &addr).await
    };
    let frame =
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| MetadataError::Timeout {
                addr: addr.clone(),
                timeout,
            })??;
    let info = metadata_from_response(&frame)?
        .ok_or_else(|| MetadataError::UnknownRevision(revision.to_owned()))?;
    if info.revision != revision {
        return Err(MetadataError::RevisionMismatch {
            asked: revision.to_owned(),
            answered: info.revision,
        });
    }
    Ok(info)
}

fn io_error(addr: &str, source: std::io::Error) -> MetadataError {
    MetadataError::Io {
        addr: addr.to_owned(),
        source,
    }
}

/// The MetadataService's port: `dubbo.metadata-service.url-params` (a JSON object whose `port`
/// Dubbo writes as a string), else the instance's `dubbo` endpoint, else its port — Dubbo
/// exports the MetadataService on the application's dubbo protocol port by default.
pub fn metadata_service_port(instance: &CuratorInstance) -> Result<u16, MetadataError> {
    let metadata = instance.metadata();
    if let Some(json) = metadata.get(METADATA_SERVICE_KEY) {
        let params: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| MetadataError::NoPort(format!("{METADATA_SERVICE_KEY}: {e}")))?;
        if let Some(protocol) = params.get("protocol").and_then(|p| p.as_str())
            && protocol != "dubbo"
        {
            return Err(MetadataError::UnsupportedProtocol(protocol.to_owned()));
        }
        let port = match params.get("port") {
            Some(serde_json::Value::String(port)) => port.parse::<u16>().ok(),
            Some(serde_json::Value::Number(port)) => {
                port.as_u64().and_then(|p| u16::try_from(p).ok())
            }
            _ => None,
        };
        if let Some(port) = port.filter(|p| *p != 0) {
            return Ok(port);
        }
    }
    #[derive(serde::Deserialize)]
    struct Endpoint {
        port: u16,
        protocol: String,
    }
    let endpoint_port = metadata
        .get(ENDPOINTS_KEY)
        .and_then(|json| serde_json::from_str::<Vec<Endpoint>>(json).ok())
        .and_then(|endpoints| {
            endpoints
                .into_iter()
                .find(|e| e.protocol == "dubbo")
                .map(|e| e.port)
        });
    endpoint_port
        .or(instance.port)
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            MetadataError::NoPort(format!(
                "no port in {METADATA_SERVICE_KEY}, no dubbo endpoint, no instance port"
            ))
        })
}

/// The request, with the attachments Java's `DubboProtocol` needs to find the exporter: it
/// looks it up by `group/path:version:port`, reading path, version and group from the
/// attachments (not from the body fields).
fn request_frame(app: &str, revision: &str, timeout: Duration) -> Result<Frame, MetadataError> {
    let timeout_ms = timeout.as_millis().to_string();
    let arguments = [Value::string(revision)];
    let attachments = [
        ("path", METADATA_SERVICE),
        ("interface", METADATA_SERVICE),
        ("version", METADATA_SERVICE_VERSION),
        ("group", app),
        ("timeout", timeout_ms.as_str()),
    ];
    let call = Call {
        dubbo_version: DUBBO_VERSION,
        service: METADATA_SERVICE,
        service_version: Some(METADATA_SERVICE_VERSION),
        method: METHOD,
        param_types: PARAM_TYPES,
        arguments: &arguments,
        attachments: &attachments,
    };
    Ok(encode_request(REQUEST_ID, true, &call)?)
}

/// Reads frames until the response to the call, skipping events (heartbeats, READONLY) and
/// anything addressed to another id.
async fn read_response(stream: &mut TcpStream, addr: &str) -> Result<Frame, MetadataError> {
    let mut codec = DubboCodec::with_max_body_len(MAX_RESPONSE_BODY);
    let mut buffer = BytesMut::with_capacity(8 * 1024);
    loop {
        while let Some(frame) = codec.decode(&mut buffer)? {
            let header = frame.header();
            if !header.is_request() && !header.is_event() && frame.request_id() == REQUEST_ID {
                return Ok(frame);
            }
        }
        let read = stream
            .read_buf(&mut buffer)
            .await
            .map_err(|source| io_error(addr, source))?;
        if read == 0 {
            return Err(MetadataError::Closed {
                addr: addr.to_owned(),
            });
        }
    }
}

/// The document in a response: `None` when the provider answered `null`.
fn metadata_from_response(frame: &Frame) -> Result<Option<MetadataInfo>, MetadataError> {
    let status = frame.header().status;
    let response = frame.response()?;
    if !status.is_ok() {
        return Err(MetadataError::Status {
            status: status.to_string(),
            message: response.error_message().unwrap_or("").to_owned(),
        });
    }
    let flag = response
        .result_flag()
        .ok_or_else(|| MetadataError::Invalid("OK response without a result flag".to_owned()))?;
    match flag.kind() {
        ResultKind::Null => Ok(None),
        ResultKind::Exception => {
            let exception = response.exception()?;
            Err(MetadataError::Exception(describe_exception(
                exception.as_ref(),
            )))
        }
        ResultKind::Value => match response.value()? {
            None | Some(Value::Null) => Ok(None),
            Some(value) => metadata_from_hessian(&value)
                .map(Some)
                .map_err(MetadataError::Invalid),
        },
    }
}

/// `class: detailMessage` of a Java throwable, as far as it can be read.
fn describe_exception(exception: Option<&Value>) -> String {
    let Some(Value::Object(object)) = exception else {
        return "an exception".to_owned();
    };
    match object.field("detailMessage").and_then(Value::as_str) {
        Some(message) => format!("{}: {message}", object.class.name),
        None => object.class.name.clone(),
    }
}

/// A field of a Java object, or an entry of a map standing for one.
fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Object(object) => object.field(name),
        Value::Map(map) => map.get_str(name),
        _ => None,
    }
}

/// A string field; `null` or absent is `None`.
fn opt_string(value: &Value, name: &str) -> Result<Option<String>, String> {
    match field(value, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("field {name} is {}, not a string", other.kind())),
    }
}

fn required_string(value: &Value, name: &str) -> Result<String, String> {
    opt_string(value, name)?.ok_or_else(|| format!("field {name} is missing"))
}

/// The entries of a map field (`null` or absent is empty). A back-reference (`Q`) would point at
/// a map seen earlier in the stream, which Dubbo does not write for these fields.
fn map_entries<'a>(value: &'a Value, name: &str) -> Result<&'a [(Value, Value)], String> {
    match field(value, name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Map(map)) => Ok(&map.entries),
        Some(other) => Err(format!("field {name} is {}, not a map", other.kind())),
    }
}

/// Converts the Hessian form of `org.apache.dubbo.metadata.MetadataInfo` (fields `app`,
/// `revision`, `services`: service key → `MetadataInfo$ServiceInfo` with `name`, `group`,
/// `version`, `protocol`, `port`, `path`, `params`; Dubbo 3.3 writes `services` as a typed
/// `ConcurrentHashMap`). Other fields (later additions) are ignored; so are non-string
/// parameters.
pub fn metadata_from_hessian(value: &Value) -> Result<MetadataInfo, String> {
    if !matches!(value, Value::Object(_) | Value::Map(_)) {
        return Err(format!("a {}, not an object", value.kind()));
    }
    let app = required_string(value, "app")?;
    let revision = required_string(value, "revision")?;
    let mut services = BTreeMap::new();
    for (key, service) in map_entries(value, "services")? {
        let key = key
            .as_str()
            .ok_or_else(|| format!("a service key is {}, not a string", key.kind()))?;
        let info =
            service_from_hessian(service).map_err(|reason| format!("service {key}: {reason}"))?;
        services.insert(key.to_owned(), info);
    }
    Ok(MetadataInfo {
        app,
        revision,
        services,
    })
}

fn service_from_hessian(value: &Value) -> Result<ServiceInfo, String> {
    if !matches!(value, Value::Object(_) | Value::Map(_)) {
        return Err(format!("a {}, not an object", value.kind()));
    }
    // Java's `int port` defaults to -1 when the URL has none.
    let port = match field(value, "port") {
        None | Some(Value::Null) => None,
        Some(port) => {
            let port = port
                .as_i64()
                .ok_or_else(|| format!("field port is {}, not a number", port.kind()))?;
            u16::try_from(port).ok().filter(|p| *p != 0)
        }
    };
    let params = map_entries(value, "params")?
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect();
    Ok(ServiceInfo {
        name: required_string(value, "name")?,
        group: opt_string(value, "group")?,
        version: opt_string(value, "version")?,
        protocol: opt_string(value, "protocol")?,
        port,
        path: opt_string(value, "path")?,
        params,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use causeway_protocols::dubbo::{Reply, encode_response};
    use causeway_protocols::hessian::{ClassDef, Map, Object};

    use super::*;

    fn string_map(pairs: &[(&str, &str)]) -> Value {
        Value::Map(Map::untyped(
            pairs
                .iter()
                .map(|(k, v)| (Value::string(*k), Value::string(*v)))
                .collect(),
        ))
    }

    /// What the Dubbo 3.3.6 sample provider returns (field order and map types as observed
    /// on the wire), plus a field the bridge does not know.
    fn java_metadata_info() -> Value {
        let service_class = Arc::new(ClassDef::new(
            "org.apache.dubbo.metadata.MetadataInfo$ServiceInfo",
            [
                "params", "path", "port", "protocol", "version", "group", "name",
            ],
        ));
        let greeter = Value::Object(Object::new(
            service_class.clone(),
            vec![
                string_map(&[("methods", "greet,place"), ("side", "provider")]),
                Value::string("com.acme.Greeter"),
                Value::Int(20880),
                Value::string("dubbo"),
                Value::string("1.0.0"),
                Value::Null,
                Value::string("com.acme.Greeter"),
            ],
        ));
        let orders = Value::Object(Object::new(
            service_class,
            vec![
                Value::Null,
                Value::Null,
                Value::Int(-1),
                Value::string("tri"),
                Value::Null,
                Value::string("g"),
                Value::string("com.acme.Orders"),
            ],
        ));
        let info_class = Arc::new(ClassDef::new(
            "org.apache.dubbo.metadata.MetadataInfo",
            ["services", "revision", "app", "extra"],
        ));
        Value::Object(Object::new(
            info_class,
            vec![
                Value::Map(Map::typed(
                    "java.util.concurrent.ConcurrentHashMap",
                    vec![
                        (Value::string("com.acme.Greeter:1.0.0:dubbo"), greeter),
                        (Value::string("g/com.acme.Orders:tri"), orders),
                    ],
                )),
                Value::string("a1b2"),
                Value::string("demo-provider"),
                Value::Bool(true),
            ],
        ))
    }

    #[test]
    fn converts_the_java_metadata_info_object() {
        let info = metadata_from_hessian(&java_metadata_info()).unwrap();
        assert_eq!(info.app, "demo-provider");
        assert_eq!(info.revision, "a1b2");
        assert_eq!(info.services.len(), 2);
        let greeter = &info.services["com.acme.Greeter:1.0.0:dubbo"];
        assert_eq!(
            greeter,
            &ServiceInfo {
                name: "com.acme.Greeter".into(),
                group: None,
                version: Some("1.0.0".into()),
                protocol: Some("dubbo".into()),
                port: Some(20880),
                path: Some("com.acme.Greeter".into()),
                params: [("methods", "greet,place"), ("side", "provider")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            }
        );
        let orders = &info.services["g/com.acme.Orders:tri"];
        assert_eq!(orders.port, None, "Java's -1 means no port");
        assert_eq!(orders.group.as_deref(), Some("g"));
        assert!(orders.params.is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_metadata_info() {
        assert!(metadata_from_hessian(&Value::string("x")).is_err());
        let no_app = Value::Map(Map::untyped(vec![(
            Value::string("revision"),
            Value::string("r"),
        )]));
        assert!(
            metadata_from_hessian(&no_app)
                .unwrap_err()
                .contains("app is missing")
        );
    }

    #[test]
    fn reads_the_value_null_and_error_responses() {
        let value = java_metadata_info();
        let frame = encode_response(
            REQUEST_ID,
            Reply::Value(&value),
            Some(&[("dubbo", "2.0.2")]),
        )
        .unwrap();
        let info = metadata_from_response(&frame).unwrap().unwrap();
        assert_eq!(info.services.len(), 2);

        let frame = encode_response(REQUEST_ID, Reply::Null, None).unwrap();
        assert!(metadata_from_response(&frame).unwrap().is_none());

        let request = request_frame("demo", "a1b2", Duration::from_secs(3)).unwrap();
        let error = causeway_protocols::dubbo::error_response(
            request.header(),
            causeway_protocols::dubbo::Status(60),
            "Not found exported service",
        )
        .unwrap();
        let message = metadata_from_response(&error).unwrap_err().to_string();
        assert!(message.contains("Not found exported service"), "{message}");
    }

    #[test]
    fn the_request_carries_what_java_needs_to_find_the_exporter() {
        let frame = request_frame("demo-provider", "a1b2", Duration::from_secs(3)).unwrap();
        let request = frame.request().unwrap();
        assert_eq!(request.service(), METADATA_SERVICE);
        assert_eq!(request.method(), METHOD);
        assert_eq!(request.param_types(), PARAM_TYPES);
        let attachments = request.attachments().unwrap();
        assert_eq!(attachments.get_str("group"), Some("demo-provider"));
        assert_eq!(attachments.get_str("version"), Some("1.0.0"));
        assert_eq!(attachments.get_str("path"), Some(METADATA_SERVICE));
    }

    #[test]
    fn finds_the_metadata_service_port() {
        let instance = |metadata: &str| {
            CuratorInstance::parse(
                format!(
                    r#"{{"name":"a","address":"10.0.0.5","port":20880,"payload":{{"metadata":{metadata}}}}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let params = instance(
            r#"{"dubbo.metadata-service.url-params":"{\"port\":\"20881\",\"protocol\":\"dubbo\"}"}"#,
        );
        assert_eq!(metadata_service_port(&params).unwrap(), 20881);
        let endpoints =
            instance(r#"{"dubbo.endpoints":"[{\"port\":20882,\"protocol\":\"dubbo\"}]"}"#);
        assert_eq!(metadata_service_port(&endpoints).unwrap(), 20882);
        assert_eq!(metadata_service_port(&instance("{}")).unwrap(), 20880);
        let tri = instance(
            r#"{"dubbo.metadata-service.url-params":"{\"port\":\"50051\",\"protocol\":\"tri\"}"}"#,
        );
        assert!(matches!(
            metadata_service_port(&tri),
            Err(MetadataError::UnsupportedProtocol(_))
        ));
    }
}
