//! Python programs as real peers: a virtualenv per requirements file, created once and cached.
//!
//! The venv lives under the harness cache (see [`crate::paths::cache_dir`]) in a folder named after
//! a hash of the requirements, so a changed requirements file gets a fresh venv and an unchanged one
//! is reused across runs without touching the network. A file lock serialises creation.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::paths::{cache_dir, workspace_root};

/// A ready virtualenv.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    venv: PathBuf,
}

impl PythonEnv {
    /// The venv for the harness's own `tests/python/requirements.txt`.
    pub fn shared() -> anyhow::Result<Self> {
        Self::from_requirements(&workspace_root().join("tests/python/requirements.txt"))
    }

    /// Every requirements file of the harness: the shared one and those of programs with their
    /// own venv (`tests/python/<program>/requirements.txt`), for `causeway-test-prepare`.
    pub fn requirement_files() -> anyhow::Result<Vec<PathBuf>> {
        let dir = workspace_root().join("tests/python");
        let mut files = vec![dir.join("requirements.txt")];
        let mut own = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let file = entry?.path().join("requirements.txt");
            if file.is_file() {
                own.push(file);
            }
        }
        own.sort();
        files.extend(own);
        Ok(files)
    }

    /// A venv with exactly the packages of `requirements` installed.
    pub fn from_requirements(requirements: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(requirements)
            .with_context(|| format!("read {}", requirements.display()))?;
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let root = cache_dir().join("python");
        std::fs::create_dir_all(&root)?;
        let venv = root.join(format!("venv-{:016x}", hasher.finish()));
        let lock = File::create(root.join(".lock"))?;
        lock.lock().context("lock the Python cache")?;
        let ready_marker = venv.join(".causeway-ready");
        if !ready_marker.exists() {
            let started = std::time::Instant::now();
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            run(Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(requirements))?;
            std::fs::write(&ready_marker, text)?;
            tracing::info!(
                venv = %venv.display(),
                build_ms = started.elapsed().as_millis() as u64,
                "Python venv created"
            );
        }
        Ok(Self { venv })
    }

    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }

    /// `python <script>`; add arguments and spawn it.
    pub fn command(&self, script: &Path) -> Command {
        let mut command = Command::new(self.python());
        command.arg(script);
        command
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{command:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
