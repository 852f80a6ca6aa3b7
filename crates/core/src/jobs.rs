//! The scheduler's pure rules: what happens to a job after a failed attempt
//! (retry later with exponential backoff and jitter, or park it), and the
//! names of a job's states as stored. The store and the runner apply these;
//! nothing here reads a clock or a random source (callers pass both in).

use crate::Millis;

/// Where a job is in its life. Completed jobs are deleted, so there is no
/// `done`: a job that exists is waiting, running, or parked for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its `run_at` (or due and waiting for a worker).
    Pending,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Out of attempts or failed permanently; kept, with its error, until a
    /// person retries or deletes it.
    Parked,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Parked => "parked",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        match s {
            "pending" => Some(JobState::Pending),
            "running" => Some(JobState::Running),
            "parked" => Some(JobState::Parked),
            _ => None,
        }
    }
}

/// Exponential backoff with "equal jitter": the n-th retry waits a random
/// time in `[d/2, d]` where `d = min(max, base · factorⁿ⁻¹)`. Half of the
/// delay is guaranteed (so a failing provider is not hammered), the other
/// half is spread (so jobs that failed together do not retry together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay ceiling before jitter of the first retry.
    pub base_ms: Millis,
    /// Growth per attempt (2 doubles).
    pub factor: u32,
    /// No single wait is longer than this.
    pub max_ms: Millis,
}

impl Default for Backoff {
    /// 1 s, doubling, capped at 6 h: with the default 25 attempts a job keeps
    /// trying for about two days (1.4–2.7 days with jitter), as Sidekiq and
    /// Oban do, before it is parked.
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            factor: 2,
            max_ms: 6 * 3_600_000,
        }
    }
}

impl Backoff {
    /// The jitter-free ceiling of the wait after the `attempt`-th failed
    /// attempt (1-based): `min(max, base · factor^(attempt-1))`, saturating.
    pub fn ceiling(&self, attempt: u32) -> Millis {
        let base = self.base_ms.max(1);
        let max = self.max_ms.max(base);
        if self.factor <= 1 {
            return base;
        }
        // At most 63 doublings reach any i64 cap: the loop is short even
        // for an absurd attempt count.
        let mut d = base;
        for _ in 1..attempt {
            d = d.saturating_mul(self.factor as i64);
            if d >= max {
                return max;
            }
        }
        d
    }

    /// The wait after the `attempt`-th failed attempt, given `unit` drawn
    /// uniformly from `[0, 1)` by the caller: in `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Millis {
        let c = self.ceiling(attempt);
        let half = c / 2;
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        half + ((c - half) as f64 * unit) as Millis
    }
}

/// How a handler's failure is to be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again (timeouts, 5xx, a lost connection). `retry_at`, when
    /// given (a provider's `Retry-After`), replaces the computed backoff.
    Transient { retry_at: Option<Millis> },
    /// Will never succeed (invalid address, opted out, 4xx): park now.
    Permanent,
}

/// What becomes of a job after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Pending again, due at this time.
    Retry { at: Millis },
    /// Parked with its error.
    Park,
}

