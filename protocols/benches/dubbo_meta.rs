//! The proxy's hot path on a realistic ~1 KiB Dubbo request with five attachments:
//! header + service + method extraction (routing by interface/method), and the same plus the
//! attachments reached by skipping the arguments (routing by group/tag, trace context).
//!
//! Targets: ≥ 5 million/s and ≥ 1 million/s per core respectively.

use std::hint::black_box;
use std::sync::Arc;

use causeway_protocols::dubbo::{self, Call, Header, RequestView};
use causeway_protocols::hessian::{ClassDef, List, Map, Object, Value};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A `createOrder(OrderRequest, String)` call as a Java consumer would send it.
fn request() -> Vec<u8> {
    let item = Arc::new(ClassDef::new(
        "com.example.shop.OrderItem",
        ["quantity", "priceCents", "sku", "title"],
    ));
    let order = Arc::new(ClassDef::new(
        "com.example.shop.OrderRequest",
        [
            "customerId",
            "createdAt",
            "express",
            "currency",
            "note",
            "shippingAddress",
            "items",
            "tags",
        ],
    ));
    let items: Vec<Value> = (0..6)
        .map(|i| {
            Value::Object(Object::new(
                Arc::clone(&item),
                vec![
                    Value::Int(i + 1),
                    Value::Long(1999 + i64::from(i) * 250),
                    Value::string(format!("SKU-{:08}", 4_000_000 + i)),
                    Value::string(format!("Stainless steel water bottle, 750 ml, colour #{i}")),
                ],
            ))
        })
        .collect();
    let args = [
        Value::Object(Object::new(
            order,
            vec![
                Value::Long(1_234_567_890),
                Value::Date(1_700_000_000_000),
                Value::Bool(true),
                Value::string("EUR"),
                Value::string("Please leave the parcel with the neighbour if nobody answers."),
                Value::Map(Map::untyped(vec![
                    (Value::string("street"), Value::string("Kastanienallee 12")),
                    (Value::string("city"), Value::string("Berlin")),
                    (Value::string("zip"), Value::string("10435")),
                    (Value::string("country"), Value::string("DE")),
                ])),
                Value::List(List::untyped(items)),
                Value::List(List::typed(
                    "[string",
                    vec![Value::string("gift"), Value::string("priority")],
                )),
            ],
        )),
        Value::string("idempotency-7f3c2a9e-1b4d-4e8f-9a6c-2d5e8f1a3b7c"),
    ];
    let call = Call {
        dubbo_version: "2.0.2",
        service: "com.example.shop.api.OrderService",
        service_version: Some("1.0.0"),
        method: "createOrder",
        param_types: "Lcom/example/shop/OrderRequest;Ljava/lang/String;",
        arguments: &args,
        attachments: &[
            ("path", "com.example.shop.api.OrderService"),
            ("interface", "com.example.shop.api.OrderService"),
            ("version", "1.0.0"),
            ("timeout", "3000"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
    };
    match dubbo::encode_request(42, true, &call) {
        Ok(frame) => frame.as_bytes().to_vec(),
        Err(e) => panic!("building the benchmark request: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let frame = request();
    eprintln!("benchmark request: {} bytes", frame.len());
    let mut group = c.benchmark_group("dubbo_meta");
    group.throughput(Throughput::Elements(1));

    group.bench_function("header_service_method", |b| {
        b.iter(|| {
            let bytes = black_box(&frame[..]);
            let header = Header::decode(bytes).ok()?;
            let view = RequestView::parse(bytes.get(16..)?).ok()?;
            black_box((header.request_id, view.service().len(), view.method().len()));
            Some(())
        });
    });

    group.bench_function("header_service_method_attachments", |b| {
        b.iter(|| {
            let bytes = black_box(&frame[..]);
            let header = Header::decode(bytes).ok()?;
            let view = RequestView::parse(bytes.get(16..)?).ok()?;
            let attachments = view.attachments().ok()?;
            black_box((
                header.request_id,
                view.service().len(),
                view.method().len(),
                attachments.get_str("traceparent").map(str::len),
                attachments.len(),
            ));
            Some(())
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
