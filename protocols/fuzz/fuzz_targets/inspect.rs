//! Fuzzes the decoding path of `causeway-proxy inspect`: any input, under every protocol choice
//! and with `--values`, gives a report that serialises to JSON, and the report is "ok" exactly
//! when no entry is an error. Needs the `inspect` feature (it pulls in the proxy crate):
//! `cargo fuzz run --features inspect inspect`.
#![no_main]

use causeway_proxy::inspect::{Options, ProtocolChoice, inspect};
use libfuzzer_sys::fuzz_target;

const CHOICES: [ProtocolChoice; 5] = [
    ProtocolChoice::Auto,
    ProtocolChoice::Dubbo,
    ProtocolChoice::Thrift,
    ProtocolChoice::Grpc,
    ProtocolChoice::Http,
];

fuzz_target!(|data: &[u8]| {
    for protocol in CHOICES {
        let options = Options {
            protocol: Some(protocol),
            values: true,
            grpc_path: Some("/helloworld.Greeter/SayHello".to_owned()),
        };
        let report = inspect(data, &options);
        let text = report.to_json_string().expect("reports serialise");
        let json: serde_json::Value = serde_json::from_str(&text).expect("reports are JSON");
        let entries = match json {
            serde_json::Value::Array(entries) => entries,
            one => vec![one],
        };
        assert!(!entries.is_empty());
        let errors = entries.iter().filter(|e| e.get("error").is_some()).count();
        assert_eq!(report.is_ok(), errors == 0);
    }
});
