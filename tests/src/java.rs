//! Java programs as real peers: a Maven project is built once and run with `java -cp`.
//!
//! Projects live in the repository (for example `tests/java/<name>/pom.xml`). Building resolves
//! dependencies from Maven Central into `~/.m2` (reused on later runs), compiles, and writes the
//! runtime classpath to `target/causeway.classpath`. A file lock keeps parallel test processes
//! from building the same project at once; within one process the classpath is memoised.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::Context as _;

/// A compiled Maven project ready to run.
#[derive(Debug, Clone)]
pub struct JavaProgram {
    project: PathBuf,
    classpath: String,
}

fn built() -> &'static Mutex<HashMap<PathBuf, String>> {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    BUILT.get_or_init(Mutex::default)
}

impl JavaProgram {
    /// Builds the Maven project in `project` (a folder with a `pom.xml`), or reuses this
    /// process's earlier build of it.
    pub fn build(project: &Path) -> anyhow::Result<Self> {
        let project = project
            .canonicalize()
            .with_context(|| format!("Maven project {} not found", project.display()))?;
        let mut cache = built()
            .lock()
            .map_err(|_| anyhow::anyhow!("Java build registry poisoned"))?;
        if let Some(classpath) = cache.get(&project) {
            return Ok(Self {
                project,
                classpath: classpath.clone(),
            });
        }
        let classpath = build_project(&project)?;
        cache.insert(project.clone(), classpath.clone());
        Ok(Self { project, classpath })
    }

    /// The full runtime classpath: compiled classes, then every dependency jar.
    pub fn classpath(&self) -> &str {
        &self.classpath
    }

    /// The project folder.
    pub fn project(&self) -> &Path {
        &self.project
    }

    /// `java -cp <classpath> <main_class>`; add arguments and spawn it.
    pub fn command(&self, main_class: &str) -> Command {
        let mut command = Command::new("java");
        command
            .arg("-XX:+UseSerialGC")
            .arg("-Xss512k")
            .arg("-cp")
            .arg(&self.classpath)
            .arg(main_class);
        command
    }
}

fn build_project(project: &Path) -> anyhow::Result<String> {
    let target = project.join("target");
    std::fs::create_dir_all(&target)?;
    let lock = File::create(target.join(".causeway-build.lock"))?;
    lock.lock().context("lock the Maven build")?;
    let classpath_file = target.join("causeway.classpath");
    let started = std::time::Instant::now();
    let mut mvn = Command::new("mvn");
    mvn.current_dir(project)
        .args(["-B", "-q", "-Dmaven.test.skip=true"])
        .args(["compile", "dependency:build-classpath"])
        .arg(format!("-Dmdep.outputFile={}", classpath_file.display()));
    if std::env::var_os("CAUSEWAY_MAVEN_OFFLINE").is_some() {
        mvn.arg("-o");
    }
    let output = mvn
        .output()
        .context("run mvn (is Maven installed? the test command installs it)")?;
    if !output.status.success() {
        anyhow::bail!(
            "mvn failed in {}:\n{}{}",
            project.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let dependencies = std::fs::read_to_string(&classpath_file)
        .with_context(|| format!("read {}", classpath_file.display()))?;
    tracing::info!(
        project = %project.display(),
        build_ms = started.elapsed().as_millis() as u64,
        "Maven project built"
    );
    let classes = target.join("classes");
    Ok(format!("{}:{}", classes.display(), dependencies.trim()))
}
