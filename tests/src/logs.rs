//! Tracing output captured per test: log lines go through libtest's capture, so a passing test is
//! quiet and a failing one shows its own logs (and those of the harness) only.

/// Installs a test-writer subscriber once per test binary; call it at the start of every test.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Later calls find the subscriber installed and change nothing.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
