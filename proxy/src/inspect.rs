//! `causeway-proxy inspect`: decodes captured frames and prints what the proxy sees, as JSON.
//!
//! This module owns the user-facing decoding tool: reading the input (hex argument, raw or hex
//! file, stdin), picking the protocol ([`detect`] unless `--protocol` says), walking every frame
//! of the input with the codecs of `causeway-protocols`, and the JSON shape of the report
//! (docs/inspect.md). It is read-only and never touches the network.
//!
//! One frame prints one JSON object; several print an array. A malformed frame prints
//! `{"error": {"offset": N, "reason": "..."}}` (offsets count bytes of the decoded input) and
//! makes the exit code 1; the frames before it are still reported.

use std::borrow::Cow;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::BytesMut;
use causeway_protocols::detect::{Detected, Detection, MAX_DETECT_LEN, detect};
use causeway_protocols::dubbo::{
    AttachmentValue, Attachments, DubboError, EventKind, Frame, FrameError, HEADER_LEN, Header,
    RequestView, ResponseView, ResultFlag, Serialization,
};
use causeway_protocols::grpc::{FRAME_HEADER_LEN, GrpcError, GrpcPath};
use causeway_protocols::hessian::Value;
use causeway_protocols::http::{TraceParent, request_authority};
use causeway_protocols::meta::RequestMeta;
use causeway_protocols::thrift::{MessageType, ThriftCodec, ThriftError, ThriftMessage};
use serde::Serialize;
use serde::ser::{SerializeMap as _, SerializeSeq as _, Serializer};
use tokio_util::codec::Decoder as _;

/// Exit code for an input that could not be read at all (missing file, unreadable stdin).
const EXIT_IO: u8 = 2;

/// Arguments of `causeway-proxy inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The frame(s) as hex (whitespace ignored), or `-` to read raw bytes from stdin. Without
    /// INPUT, --file or --hex-file, raw bytes are read from stdin.
    #[arg(value_name = "INPUT", conflicts_with_all = ["file", "hex_file"])]
    pub input: Option<String>,
    /// Read raw bytes (e.g. a capture's payload) from a file.
    #[arg(long, value_name = "PATH", conflicts_with = "hex_file")]
    pub file: Option<PathBuf>,
    /// Read hex text from a file (whitespace and newlines ignored).
    #[arg(long, value_name = "PATH")]
    pub hex_file: Option<PathBuf>,
    /// The protocol of the input; `auto` detects it from the first bytes.
    #[arg(long, value_enum, default_value = "auto")]
    pub protocol: ProtocolChoice,
    /// Also decode the values: Dubbo arguments and results as Hessian 2 values (Java class
    /// names and fields), gRPC message bytes as hex.
    #[arg(long)]
    pub values: bool,
    /// gRPC only: the request's `:path` (`/package.Service/Method`), to report service and
    /// method.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
}

/// The protocol to decode the input as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolChoice {
    /// Detect from the first bytes (Dubbo magic, Thrift headers, HTTP/1 methods), and take
    /// input that is exactly a run of 5-byte-prefixed messages as gRPC.
    Auto,
    /// Dubbo 2 frames.
    Dubbo,
    /// Thrift messages (any transport and protocol).
    Thrift,
    /// gRPC length-prefixed messages (the concatenated DATA of one stream).
    Grpc,
    /// HTTP/1 requests.
    Http,
}

/// What to decode and how much.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The protocol; `None` detects it.
    pub protocol: Option<ProtocolChoice>,
    /// Decode Hessian values and show message bytes.
    pub values: bool,
    /// The gRPC `:path`, if known.
    pub grpc_path: Option<String>,
}

/// The result of inspecting one input: one entry per frame, and errors.
#[derive(Debug)]
pub struct Report {
    entries: Vec<Entry>,
}

impl Report {
    /// `true` when every frame decoded.
    pub fn is_ok(&self) -> bool {
        !self.entries.iter().any(|e| matches!(e, Entry::Error(_)))
    }

    /// The report as the command prints it: an object for one entry, an array for several.
    pub fn to_json_string(&self) -> Result<String, serde_json::Error> {
        match self.entries.as_slice() {
            [one] => serde_json::to_string_pretty(one),
            many => serde_json::to_string_pretty(many),
        }
    }
}

/// Runs the subcommand: reads the input, prints the report on stdout, returns 0 if every frame
/// decoded, 1 if one is malformed, 2 if the input cannot be read.
pub fn run(args: &InspectArgs) -> ExitCode {
    let input = match read_input(args) {
        Ok(input) => input,
        Err(InputError::Io(reason)) => {
            let entry = Entry::error(None, None, reason);
            print_json(&serde_json::to_string_pretty(&entry));
            return ExitCode::from(EXIT_IO);
        }
        Err(InputError::Hex { offset, reason }) => {
            let entry = Entry::error(None, Some(offset), reason);
            print_json(&serde_json::to_string_pretty(&entry));
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        protocol: Some(args.protocol).filter(|p| *p != ProtocolChoice::Auto),
        values: args.values,
        grpc_path: args.path.clone(),
    };
    let report = inspect(&input, &options);
    print_json(&report.to_json_string());
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_json(json: &Result<String, serde_json::Error>) {
    let mut out = std::io::stdout().lock();
    // Serialising plain data cannot fail; if stdout is closed there is nobody to tell.
    if let Ok(json) = json {
        let _ = writeln!(out, "{json}");
    }
}

enum InputError {
    Io(String),
    Hex { offset: usize, reason: String },
}

fn read_input(args: &InspectArgs) -> Result<Vec<u8>, InputError> {
    if let Some(path) = &args.file {
        return std::fs::read(path)
            .map_err(|e| InputError::Io(format!("cannot read {}: {e}", path.display())));
    }
    if let Some(path) = &args.hex_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::Io(format!("cannot read {}: {e}", path.display())))?;
        return parse_hex(&text);
    }
    match args.input.as_deref() {
        Some("-") | None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|e| InputError::Io(format!("cannot read stdin: {e}")))?;
            Ok(bytes)
        }
        Some(text) => parse_hex(text),
    }
}