/// Decides the fate of a job whose `attempts`-th attempt (1-based, counting
/// this one) just failed at `now`. A job is parked when the failure is
/// permanent or it has used all of `max_attempts`; otherwise it is retried
/// after the backoff (or at the handler's `retry_at`, but never in the past).
pub fn after_failure(
    failure: &Failure,
    attempts: u32,
    max_attempts: u32,
    backoff: &Backoff,
    now: Millis,
    unit: f64,
) -> AfterFailure {
    match failure {
        Failure::Permanent => AfterFailure::Park,
        Failure::Transient { .. } if attempts >= max_attempts => AfterFailure::Park,
        Failure::Transient { retry_at } => {
            let at = match retry_at {
                Some(at) => (*at).max(now),
                None => now.saturating_add(backoff.delay(attempts.max(1), unit)),
            };
            AfterFailure::Retry { at }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_schedule_doubles_then_caps() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), 1_000);
        assert_eq!(b.ceiling(2), 2_000);
        assert_eq!(b.ceiling(5), 16_000);
        assert_eq!(b.ceiling(16), 6 * 3_600_000);
        assert_eq!(b.ceiling(25), 6 * 3_600_000);
        assert_eq!(b.delay(1, 0.0), 500);
        assert_eq!(b.delay(1, 1.0), 1_000);
    }

    #[test]
    fn default_retries_span_days_not_minutes() {
        let b = Backoff::default();
        let least: i64 = (1..25).map(|n| b.delay(n, 0.0)).sum();
        let most: i64 = (1..25).map(|n| b.delay(n, 1.0)).sum();
        assert!(least > 24 * 3_600_000, "{least}");
        assert!(most < 4 * 24 * 3_600_000, "{most}");
    }

    #[test]
    fn permanent_failures_and_last_attempts_park() {
        let b = Backoff::default();
        assert_eq!(
            after_failure(&Failure::Permanent, 1, 25, &b, 0, 0.5),
            AfterFailure::Park
        );
        let t = Failure::Transient { retry_at: None };
        assert_eq!(after_failure(&t, 25, 25, &b, 0, 0.5), AfterFailure::Park);
        assert_eq!(
            after_failure(&t, 3, 25, &b, 10_000, 1.0),
            AfterFailure::Retry { at: 14_000 }
        );
    }

    #[test]
    fn retry_after_is_honoured_but_not_in_the_past() {
        let b = Backoff::default();
        let f = |at| Failure::Transient { retry_at: Some(at) };
        assert_eq!(
            after_failure(&f(90_000), 1, 5, &b, 10_000, 0.3),
            AfterFailure::Retry { at: 90_000 }
        );
        assert_eq!(
            after_failure(&f(5), 1, 5, &b, 10_000, 0.3),
            AfterFailure::Retry { at: 10_000 }
        );
    }

    #[test]
    fn states_round_trip() {
        for s in [JobState::Pending, JobState::Running, JobState::Parked] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("done"), None);
    }

    fn backoffs() -> impl Strategy<Value = Backoff> {
        (1i64..100_000, 1u32..5, 1i64..100_000_000).prop_map(|(base_ms, factor, max_ms)| Backoff {
            base_ms,
            factor,
            max_ms,
        })
    }

    proptest! {
        #[test]
        fn delay_stays_within_half_and_whole_ceiling(b in backoffs(), attempt in 1u32..200, unit in 0.0f64..1.0) {
            let c = b.ceiling(attempt);
            let d = b.delay(attempt, unit);
            prop_assert!(d >= c / 2 && d <= c, "{d} not in [{}, {c}]", c / 2);
            prop_assert!(d >= b.base_ms.max(1) / 2);
        }

        #[test]
        fn ceiling_never_shrinks_and_never_passes_the_cap(b in backoffs(), attempt in 1u32..200) {
            let (c, next) = (b.ceiling(attempt), b.ceiling(attempt + 1));
            prop_assert!(next >= c);
            prop_assert!(c <= b.max_ms.max(b.base_ms.max(1)));
            prop_assert!(c >= b.base_ms.max(1).min(b.max_ms.max(b.base_ms.max(1))));
        }

        #[test]
        fn huge_attempt_counts_do_not_overflow(b in backoffs(), attempt in 0u32..u32::MAX, unit in proptest::num::f64::ANY) {
            let d = b.delay(attempt, unit);
            prop_assert!(d >= 0 && d <= b.max_ms.max(b.base_ms.max(1)));
        }

        #[test]
        fn a_retry_is_never_before_now_and_parks_exactly_at_the_limit(
            b in backoffs(), attempts in 1u32..50, max in 1u32..50,
            now in 0i64..4_000_000_000_000, unit in 0.0f64..1.0,
            retry_at in proptest::option::of(0i64..5_000_000_000_000),
        ) {
            let f = Failure::Transient { retry_at };
            match after_failure(&f, attempts, max, &b, now, unit) {
                AfterFailure::Park => prop_assert!(attempts >= max),
                AfterFailure::Retry { at } => {
                    prop_assert!(attempts < max);
                    prop_assert!(at >= now);
                    if retry_at.is_none() {
                        prop_assert!(at - now >= b.ceiling(attempts) / 2);
                    }
                }
            }
        }
    }
}
