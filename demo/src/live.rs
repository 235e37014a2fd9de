//! The live view (`--stay`): once a second, a round of calls through the proxy on every
//! protocol — Dubbo user calls (`greet`) and batch calls (`report` with `batch=true`), Thrift
//! `Inventory:stock`, gRPC `Quotes/Quote`, HTTP `GET /items/*` — and one line per protocol,
//! method and traffic class with versions, zones, failures and latency.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use causeway_proxy::config::ListenProtocol;

use crate::estate::Service;
use crate::greeter::Client;
use crate::mesh::Mesh;
use crate::mesh::PROVIDER_CAPACITY;
use crate::scenario::{BURST_IN_FLIGHT, Tally, burst_of};
use crate::{catalog, inventory, quotes};

/// Calls per row and round: enough for a split to show, few enough for one second.
const CALLS: usize = 50;

/// Batch (`report`) calls per round. The user and batch rows run at once on the same providers,
/// and their calls in flight together stay below one provider's capacity: the round must show
/// the mesh, not an overload of its own making (the balancer may send them all to one provider
/// of the zone, and a busy machine slows the answers).
const BATCH_CALLS: usize = 5;
const _: () = assert!(BURST_IN_FLIGHT + BATCH_CALLS < PROVIDER_CAPACITY);

/// One row of a round.
pub struct Row {
    /// `dubbo`, `thrift`, `grpc`, `http`.
    pub protocol: &'static str,
    /// The method (or HTTP route) called.
    pub method: &'static str,
    /// `user` or `batch`.
    pub class: &'static str,
    /// What the calls saw.
    pub tally: Tally,
}

/// The callers, one per protocol, connected once.
pub struct Callers {
    dubbo: Client,
    thrift: inventory::Client,
    grpc: quotes::Client,
    http: catalog::Client,
}

impl Callers {
    /// Connects to the mesh's proxy on every protocol.
    pub async fn connect(mesh: &Mesh) -> anyhow::Result<Self> {
        let dubbo = Client::connect(mesh.proxy_addr()?)
            .await
            .context("connect to the proxy's Dubbo listener")?;
        let authority = format!("{}:50051", Service::Quotes.host());
        let grpc = quotes::Client::connect(mesh.listener(ListenProtocol::Grpc)?, &authority)
            .await
            .context("connect to the proxy's gRPC listener")?;
        Ok(Self {
            dubbo,
            thrift: inventory::Client::new(mesh.listener(ListenProtocol::Thrift)?),
            grpc,
            http: catalog::Client::new(mesh.listener(ListenProtocol::Http)?),
        })
    }

    /// One round: every row's calls, all rows at once.
    pub async fn round(&self) -> Vec<Row> {
        let user = burst_of(CALLS, || {
            let dubbo = self.dubbo.clone();
            async move { dubbo.call("greet", &[]).await }
        });
        let batch = burst_of(BATCH_CALLS, || {
            let dubbo = self.dubbo.clone();
            async move { dubbo.call("report", &[("batch", "true")]).await }
        });
        let thrift = burst_of(CALLS, || {
            let thrift = self.thrift.clone();
            async move { thrift.stock("sku-42").await }
        });
        let grpc = burst_of(CALLS, || {
            let grpc = self.grpc.clone();
            async move { grpc.quote("ACME", &[]).await }
        });
        let http = burst_of(CALLS, || {
            let http = self.http.clone();
            async move { http.item(7, &[]).await }
        });
        let (user, batch, thrift, grpc, http) = tokio::join!(user, batch, thrift, grpc, http);
        let row = |protocol, method, class, tally| Row {
            protocol,
            method,
            class,
            tally,
        };
        vec![
            row("dubbo", "greet", "user", user),
            row("dubbo", "report", "batch", batch),
            row("thrift", "Inventory:stock", "user", thrift),
            row("grpc", "Quotes/Quote", "user", grpc),
            row("http", "GET /items/*", "user", http),
        ]
    }
}

/// Rounds until `stop` resolves, printing each; at most one round a second.
pub async fn run(mesh: &Mesh, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let callers = Callers::connect(mesh).await?;
    let started = Instant::now();
    tokio::pin!(stop);
    loop {
        let second = Instant::now();
        let rows = tokio::select! {
            rows = callers.round() => rows,
            () = &mut stop => return Ok(()),
        };
        println!("t={:>4}s", started.elapsed().as_secs());
        for mut row in rows {
            println!(
                "  {:<7}{:<17}{:<6}{}",
                row.protocol,
                row.method,
                row.class,
                row.tally.summary()
            );
        }
        let rest = Duration::from_secs(1).saturating_sub(second.elapsed());
        tokio::select! {
            () = tokio::time::sleep(rest) => {}
            () = &mut stop => return Ok(()),
        }
    }
}