/// Hex digits to bytes, ignoring whitespace; an error names the character offset in the text.
fn parse_hex(text: &str) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::with_capacity(text.len() / 2);
    let mut high: Option<(usize, u8)> = None;
    for (offset, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        let Some(nibble) = c.to_digit(16).and_then(|d| u8::try_from(d).ok()) else {
            return Err(InputError::Hex {
                offset,
                reason: format!("invalid hex digit {c:?} at character {offset} of the input"),
            });
        };
        high = match high {
            None => Some((offset, nibble)),
            Some((_, h)) => {
                bytes.push((h << 4) | nibble);
                None
            }
        };
    }
    if let Some((offset, _)) = high {
        return Err(InputError::Hex {
            offset,
            reason: "odd number of hex digits".to_owned(),
        });
    }
    Ok(bytes)
}

/// Decodes every frame of `input`.
pub fn inspect(input: &[u8], options: &Options) -> Report {
    let mut entries = Vec::new();
    let protocol = match options.protocol {
        Some(protocol) if protocol != ProtocolChoice::Auto => protocol,
        _ => match auto_detect(input) {
            Ok(protocol) => protocol,
            Err(error) => {
                entries.push(error);
                return Report { entries };
            }
        },
    };
    match protocol {
        ProtocolChoice::Dubbo | ProtocolChoice::Auto => dubbo_frames(input, options, &mut entries),
        ProtocolChoice::Thrift => thrift_frames(input, &mut entries),
        ProtocolChoice::Grpc => grpc_frames(input, options, &mut entries),
        ProtocolChoice::Http => http_requests(input, &mut entries),
    }
    if entries.is_empty() {
        entries.push(Entry::error(
            Some(protocol_name(protocol)),
            Some(0),
            "empty input".to_owned(),
        ));
    }
    Report { entries }
}

fn protocol_name(protocol: ProtocolChoice) -> &'static str {
    match protocol {
        ProtocolChoice::Auto | ProtocolChoice::Dubbo => "dubbo",
        ProtocolChoice::Thrift => "thrift",
        ProtocolChoice::Grpc => "grpc",
        ProtocolChoice::Http => "http",
    }
}

fn auto_detect(input: &[u8]) -> Result<ProtocolChoice, Entry> {
    // gRPC has no signature: take input made exactly of length-prefixed messages as gRPC. The
    // other protocols' first bytes almost never tile a whole capture this way.
    if grpc_tiles(input) {
        return Ok(ProtocolChoice::Grpc);
    }
    let prefix = input.get(..MAX_DETECT_LEN).unwrap_or(input);
    match detect(prefix) {
        Detection::Detected(Detected::Dubbo) => Ok(ProtocolChoice::Dubbo),
        Detection::Detected(Detected::Thrift { .. }) => Ok(ProtocolChoice::Thrift),
        Detection::Detected(Detected::Http1) => Ok(ProtocolChoice::Http),
        Detection::Detected(Detected::Http2) => Err(Entry::error(
            Some("http2"),
            Some(0),
            "HTTP/2 connection preface: HTTP/2 frames are not decoded; pass the DATA of a gRPC \
             stream with --protocol grpc"
                .to_owned(),
        )),
        Detection::NeedMore => Err(Entry::error(
            None,
            Some(input.len()),
            format!(
                "too few bytes ({}) to detect the protocol; pass --protocol",
                input.len()
            ),
        )),
        Detection::Unknown => Err(Entry::error(
            None,
            Some(0),
            "unknown protocol: not Dubbo, Thrift, gRPC or HTTP/1 (pass --protocol to force one)"
                .to_owned(),
        )),
    }
}

fn grpc_tiles(input: &[u8]) -> bool {
    let mut rest = input;
    while let Some(&[flag, l0, l1, l2, l3]) = rest.get(..FRAME_HEADER_LEN) {
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        if flag > 1 || rest.len() - FRAME_HEADER_LEN < len {
            return false;
        }
        rest = &rest[FRAME_HEADER_LEN + len..];
    }
    !input.is_empty() && rest.is_empty()
}

// === Report entries ===

/// One element of the output: a decoded frame or an error.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Entry {
    Frame(Box<FrameReport>),
    Error(ErrorEntry),
}

#[derive(Debug, Serialize)]
struct ErrorEntry {
    error: ErrorReport,
}

#[derive(Debug, Serialize)]
struct ErrorReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<usize>,
    reason: String,
}

impl Entry {
    fn error(protocol: Option<&'static str>, offset: Option<usize>, reason: String) -> Self {
        Entry::Error(ErrorEntry {
            error: ErrorReport {
                protocol,
                offset,
                reason,
            },
        })
    }

