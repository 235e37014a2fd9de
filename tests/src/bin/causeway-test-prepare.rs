//! Prepares everything the end-to-end tests download or build, so the test run itself needs no
//! network: every Maven project under `tests/java`, `tests/peers` and `demo/java` is built (its
//! dependencies land in `~/.m2`), every Go module under `tests/go` is built (its dependencies land
//! in the Go module cache, the binary in the harness cache), the harness's Python venvs
//! (`tests/python/requirements.txt` and `tests/python/*/requirements.txt`) are created, and the npm packages of the Grafana dashboard schema check are installed and its
//! schemas generated. It uses the harness's own code paths, so the caches it fills are exactly the ones the
//! tests look up. Idempotent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use causeway_tests::go::GoProgram;
use causeway_tests::grafana::GrafanaSchema;
use causeway_tests::java::JavaProgram;
use causeway_tests::paths::workspace_root;
use causeway_tests::python::PythonEnv;

fn maven_projects(root: &Path) -> Vec<PathBuf> {
    let mut projects = Vec::new();
    for parent in ["tests/java", "tests/peers", "demo/java"] {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().join("pom.xml").is_file() {
                projects.push(entry.path());
            }
        }
    }
    projects.sort();
    projects
}

fn go_modules(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("tests/go")) else {
        return Vec::new();
    };
    let mut modules: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("go.mod").is_file())
        .collect();
    modules.sort();
    modules
}

fn main() -> ExitCode {
    causeway_tests::logs::init();
    let root = workspace_root();
    let mut failed = false;
    for project in maven_projects(&root) {
        let started = std::time::Instant::now();
        match JavaProgram::build(&project) {
            Ok(_) => println!(
                "prepared Maven project {} in {:.1}s",
                project.display(),
                started.elapsed().as_secs_f64()
            ),
            Err(error) => {
                eprintln!("cannot prepare {}: {error:#}", project.display());
                failed = true;
            }
        }
    }
    for module in go_modules(&root) {
        let started = std::time::Instant::now();
        match GoProgram::build(&module) {
            Ok(program) => println!(
                "prepared Go program {} in {:.1}s",
                program.binary().display(),
                started.elapsed().as_secs_f64()
            ),
            Err(error) => {
                eprintln!("cannot prepare {}: {error:#}", module.display());
                failed = true;
            }
        }
    }
    match PythonEnv::requirement_files() {
        Ok(files) => {
            for requirements in files {
                let started = std::time::Instant::now();
                match PythonEnv::from_requirements(&requirements) {
                    Ok(env) => println!(
                        "prepared Python venv {} for {} in {:.1}s",
                        env.python().display(),
                        requirements.display(),
                        started.elapsed().as_secs_f64()
                    ),
                    Err(error) => {
                        eprintln!(
                            "cannot prepare the Python venv of {}: {error:#}",
                            requirements.display()
                        );
                        failed = true;
                    }
                }
            }
        }
        Err(error) => {
            eprintln!("cannot list the Python requirements: {error:#}");
            failed = true;
        }
    }
    let started = std::time::Instant::now();
    match GrafanaSchema::prepare() {
        Ok(schema) => println!(
            "prepared the Grafana dashboard schema (@grafana/schema {}, schemaVersion {}) in {:.1}s",
            schema.info().package_version,
            schema.info().schema_version,
            started.elapsed().as_secs_f64()
        ),
        Err(error) => {
            eprintln!("cannot prepare the Grafana dashboard schema: {error:#}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
