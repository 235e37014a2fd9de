//! Golden Hessian vectors (shared/vectors/hessian2.json, produced by hessian-lite): every vector
//! decodes to its typed expectation using all its bytes, skips to the same end, re-encodes to the
//! same bytes, and every truncation of it fails cleanly.

// Helpers outside `#[test]` functions panic on broken fixtures on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use causeway_protocols::hessian::{
    self, ClassDef, DecodeError, Decoder, Encoder, List, Map, Object, Value,
};
use serde::Deserialize;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/hessian2.json"
);

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
    skipped: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    kind: String,
    hex: String,
}

fn load() -> File {
    let text = std::fs::read_to_string(VECTORS).expect("read hessian2.json");
    serde_json::from_str(&text).expect("parse hessian2.json")
}

fn s(v: &str) -> Value {
    Value::string(v)
}

fn user_class() -> Arc<ClassDef> {
    Arc::new(ClassDef::new("demo.User", ["id", "age", "name"]))
}

fn user() -> Value {
    Value::Object(Object::new(
        user_class(),
        vec![Value::Long(2), Value::Int(1), s("a")],
    ))
}

/// The values each vector must decode to (one per value in the stream).
fn expected(name: &str) -> Vec<Value> {
    let one = |v: Value| vec![v];
    let int = |v: i32| vec![Value::Int(v)];
    let long = |v: i64| vec![Value::Long(v)];
    let double = |v: f64| vec![Value::Double(v)];
    match name {
        "null" => one(Value::Null),
        "true" => one(Value::Bool(true)),
        "false" => one(Value::Bool(false)),
        "int_0" => int(0),
        "int_1" => int(1),
        "int_47" => int(47),
        "int_neg16" => int(-16),
        "int_neg17" => int(-17),
        "int_48" => int(48),
        "int_2047" => int(2047),
        "int_neg2048" => int(-2048),
        "int_2048" => int(2048),
        "int_neg2049" => int(-2049),
        "int_262143" => int(262_143),
        "int_neg262144" => int(-262_144),
        "int_262144" => int(262_144),
        "int_2147483647" => int(i32::MAX),
        "int_neg2147483648" => int(i32::MIN),
        "short_300" => int(300),
        "byte_7" => int(7),
        "long_0" => long(0),
        "long_15" => long(15),
        "long_neg8" => long(-8),
        "long_16" => long(16),
        "long_neg9" => long(-9),
        "long_2047" => long(2047),
        "long_neg2048" => long(-2048),
        "long_262143" => long(262_143),
        "long_neg262144" => long(-262_144),
        "long_262144" => long(262_144),
        "long_2147483647" => long(2_147_483_647),
        "long_neg2147483648" => long(-2_147_483_648),
        "long_2147483648" => long(2_147_483_648),
        "double_0_0" => double(0.0),
        "double_1_0" => double(1.0),
        "double_neg128_0" => double(-128.0),
        "double_127_0" => double(127.0),
        "double_neg32768_0" => double(-32768.0),
        "double_32767_0" => double(32767.0),
        // 0x5F is int32 thousandths: the decoded double is exactly `0.001 * mills`.
        "double_12_25" | "float_12_25f" => double(0.001 * 12250.0),
        "double_0_001" => double(0.001),
        "double_3_14" => double(0.001 * 3140.0),
        "double_1e100" => double(1e100),
        "date_60000" => one(Value::Date(60_000)),
        "date_1234567890123" => one(Value::Date(1_234_567_890_123)),
        "string_empty" => one(s("")),
        "string_hello" => one(s("hello")),
        "string_e_acute" => one(s("é")),
        "string_cjk_zhong" => one(s("中")),
        "string_emoji_surrogate_pair" => one(s("😀")),
        "string_32_a" => one(s(&"a".repeat(32))),
        "string_1024_a" => one(s(&"a".repeat(1024))),
        "string_40000_a_chunked" => one(s(&"a".repeat(40_000))),
        "binary_empty" => one(Value::Binary(vec![])),
        "binary_1_2_3" => one(Value::Binary(vec![1, 2, 3])),
        "int_array_1_2" => one(List::typed("[int", vec![Value::Int(1), Value::Int(2)]).into()),
        "string_array_a" => one(List::typed("[string", vec![s("a")]).into()),
        "object_array_1_a" => one(List::typed("[object", vec![Value::Int(1), s("a")]).into()),
        "integer_array_1" => one(List::typed("[java.lang.Integer", vec![Value::Int(1)]).into()),
        "arraylist_1_x" => one(List::untyped(vec![Value::Int(1), s("x")]).into()),
        "arraylist_0_to_8" => one(List::untyped((0..=8).map(Value::Int).collect()).into()),
        "linkedlist_1" => one(List::typed("java.util.LinkedList", vec![Value::Int(1)]).into()),
        "hashmap_a_1" => one(Map::untyped(vec![(s("a"), Value::Int(1))]).into()),
        "hashmap_1_null" => one(Map::untyped(vec![(Value::Int(1), Value::Null)]).into()),
        "treemap_a_1" => one(Map::typed("java.util.TreeMap", vec![(s("a"), Value::Int(1))]).into()),
        "linkedhashmap_k_v" => {
            one(Map::typed("java.util.LinkedHashMap", vec![(s("k"), s("v"))]).into())
        }
        "pojo_user" => one(user()),
        // The list is reference 0, the user reference 1: the second element is `Q 1`.
        "arraylist_same_user_twice" => one(List::untyped(vec![user(), Value::Ref(1)]).into()),
        "enum_color_green" => one(Value::Object(Object::new(
            Arc::new(ClassDef::new("demo.Color", ["name"])),
            vec![s("GREEN")],
        ))),
        "bigdecimal_1_5" => one(Value::Object(Object::new(
            Arc::new(ClassDef::new("java.math.BigDecimal", ["value"])),
            vec![s("1.5")],
        ))),
        "two_linkedlists_one_stream" => vec![
            List::typed("java.util.LinkedList", vec![Value::Int(1)]).into(),
            List::typed("java.util.LinkedList", vec![Value::Int(2)]).into(),
        ],
        other => panic!("no expectation for vector {other}: add one"),
    }
}

