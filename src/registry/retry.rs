//! When a failed registry request is tried again: exponential backoff with jitter, bounded in
//! attempts and in total time, honouring `Retry-After` (RFC 9110 §10.2.3) on 429 and 503.

use std::time::{Duration, Instant, SystemTime};

/// How often and for how long a request is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`--retry-times`).
    pub retries: u32,
    /// First backoff delay; doubled after each failure, capped at `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this much time has passed since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// One failed attempt, as the retry loop sees it.
#[derive(Debug)]
pub struct Failure {
    /// A one-line description, naming the registry's own error when it gave one.
    pub message: String,
    /// Worth another attempt (429, 5xx, connection trouble, timeouts, truncated bodies).
    pub transient: bool,
    /// What the registry asked for in `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            transient: false,
            retry_after: None,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            transient: true,
            retry_after: None,
        }
    }
}

/// Counts attempts and time for one logical operation (a request, a blob read, an upload).
#[derive(Debug)]
pub struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    failures: u32,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        Attempts {
            policy,
            started: Instant::now(),
            failures: 0,
        }
    }

    /// Records a failure; sleeps and returns Ok when another attempt is allowed, else the
    /// message to give up with.
    pub fn back_off(&mut self, failure: Failure) -> Result<(), String> {
        self.failures += 1;
        if !failure.transient {
            return Err(failure.message);
        }
        let elapsed = self.started.elapsed();
        let give_up = |why: &str| {
            Err(format!(
                "{} (giving up after {} attempt{} in {:.1}s: {why})",
                failure.message,
                self.failures,
                if self.failures == 1 { "" } else { "s" },
                elapsed.as_secs_f64()
            ))
        };
        if self.failures > self.policy.retries {
            return give_up("--retry-times exhausted");
        }
        let backoff = self
            .policy
            .base_delay
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(self.policy.max_delay);
        // Jitter in [backoff/2, backoff], so clients that failed together do not retry together.
        let jittered = backoff / 2 + backoff.mul_f64(jitter() / 2.0);
        let delay = match failure.retry_after {
            Some(asked) => asked.max(jittered),
            None => jittered,
        };
        if elapsed + delay > self.policy.max_elapsed {
            return give_up("retry time limit reached");
        }
        std::thread::sleep(delay);
        Ok(())
    }
}

/// A number in [0, 1) that differs between calls and processes (no cryptographic needs).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut x = STATE.fetch_add(seed | 1, Ordering::Relaxed) ^ seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` as seconds or an HTTP date, capped so a hostile value cannot stall a run.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(120);
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(CAP));
    }
    let when = parse_http_date(value)?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(when.saturating_sub(now)).min(CAP))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace().skip(1);
    let day: u64 = it.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == it.clone().next())? as u64
        + 1;
    it.next();
    let year: u64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn attempts_are_bounded_and_permanent_failures_stop_at_once() {
        let policy = RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_elapsed: Duration::from_secs(5),
        };
        let mut a = Attempts::new(policy);
        assert!(a.back_off(Failure::transient("503")).is_ok());
        assert!(a.back_off(Failure::transient("503")).is_ok());
        let e = a.back_off(Failure::transient("503 busy")).unwrap_err();
        assert!(e.starts_with("503 busy (giving up after 3 attempts"), "{e}");
        let mut a = Attempts::new(policy);
        assert_eq!(
            a.back_off(Failure::permanent("denied")).unwrap_err(),
            "denied"
        );
        let mut a = Attempts::new(RetryPolicy {
            max_elapsed: Duration::from_millis(10),
            ..policy
        });
        let e = a
            .back_off(Failure {
                retry_after: Some(Duration::from_secs(1)),
                ..Failure::transient("429")
            })
            .unwrap_err();
        assert!(e.contains("retry time limit"), "{e}");
    }
}
