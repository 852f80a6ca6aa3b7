//! Time as a dependency. Production reads the wall clock and sleeps on
//! tokio's timer; tests hold a [`TestClock`] and move it forward instead of
//! sleeping, and everything asleep on it wakes as soon as its time is passed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;

    /// Resolves once `now_ms() >= at_ms` (at once if it already is).
    fn sleep_until(&self, at_ms: i64) -> Sleep;
}

pub struct SystemClock;

/// Microseconds since the Unix epoch: finer than the millisecond times the
/// store keeps, so a sleep can aim at the start of a millisecond.
pub fn system_now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_us() / 1_000
    }

    /// Sleeps on the monotonic timer for the wall-clock distance measured
    /// now. If the wall clock is then stepped, the sleeper wakes at the old
    /// reckoning; callers that wait long re-check (the scheduler caps each
    /// wait), so a step costs at most that cap.
    fn sleep_until(&self, at_ms: i64) -> Sleep {
        let us = at_ms.saturating_mul(1_000) - system_now_us();
        Box::pin(async move {
            if us > 0 {
                tokio::time::sleep(Duration::from_micros(us as u64)).await;
            }
        })
    }
}

/// A clock that only moves when told to.
pub struct TestClock(watch::Sender<i64>);

impl TestClock {
    pub fn new(start_ms: i64) -> TestClock {
        TestClock(watch::Sender::new(start_ms))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.send_modify(|t| *t += ms);
    }

    /// Sets the time, backwards too (a clock correction).
    pub fn set_ms(&self, ms: i64) {
        self.0.send_modify(|t| *t = ms);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        *self.0.borrow()
    }

    fn sleep_until(&self, at_ms: i64) -> Sleep {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            if rx.wait_for(|t| *t >= at_ms).await.is_err() {
                // The clock is gone: nothing will ever be due.
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn test_clock_sleepers_wake_only_when_their_time_is_passed() {
        let clock = Arc::new(TestClock::new(1_000));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for at in [1_500, 2_000] {
            let (c, tx) = (clock.clone(), tx.clone());
            tokio::spawn(async move {
                c.sleep_until(at).await;
                let _ = tx.send(at);
            });
        }
        clock.sleep_until(900).await; // already passed: returns at once
        clock.advance_ms(499);
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "nothing is due at 1499");
        clock.advance_ms(1);
        assert_eq!(rx.recv().await, Some(1_500));
        assert!(rx.try_recv().is_err());
        clock.set_ms(5_000);
        assert_eq!(rx.recv().await, Some(2_000));
        assert_eq!(clock.now_ms(), 5_000);
    }
}
