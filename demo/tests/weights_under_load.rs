//! Issue 6's promise under the real control path: while a consumer keeps 16 calls in flight through
//! the proxy, the operator changes the v1/v2 weights 50 times (rules file → bridge → delta xDS →
//! the proxy's atomic snapshot swap) and not a single call fails.

// Test helpers panic on failure by design: a panic is how a test reports what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use causeway_demo::greeter::Client;
use causeway_demo::mesh::{Mesh, MeshOptions};
use causeway_demo::scenario;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_weight_changes_under_steady_load_fail_no_call() {
    let mesh = Mesh::start(MeshOptions::default()).await.unwrap();
    let client = Client::connect(mesh.proxy_addr().unwrap()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match client.call("greet", &[]).await {
                    Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(error) => {
                        eprintln!("failed call: {error}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    for change in 0..50u32 {
        // Every weight from 0/100 to 100/0, in a zig-zag, each change applied before the next.
        let v1 = (change * 37) % 101;
        scenario::apply(&mesh, v1, 100 - v1, false).await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    println!("{ok} calls answered, {failed} failed, across 50 weight changes");
    assert_eq!(failed, 0);
    assert!(ok > 500, "the load was not steady: {ok} calls");
}
