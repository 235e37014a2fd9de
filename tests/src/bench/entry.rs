//! The entry point every benchmark driver shares: parse the options (`--help` prints the usage),
//! start a runtime of the flavour the driver needs, run it, and map the outcome to an exit code
//! (0 every target met, 1 a target missed or a run failed, 2 bad options).

use std::future::Future;
use std::process::ExitCode;

/// Which tokio runtime a driver runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One thread: drivers that mostly wait take as little of the shared cores as they can.
    CurrentThread,
    /// Worker threads: drivers whose own clients would otherwise serialise on one thread.
    MultiThread,
}

/// Runs a benchmark driver named `name`: `parse` gives the options (`None` for `--help`), `run`
/// says whether every target was met.
pub fn main<O, Fut>(
    name: &str,
    usage: &str,
    runtime: Runtime,
    parse: impl FnOnce() -> anyhow::Result<Option<O>>,
    run: impl FnOnce(O) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let options = match parse() {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("{name}: {error:#}");
            return ExitCode::from(2);
        }
    };
    let built = match runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match built {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
