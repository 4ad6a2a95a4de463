//! Waiting for the broker: one retry loop, with backoff, that gives up as
//! soon as weir is asked to stop.
//!
//! Every wait for the broker at start (creating topics, registering the
//! transactional producer) goes through [`retry`], with attempts short
//! enough that a SIGTERM is answered within seconds even while the broker
//! is away.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one attempt may block on the broker: a stop request waits at
/// most this long plus one backoff slice.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a backoff looks at the stop flag.
const SLICE: Duration = Duration::from_millis(50);

/// What one attempt came to when it did not succeed.
pub(super) enum Attempt<E> {
    /// Worth trying again (the broker is away, a leader is being elected).
    Again(E),
    /// Final: retrying cannot help.
    Fail(E),
}

/// Why [`retry`] gave up.
#[derive(Debug)]
pub(super) enum GaveUp<E> {
    /// weir is stopping.
    Stopping,
    /// The last error, once final or once `patience` ran out.
    Failed(E),
}

/// Runs `attempt` until it succeeds, fails finally, `patience` runs out, or
/// `stop` is set; between attempts it waits 100 ms, doubling up to 2 s, and
/// logs each retry once as `what`.
pub(super) fn retry<T, E: Display>(
    stop: &AtomicBool,
    what: &str,
    patience: Duration,
    mut attempt: impl FnMut() -> Result<T, Attempt<E>>,
) -> Result<T, GaveUp<E>> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(GaveUp::Stopping);
        }
        let error = match attempt() {
            Ok(value) => return Ok(value),
            Err(Attempt::Fail(e)) => return Err(GaveUp::Failed(e)),
            Err(Attempt::Again(e)) => e,
        };
        if started.elapsed() >= patience {
            return Err(GaveUp::Failed(error));
        }
        tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "{what} will be retried");
        if !sleep_unless_stopped(stop, backoff) {
            return Err(GaveUp::Stopping);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `duration` in short slices; false if `stop` was set meanwhile.
pub(super) fn sleep_unless_stopped(stop: &AtomicBool, duration: Duration) -> bool {
    let until = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep(SLICE.min(until - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_success_and_stops_when_asked() {
        let stop = AtomicBool::new(false);
        let mut calls = 0;
        let got = retry(&stop, "a test", Duration::from_secs(5), || {
            calls += 1;
            if calls < 3 { Err(Attempt::Again("not yet")) } else { Ok(calls) }
        });
        assert_eq!(got.unwrap(), 3);

        let got: Result<(), _> = retry(&stop, "a test", Duration::from_secs(5), || Err(Attempt::Fail("final")));
        assert!(matches!(got, Err(GaveUp::Failed("final"))));

        let got: Result<(), _> = retry(&stop, "a test", Duration::ZERO, || Err(Attempt::Again("away")));
        assert!(matches!(got, Err(GaveUp::Failed("away"))), "patience ran out");

        let started = Instant::now();
        let got: Result<(), _> = retry(&stop, "a test", Duration::from_secs(600), || {
            stop.store(true, Ordering::Relaxed);
            Err(Attempt::Again("away"))
        });
        assert!(matches!(got, Err(GaveUp::Stopping)));
        assert!(started.elapsed() < Duration::from_secs(1), "the stop was seen at once");
    }
}
