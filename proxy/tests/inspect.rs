//! `causeway-proxy inspect` end to end: the binary on the golden vectors (shared/vectors), every
//! input form, `--values`, multi-frame input, and malformed input (JSON error, exit code 1).

// Helpers outside `#[test]` functions panic on broken fixtures on purpose.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value as Json;

const DUBBO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/dubbo-frames.json"
);
const THRIFT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/thrift-frames.json"
);

fn vectors(path: &str) -> Vec<Json> {
    let file: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["vectors"].as_array().unwrap().clone()
}

fn vector(path: &str, name: &str) -> Json {
    vectors(path)
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn hex_of(v: &Json) -> String {
    v["hex"].as_str().unwrap().to_owned()
}

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap()
}

fn inspect_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
        .arg("inspect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Parses stdout and checks the exit code.
fn json(output: &Output, code: i32) -> Json {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A status-20 Dubbo response whose value (flag 1) is the given Hessian bytes.
fn dubbo_response(value_hex: &str) -> String {
    let body = format!("91{value_hex}");
    format!("dabb02140000000000000008{:08x}{body}", body.len() / 2)
}

#[test]
fn dubbo_vectors_header_and_views() {
    for v in vectors(DUBBO) {
        let name = v["name"].as_str().unwrap();
        let out = json(&inspect(&[&hex_of(&v)]), 0);
        assert_eq!(out["protocol"], "dubbo", "{name}");
        let header = &out["header"];
        let kind = if v["request"] == true {
            "request"
        } else {
            "response"
        };
        assert_eq!(header["kind"], kind, "{name}");
        assert_eq!(header["two_way"], v["two_way"], "{name}");
        assert_eq!(header["event"], v["event"], "{name}");
        assert_eq!(header["serialization"]["code"], v["serialization_id"]);
        assert_eq!(header["serialization"]["name"], "hessian2");
        assert_eq!(header["request_id"], v["request_id"], "{name}");
        assert_eq!(header["body_length"], v["body_len"], "{name}");
        if v["request"] == false {
            assert_eq!(header["status"]["code"], v["status"], "{name}");
        }
        if v["event"] == true {
            let expected = if v["event_data"].is_null() {
                "heartbeat"
            } else {
                "readonly"
            };
            assert_eq!(out["event"]["kind"], expected, "{name}");
            assert_eq!(out["event"]["data"], v["event_data"], "{name}");
        } else if v["request"] == true {
            let request = &out["request"];
            for field in ["dubbo_version", "service", "method"] {
                assert_eq!(request[field], v[field], "{name} {field}");
            }
            assert_eq!(request["version"], v["service_version"]);
            assert_eq!(request["parameter_types"], v["param_types"]);
            assert_eq!(request["attachments"], v["attachments"], "{name}");
            assert!(
                request.get("arguments").is_none(),
                "values only on --values"
            );
            assert_eq!(out["meta"]["service"], v["service"]);
            assert_eq!(out["meta"]["request_id"], v["request_id"]);
        } else if let Some(message) = v.get("error_message") {
            assert_eq!(out["response"]["error_message"], *message);
            assert_eq!(header["status"]["name"], "SERVICE_ERROR");
        } else {
            let response = &out["response"];
            assert_eq!(response["result_flag"]["code"], v["result_flag"], "{name}");
            assert_eq!(response["attachments"], v["response_attachments"], "{name}");
        }
    }
}

#[test]
fn values_show_java_classes_and_results() {
    let v = vector(DUBBO, "request_save_two_users_shared_classdef");
    let out = json(&inspect(&["--values", &hex_of(&v)]), 0);
    let args = out["request"]["arguments"].as_array().unwrap();
    assert_eq!(args.len(), 2);
    assert_eq!(args[0]["$class"], "demo.User");
    assert_eq!(args[0]["name"], "a");
    assert_eq!(args[1]["$class"], "demo.User");
    assert_eq!(args[1]["name"], "b");
    assert_eq!(out["request"]["attachments"]["group"], "g1");
    assert_eq!(out["meta"]["group"], "g1");

    let v = vector(DUBBO, "response_value_with_attachments");
    let out = json(&inspect(&["--values", &hex_of(&v)]), 0);
    assert_eq!(out["response"]["result"], "Hello world");
    assert_eq!(
        out["response"]["result_flag"]["name"],
        "VALUE_WITH_ATTACHMENTS"
    );
}

#[test]
fn values_map_hessian_kinds_to_json() {
    // ArrayList[u, u] with the second element a reference (`51 91`) to the first User.
    let list = "7a430964656d6f2e557365729302696403616765046e616d6560e29101615191";
    let out = json(&inspect(&["--values", &dubbo_response(list)]), 0);
    let result = &out["response"]["result"];
    assert_eq!(result[0]["$class"], "demo.User");
    assert_eq!(result[0]["id"], 2);
    assert_eq!(result[1]["$ref"], 1);
    assert_eq!(result[1]["target"], "demo.User");

    let out = json(
        &inspect(&["--values", &dubbo_response("4a0000011f71fb04cb")]),
        0,
    );
    assert_eq!(out["response"]["result"]["ms"], 1_234_567_890_123_i64);
    assert_eq!(
        out["response"]["result"]["$date"],
        "2009-02-13T23:31:30.123Z"
    );

    let out = json(&inspect(&["--values", &dubbo_response("23010203")]), 0);
    assert_eq!(out["response"]["result"]["$binary"], "010203");

    let treemap = "4d116a6176612e7574696c2e547265654d61700161915a";
    let out = json(&inspect(&["--values", &dubbo_response(treemap)]), 0);
    assert_eq!(out["response"]["result"]["$map"], "java.util.TreeMap");
    assert_eq!(out["response"]["result"]["entries"]["a"], 1);

    let int_array = "72045b696e749192";
    let out = json(&inspect(&["--values", &dubbo_response(int_array)]), 0);
    assert_eq!(out["response"]["result"]["$list"], "[int");
    assert_eq!(
        out["response"]["result"]["items"],
        serde_json::json!([1, 2])
    );
}

#[test]
fn thrift_vectors() {
    for v in vectors(THRIFT) {
        let name = v["name"].as_str().unwrap();
        let out = json(&inspect(&[&hex_of(&v)]), 0);
        assert_eq!(out["protocol"], "thrift", "{name}");
        assert_eq!(out["transport"], v["transport"], "{name}");
        assert_eq!(out["thrift_protocol"], v["protocol"], "{name}");
        assert_eq!(out["name"], v["method"], "{name}");
        assert_eq!(out["seqid"], v["seqid"], "{name}");
        let wire_name = v["method"].as_str().unwrap();
        let method = wire_name.split_once(':').map_or(wire_name, |(_, m)| m);
        assert_eq!(out["method"], method, "{name}");
        let kind = ["call", "reply", "exception", "oneway"]
            [v["message_type"].as_u64().unwrap() as usize - 1];
        assert_eq!(out["type"], kind, "{name}");
        if let Some(headers) = v.get("headers") {
            assert_eq!(out["theader"]["headers"], *headers, "{name}");
        }
        if let Some(exception) = v.get("exception") {
            assert_eq!(out["exception"]["message"], exception["message"]);
            assert_eq!(out["exception"]["type"]["code"], exception["type"]);
            assert!(out.get("meta").is_none(), "no request meta for replies");
        } else {
            assert_eq!(out["meta"]["request_id"], v["seqid"]);
        }
    }
    let v = vector(THRIFT, "binary_strict_call_multiplexed");
    let out = json(&inspect(&["--protocol", "thrift", &hex_of(&v)]), 0);
    assert_eq!(out["service"], "Calc");
    assert_eq!(out["meta"]["service"], "Calc");
}

#[test]
fn several_frames_make_an_array() {
    let hexes: Vec<String> = vectors(DUBBO).iter().map(hex_of).collect();
    let out = json(&inspect(&[&hexes.join("\n")]), 0);
    let frames = out.as_array().unwrap();
    assert_eq!(frames.len(), hexes.len());
    let mut offset = 0;
    for (frame, hex) in frames.iter().zip(&hexes) {
        assert_eq!(frame["offset"], offset);
        offset += hex.len() / 2;
    }
}

#[test]
fn malformed_frames_exit_1_with_an_offset() {
    let v = vector(DUBBO, "request_sayhello_world");
    let hex = hex_of(&v);
    // Cut in the middle: the header announces more than the input holds.
    let out = json(&inspect(&[&hex[..100]]), 1);
    assert_eq!(out["error"]["offset"], 50);
    assert!(
        out["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );

    // A long (0xff) where the method name string should be: body offset 47, frame offset 63.
    let mut bytes = hex::decode(&hex).unwrap();
    let method_at = 16 + (1 + 5) + (2 + 33) + (1 + 5);
    assert_eq!(bytes[method_at], 0x08, "length byte of \"sayHello\"");
    bytes[method_at] = 0xff;
    let out = json(&inspect(&[&hex::encode(&bytes)]), 1);
    assert_eq!(out["error"]["offset"], method_at);
    assert_eq!(out["error"]["protocol"], "dubbo");

    // A good frame followed by a bad one: both reported, exit 1.
    let two = format!("{hex}{}", &hex[..40]);
    let out = json(&inspect(&[&two]), 1);
    assert_eq!(out[0]["request"]["method"], "sayHello");
    assert_eq!(out[1]["error"]["offset"], 244 + 20);

    let thrift = hex_of(&vector(THRIFT, "binary_strict_call_ping_framed"));
    let out = json(&inspect(&[&thrift[..thrift.len() - 4]]), 1);
    assert_eq!(out["error"]["protocol"], "thrift");
    assert!(out["error"]["offset"].is_u64());

    let out = json(&inspect(&["0102030405060708"]), 1);
    assert!(
        out["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown protocol")
    );
    let out = json(&inspect(&["dabx"]), 1);
    assert_eq!(out["error"]["offset"], 3);
}

#[test]
fn stdin_and_files() {
    let v = vector(DUBBO, "heartbeat_request");
    let bytes = hex::decode(hex_of(&v)).unwrap();
    let out = json(&inspect_stdin(&[], &bytes), 0);
    assert_eq!(out["event"]["kind"], "heartbeat");
    let out = json(&inspect_stdin(&["-"], &bytes), 0);
    assert_eq!(out["header"]["request_id"], 4);

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frame.bin");
    std::fs::write(&raw, &bytes).unwrap();
    let out = json(&inspect(&["--file", raw.to_str().unwrap()]), 0);
    assert_eq!(out["event"]["kind"], "heartbeat");
    let text = dir.path().join("frame.hex");
    std::fs::write(&text, "dabb e200 0000 0000\n0000 0004 0000 0001\n4e\n").unwrap();
    let out = json(&inspect(&["--hex-file", text.to_str().unwrap()]), 0);
    assert_eq!(out["header"]["request_id"], 4);

    let missing = dir.path().join("missing.bin");
    let out = json(&inspect(&["--file", missing.to_str().unwrap()]), 2);
    assert!(out["error"]["reason"].is_string());
}

#[test]
fn grpc_and_http() {
    let out = json(
        &inspect(&[
            "--path",
            "/helloworld.Greeter/SayHello",
            "--values",
            "000000000568656c6c6f",
        ]),
        0,
    );
    assert_eq!(out["protocol"], "grpc");
    assert_eq!(out["compressed"], false);
    assert_eq!(out["message_length"], 5);
    assert_eq!(out["path"]["service"], "helloworld.Greeter");
    assert_eq!(out["path"]["method"], "SayHello");
    assert_eq!(out["message_hex"], "68656c6c6f");

    let out = json(&inspect(&["--protocol", "grpc", "02000000"]), 1);
    assert_eq!(out["error"]["offset"], 4);

    let request = b"GET /api/users?x=1 HTTP/1.1\r\nHost: API.example.com:8080\r\n\
        traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
    let out = json(&inspect_stdin(&[], request), 0);
    assert_eq!(out["protocol"], "http");
    assert_eq!(out["method"], "GET");
    assert_eq!(out["target"], "/api/users?x=1");
    assert_eq!(out["authority"], "api.example.com");
    assert_eq!(out["traceparent"]["valid"], true);
    assert_eq!(
        out["traceparent"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(out["traceparent"]["sampled"], true);
    assert_eq!(out["meta"]["path"], "/api/users");
}

#[test]
fn run_flags_still_conflict_with_the_subcommand() {
    let output = Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
        .args(["--validate", "inspect", "00"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    // Run settings from the environment are not flags: they neither conflict nor get loaded.
    let output = Command::new(env!("CARGO_BIN_EXE_causeway-proxy"))
        .env("CAUSEWAY_PROXY_CONFIG", "/nonexistent/proxy.yaml")
        .env("CAUSEWAY_LOG_FORMAT", "json")
        .args(["inspect", "dabbe2000000000000000004000000014e"])
        .output()
        .unwrap();
    assert_eq!(json(&output, 0)["event"]["kind"], "heartbeat");
}

#[test]
fn other_serializations_show_the_header_only() {
    // A fastjson2 (23) heartbeat: framed and recognised, body not decoded, not an error.
    let out = json(&inspect(&["dabbf70000000000000000090000000500000001af"]), 0);
    assert_eq!(out["header"]["serialization"]["name"], "fastjson2");
    assert_eq!(out["event"]["kind"], "heartbeat");
    assert!(out["note"].as_str().unwrap().contains("fastjson2"));
}