    fn frame(report: FrameReport) -> Self {
        Entry::Frame(Box::new(report))
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
enum FrameReport {
    Dubbo(Box<DubboReport>),
    Thrift(ThriftReport),
    Grpc(GrpcReport),
    Http(HttpReport),
}

/// The protocol-neutral view routing and metrics use ([`RequestMeta`]), without the
/// attributes (the report shows them already as attachments or headers).
#[derive(Debug, Serialize)]
struct MetaReport {
    protocol: &'static str,
    service: Option<String>,
    method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    version: Option<String>,
    group: Option<String>,
    request_id: Option<i64>,
    one_way: bool,
    header_bytes: usize,
    body_bytes: u64,
}

impl From<&RequestMeta<'_>> for MetaReport {
    fn from(meta: &RequestMeta<'_>) -> Self {
        let own = |s: &Option<Cow<'_, str>>| s.as_deref().map(str::to_owned);
        MetaReport {
            protocol: meta.protocol.as_str(),
            service: own(&meta.service),
            method: meta.method.to_string(),
            path: own(&meta.path),
            version: own(&meta.version),
            group: own(&meta.group),
            request_id: meta.request_id,
            one_way: meta.one_way,
            header_bytes: meta.sizes.header,
            body_bytes: meta.sizes.body,
        }
    }
}

/// A numeric code with its name, `null` when the code is not a known one.
#[derive(Debug, Serialize)]
struct Named {
    code: i64,
    name: Option<&'static str>,
}

/// An ordered JSON object whose repeated keys become arrays of values (`serde_json::Map` would
/// sort the keys; wire order is what a user compares with a capture).
#[derive(Debug)]
struct Grouped<T>(Vec<(String, Vec<T>)>);

impl<T> Default for Grouped<T> {
    fn default() -> Self {
        Grouped(Vec::new())
    }
}

impl<T> Grouped<T> {
    fn push(&mut self, key: &str, value: T) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, values)) => values.push(value),
            None => self.0.push((key.to_owned(), vec![value])),
        }
    }
}

impl<T: Serialize> Serialize for Grouped<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, values) in &self.0 {
            match values.as_slice() {
                [one] => map.serialize_entry(key, one)?,
                many => map.serialize_entry(key, many)?,
            }
        }
        map.end()
    }
}

// === Dubbo ===

#[derive(Debug, Serialize)]
struct DubboReport {
    offset: usize,
    length: usize,
    header: DubboHeaderReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<DubboRequestReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<DubboResponseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<DubboEventReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<MetaReport>,
}

#[derive(Debug, Serialize)]
struct DubboHeaderReport {
    kind: &'static str,
    two_way: bool,
    event: bool,
    serialization: Named,
    /// Responses only: requests carry 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Named>,
    request_id: i64,
    body_length: u32,
}

#[derive(Debug, Serialize)]
struct DubboRequestReport {
    dubbo_version: String,
    service: String,
    version: Option<String>,
    method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    generic_method: Option<String>,
    parameter_types: String,
    argument_count: usize,
    attachments: Grouped<AttachmentJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<HessianValues>,
}

#[derive(Debug, Serialize)]
struct DubboResponseReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_flag: Option<Named>,
    attachments: Grouped<AttachmentJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<HessianValues>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<HessianValues>,
}

#[derive(Debug, Serialize)]
struct DubboEventReport {
    kind: &'static str,
    /// The decoded body (Hessian 2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<HessianValues>,
}

/// An attachment value: a string, `null`, or any other Hessian value.
#[derive(Debug)]
enum AttachmentJson {
    Str(String),
    Null,
    Other(Box<Value>),
}

impl Serialize for AttachmentJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AttachmentJson::Str(s) => serializer.serialize_str(s),
            AttachmentJson::Null => serializer.serialize_unit(),
            AttachmentJson::Other(value) => Hessian::new(value, &[]).serialize(serializer),
        }
    }
}

fn attachments_json(attachments: &Attachments<'_>) -> Grouped<AttachmentJson> {
    let mut out = Grouped::default();
    for (key, value) in attachments.iter() {
        let value = match value {
            AttachmentValue::Str(s) => AttachmentJson::Str(s.to_string()),
            AttachmentValue::Null => AttachmentJson::Null,
            AttachmentValue::Other(v) => AttachmentJson::Other(Box::new(v.clone())),
        };
        out.push(key, value);
    }
    out
}

fn dubbo_frames(input: &[u8], options: &Options, entries: &mut Vec<Entry>) {
    let mut offset = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let header = match Header::decode(rest) {
            Ok(header) => header,
            Err(error) => {
                entries.push(dubbo_frame_error(offset, &error));
                return;
            }
        };
        let frame_len = header.frame_len();
        let Some(bytes) = rest.get(..frame_len) else {
            entries.push(Entry::error(
                Some("dubbo"),
                Some(input.len()),
                format!(
                    "truncated frame: the header announces {frame_len} bytes, the input has {}",
                    rest.len()
                ),
            ));
            return;
        };
        match Frame::from_bytes(BytesMut::from(bytes)) {
            Ok(frame) => entries.push(dubbo_report(&frame, offset, options).unwrap_or_else(
                |(at, error)| Entry::error(Some("dubbo"), Some(offset + HEADER_LEN + at), error),
            )),
            Err(error) => {
                entries.push(dubbo_frame_error(offset, &error));
                return;
            }
        }
        // The header delimits the frame, so a malformed body does not stop the next frame.
        offset += frame_len;
    }
}

fn dubbo_frame_error(offset: usize, error: &FrameError) -> Entry {
    let at = match error {
        FrameError::NegativeBodyLength { .. } => offset + 12,
        FrameError::Truncated { available, .. } => offset + available,
        _ => offset,
    };
    Entry::error(Some("dubbo"), Some(at), error.to_string())
}

