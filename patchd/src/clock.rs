//! Time for patchd: the wall clock for state and audit records, and the
//! sleeps between retries, behind one small trait so tests neither wait nor
//! depend on the date.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where patchd gets the time and how it waits.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The system's clock and `std::thread::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        // A clock before 1970 is a broken clock; 0 says so in the records.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock for tests: starts at a given time, advances only when slept on,
/// and records every sleep.
#[derive(Debug, Default)]
pub struct FakeClock {
    inner: Mutex<(Duration, Vec<Duration>)>,
}

impl FakeClock {
    /// A clock reading `now` (Unix seconds).
    pub fn new(now: u64) -> Self {
        Self {
            inner: Mutex::new((Duration::from_secs(now), Vec::new())),
        }
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .as_secs()
    }

    fn sleep(&self, duration: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.0 = inner.0.saturating_add(duration);
        inner.1.push(duration);
    }
}

/// Latest time RFC 3339 can write: 9999-12-31T23:59:59Z.
pub const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// Unix seconds as RFC 3339 UTC, e.g. `2023-11-14T22:13:20Z`. A time past
/// [`MAX_RFC3339_SECS`] (which the state and manifest checks refuse, so it
/// only comes from a defect) is written `@SECS` rather than aborting:
/// `SystemTime` addition and humantime's formatting both panic there.
pub fn utc_rfc3339(secs: u64) -> String {
    if secs > MAX_RFC3339_SECS {
        return format!("@{secs}");
    }
    let time = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (secs, text) in cases {
            assert_eq!(utc_rfc3339(secs), text, "{secs}");
        }
    }

    #[test]
    fn times_past_the_year_9999_do_not_panic() {
        assert_eq!(utc_rfc3339(253_402_300_800), "@253402300800");
        assert_eq!(utc_rfc3339(u64::MAX), format!("@{}", u64::MAX));
    }

    #[test]
    fn fake_clock_advances_only_by_sleeping() {
        let clock = FakeClock::new(100);
        assert_eq!(clock.now(), 100);
        clock.sleep(Duration::from_millis(1500));
        clock.sleep(Duration::from_millis(600));
        assert_eq!(clock.now(), 102);
        assert_eq!(
            clock.sleeps(),
            [Duration::from_millis(1500), Duration::from_millis(600)]
        );
    }
}
