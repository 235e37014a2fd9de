//! The Thrift codec against Apache Thrift's Python library (`tests/python/thrift_crosscheck.py`),
//! in both directions:
//!
//! 1. Python writes a randomized corpus (every protocol, transport and message type, multiplexed
//!    names, extreme seqids, nested argument structs, THeader info headers, exception replies);
//!    we decode every message and compare each field, and delimit unframed ones by walking them.
//! 2. We build exception replies, seqid-rewritten frames and THeader header rewrites from that
//!    corpus; Python decodes them and checks every field (and that the arguments survived).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use causeway_protocols::thrift::{
    ApplicationException, ExceptionKind, MessageType, Protocol, SeqidRewrite, ThriftMessage,
    Transport, message_len, rewrite_seqid, rewrite_theader_headers,
};
use causeway_tests::logs;
use causeway_tests::paths::workspace_root;
use causeway_tests::python::PythonEnv;
use serde_json::{Value, json};

/// Corpus size: enough to hit every protocol × transport × type combination several times
/// while the Python side stays around a second.
const COUNT: usize = 600;
const SEED: u64 = 20_261_121;

const NEW_SEQIDS: [i32; 8] = [0, 1, 127, 128, 300, -1, i32::MAX, i32::MIN];
const KINDS: [ExceptionKind; 4] = [
    ExceptionKind::UnknownMethod,
    ExceptionKind::InternalError,
    ExceptionKind::ProtocolError,
    ExceptionKind::Unknown,
];

#[test]
fn thrift_crosscheck_with_apache_thrift_python() -> anyhow::Result<()> {
    logs::init();
    let python = PythonEnv::shared()?;
    let script = workspace_root().join("tests/python/thrift_crosscheck.py");
    let dir = tempfile::tempdir()?;

    // Direction 1: Apache Thrift writes, we read.
    let corpus = dir.path().join("corpus.jsonl");
    run(python
        .command(&script)
        .arg("generate")
        .arg("--out")
        .arg(&corpus)
        .args(["--count", &COUNT.to_string(), "--seed", &SEED.to_string()]))?;
    let records = read_lines(&corpus)?;
    ensure!(records.len() == COUNT, "corpus has {} lines", records.len());

    let mut ours = Vec::new();
    let mut combinations = BTreeSet::new();
    for (index, record) in records.iter().enumerate() {
        let message = check_record(index, record)
            .with_context(|| format!("corpus line {}: {record}", index + 1))?;
        combinations.insert((
            message.header.protocol.as_str(),
            message.transport.as_str(),
            message.header.message_type.as_u8(),
        ));
        build_ours(index, record, &message, &mut ours)
            .with_context(|| format!("building from corpus line {}", index + 1))?;
    }
    // 2 protocols × 3 transports × 4 types.
    ensure!(
        combinations.len() == 24,
        "the corpus covers only {combinations:?}"
    );
    tracing::info!(
        messages = records.len(),
        built = ours.len(),
        "decoded Apache Thrift's corpus"
    );

    // Direction 2: we write, Apache Thrift reads.
    let ours_path = dir.path().join("ours.jsonl");
    let lines: Vec<String> = ours.iter().map(Value::to_string).collect();
    std::fs::write(&ours_path, lines.join("\n") + "\n")?;
    let report = run(python
        .command(&script)
        .arg("verify")
        .arg("--in")
        .arg(&ours_path))?;
    tracing::info!(%report, "Apache Thrift decoded our messages");
    Ok(())
}