/// A body error as (offset in the body, reason).
type BodyError = (usize, String);

fn body_error(view_args_offset: Option<(usize, usize)>) -> impl Fn(DubboError) -> BodyError {
    move |error| {
        let at = match &error {
            DubboError::Body { source, .. } => source.offset(),
            DubboError::UnexpectedValue { offset, .. } => *offset,
            // The descriptor is the string just before the arguments (ASCII, so one byte per
            // character): point at the offending character.
            DubboError::InvalidDescriptor { position, .. } => view_args_offset
                .map_or(0, |(args, len)| {
                    args.saturating_sub(len.saturating_sub(*position))
                }),
            _ => 0,
        };
        (at, error.to_string())
    }
}

fn dubbo_report(frame: &Frame, offset: usize, options: &Options) -> Result<Entry, BodyError> {
    let header = frame.header();
    let serialization = header.serialization();
    let mut report = DubboReport {
        offset,
        length: frame.as_bytes().len(),
        header: DubboHeaderReport {
            kind: if header.is_request() {
                "request"
            } else {
                "response"
            },
            two_way: header.is_two_way(),
            event: header.is_event(),
            serialization: Named {
                code: i64::from(serialization.0),
                name: serialization.name(),
            },
            status: header.is_response().then(|| Named {
                code: i64::from(header.status.0),
                name: header.status.name(),
            }),
            request_id: header.request_id,
            body_length: header.body_len,
        },
        request: None,
        response: None,
        event: None,
        note: None,
        meta: None,
    };
    if serialization != Serialization::HESSIAN2 {
        // Not malformed: the proxy routes such frames on the header alone.
        report.note = Some(format!(
            "the body is {serialization}; only hessian2 bodies are decoded"
        ));
        report.event = frame.event_kind().map(|kind| DubboEventReport {
            kind: event_kind_name(kind),
            data: None,
        });
        return Ok(Entry::frame(FrameReport::Dubbo(Box::new(report))));
    }
    if let Some(kind) = frame.event_kind() {
        let data = frame.event_data().map_err(body_error(None))?;
        report.event = Some(DubboEventReport {
            kind: event_kind_name(kind),
            data: Some(HessianValues::One(data)),
        });
    } else if header.is_request() {
        let view = frame.request().map_err(body_error(None))?;
        report.request = Some(dubbo_request(&view, options)?);
        let meta = RequestMeta::from_dubbo(frame).map_err(|e| (0, e.to_string()))?;
        report.meta = Some(MetaReport::from(&meta));
    } else {
        let view = frame.response().map_err(body_error(None))?;
        report.response = Some(dubbo_response(&view, options)?);
    }
    Ok(Entry::frame(FrameReport::Dubbo(Box::new(report))))
}

fn dubbo_request(
    view: &RequestView<'_>,
    options: &Options,
) -> Result<DubboRequestReport, BodyError> {
    let err = body_error(Some((view.arguments_offset(), view.param_types().len())));
    let argument_count = view.argument_count().map_err(&err)?;
    let generic_method = view.generic_method().map_err(&err)?.map(|m| m.into_owned());
    let attachments = view.attachments().map_err(&err)?;
    let arguments = if options.values {
        Some(HessianValues::Many(view.arguments().map_err(&err)?))
    } else {
        None
    };
    Ok(DubboRequestReport {
        dubbo_version: view.dubbo_version().to_owned(),
        service: view.service().to_owned(),
        version: view.service_version().map(str::to_owned),
        method: view.method().to_owned(),
        generic_method,
        parameter_types: view.param_types().to_owned(),
        argument_count,
        attachments: attachments_json(&attachments),
        arguments,
    })
}

fn dubbo_response(
    view: &ResponseView<'_>,
    options: &Options,
) -> Result<DubboResponseReport, BodyError> {
    let err = body_error(None);
    let attachments = view.attachments().map_err(&err)?;
    let (mut result, mut exception) = (None, None);
    if options.values {
        result = view.value().map_err(&err)?.map(HessianValues::One);
        exception = view.exception().map_err(&err)?.map(HessianValues::One);
    }
    Ok(DubboResponseReport {
        error_message: (!view.status().is_ok()).then(|| view.error_message().map(str::to_owned)),
        result_flag: view.result_flag().map(|flag| Named {
            code: i64::from(flag.code()),
            name: Some(result_flag_name(flag)),
        }),
        attachments: attachments_json(&attachments),
        result,
        exception,
    })
}

fn event_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Heartbeat => "heartbeat",
        EventKind::ReadOnly => "readonly",
        EventKind::Writeable => "writeable",
        EventKind::Other => "other",
    }
}

/// Java's `RESPONSE_*` constant names without the prefix.
fn result_flag_name(flag: ResultFlag) -> &'static str {
    match flag {
        ResultFlag::Exception => "EXCEPTION",
        ResultFlag::Value => "VALUE",
        ResultFlag::NullValue => "NULL_VALUE",
        ResultFlag::ExceptionWithAttachments => "EXCEPTION_WITH_ATTACHMENTS",
        ResultFlag::ValueWithAttachments => "VALUE_WITH_ATTACHMENTS",
        ResultFlag::NullValueWithAttachments => "NULL_VALUE_WITH_ATTACHMENTS",
    }
}

// === Hessian values as JSON ===

/// The Hessian values of one body (one stream), serialised with the stream's reference table.
#[derive(Debug)]
enum HessianValues {
    One(Value),
    Many(Vec<Value>),
}

