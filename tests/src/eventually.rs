//! Waiting without sleeps: poll a condition until it holds or patience runs out.
//!
//! Patience defaults to 30 s and can be raised on a slow machine with `CAUSEWAY_TEST_PATIENCE_MS`.

use std::future::Future;
use std::time::Duration;

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a condition may take before the test fails.
pub fn patience() -> Duration {
    std::env::var("CAUSEWAY_TEST_PATIENCE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(30))
}

/// Polls `attempt` until it returns `Ok`, or returns the last error once `timeout` has passed.
pub async fn retry_until<T, E, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Asserts that a condition becomes true within the test patience, polling it (it may `.await`).
///
/// ```ignore
/// assert_eventually!(client.list().await?.len() == 2, "both providers listed");
/// ```
///
/// `assert_eventually!(within Duration::from_secs(2); cond, "message")` sets the patience
/// explicitly for a condition that must hold sooner than the default.
#[macro_export]
macro_rules! assert_eventually {
    (within $patience:expr; $cond:expr, $($arg:tt)+) => {{
        let deadline = ::tokio::time::Instant::now() + $patience;
        loop {
            if $cond {
                break;
            }
            if ::tokio::time::Instant::now() >= deadline {
                panic!($($arg)+);
            }
            ::tokio::time::sleep($crate::eventually::POLL_INTERVAL).await;
        }
    }};
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!($cond, "condition never became true: {}", stringify!($cond))
    };
    ($cond:expr, $($arg:tt)+) => {
        $crate::assert_eventually!(within $crate::eventually::patience(); $cond, $($arg)+)
    };
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn waits_until_the_condition_holds() {
        let calls = AtomicU32::new(0);
        assert_eventually!(calls.fetch_add(1, Ordering::SeqCst) >= 3);
        assert!(calls.load(Ordering::SeqCst) >= 4);
    }

    #[tokio::test]
    #[should_panic(expected = "never true")]
    async fn fails_when_patience_runs_out() {
        assert_eventually!(within std::time::Duration::from_millis(60); false, "never true");
    }

    #[tokio::test]
    async fn retry_returns_the_last_error() {
        let result: Result<(), &str> =
            super::retry_until(std::time::Duration::from_millis(50), || async { Err("no") }).await;
        assert_eq!(result, Err("no"));
    }
}
