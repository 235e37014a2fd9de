//! `dubbo-provider`: the benchmark's Dubbo provider. Answers every two-way request with one fixed
//! OK response (a Hessian string of `--response-bytes`, 1 KiB by default) carrying the request's
//! id, and heartbeats with heartbeat replies. See `causeway_tests::dubbo_bench::provider`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use causeway_tests::dubbo_bench::{DEFAULT_PAYLOAD_BYTES, Template, provider};

const USAGE: &str = "\
usage: dubbo-provider [--listen ADDR] [--response-bytes N] [--threads N]

  --listen          address to serve on (default: 127.0.0.1:20880; port 0 picks one)
  --response-bytes  length of the response string (default: 1024)
  --threads         runtime threads (default: 1, a current-thread runtime)

Prints `listening ADDR` once bound.";

struct Options {
    listen: String,
    response_bytes: usize,
    threads: usize,
}

fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        listen: "127.0.0.1:20880".to_owned(),
        response_bytes: DEFAULT_PAYLOAD_BYTES,
        threads: 1,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => options.listen = value()?,
            "--response-bytes" => {
                options.response_bytes = value()?.parse().context("--response-bytes")?;
            }
            "--threads" => options.threads = value()?.parse().context("--threads")?,
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
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
        let response = Arc::new(Template::response(options.response_bytes)?);
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("bind {}", options.listen))?;
        println!("listening {}", listener.local_addr()?);
        provider::serve(listener, response).await;
        Ok(())
    })
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => match run(options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("dubbo-provider: {error:#}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dubbo-provider: {error:#}");
            ExitCode::from(2)
        }
    }
}
