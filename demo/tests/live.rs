//! The live view's round: one batch of calls per protocol, method and traffic class through the
//! mesh's proxy, every one answered.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use causeway_demo::live::Callers;
use causeway_demo::mesh::{Mesh, MeshOptions};

#[tokio::test(flavor = "multi_thread")]
async fn a_round_calls_every_protocol_and_class() {
    let mesh = Mesh::start(MeshOptions::default()).await.unwrap();
    let callers = Callers::connect(&mesh).await.unwrap();
    let rows = callers.round().await;
    let shape: Vec<(&str, &str)> = rows.iter().map(|r| (r.protocol, r.class)).collect();
    assert_eq!(
        shape,
        [
            ("dubbo", "user"),
            ("dubbo", "batch"),
            ("thrift", "user"),
            ("grpc", "user"),
            ("http", "user"),
        ]
    );
    for mut row in rows {
        assert!(row.tally.total() > 0, "{}", row.method);
        assert_eq!(
            row.tally.failed(),
            0,
            "{} {}: {} (first failure: {:?})",
            row.protocol,
            row.method,
            row.tally.summary(),
            row.tally.first_error()
        );
        // No rules: both versions serve (a row of 50 calls all to one is a 2^-49 chance).
        if row.tally.total() >= 50 {
            let v1 = row.tally.share("v1");
            assert!(v1 > 0.0 && v1 < 1.0, "{}", row.tally.summary());
        }
    }
}
