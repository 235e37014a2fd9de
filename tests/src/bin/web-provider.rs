//! `web-provider`: the gRPC and HTTP benchmark rows' provider. `--protocol grpc` answers every
//! unary call to `/causeway.bench.Echo/Echo` with one fixed message (HTTP/2 prior knowledge,
//! `grpc-status: 0` trailers); `--protocol http` answers `GET`/`POST /echo` with a fixed body
//! (HTTP/1.1 keep-alive). See `causeway_tests::web_bench::provider`.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use causeway_tests::dubbo_bench::DEFAULT_PAYLOAD_BYTES;
use causeway_tests::web_bench::provider;

const USAGE: &str = "\
usage: web-provider --protocol grpc|http [--listen ADDR] [--response-bytes N] [--threads N]

  --protocol        grpc (HTTP/2, unary) or http (HTTP/1.1 keep-alive)
  --listen          address to serve on (default: 127.0.0.1:0, a free port)
  --response-bytes  response payload length (default: 1024)
  --threads         runtime threads (default: 1, a current-thread runtime)

Prints `listening ADDR` once bound.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

struct Options {
    protocol: Protocol,
    listen: String,
    response_bytes: usize,
    threads: usize,
}

fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut protocol = None;
    let mut options = Options {
        protocol: Protocol::Grpc,
        listen: "127.0.0.1:0".to_owned(),
        response_bytes: DEFAULT_PAYLOAD_BYTES,
        threads: 1,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--protocol" => {
                protocol = Some(match value()?.as_str() {
                    "grpc" => Protocol::Grpc,
                    "http" => Protocol::Http,
                    other => bail!("unknown protocol {other:?}: expected grpc or http"),
                });
            }
            "--listen" => options.listen = value()?,
            "--response-bytes" => {
                options.response_bytes = value()?.parse().context("--response-bytes")?;
            }
            "--threads" => options.threads = value()?.parse().context("--threads")?,
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    options.protocol = protocol.ok_or_else(|| anyhow!("--protocol is required\n{USAGE}"))?;
    Ok(Some(options))
}

fn run(options: Options) -> anyhow::Result<()> {
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("bind {}", options.listen))?;
        println!("listening {}", listener.local_addr()?);
        match options.protocol {
            Protocol::Grpc => provider::serve_grpc(listener, options.response_bytes).await,
            Protocol::Http => provider::serve_http(listener, options.response_bytes).await,
        }
        Ok(())
    })
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => match run(options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("web-provider: {error:#}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("web-provider: {error:#}");
            ExitCode::from(2)
        }
    }
}
