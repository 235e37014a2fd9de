//! `causeway-demo`: starts the local mesh, walks the scenarios printing what each expects and
//! measures, and exits non-zero if they differ; `--stay` then keeps the mesh up with a live view of
//! the consumer's traffic until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use causeway_demo::estate::Service;
use causeway_demo::greeter::Client;
use causeway_demo::mesh::{Mesh, MeshOptions};
use causeway_demo::scenario::{self, Scenario, Step};
use causeway_proxy::config::ListenProtocol;
use clap::Parser;

/// Runs the Causeway demo mesh on this machine: a registry, the bridge, the consumer's proxy and
/// Dubbo providers v1/v2 in two zones, then walks the scenarios.
#[derive(Debug, Parser)]
#[command(
    name = "causeway-demo",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Run one demo application instead of the whole mesh (as the Kubernetes manifests do).
    #[command(subcommand)]
    app: Option<App>,
    /// YAML file with defaults for the flags below (`scenario`, `calls`, `file_registry`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration file and exit (0 valid, 2 invalid).
    #[arg(long)]
    validate: bool,
    /// Which scenario to walk [default: all].
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Calls per measured step (fewer: faster, wider tolerance) [default: 1000].
    #[arg(long)]
    calls: Option<usize>,
    /// A short run for tests: 300 calls per step.
    #[arg(long)]
    quick: bool,
    /// Use the bridge's file registry even when ZooKeeper is installed.
    #[arg(long)]
    file_registry: bool,
    /// After the scenarios, keep the mesh running with a live view until Ctrl-C.
    #[arg(long)]
    stay: bool,
    /// Run the real Apache Dubbo Java sample (`demo/java/`) as the greeter providers, and its
    /// consumer through the proxy (needs ZooKeeper, Java 17 and Maven; the batch scenario needs
    /// the Rust providers and is skipped).
    #[arg(long)]
    java: bool,
}

/// The demo's applications, each on its own (one per container in `demo/k8s/`).
#[derive(Debug, clap::Subcommand)]
enum App {
    /// A GreetingService provider that registers itself in ZooKeeper, as a Dubbo provider does.
    Provider(ProviderArgs),
    /// A consumer calling a Dubbo endpoint (its sidecar proxy) at a steady rate.
    Consumer(ConsumerArgs),
}

#[derive(Debug, clap::Args)]
struct ProviderArgs {
    /// ZooKeeper, `host:port`.
    #[arg(long, env = "ZOOKEEPER")]
    zookeeper: String,
    /// Where to listen.
    #[arg(long, default_value = "0.0.0.0:20880")]
    listen: std::net::SocketAddr,
    /// The address registered for callers (the pod IP); default: the listen address.
    #[arg(long, env = "POD_IP")]
    advertise: Option<std::net::IpAddr>,
    /// The version label.
    #[arg(long, default_value = "v1")]
    version: String,
    /// The zone (region `local`).
    #[arg(long, default_value = "zone-a")]
    zone: String,
    /// Calls in progress at once before refusing with SERVER_THREADPOOL_EXHAUSTED.
    #[arg(long, default_value_t = 200)]
    capacity: usize,
    /// The methods to serve and register, comma-separated [default: greet,place,report,slow].
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// A method's latency, `METHOD=MILLISECONDS` (repeatable) [defaults: slow 20, place 5,
    /// report 50, others 0].
    #[arg(long, value_parser = parse_latency)]
    latency: Vec<(String, Duration)>,
}

fn parse_latency(text: &str) -> Result<(String, Duration), String> {
    let (method, millis) = text
        .split_once('=')
        .ok_or_else(|| format!("expected METHOD=MILLISECONDS, got `{text}`"))?;
    let millis: u64 = millis
        .parse()
        .map_err(|_| format!("`{millis}` is not a number of milliseconds"))?;
    Ok((method.to_owned(), Duration::from_millis(millis)))
}

#[derive(Debug, clap::Args)]
struct ConsumerArgs {
    /// The Dubbo endpoint to call (the consumer's proxy).
    #[arg(long, default_value = "127.0.0.1:20880")]
    target: std::net::SocketAddr,
    /// The method.
    #[arg(long, default_value = "greet")]
    method: String,
    /// Calls per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Attachments `key=value` sent with every call (e.g. `batch=true` for the batch job).
    #[arg(long, value_parser = parse_attachment)]
    attachment: Vec<(String, String)>,
}

fn parse_attachment(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got `{text}`"))
}

