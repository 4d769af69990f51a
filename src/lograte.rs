//! Rate limits for log lines that the network can trigger (a failed login, a refused
//! connection): at most `burst` lines per `interval` per call site, then one line that says how
//! many similar lines were left out. Without it an attacker sets how fast the log grows.
//!
//! Keys are `&'static str` on purpose: they name call sites, never something a peer sent, so
//! the table of keys is bounded by the code.
//!
//! ```ignore
//! rcslab::warn_limited!("webrsf.login", user = %u, "web login refused");
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One key's window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    allowed: u32,
    suppressed: u64,
}

/// Counts log lines per key in fixed windows.
#[derive(Debug)]
pub struct LogRate {
    burst: u32,
    interval: Duration,
    keys: Mutex<HashMap<&'static str, Window>>,
}

impl LogRate {
    /// At most `burst` lines per `interval` per key.
    pub fn new(burst: u32, interval: Duration) -> LogRate {
        LogRate {
            burst: burst.max(1),
            interval,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line of `key` may be written now: `Some(k)` when it may, `k` being how many
    /// lines of that key were suppressed since the last one written (say so when `k > 0`);
    /// `None` when it must be left out (it is counted).
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    /// [`LogRate::allow`] at time `now` (tests pass a fake clock).
    pub fn allow_at(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut keys = match self.keys.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        let w = keys.entry(key).or_insert(Window {
            start: now,
            allowed: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= self.interval {
            w.start = now;
            w.allowed = 0;
        }
        if w.allowed < self.burst {
            w.allowed += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

/// The process-wide limiter that [`warn_limited!`](crate::warn_limited) uses: 5 lines per
/// 10 s per call site.
pub fn global() -> &'static LogRate {
    static GLOBAL: OnceLock<LogRate> = OnceLock::new();
    GLOBAL.get_or_init(|| LogRate::new(5, Duration::from_secs(10)))
}

/// `tracing::warn!` limited per call-site key (a `&'static str`) by [`global`]; the first line
/// after a suppressed stretch is preceded by `suppressed K similar messages`.
#[macro_export]
macro_rules! warn_limited {
    ($key:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $crate::lograte::global().allow($key) {
            if suppressed > 0 {
                tracing::warn!(key = $key, "suppressed {suppressed} similar messages");
            }
            tracing::warn!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_reported_in_the_next_window() {
        let r = LogRate::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let got: Vec<_> = (0..10).map(|_| r.allow_at("login", t0)).collect();
        assert_eq!(got[..3], [Some(0), Some(0), Some(0)]);
        assert!(got[3..].iter().all(Option::is_none));
        // Still inside the window.
        assert_eq!(r.allow_at("login", t0 + Duration::from_secs(9)), None);
        // The next window reports the 8 left out, once.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(r.allow_at("login", t1), Some(8));
        assert_eq!(r.allow_at("login", t1), Some(0));
    }

    #[test]
    fn keys_are_counted_apart() {
        let r = LogRate::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(r.allow_at("a", t0), Some(0));
        assert_eq!(r.allow_at("a", t0), None);
        assert_eq!(r.allow_at("b", t0), Some(0));
    }

    #[test]
    fn the_macro_compiles_with_fields_and_format() {
        let user = "bob";
        crate::warn_limited!("lograte.test", %user, n = 3, "refused {}", 1);
    }
}