/// Decodes one corpus record and compares every field with what Python wrote.
fn check_record(index: usize, record: &Value) -> anyhow::Result<ThriftMessage> {
    let bytes = hex::decode(text(record, "hex")?)?;
    let message = ThriftMessage::parse(&bytes)?;
    ensure!(message.transport.as_str() == text(record, "transport")?);
    ensure!(message.header.protocol.as_str() == text(record, "protocol")?);
    ensure!(message.header.strict == record["strict"].as_bool().context("strict")?);
    ensure!(message.header.name == text(record, "name")?);
    ensure!(u64::from(message.header.message_type.as_u8()) == number(record, "type")? as u64);
    ensure!(i64::from(message.header.seqid) == number(record, "seqid")?);
    ensure!(&message.frame[..] == &bytes[..]);

    let expected_headers = string_map(&record["headers"])?;
    match &message.theader {
        Some(theader) => {
            let got: BTreeMap<String, String> = theader.headers.iter().cloned().collect();
            ensure!(got == expected_headers, "headers {got:?}");
            ensure!(theader.seqid == message.header.seqid);
            ensure!(theader.protocol == message.header.protocol);
        }
        None => ensure!(expected_headers.is_empty()),
    }

    match (&record["exception"], message.exception()) {
        (Value::Null, None) => {}
        (expected, Some(decoded)) => {
            let decoded = decoded?;
            ensure!(decoded.message == text(expected, "message")?);
            ensure!(i64::from(decoded.kind.code()) == number(expected, "type")?);
        }
        (expected, None) => bail!("expected exception {expected}"),
    }

    if message.transport == Transport::Buffered {
        // Unframed: the struct walk must find exactly the end, and no earlier prefix may look
        // complete (all prefixes for some messages, a few cuts for the rest).
        ensure!(message_len(&bytes, usize::MAX, 64)? == Some(bytes.len()));
        let cuts: Vec<usize> = if index.is_multiple_of(10) {
            (0..bytes.len()).collect()
        } else {
            vec![0, bytes.len() / 2, bytes.len() - 1]
        };
        for cut in cuts {
            ensure!(
                message_len(&bytes[..cut], usize::MAX, 64)?.is_none(),
                "prefix {cut} looked complete"
            );
        }
    }
    Ok(message)
}

/// Adds what we build from one corpus message to `ours`: an exception reply for calls, a
/// seqid rewrite for everything, and an info-header rewrite for THeader frames.
fn build_ours(
    index: usize,
    record: &Value,
    message: &ThriftMessage,
    ours: &mut Vec<Value>,
) -> anyhow::Result<()> {
    let protocol = record["protocol"].clone();
    let transport = record["transport"].clone();

    if message.header.message_type == MessageType::Call {
        let kind = KINDS[index % KINDS.len()];
        let text = format!("causeway: no route for {} ✗", message.header.name);
        let reply = ApplicationException::new(kind, text.clone()).reply_to(message)?;
        ours.push(json!({
            "kind": "exception",
            "protocol": protocol,
            "transport": transport,
            "name": message.header.method(),
            "seqid": message.header.seqid,
            "headers": {},
            "message": text,
            "exception_type": kind.code(),
            "hex": hex::encode(&reply),
        }));
    }

    let new_seqid = NEW_SEQIDS[index % NEW_SEQIDS.len()];
    let mut frame = message.frame.to_vec();
    let rewritten = match rewrite_seqid(&mut frame, message.transport, new_seqid)? {
        SeqidRewrite::InPlace { old_seqid } => {
            ensure!(old_seqid == message.header.seqid);
            frame
        }
        SeqidRewrite::Resized { old_seqid, frame } => {
            ensure!(old_seqid == message.header.seqid);
            ensure!(message.header.protocol == Protocol::Compact);
            frame.to_vec()
        }
    };
    ours.push(json!({
        "kind": "rewrite",
        "protocol": protocol,
        "transport": transport,
        "name": message.header.name,
        "seqid": new_seqid,
        "headers": record["headers"],
        "hex": hex::encode(&rewritten),
        "original_hex": record["hex"],
    }));

    if let Some(theader) = &message.theader {
        let mut headers = theader.headers.clone();
        headers.retain(|(key, _)| key != "traceparent");
        headers.push((
            "traceparent".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
        ));
        let rebuilt = rewrite_theader_headers(&message.frame, &headers)?;
        let expected: BTreeMap<String, String> = headers.into_iter().collect();
        ours.push(json!({
            "kind": "headers",
            "protocol": protocol,
            "transport": transport,
            "name": message.header.name,
            "seqid": message.header.seqid,
            "headers": expected,
            "hex": hex::encode(&rebuilt),
            "original_hex": record["hex"],
        }));
    }
    Ok(())
}

/// Runs a command and returns its stdout; fails with both outputs on a non-zero exit.
fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout.trim().to_string())
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    std::fs::read_to_string(path)?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).with_context(|| format!("parse {line}")))
        .collect()
}

fn text<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    value[key]
        .as_str()
        .with_context(|| format!("{key} is not a string"))
}

fn number(value: &Value, key: &str) -> anyhow::Result<i64> {
    value[key]
        .as_i64()
        .with_context(|| format!("{key} is not an integer"))
}

fn string_map(value: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(object) = value.as_object() else {
        return Ok(BTreeMap::new());
    };
    object
        .iter()
        .map(|(key, value)| {
            let value = value.as_str().context("header value is not a string")?;
            Ok((key.clone(), value.to_string()))
        })
        .collect()
}
