//! Grafana's published dashboard schema as a validator: the `@grafana/schema` npm package's
//! TypeScript types, turned into JSON schemas once and cached, and checked with `ajv`.
//!
//! `tests/grafana/` pins the npm packages (`package.json` + `package-lock.json`) and holds the
//! type entry point and the Node script (`dashboards.mjs`). [`GrafanaSchema::prepare`] copies
//! that folder into [`crate::paths::cache_dir`]`/grafana/schema-<hash of its files>`, runs
//! `npm ci` there and generates the schemas, so an unchanged folder is reused across runs without
//! network and a changed one (say a newer `@grafana/schema`) gets a fresh install. A file lock
//! serialises preparation across test processes. Needs Node.js 18+ and npm on the PATH.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde::Deserialize;

use crate::paths::{cache_dir, workspace_root};

/// The files of `tests/grafana/` that decide the installed packages and the generated schemas.
const SOURCES: [&str; 5] = [
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "schema-entry.ts",
    "dashboards.mjs",
];

/// A prepared validator: the npm packages installed and the schemas generated.
#[derive(Debug, Clone)]
pub struct GrafanaSchema {
    dir: PathBuf,
    info: SchemaInfo,
}

/// What the schemas were generated from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SchemaInfo {
    /// The `@grafana/schema` package version.
    #[serde(rename = "grafanaSchemaPackage")]
    pub package_version: String,
    /// The dashboard `schemaVersion` of that package's default dashboard: what Grafana writes
    /// into dashboards it saves today.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u64,
}

/// The validation result of one dashboard file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Report {
    /// The dashboard file.
    pub file: PathBuf,
    /// Every schema violation, as `JSON pointer: message`; empty when the dashboard is valid.
    pub errors: Vec<String>,
}

impl GrafanaSchema {
    /// Installs the pinned packages and generates the schemas, or reuses a cached copy made
    /// from exactly the same files.
    pub fn prepare() -> anyhow::Result<Self> {
        let source = workspace_root().join("tests/grafana");
        check_node()?;
        let mut hasher = DefaultHasher::new();
        for name in SOURCES {
            let path = source.join(name);
            name.hash(&mut hasher);
            std::fs::read(&path)
                .with_context(|| format!("read {}", path.display()))?
                .hash(&mut hasher);
        }
        let root = cache_dir().join("grafana");
        std::fs::create_dir_all(&root)?;
        let dir = root.join(format!("schema-{:016x}", hasher.finish()));
        let lock = File::create(root.join(".lock"))?;
        lock.lock().context("lock the Grafana schema cache")?;
        let ready_marker = dir.join(".causeway-ready");
        if !ready_marker.exists() {
            let started = std::time::Instant::now();
            // A half-made folder from an interrupted run is not trusted.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            for name in SOURCES {
                std::fs::copy(source.join(name), dir.join(name))
                    .with_context(|| format!("copy {name}"))?;
            }
            // `npm ci` installs exactly the lock file; no install scripts run, none are needed.
            run(Command::new("npm").current_dir(&dir).args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
                "--loglevel=error",
            ]))?;
            run(Command::new("node").current_dir(&dir).args([
                "dashboards.mjs",
                "generate",
                "schema.json",
            ]))?;
            std::fs::write(&ready_marker, "")?;
            tracing::info!(
                dir = %dir.display(),
                build_ms = started.elapsed().as_millis() as u64,
                "Grafana schema prepared"
            );
        }
        let schema = std::fs::read(dir.join("schema.json")).context("read schema.json")?;
        let info: SchemaInfo = serde_json::from_slice(&schema).context("parse schema.json")?;
        Ok(Self { dir, info })
    }

    /// The package and dashboard schema version the schemas come from.
    pub fn info(&self) -> &SchemaInfo {
        &self.info
    }

    /// Validates each dashboard file against the dashboard schema and each panel's options and
    /// custom field config against its panel plugin's schema.
    pub fn validate(&self, files: &[PathBuf]) -> anyhow::Result<Vec<Report>> {
        let mut command = Command::new("node");
        command
            .current_dir(&self.dir)
            .args(["dashboards.mjs", "validate", "schema.json"])
            .args(files.iter().map(|f| absolute(f)));
        let stdout = run(&mut command)?;
        serde_json::from_slice(&stdout).context("parse the validator's report")
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Node.js 18+ and npm: a clear message instead of a spawn error when either is missing.
fn check_node() -> anyhow::Result<()> {
    const HINT: &str = "the Grafana dashboard schema check needs Node.js 18+ and npm on the PATH \
                        (Debian: apt-get install nodejs npm; scripts/test-all.sh installs them)";
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|error| anyhow::anyhow!("{HINT}: cannot run `node`: {error}"))?;
    let text = String::from_utf8_lossy(&version.stdout);
    let major: u32 = text
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    if major < 18 {
        anyhow::bail!("{HINT}: found node {}", text.trim());
    }
    Command::new("npm")
        .arg("--version")
        .output()
        .map_err(|error| anyhow::anyhow!("{HINT}: cannot run `npm`: {error}"))?;
    Ok(())
}

fn run(command: &mut Command) -> anyhow::Result<Vec<u8>> {
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
    Ok(output.stdout)
}
