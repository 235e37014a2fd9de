//! Reporting a benchmark run: verdicts, the date, the machine and revision it ran on, and
//! appending the run's Markdown to its section of `docs/benchmarks.md`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::paths::workspace_root;

/// A target's verdict cell.
pub fn verdict(met: bool) -> &'static str {
    if met { "✅ met" } else { "❌ missed" }
}

/// `YYYY-MM-DD HH:MM UTC` for a time since the epoch (civil-from-days over the proleptic
/// Gregorian calendar).
pub fn utc_date(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// The trimmed stdout of a command run in the workspace, when it succeeds.
pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// One line describing the machine: cores, CPU, memory, OS, kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let os = std::fs::read_to_string("/etc/debian_version")
        .map(|v| format!("Debian {}", v.trim()))
        .unwrap_or_else(|_| "Linux".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {memory_gib:.0} GiB, {os}, kernel {}",
        kernel.trim()
    )
}

/// The checked-out revision, noting uncommitted bridge changes.
pub fn revision() -> String {
    let head = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = command_output("git", &["status", "--porcelain", "--", "bridge"])
        .is_some_and(|s| !s.is_empty());
    match (head.is_empty(), dirty) {
        (true, _) => "unknown".to_owned(),
        (false, true) => format!("`{head}` + uncommitted bridge changes"),
        (false, false) => format!("`{head}`"),
    }
}

/// Appends `run` to the section headed `section` (a level-2 heading line), creating the file, or
/// the section with `intro` (which starts with that heading), when missing.
pub fn append_to_doc(path: &Path, section: &str, intro: &str, run: &str) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.trim().is_empty() {
        text = "# Benchmarks\n\n".to_owned();
    }
    let Some(section_start) = text.find(section) else {
        if !text.ends_with("\n\n") {
            text.push_str(if text.ends_with('\n') { "\n" } else { "\n\n" });
        }
        text.push_str(intro);
        text.push('\n');
        text.push_str(run);
        return write_doc(path, &text);
    };
    // The section ends where the next level-2 heading starts, or at the end of the file.
    let body_start = section_start + section.len();
    let section_end = text[body_start..]
        .find("\n## ")
        .map_or(text.len(), |i| body_start + i + 1);
    let mut before = text[..section_end].trim_end().to_owned();
    before.push_str("\n\n");
    before.push_str(run);
    let after = &text[section_end..];
    if !after.is_empty() {
        before.push('\n');
        before.push_str(after);
    }
    write_doc(path, &before)
}

fn write_doc(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(Duration::ZERO), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc_date(Duration::from_secs(1_709_210_096)),
            "2024-02-29 12:34 UTC"
        );
    }

    #[test]
    fn runs_are_appended_inside_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("benchmarks.md");
        append_to_doc(
            &path,
            "## Bridge: registry scale",
            "## Bridge: registry scale\n\nintro\n",
            "### Run 1\n",
        )
        .unwrap();
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).unwrap() + "\n## Proxy\n\nother\n",
        )
        .unwrap();
        append_to_doc(
            &path,
            "## Bridge: registry scale",
            "## Bridge: registry scale\n\nintro\n",
            "### Run 2\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let run1 = text.find("### Run 1").unwrap();
        let run2 = text.find("### Run 2").unwrap();
        let proxy = text.find("## Proxy").unwrap();
        assert!(text.starts_with("# Benchmarks\n\n## Bridge: registry scale"));
        assert!(run1 < run2 && run2 < proxy, "{text}");
    }
}