#[test]
fn every_vector_decodes_to_its_expectation() {
    let file = load();
    assert_eq!(file.vectors.len(), 72, "vector count changed");
    assert_eq!(file.skipped.len(), 6);
    for v in &file.vectors {
        let bytes = hex::decode(&v.hex).unwrap();
        let want = expected(&v.name);
        assert_eq!(
            want.len(),
            if v.kind == "other" { 2 } else { 1 },
            "{}",
            v.name
        );
        let mut decoder = Decoder::new(&bytes);
        for (i, w) in want.iter().enumerate() {
            let got = decoder
                .read_value()
                .unwrap_or_else(|e| panic!("{} value {i}: {e}", v.name));
            assert_eq!(&got, w, "{} value {i}", v.name);
        }
        assert!(decoder.is_at_end(), "{}: bytes left over", v.name);
        decoder.finish().unwrap();
    }
}

#[test]
fn every_vector_reencodes_to_the_same_bytes() {
    for v in &load().vectors {
        let bytes = hex::decode(&v.hex).unwrap();
        let mut encoder = Encoder::new();
        for value in expected(&v.name) {
            encoder.write_value(&value).unwrap();
        }
        assert_eq!(
            hex::encode(encoder.as_bytes()),
            v.hex,
            "{}: encoder differs from hessian-lite",
            v.name
        );
        assert_eq!(encoder.finish().len(), bytes.len());
    }
}

#[test]
fn every_vector_skips_to_its_end() {
    for v in &load().vectors {
        let bytes = hex::decode(&v.hex).unwrap();
        let mut decoder = Decoder::new(&bytes);
        for _ in 0..expected(&v.name).len() {
            decoder
                .skip_value()
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        }
        assert_eq!(decoder.position(), bytes.len(), "{}", v.name);
        if v.kind != "other" {
            assert_eq!(hessian::skip(&bytes).unwrap(), bytes.len(), "{}", v.name);
        }
    }
}