/// Runs one application until Ctrl-C or SIGTERM.
async fn run_app(app: App) -> anyhow::Result<bool> {
    match app {
        App::Provider(args) => {
            let identity = causeway_demo::greeter::Identity {
                version: args.version,
                zone: args.zone,
                slow_latency: Duration::from_millis(20),
                capacity: args.capacity,
                latencies: args.latency,
                methods: args.methods,
            };
            let provider = causeway_demo::greeter::Provider::start_on(args.listen, identity)
                .await
                .context("listen")?;
            let advertised = std::net::SocketAddr::new(
                args.advertise.unwrap_or(provider.addr.ip()),
                provider.addr.port(),
            );
            let mut registry =
                causeway_demo::registry::Registry::connect_zookeeper(&args.zookeeper).await?;
            let registration = provider.identity.registration(advertised);
            registry.register(&registration).await?;
            println!(
                "provider {} in {} serving on {} (registered as {advertised})",
                provider.identity.version, provider.identity.zone, provider.addr
            );
            shutdown_signal().await;
            registry.deregister(&registration).await?;
            Ok(true)
        }
        App::Consumer(args) => {
            let client = Client::connect(args.target)
                .await
                .with_context(|| format!("connect to {}", args.target))?;
            let attachments: Vec<(&str, &str)> = args
                .attachment
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let period = Duration::from_secs(1) / args.rate.max(1);
            let mut ticker = tokio::time::interval(period);
            let mut window = std::collections::BTreeMap::<String, usize>::new();
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = shutdown_signal() => return Ok(true),
                }
                let outcome = match client.call(&args.method, &attachments).await {
                    Ok(served) => format!("{} in {}", served.version, served.zone),
                    Err(error) => format!("failed: {error}"),
                };
                *window.entry(outcome).or_default() += 1;
                if last.elapsed() >= Duration::from_secs(5) {
                    println!("{} {:?}", args.method, window);
                    window.clear();
                    last = Instant::now();
                }
            }
        }
    }
}

/// Ctrl-C, or SIGTERM as Kubernetes sends it.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The `--config` file: defaults for the flags, which override it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoConfig {
    #[serde(default)]
    scenario: Option<Scenario>,
    #[serde(default)]
    calls: Option<usize>,
    #[serde(default)]
    file_registry: bool,
    #[serde(default)]
    java: bool,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<DemoConfig> {
    let Some(path) = path else {
        return Ok(DemoConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(DemoConfig::default());
    }
    serde_saphyr::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let config = match load_config(cli.config.as_ref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("causeway-demo: {error:#}");
            return ExitCode::from(2);
        }
    };
    if cli.validate {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    cli.scenario = cli.scenario.or(config.scenario);
    cli.calls = cli.calls.or(config.calls);
    cli.file_registry |= config.file_registry;
    cli.java |= config.java;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,zookeeper_client=error")
            }),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.app.take() {
        Some(app) => runtime.block_on(run_app(app)),
        None => runtime.block_on(run(cli)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("causeway-demo: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let calls = if cli.quick {
        300
    } else {
        cli.calls.unwrap_or(1000).max(50)
    };
    let scenario = cli.scenario.unwrap_or(Scenario::All);
    if cli.java && scenario == Scenario::Batch {
        anyhow::bail!(
            "the batch scenario needs the Rust providers (the Java sample has no `report` \
             method and no small thread pool to fill); run it without --java"
        );
    }
    println!("Starting the local mesh…");
    let mut mesh = tokio::select! {
        mesh = Mesh::start(MeshOptions {
            prefer_file_registry: cli.file_registry,
            java: cli.java,
        }) => mesh?,
        () = shutdown_signal() => return Ok(false),
    };
    println!("  registry:        {}", mesh.registry.describe());
    println!(
        "  bridge:          xDS {}  admin http://{}/metrics  /debug/services  /debug/xds",
        mesh.bridge.xds_addr, mesh.bridge.admin_addr
    );
    println!(
        "  proxy (zone-a):  dubbo://{}  admin http://{}/metrics  /config_dump",
        mesh.proxy_addr()?,
        mesh.proxy.admin
    );
    println!(
        "  proxy listeners: thrift://{}  grpc://{}  http://{}",
        mesh.listener(ListenProtocol::Thrift)?,
        mesh.listener(ListenProtocol::Grpc)?,
        mesh.listener(ListenProtocol::Http)?
    );
    let greeters = if cli.java {
        "the Apache Dubbo Java sample"
    } else {
        "Rust providers"
    };
    println!(
        "  service:         {} (Dubbo, v1 and v2 in zone-a and zone-b: {greeters})",
        mesh.host
    );
    for service in Service::MIXED {
        println!(
            "  service:         {} ({}, v1 and v2 in zone-a)",
            service.host(),
            service.protocol()
        );
    }
    println!("  ServiceEntries:  {}", mesh.service_entries.display());
    println!();
    println!("{:<24} {:<34} measured", "step", "expected");
    let mut report = |step: &Step| {
        let mark = if step.passed { "✓" } else { "✗" };
        println!(
            "{mark} {:<22} {:<34} {}",
            step.name, step.expected, step.measured
        );
    };
    let steps = tokio::select! {
        steps = scenario::run(&mut mesh, scenario, calls, &mut report) => steps?,
        () = shutdown_signal() => return Ok(false),
    };
    let failed = steps.iter().filter(|s| !s.passed).count();
    if steps.is_empty() {
        println!("\nNothing was measured.");
        return Ok(false);
    }
    println!();
    if failed == 0 {
        println!("All {} steps passed.", steps.len());
    } else {
        println!(
            "{failed} of {} steps did not match what they expected.",
            steps.len()
        );
    }
    if cli.stay {
        live(&mesh).await?;
    }
    println!("Stopping the mesh and removing {}", mesh.dir().display());
    Ok(failed == 0)
}

/// The live view until Ctrl-C (or SIGTERM).
async fn live(mesh: &Mesh) -> anyhow::Result<()> {
    println!(
        "\nLive view, one round of calls a second on every protocol (Ctrl-C to stop); edit the \
         rules through the bridge's file to see them move."
    );
    causeway_demo::live::run(mesh, shutdown_signal()).await
}
