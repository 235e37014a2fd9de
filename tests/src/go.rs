//! Go programs as real peers: a Go module is built once into the harness cache and run directly.
//!
//! Programs live in the repository (`tests/go/<name>/` with `go.mod`, `go.sum` and sources).
//! The binary is cached under [`crate::paths::cache_dir`]`/go/` in a file named after the
//! program and a hash of its `go.mod`, `go.sum` and `.go` files, so an unchanged program is never
//! rebuilt across runs and an edited one is. Dependencies come from the Go module proxy into the
//! default module cache (`$GOMODCACHE`, normally `~/go/pkg/mod`); with that cache warm, a rebuild
//! needs no network. A file lock serialises builds across test processes; within one process the
//! binary path is memoised.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::Context as _;

use crate::paths::cache_dir;

/// A built Go program ready to run.
#[derive(Debug, Clone)]
pub struct GoProgram {
    binary: PathBuf,
}

fn built() -> &'static Mutex<HashMap<PathBuf, PathBuf>> {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    BUILT.get_or_init(Mutex::default)
}

impl GoProgram {
    /// Builds the Go module in `module` (a folder with a `go.mod` and a `main` package), or reuses
    /// a cached build of exactly these sources.
    pub fn build(module: &Path) -> anyhow::Result<Self> {
        let module = module
            .canonicalize()
            .with_context(|| format!("Go module {} not found", module.display()))?;
        let mut memo = built()
            .lock()
            .map_err(|_| anyhow::anyhow!("Go build registry poisoned"))?;
        if let Some(binary) = memo.get(&module) {
            return Ok(Self {
                binary: binary.clone(),
            });
        }
        let binary = build_module(&module)?;
        memo.insert(module, binary.clone());
        Ok(Self { binary })
    }

    /// The built executable.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A command running the program; add arguments and spawn it.
    pub fn command(&self) -> Command {
        Command::new(&self.binary)
    }
}

/// A hash of everything that decides the binary: the module files and every `.go` source.
fn source_hash(module: &Path) -> anyhow::Result<u64> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(module)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name == "go.mod" || name == "go.sum" || name.ends_with(".go")
        })
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file)
            .with_context(|| format!("read {}", file.display()))?
            .hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// The `go` command: from PATH, else the official tarball's location (`/usr/local/go`), which
/// non-login shells and CI runners often leave off PATH.
fn go_command() -> Command {
    let tarball = Path::new("/usr/local/go/bin/go");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("go").is_file()));
    if !on_path && tarball.is_file() {
        Command::new(tarball)
    } else {
        Command::new("go")
    }
}

fn build_module(module: &Path) -> anyhow::Result<PathBuf> {
    let name = module
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".to_owned());
    let root = cache_dir().join("go");
    std::fs::create_dir_all(&root)?;
    let binary = root.join(format!("{name}-{:016x}", source_hash(module)?));
    let lock = File::create(root.join(".lock"))?;
    lock.lock().context("lock the Go cache")?;
    if binary.is_file() {
        return Ok(binary);
    }
    let version = go_command().arg("version").output().map_err(|error| {
        anyhow::anyhow!(
            "cannot run `go` ({error}): building {} needs the Go toolchain on PATH or in \
             /usr/local/go (https://go.dev/dl/; Go 1.21+ fetches the release go.mod asks for)",
            module.display()
        )
    })?;
    let started = std::time::Instant::now();
    // Build beside the final name and rename, so a killed build never leaves a broken binary
    // that a later run would trust.
    let partial = root.join(format!(".{name}.partial"));
    let output = go_command()
        .current_dir(module)
        .args(["build", "-buildvcs=false", "-trimpath", "-o"])
        .arg(&partial)
        .arg(".")
        .output()
        .context("run go build")?;
    if !output.status.success() {
        anyhow::bail!(
            "go build failed in {} ({}):\n{}{}",
            module.display(),
            String::from_utf8_lossy(&version.stdout).trim(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&partial, &binary)?;
    tracing::info!(
        module = %module.display(),
        build_ms = started.elapsed().as_millis() as u64,
        "Go program built"
    );
    Ok(binary)
}
