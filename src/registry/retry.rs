//! The one place that decides what is retried and how long to wait: 408, 429 and 5xx
//! answers and connection failures (refused, reset, timed out), with exponential backoff.

use std::time::Duration;

use reqwest::StatusCode;

/// Retry policy for registry requests.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound on one wait (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Whether an answer with this status is worth another try.
    pub fn retryable_status(status: StatusCode) -> bool {
        status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
    }

    /// Whether a transport error is worth another try (connection refused or reset,
    /// time-outs, a body cut short). Builder and redirect errors are not.
    pub fn retryable_error(err: &reqwest::Error) -> bool {
        err.is_connect() || err.is_timeout() || err.is_request() || err.is_body() || err.is_decode()
    }

    /// The wait after failed attempt number `attempt` (1-based), honouring a
    /// `Retry-After` of some seconds when the server sent one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        retry_after.unwrap_or(exp).min(self.max_delay)
    }

    /// Whether another attempt follows attempt number `attempt`.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }
}

/// Reads a `Retry-After: <seconds>` header.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None), Duration::from_millis(200));
        assert_eq!(p.delay(2, None), Duration::from_millis(400));
        assert_eq!(p.delay(3, None), Duration::from_millis(800));
        assert_eq!(p.delay(30, None), Duration::from_secs(10));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(300))),
            Duration::from_secs(10)
        );
        assert!(p.should_retry(4) && !p.should_retry(5));
    }

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                RetryPolicy::retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 416] {
            assert!(
                !RetryPolicy::retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}
