//! `promtool` (Debian's `prometheus` package, 2.42) as the judge of PromQL and rules files.
//!
//! promtool 2.42 has no command that parses a lone expression, so [`check_expressions`] writes
//! the expressions into a temporary rules file, one recording rule each, and runs
//! `promtool check rules` on it; when that fails it checks them one by one to say which
//! expressions are wrong and why.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// The output of a successful promtool run.
#[derive(Debug, Clone)]
pub struct Output {
    /// Standard output and standard error, in that order.
    pub text: String,
}

/// An expression promtool rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the expression in the list given.
    pub index: usize,
    /// promtool's message.
    pub message: String,
}

/// `promtool check rules FILE...`.
pub fn check_rules(files: &[PathBuf]) -> anyhow::Result<Output> {
    run(promtool().args(["check", "rules"]).args(files))
}

/// `promtool test rules FILE...` (unit tests with input series and expected alerts).
pub fn test_rules(files: &[PathBuf]) -> anyhow::Result<Output> {
    run(promtool().args(["test", "rules"]).args(files))
}

/// Checks that every expression parses; returns the rejected ones (empty when all parse).
pub fn check_expressions(expressions: &[String]) -> anyhow::Result<Vec<Rejected>> {
    let dir = tempfile::tempdir()?;
    let all: Vec<(usize, &String)> = expressions.iter().enumerate().collect();
    if check_batch(dir.path(), &all)?.is_ok() {
        return Ok(Vec::new());
    }
    let mut rejected = Vec::new();
    for (index, expression) in all {
        if let Err(message) = check_batch(dir.path(), &[(index, expression)])? {
            rejected.push(Rejected { index, message });
        }
    }
    Ok(rejected)
}

/// One rules file with a recording rule per expression: `Ok(Err(message))` if promtool rejects
/// it, `Err` if promtool cannot run.
fn check_batch(dir: &Path, expressions: &[(usize, &String)]) -> anyhow::Result<Result<(), String>> {
    let mut yaml = String::from("groups:\n  - name: expressions\n    rules:\n");
    for (index, expression) in expressions {
        // A JSON string is a valid YAML double-quoted scalar, escapes included.
        let quoted = serde_json::to_string(expression)?;
        yaml.push_str(&format!(
            "      - record: causeway_check:expression_{index}\n        expr: {quoted}\n"
        ));
    }
    let file = dir.join("expressions.yml");
    std::fs::write(&file, yaml)?;
    let output = promtool()
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .context("run promtool (Debian package `prometheus`; run scripts/test-all.sh)")?;
    if output.status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .trim()
        .to_owned()))
    }
}

fn promtool() -> Command {
    Command::new("promtool")
}

fn run(command: &mut Command) -> anyhow::Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("run {command:?} (Debian package `prometheus`)"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        anyhow::bail!("{command:?} failed:\n{text}");
    }
    Ok(Output { text })
}