impl Serialize for HessianValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            HessianValues::One(value) => {
                let refs = ref_table(std::slice::from_ref(value));
                Hessian::new(value, &refs).serialize(serializer)
            }
            HessianValues::Many(values) => {
                let refs = ref_table(values);
                let mut seq = serializer.serialize_seq(Some(values.len()))?;
                for value in values {
                    seq.serialize_element(&Hessian::new(value, &refs))?;
                }
                seq.end()
            }
        }
    }
}

/// The lists, maps and objects of a stream in the order they start, which is how `Q n`
/// references count them.
fn ref_table(values: &[Value]) -> Vec<&Value> {
    fn walk<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
        match value {
            Value::List(list) => {
                out.push(value);
                list.items.iter().for_each(|v| walk(v, out));
            }
            Value::Map(map) => {
                out.push(value);
                for (k, v) in &map.entries {
                    walk(k, out);
                    walk(v, out);
                }
            }
            Value::Object(object) => {
                out.push(value);
                object.fields.iter().for_each(|v| walk(v, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    values.iter().for_each(|v| walk(v, &mut out));
    out
}

/// One Hessian value as JSON (docs/inspect.md lists the mapping).
struct Hessian<'v> {
    value: &'v Value,
    refs: &'v [&'v Value],
}

impl<'v> Hessian<'v> {
    fn new(value: &'v Value, refs: &'v [&'v Value]) -> Self {
        Hessian { value, refs }
    }

    fn child(&self, value: &'v Value) -> Self {
        Hessian {
            value,
            refs: self.refs,
        }
    }
}

impl Serialize for Hessian<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i32(*i),
            Value::Long(l) => serializer.serialize_i64(*l),
            Value::Double(d) if d.is_finite() => serializer.serialize_f64(*d),
            // JSON has no NaN or infinities.
            Value::Double(d) => serializer.serialize_str(&d.to_string()),
            Value::String(s) => serializer.serialize_str(s),
            Value::Date(ms) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("$date", &iso8601(*ms))?;
                map.serialize_entry("ms", ms)?;
                map.end()
            }
            Value::Binary(bytes) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("$binary", &to_hex(bytes))?;
                map.serialize_entry("length", &bytes.len())?;
                map.end()
            }
            Value::List(list) => match &list.type_name {
                None => serializer.collect_seq(list.items.iter().map(|v| self.child(v))),
                Some(type_name) => {
                    let mut map = serializer.serialize_map(Some(2))?;
                    map.serialize_entry("$list", type_name)?;
                    map.serialize_entry("items", &Items(self, &list.items))?;
                    map.end()
                }
            },
            Value::Map(m) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("$map", &m.type_name)?;
                map.serialize_entry("entries", &Entries(self, &m.entries))?;
                map.end()
            }
            Value::Object(object) => {
                let mut map = serializer.serialize_map(Some(object.fields.len() + 1))?;
                map.serialize_entry("$class", &object.class.name)?;
                for (name, value) in object.class.fields.iter().zip(&object.fields) {
                    map.serialize_entry(name, &self.child(value))?;
                }
                map.end()
            }
            Value::Ref(index) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("$ref", index)?;
                let target = usize::try_from(*index)
                    .ok()
                    .and_then(|i| self.refs.get(i))
                    .map(|v| describe(v));
                map.serialize_entry("target", &target)?;
                map.end()
            }
        }
    }
}

/// A short name for a reference target: its class or type name.
fn describe(value: &Value) -> &str {
    match value {
        Value::Object(o) => &o.class.name,
        Value::List(l) => l.type_name.as_deref().unwrap_or("list"),
        Value::Map(m) => m.type_name.as_deref().unwrap_or("map"),
        other => other.kind(),
    }
}

struct Items<'a, 'v>(&'a Hessian<'v>, &'v [Value]);

impl Serialize for Items<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.1.iter().map(|v| self.0.child(v)))
    }
}