#[test]
fn every_truncation_fails_cleanly() {
    for v in &load().vectors {
        let bytes = hex::decode(&v.hex).unwrap();
        // Long strings: every prefix would be slow in debug builds; the edges are what matter.
        let cuts: Vec<usize> = if bytes.len() > 2000 {
            (0..64).chain(bytes.len() - 64..bytes.len()).collect()
        } else {
            (0..bytes.len()).collect()
        };
        for cut in cuts {
            let prefix = &bytes[..cut];
            let mut decoder = Decoder::new(prefix);
            let mut skipper = Decoder::new(prefix);
            let mut read_ok = true;
            let mut skip_ok = true;
            for _ in 0..expected(&v.name).len() {
                read_ok &= decoder.read_value().is_ok();
                skip_ok &= skipper.skip_value().is_ok();
            }
            assert!(!read_ok, "{}: prefix {cut} decoded", v.name);
            assert!(!skip_ok, "{}: prefix {cut} skipped", v.name);
            if v.kind == "other" {
                continue;
            }
            let err = hessian::from_slice(prefix).unwrap_err();
            assert!(
                matches!(err, DecodeError::UnexpectedEof { .. }),
                "{} prefix {cut}: {err}",
                v.name
            );
        }
    }
}

#[test]
fn strings_are_read_without_copying() {
    for v in load().vectors.iter().filter(|v| v.kind == "string") {
        let bytes = hex::decode(&v.hex).unwrap();
        let got = Decoder::new(&bytes).read_str().unwrap().unwrap();
        let want = expected(&v.name).remove(0);
        assert_eq!(Some(got.as_ref()), want.as_str(), "{}", v.name);
        // Borrowed unless the data needs rebuilding: surrogates (CESU-8) or several chunks.
        let borrowed = matches!(got, std::borrow::Cow::Borrowed(_));
        let needs_copy = matches!(
            v.name.as_str(),
            "string_emoji_surrogate_pair" | "string_40000_a_chunked"
        );
        assert_eq!(borrowed, !needs_copy, "{}", v.name);
    }
}

/// The binaries PROTOCOLS.md gives only as prefixes or chunk layouts (skipped in the JSON).
#[test]
fn skipped_binary_vectors_match_their_documented_layout() {
    let enc =
        |n: usize| hessian::to_vec(&Value::Binary((0..n).map(|i| i as u8).collect())).unwrap();
    assert_eq!(enc(20)[..2], [0x34, 0x14]);
    assert_eq!(enc(20).len(), 22);
    assert_eq!(enc(1023)[..2], [0x37, 0xff]);
    assert_eq!(enc(1024)[..3], [0x42, 0x04, 0x00]);
    let big = enc(20_000);
    // A(8189) A(8189) B(3622).
    assert_eq!(big[..3], [b'A', 0x1f, 0xfd]);
    assert_eq!(big[8192..8195], [b'A', 0x1f, 0xfd]);
    assert_eq!(big[16384..16387], [b'B', 0x0e, 0x26]);
    for n in [20, 1023, 1024, 20_000] {
        let bytes = enc(n);
        let want: Vec<u8> = (0..n).map(|i| i as u8).collect();
        assert_eq!(hessian::from_slice(&bytes).unwrap(), Value::Binary(want));
        assert_eq!(hessian::skip(&bytes).unwrap(), bytes.len());
    }
}

#[test]
fn exception_with_self_cause_uses_a_reference() {
    // A Throwable whose `cause` is itself: the field is `51 90` (reference 0 = the exception).
    let class = Arc::new(ClassDef::new(
        "java.lang.RuntimeException",
        ["detailMessage", "cause"],
    ));
    let ex = Value::Object(Object::new(class, vec![s("boom"), Value::Ref(0)]));
    let bytes = hessian::to_vec(&ex).unwrap();
    assert_eq!(bytes[bytes.len() - 2..], [0x51, 0x90]);
    assert_eq!(hessian::from_slice(&bytes).unwrap(), ex);
}

