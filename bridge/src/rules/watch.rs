//! Follows the rules file: polls its modification time and size, reloads it on change, publishes
//! every valid rule set, and records rejections in a [`RulesStatus`] that the admin server shows
//! (`/debug/rules`) and that feeds [`RulesMetrics`].
//!
//! A rejected file (invalid, unreadable, or deleted) never replaces the rules in force: the last
//! good set stays published until a valid file appears.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use super::RuleSet;
use super::RulesError;
use super::metrics::RulesMetrics;

/// How often the file's modification time and size are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What the rules watcher has done, as the admin server shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RulesStatusView {
    /// The rules file, once the watcher has started.
    pub file: Option<String>,
    /// Version of the rules in force (`None` until a file has been accepted).
    pub version: Option<String>,
    /// Resources in force.
    pub resources: usize,
    /// When the file last loaded successfully, in milliseconds since the Unix epoch.
    pub accepted_at_unix_ms: Option<u64>,
    /// Whether the file as it is now is rejected (the rules in force are older than it).
    pub failing: bool,
    /// Rejected loads since start.
    pub rejected_total: u64,
    /// The most recent rejection, kept after the file is fixed.
    pub last_error: Option<String>,
    /// Every problem of the most recent rejection, one per entry.
    pub last_error_problems: Vec<String>,
    /// When the most recent rejection happened, in milliseconds since the Unix epoch.
    pub last_error_at_unix_ms: Option<u64>,
}

/// Shared, thread-safe status of the rules watcher.
#[derive(Debug, Default)]
pub struct RulesStatus {
    view: Mutex<RulesStatusView>,
    metrics: Option<RulesMetrics>,
}

/// `/debug/rules`: the status and the rules in force.
#[derive(Debug, Serialize)]
pub struct RulesDebug<'a> {
    /// The watcher's status.
    pub status: RulesStatusView,
    /// The rules in force.
    pub rules: &'a RuleSet,
}

fn unix_ms(time: SystemTime) -> Option<u64> {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

impl RulesStatus {
    /// A status that also updates `metrics`.
    pub fn with_metrics(metrics: RulesMetrics) -> Self {
        Self {
            view: Mutex::default(),
            metrics: Some(metrics),
        }
    }

    fn update(&self, change: impl FnOnce(&mut RulesStatusView)) {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        change(&mut self.view.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Records that `rules`, read from `file`, are now in force.
    pub fn accepted(&self, file: &str, rules: &RuleSet) {
        self.update(|view| {
            view.file = Some(file.to_owned());
            view.version = Some(rules.version.clone());
            view.resources = rules.len();
            view.accepted_at_unix_ms = unix_ms(SystemTime::now());
            view.failing = false;
        });
        if let Some(metrics) = &self.metrics {
            metrics.accepted(rules);
        }
    }

    /// Records a rejected load of `file`.
    pub fn rejected(&self, file: &str, error: &RulesError) {
        self.update(|view| {
            view.file = Some(file.to_owned());
            view.failing = true;
            view.rejected_total += 1;
            view.last_error = Some(error.to_string());
            view.last_error_problems = match error {
                RulesError::Read { .. } => vec![error.to_string()],
                RulesError::Invalid { errors } => errors.iter().map(ToString::to_string).collect(),
            };
            view.last_error_at_unix_ms = unix_ms(SystemTime::now());
        });
        if let Some(metrics) = &self.metrics {
            metrics.rejected();
        }
    }

    /// A copy of the current status.
    pub fn view(&self) -> RulesStatusView {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `/debug/rules` document for the rules in force.
    pub fn debug<'a>(&self, rules: &'a RuleSet) -> RulesDebug<'a> {
        RulesDebug {
            status: self.view(),
            rules,
        }
    }
}

/// Watches `path` until every receiver of `tx` is gone, publishing each valid, changed rule set.
///
/// The file is read at once, then whenever its modification time or size changes. Any problem
/// (unreadable file, invalid document) rejects the whole file: it is logged, recorded in
/// `status`, and the rules already in `tx` stay in force.
pub async fn watch(path: PathBuf, tx: watch::Sender<Arc<RuleSet>>, status: Arc<RulesStatus>) {
    let file = path.display().to_string();
    // `None` after a failed stat, so the file is reloaded as soon as it is back.
    let mut last_seen: Option<(Option<SystemTime>, u64)> = None;
    let mut missing = false;
    while !tx.is_closed() {
        match tokio::fs::metadata(&path).await {
            Err(source) => {
                // Record a vanished file once, not every poll.
                if !missing {
                    reject(
                        &file,
                        &status,
                        &RulesError::Read {
                            file: file.clone(),
                            source,
                        },
                    );
                    missing = true;
                    last_seen = None;
                }
            }
            Ok(metadata) => {
                missing = false;
                let seen = (metadata.modified().ok(), metadata.len());
                if last_seen != Some(seen) {
                    last_seen = Some(seen);
                    reload(&path, &file, &tx, &status).await;
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    tracing::debug!(path = %file, "rules watcher stopped: nobody reads the rules any more");
}

async fn reload(
    path: &std::path::Path,
    file: &str,
    tx: &watch::Sender<Arc<RuleSet>>,
    status: &RulesStatus,
) {
    let loaded = match tokio::fs::read_to_string(path).await {
        Ok(text) => RuleSet::parse(file, &text),
        Err(source) => Err(RulesError::Read {
            file: file.to_owned(),
            source,
        }),
    };
    match loaded {
        Ok(rules) => {
            // Accepted as written; a warning says what was probably not meant.
            for warning in &rules.warnings {
                tracing::warn!(path = %file, %warning, "rules accepted with a warning");
            }
            status.accepted(file, &rules);
            if tx.borrow().version != rules.version {
                tracing::info!(path = %file, version = %rules.version, resources = rules.len(), "rules loaded");
                tx.send_replace(Arc::new(rules));
            }
        }
        Err(error) => reject(file, status, &error),
    }
}

fn reject(file: &str, status: &RulesStatus, error: &RulesError) {
    tracing::warn!(path = %file, %error, "rules rejected; the last good rules stay in force");
    status.rejected(file, error);
}