/// Map entries: a JSON object when every key is a distinct string, else `[key, value]` pairs.
struct Entries<'a, 'v>(&'a Hessian<'v>, &'v [(Value, Value)]);

impl Serialize for Entries<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let keys: Option<Vec<&str>> = self.1.iter().map(|(k, _)| k.as_str()).collect();
        let distinct = keys.as_ref().is_some_and(|keys| {
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.windows(2).all(|w| w[0] != w[1])
        });
        match keys {
            Some(keys) if distinct => {
                let mut map = serializer.serialize_map(Some(keys.len()))?;
                for (key, (_, value)) in keys.iter().zip(self.1) {
                    map.serialize_entry(key, &self.0.child(value))?;
                }
                map.end()
            }
            _ => serializer.collect_seq(
                self.1
                    .iter()
                    .map(|(k, v)| [self.0.child(k), self.0.child(v)]),
            ),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
fn iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

// === Thrift ===

#[derive(Debug, Serialize)]
struct ThriftReport {
    offset: usize,
    length: usize,
    transport: &'static str,
    thrift_protocol: &'static str,
    strict: bool,
    name: String,
    service: Option<String>,
    method: String,
    #[serde(rename = "type")]
    message_type: &'static str,
    seqid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    theader: Option<THeaderReport>,
    body_length: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<ThriftExceptionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<MetaReport>,
}

#[derive(Debug, Serialize)]
struct THeaderReport {
    flags: u16,
    seqid: i32,
    transforms: Vec<u64>,
    headers: Grouped<String>,
}

#[derive(Debug, Serialize)]
struct ThriftExceptionReport {
    message: String,
    #[serde(rename = "type")]
    kind: Named,
}

fn message_type_name(message_type: MessageType) -> &'static str {
    match message_type {
        MessageType::Call => "call",
        MessageType::Reply => "reply",
        MessageType::Exception => "exception",
        MessageType::Oneway => "oneway",
    }
}

fn thrift_offset(error: &ThriftError) -> usize {
    match error {
        ThriftError::Malformed { offset, .. }
        | ThriftError::BadVersion { offset, .. }
        | ThriftError::InvalidMessageType { offset, .. }
        | ThriftError::InvalidFieldType { offset, .. }
        | ThriftError::NegativeLength { offset, .. }
        | ThriftError::FrameTooLarge { offset, .. }
        | ThriftError::MessageTooLarge { offset, .. }
        | ThriftError::Truncated { offset, .. }
        | ThriftError::TooDeep { offset, .. }
        | ThriftError::UnsupportedTransform { offset, .. }
        | ThriftError::UnsupportedProtocol { offset, .. } => *offset,
        _ => 0,
    }
}

fn thrift_frames(input: &[u8], entries: &mut Vec<Entry>) {
    // The bytes are all in memory: no size limit beyond the input itself.
    let mut codec = ThriftCodec::new().max_frame_size(usize::MAX);
    let mut src = BytesMut::from(input);
    loop {
        let offset = input.len() - src.len();
        if src.is_empty() {
            return;
        }
        match codec.decode(&mut src) {
            Ok(Some(message)) => entries.push(thrift_report(&message, offset)),
            Ok(None) => {
                entries.push(Entry::error(
                    Some("thrift"),
                    Some(input.len()),
                    format!(
                        "truncated message: the input ends inside the message that starts at \
                         byte {offset}"
                    ),
                ));
                return;
            }
            Err(error) => {
                // The stream cannot be resynchronised after a framing error.
                entries.push(Entry::error(
                    Some("thrift"),
                    Some(offset + thrift_offset(&error)),
                    error.to_string(),
                ));
                return;
            }
        }
    }
}

fn thrift_report(message: &ThriftMessage, offset: usize) -> Entry {
    let header = &message.header;
    let exception = match message.exception() {
        None => None,
        Some(Ok(exception)) => Some(ThriftExceptionReport {
            message: exception.message,
            kind: Named {
                code: i64::from(exception.kind.code()),
                name: Some(exception.kind.name()),
            },
        }),
        Some(Err(error)) => {
            let body = offset + message.message_offset + header.len;
            return Entry::error(
                Some("thrift"),
                Some(body + thrift_offset(&error)),
                format!("exception body: {error}"),
            );
        }
    };
    let theader = message.theader.as_ref().map(|theader| {
        let mut headers = Grouped::default();
        for (k, v) in &theader.headers {
            headers.push(k, v.clone());
        }
        THeaderReport {
            flags: theader.flags,
            seqid: theader.seqid,
            transforms: theader.transforms.clone(),
            headers,
        }
    });
    Entry::frame(FrameReport::Thrift(ThriftReport {
        offset,
        length: message.frame.len(),
        transport: message.transport.as_str(),
        thrift_protocol: header.protocol.as_str(),
        strict: header.strict,
        name: header.name.clone(),
        service: header.service().map(str::to_owned),
        method: header.method().to_owned(),
        message_type: message_type_name(header.message_type),
        seqid: header.seqid,
        theader,
        body_length: message.body().len(),
        exception,
        meta: RequestMeta::from_thrift(message)
            .ok()
            .map(|meta| MetaReport::from(&meta)),
    }))
}

// === gRPC ===

#[derive(Debug, Serialize)]
struct GrpcReport {
    offset: usize,
    length: usize,
    compressed: bool,
    message_length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<GrpcPathReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<MetaReport>,
}

#[derive(Debug, Serialize)]
struct GrpcPathReport {
    service: String,
    package: Option<String>,
    method: String,
}

fn grpc_frames(input: &[u8], options: &Options, entries: &mut Vec<Entry>) {
    let path = match options.grpc_path.as_deref().map(GrpcPath::parse) {
        None => None,
        Some(Ok(path)) => Some(path),
        Some(Err(error)) => {
            let at = match &error {
                GrpcError::InvalidPath { offset, .. } => *offset,
                _ => 0,
            };
            entries.push(Entry::error(
                Some("grpc"),
                Some(at),
                format!("--path: {error} (the offset counts characters of --path)"),
            ));
            return;
        }
    };
    let empty = http::HeaderMap::new();
    let meta = options
        .grpc_path
        .as_deref()
        .and_then(|p| RequestMeta::from_grpc(p, &empty).ok())
        .map(|meta| MetaReport::from(&meta));
    let mut offset = 0;
    while offset < input.len() {
        let rest = &input[offset..];
        let Some(&[flag, l0, l1, l2, l3]) = rest.get(..FRAME_HEADER_LEN) else {
            entries.push(Entry::error(
                Some("grpc"),
                Some(input.len()),
                format!(
                    "truncated message prefix: {} of 5 bytes",
                    rest.len().min(FRAME_HEADER_LEN)
                ),
            ));
            return;
        };
        if flag > 1 {
            entries.push(Entry::error(
                Some("grpc"),
                Some(offset),
                format!("invalid compressed flag {flag} (expected 0 or 1)"),
            ));
            return;
        }
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        let total = FRAME_HEADER_LEN + len as usize;
        let Some(message) = rest.get(FRAME_HEADER_LEN..total) else {
            entries.push(Entry::error(
                Some("grpc"),
                Some(input.len()),
                format!(
                    "truncated message: the prefix announces {len} bytes, the input has {}",
                    rest.len() - FRAME_HEADER_LEN
                ),
            ));
            return;
        };
        entries.push(Entry::frame(FrameReport::Grpc(GrpcReport {
            offset,
            length: total,
            compressed: flag == 1,
            message_length: len,
            path: path.map(|p| GrpcPathReport {
                service: p.service.to_owned(),
                package: p.package().map(str::to_owned),
                method: p.method.to_owned(),
            }),
            message_hex: options.values.then(|| to_hex(message)),
            meta: None,
        })));
        offset += total;
    }
    // The path names the call, not one message: the meta goes with the first message.
    if let Some(Entry::Frame(first)) = entries.first_mut()
        && let FrameReport::Grpc(report) = first.as_mut()
    {
        report.meta = meta;
    }
}

// === HTTP/1 ===

#[derive(Debug, Serialize)]
struct HttpReport {
    offset: usize,
    length: usize,
    method: String,
    target: String,
    version: String,
    headers: Grouped<String>,
    authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<TraceparentReport>,
    body_length: usize,
    chunked: bool,
    meta: MetaReport,
}

#[derive(Debug, Serialize)]
struct TraceparentReport {
    value: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sampled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// An HTTP parse error: (offset in the input, reason).
type HttpError = (usize, String);

fn http_requests(input: &[u8], entries: &mut Vec<Entry>) {
    let mut offset = 0;
    while offset < input.len() {
        match http_request(input, offset) {
            Ok((report, next)) => {
                entries.push(Entry::frame(FrameReport::Http(report)));
                offset = next;
            }
            Err((at, reason)) => {
                entries.push(Entry::error(Some("http"), Some(at), reason));
                return;
            }
        }
    }
}

/// Reads one line starting at `at`: returns the line (without CRLF or LF) and the next offset.
fn line(input: &[u8], at: usize) -> Result<(&[u8], usize), HttpError> {
    let rest = input.get(at..).unwrap_or_default();
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return Err((
            input.len(),
            "truncated: the input ends before the end of the line".to_owned(),
        ));
    };
    let line = &rest[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok((line, at + end + 1))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn http_request(input: &[u8], start: usize) -> Result<(HttpReport, usize), HttpError> {
    let (request_line, mut at) = line(input, start)?;
    let mut parts = request_line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err((
            start,
            "request line is not 'METHOD TARGET VERSION'".to_owned(),
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err((start, "invalid method".to_owned()));
    }
    let target_at = start + method.len() + 1;
    let version_at = target_at + target.len() + 1;
    if !matches!(version, b"HTTP/1.1" | b"HTTP/1.0") {
        return Err((version_at, "version is not HTTP/1.0 or HTTP/1.1".to_owned()));
    }
    let method_str = String::from_utf8_lossy(method).into_owned();
    let target_str = std::str::from_utf8(target)
        .map_err(|_| (target_at, "request target is not ASCII".to_owned()))?;
    let http_method =
        http::Method::from_bytes(method).map_err(|e| (start, format!("invalid method: {e}")))?;
    let uri: http::Uri = target_str
        .parse()
        .map_err(|e| (target_at, format!("invalid request target: {e}")))?;

    let mut headers = Grouped::default();
    let mut map = http::HeaderMap::new();
    loop {
        let line_at = at;
        let (header_line, next) = line(input, at)?;
        at = next;
        if header_line.is_empty() {
            break;
        }
        if matches!(header_line.first(), Some(b' ' | b'\t')) {
            return Err((line_at, "obsolete line folding".to_owned()));
        }
        let Some(colon) = header_line.iter().position(|&b| b == b':') else {
            return Err((line_at, "header line without ':'".to_owned()));
        };
        let name = &header_line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err((line_at, "invalid header name".to_owned()));
        }
        let value = header_line[colon + 1..].trim_ascii();
        let header_name = http::HeaderName::from_bytes(name)
            .map_err(|e| (line_at, format!("invalid header name: {e}")))?;
        let header_value = http::HeaderValue::from_bytes(value)
            .map_err(|e| (line_at + colon + 1, format!("invalid header value: {e}")))?;
        headers.push(
            &String::from_utf8_lossy(name),
            String::from_utf8_lossy(value).into_owned(),
        );
        map.append(header_name, header_value);
    }

    let (body_length, chunked, end) = http_body(input, at, &map)?;
    let traceparent = map.get(causeway_protocols::http::TRACEPARENT).map(|value| {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match TraceParent::parse(&text) {
            Ok(parent) => TraceparentReport {
                valid: true,
                trace_id: Some(parent.trace_id.to_string()),
                parent_id: Some(parent.parent_id.to_string()),
                sampled: Some(parent.sampled()),
                error: None,
                value: text,
            },
            Err(error) => TraceparentReport {
                valid: false,
                trace_id: None,
                parent_id: None,
                sampled: None,
                error: Some(error.to_string()),
                value: text,
            },
        }
    });
    let mut meta = RequestMeta::from_http(&http_method, &uri, &map);
    meta.sizes.header = at - start;
    meta.sizes.body = body_length as u64;
    let report = HttpReport {
        offset: start,
        length: end - start,
        method: method_str,
        target: target_str.to_owned(),
        version: String::from_utf8_lossy(version).into_owned(),
        headers,
        authority: request_authority(&uri, &map),
        traceparent,
        body_length,
        chunked,
        meta: MetaReport::from(&meta),
    };
    Ok((report, end))
}

/// Delimits the body starting at `at`: (body length, chunked, offset after the body).
fn http_body(
    input: &[u8],
    at: usize,
    headers: &http::HeaderMap,
) -> Result<(usize, bool, usize), HttpError> {
    let chunked = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back()
        .is_some_and(|last| last.eq_ignore_ascii_case("chunked"));
    let lengths: Vec<&[u8]> = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if chunked {
        if !lengths.is_empty() {
            // Request smuggling territory: RFC 9112 §6.1 lets a proxy reject it.
            return Err((
                at,
                "both Transfer-Encoding: chunked and Content-Length".to_owned(),
            ));
        }
        return chunked_body(input, at).map(|(len, end)| (len, true, end));
    }
    let Some(first) = lengths.first() else {
        return Ok((0, false, at));
    };
    if lengths.iter().any(|l| l != first) {
        return Err((at, "conflicting Content-Length headers".to_owned()));
    }
    let len: usize = std::str::from_utf8(first)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or((at, "invalid Content-Length".to_owned()))?;
    let end = at.saturating_add(len);
    if end > input.len() {
        return Err((
            input.len(),
            format!(
                "truncated body: Content-Length {len}, the input has {}",
                input.len() - at
            ),
        ));
    }
    Ok((len, false, end))
}

/// Walks a chunked body: (decoded length, offset after the trailers).
fn chunked_body(input: &[u8], mut at: usize) -> Result<(usize, usize), HttpError> {
    let mut total = 0usize;
    loop {
        let size_at = at;
        let (size_line, next) = line(input, at)?;
        let digits = size_line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(digits)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 16)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or((size_at, "invalid chunk size".to_owned()))?;
        at = next;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let (trailer, next) = line(input, at)?;
                at = next;
                if trailer.is_empty() {
                    return Ok((total, at));
                }
            }
        }
        let data_end = at
            .checked_add(size)
            .filter(|end| *end <= input.len())
            .ok_or((input.len(), "truncated chunk".to_owned()))?;
        total = total.saturating_add(size);
        at = data_end;
        let (rest, next) = line(input, at)?;
        if !rest.is_empty() {
            return Err((at, "chunk data is not followed by CRLF".to_owned()));
        }
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(input: &[u8], options: &Options) -> serde_json::Value {
        let report = inspect(input, options);
        serde_json::from_str(&report.to_json_string().unwrap()).unwrap()
    }

    #[test]
    fn hex_input() {
        assert!(matches!(parse_hex("da bb\n0a"), Ok(b) if b == [0xda, 0xbb, 0x0a]));
        assert!(matches!(
            parse_hex("dax"),
            Err(InputError::Hex { offset: 2, .. })
        ));
        assert!(matches!(
            parse_hex("dab"),
            Err(InputError::Hex { offset: 2, .. })
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(894_621_091_000), "1998-05-08T09:51:31.000Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn http_pipelined_and_chunked() {
        let input = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                      3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n";
        let out = json(input, &Options::default());
        assert_eq!(out[0]["body_length"], 3);
        assert_eq!(out[0]["chunked"], true);
        assert_eq!(out[1]["target"], "/b");
        assert_eq!(out[1]["authority"], "y");
    }

    #[test]
    fn http_errors_have_offsets() {
        let out = json(
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            &Options::default(),
        );
        assert_eq!(out["error"]["offset"], 16);
        let out = json(
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
            &Options::default(),
        );
        assert_eq!(out["error"]["offset"], 41);
    }

    /// Every golden vector, cut at every length and with every byte corrupted, under every
    /// protocol choice: a report that serialises, never a panic; cut frames are errors.
    #[test]
    fn damaged_vectors_give_json_not_panics() {
        let mut inputs = Vec::new();
        for file in ["dubbo-frames.json", "thrift-frames.json"] {
            let path = format!("{}/../../shared/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            for v in json["vectors"].as_array().unwrap() {
                let Ok(bytes) = parse_hex(v["hex"].as_str().unwrap()) else {
                    panic!("bad vector hex");
                };
                inputs.push(bytes);
            }
        }
        let choices = [
            ProtocolChoice::Auto,
            ProtocolChoice::Dubbo,
            ProtocolChoice::Thrift,
            ProtocolChoice::Grpc,
            ProtocolChoice::Http,
        ];
        for bytes in &inputs {
            let whole = inspect(bytes, &Options::default());
            assert!(whole.is_ok());
            for len in 0..bytes.len() {
                assert!(
                    !inspect(&bytes[..len], &Options::default()).is_ok(),
                    "cut at {len}"
                );
            }
            for at in 0..bytes.len() {
                for flip in [0x00, 0xff, 0x80] {
                    let mut damaged = bytes.clone();
                    damaged[at] ^= flip;
                    for protocol in choices {
                        let options = Options {
                            protocol: Some(protocol),
                            values: true,
                            grpc_path: Some("/a.B/C".to_owned()),
                        };
                        let report = inspect(&damaged, &options);
                        let text = report.to_json_string().unwrap();
                        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
                        let entries = match &parsed {
                            serde_json::Value::Array(entries) => entries.clone(),
                            one => vec![one.clone()],
                        };
                        let errors = entries.iter().filter(|e| e.get("error").is_some()).count();
                        assert_eq!(report.is_ok(), errors == 0, "{parsed}");
                    }
                }
            }
        }
    }
}