#[test]
fn limits_are_enforced() {
    // 200 nested untyped lists of one element.
    let mut bytes = vec![0x79; 200];
    bytes.push(0x90);
    let err = hessian::from_slice(&bytes).unwrap_err();
    assert!(
        matches!(err, DecodeError::DepthLimit { limit: 128, .. }),
        "{err}"
    );
    assert!(matches!(
        hessian::skip(&bytes).unwrap_err(),
        DecodeError::DepthLimit { .. }
    ));
    let limits = hessian::Limits {
        max_depth: 1000,
        max_alloc: 1024,
    };
    assert_eq!(
        Decoder::with_limits(&bytes, limits).skip_value(),
        Ok(()),
        "skip under a raised depth limit"
    );
    // A list that claims 1 000 000 elements but holds 100 000: runs out of input, not memory.
    let mut long = vec![b'X', b'I', 0x00, 0x0f, 0x42, 0x40];
    long.extend(std::iter::repeat_n(0x90, 100_000));
    assert!(matches!(
        hessian::from_slice(&long).unwrap_err(),
        DecodeError::UnexpectedEof { .. }
    ));
    let small = hessian::Limits {
        max_depth: 128,
        max_alloc: 4096,
    };
    assert!(matches!(
        Decoder::with_limits(&long, small).read_value().unwrap_err(),
        DecodeError::AllocLimit { limit: 4096, .. }
    ));
    // Bad indexes are errors with offsets.
    assert_eq!(
        hessian::from_slice(&[0x51, 0x90]).unwrap_err(),
        DecodeError::UnknownRef {
            offset: 0,
            index: 0,
            defined: 0
        }
    );
    assert!(matches!(
        hessian::from_slice(&[0x60]).unwrap_err(),
        DecodeError::UnknownClass { offset: 0, .. }
    ));
    assert!(matches!(
        hessian::from_slice(&[0x71, 0x90]).unwrap_err(),
        DecodeError::UnknownType { offset: 1, .. }
    ));
    assert!(matches!(
        hessian::from_slice(&[0x90, 0x90]).unwrap_err(),
        DecodeError::TrailingBytes {
            offset: 1,
            remaining: 1
        }
    ));
}

#[test]
fn other_forms_decode() {
    let cases: Vec<(Vec<u8>, Value)> = vec![
        // Variable-length typed and untyped lists.
        (
            b"\x55\x04list\x91\x92Z".to_vec(),
            Value::List(List {
                type_name: Some("list".into()),
                items: vec![Value::Int(1), Value::Int(2)],
                variable_length: true,
            }),
        ),
        (
            b"\x57\x91Z".to_vec(),
            Value::List(List {
                type_name: None,
                items: vec![Value::Int(1)],
                variable_length: true,
            }),
        ),
        // `V` with a type and an int length; `O` with an int definition index.
        (
            b"\x56\x04[int\x92\x91\x92".to_vec(),
            List::typed("[int", vec![Value::Int(1), Value::Int(2)]).into(),
        ),
        (
            b"C\x01P\x91\x01xO\x90\x93".to_vec(),
            Object::new(Arc::new(ClassDef::new("P", ["x"])), vec![Value::Int(3)]).into(),
        ),
        // String chunks of any size and final form; a surrogate pair split across chunks.
        (b"R\x00\x02abS\x00\x01c".to_vec(), s("abc")),
        (b"R\x00\x01\xed\xa0\xbd\x01\xed\xb8\x80".to_vec(), s("😀")),
        // 4-byte UTF-8 (non-Java writers) counts two units.
        ("\x02😀".as_bytes().to_vec(), s("😀")),
        // Chunked binary.
        (b"A\x00\x02ab\x21c".to_vec(), Value::Binary(b"abc".to_vec())),
        // Long written as `L` in the int range, and a long-encoded length.
        (
            b"L\x00\x00\x00\x00\x00\x00\x00\x05".to_vec(),
            Value::Long(5),
        ),
        (
            b"X\xe1\x91".to_vec(),
            List::untyped(vec![Value::Int(1)]).into(),
        ),
        // 3-byte long and negative minutes.
        (b"\x3b\xff\xff".to_vec(), Value::Long(-1)),
        (b"\x4b\xff\xff\xff\xff".to_vec(), Value::Date(-60_000)),
        (b"\x5f\xff\xff\xff\xff".to_vec(), Value::Double(-0.001)),
    ];
    for (bytes, want) in cases {
        assert_eq!(hessian::from_slice(&bytes).unwrap(), want, "{bytes:02x?}");
        assert_eq!(hessian::skip(&bytes).unwrap(), bytes.len(), "{bytes:02x?}");
    }
}
