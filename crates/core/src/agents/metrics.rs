//! Agent metrics (success rate, first-response time, cost per interaction
//! and the period's total, CSAT 0–10, human-intervention rate) and their
//! trend against the period before.
//!
//! The store adds interactions up in SQL into [`Totals`] (sums and counts
//! only, so one indexed scan answers for any period and any agent); this
//! module turns totals into the rates a member reads. [`Totals::add`] is the
//! same sum done in Rust, which is how the tests prove the SQL adds up to
//! what the interactions say.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::Millis;

/// How an interaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    HandedOff,
}

impl Outcome {
    pub const ALL: &'static [Outcome] = &[Outcome::Success, Outcome::Failure, Outcome::HandedOff];
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::HandedOff => "handed_off",
        }
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "handed_off" => Ok(Outcome::HandedOff),
            other => Err(format!(
                "{other:?} is not one of success, failure, handed_off"
            )),
        }
    }
}

/// What one interaction contributes to the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub outcome: Outcome,
    pub started_at: Millis,
    /// Time from the customer's first message to the agent's first answer.
    pub first_response_ms: Option<Millis>,
    /// Cost in millionths of a US dollar (Vapi reports dollars as a float,
    /// Retell cents; both fit without rounding a cent away).
    pub cost_micros: i64,
    pub tokens: i64,
    /// Customer satisfaction, 0–10.
    pub csat: Option<u8>,
    /// A human stepped in (handed off, or took the thread over).
    pub human_intervened: bool,
}

/// Sums and counts over a set of interactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub count: i64,
    pub successes: i64,
    pub intervened: i64,
    pub response_sum_ms: i64,
    pub response_count: i64,
    pub cost_micros: i64,
    pub tokens: i64,
    pub csat_sum: i64,
    pub csat_count: i64,
}

impl Totals {
    pub fn add(&mut self, i: &Interaction) {
        self.count += 1;
        self.successes += i64::from(i.outcome == Outcome::Success);
        self.intervened += i64::from(i.human_intervened || i.outcome == Outcome::HandedOff);
        if let Some(r) = i.first_response_ms {
            self.response_sum_ms += r.max(0);
            self.response_count += 1;
        }
        self.cost_micros += i.cost_micros;
        self.tokens += i.tokens;
        if let Some(c) = i.csat {
            self.csat_sum += i64::from(c.min(10));
            self.csat_count += 1;
        }
    }

    pub fn merge(self, o: Totals) -> Totals {
        Totals {
            count: self.count + o.count,
            successes: self.successes + o.successes,
            intervened: self.intervened + o.intervened,
            response_sum_ms: self.response_sum_ms + o.response_sum_ms,
            response_count: self.response_count + o.response_count,
            cost_micros: self.cost_micros + o.cost_micros,
            tokens: self.tokens + o.tokens,
            csat_sum: self.csat_sum + o.csat_sum,
            csat_count: self.csat_count + o.csat_count,
        }
    }

    pub fn of<'a>(items: impl IntoIterator<Item = &'a Interaction>) -> Totals {
        let mut t = Totals::default();
        for i in items {
            t.add(i);
        }
        t
    }
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The rates a member reads; `None` where the period has nothing to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub interactions: i64,
    /// 0.0–1.0.
    pub success_rate: Option<f64>,
    pub avg_first_response_ms: Option<f64>,
    pub cost_per_interaction_micros: Option<f64>,
    pub cost_total_micros: i64,
    /// 0–10.
    pub csat: Option<f64>,
    /// 0.0–1.0.
    pub intervention_rate: Option<f64>,
}

impl From<Totals> for Metrics {
    fn from(t: Totals) -> Self {
        Metrics {
            interactions: t.count,
            success_rate: ratio(t.successes, t.count),
            avg_first_response_ms: ratio(t.response_sum_ms, t.response_count),
            cost_per_interaction_micros: ratio(t.cost_micros, t.count),
            cost_total_micros: t.cost_micros,
            csat: ratio(t.csat_sum, t.csat_count),
            intervention_rate: ratio(t.intervened, t.count),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendDirection {
    Up,
    Down,
    Flat,
    /// Nothing to compare with: the period before had no data.
    New,
}

/// A metric against the period before: which way it moved, by how much
/// (relative, 0.1 = 10 %), and whether that is good news.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    pub direction: TrendDirection,
    pub change: Option<f64>,
    pub good: bool,
}

/// Moves under half a percent read as flat, so a card does not flicker
/// between ▲ and ▼ on noise.
const FLAT_BELOW: f64 = 0.005;

impl Trend {
    pub fn of(current: Option<f64>, previous: Option<f64>, higher_is_better: bool) -> Trend {
        let (Some(c), Some(p)) = (current, previous) else {
            return Trend {
                direction: TrendDirection::New,
                change: None,
                good: true,
            };
        };
        let change = if p.abs() > f64::EPSILON {
            (c - p) / p.abs()
        } else if c.abs() > f64::EPSILON {
            1.0
        } else {
            0.0
        };
        let direction = if change.abs() < FLAT_BELOW {
            TrendDirection::Flat
        } else if change > 0.0 {
            TrendDirection::Up
        } else {
            TrendDirection::Down
        };
        let good = match direction {
            TrendDirection::Flat | TrendDirection::New => true,
            TrendDirection::Up => higher_is_better,
            TrendDirection::Down => !higher_is_better,
        };
        Trend {
            direction,
            change: Some(change),
            good,
        }
    }

    /// ▲ ▼ or – for the strip.
    pub fn arrow(&self) -> &'static str {
        match self.direction {
            TrendDirection::Up => "▲",
            TrendDirection::Down => "▼",
            TrendDirection::Flat | TrendDirection::New => "–",
        }
    }
}

/// A half-open range of time, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Millis,
    pub to: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("{0:?} is not a date; use YYYY-MM-DD")]
    Date(String),
    #[error("the range ends before it starts; put the earlier date first")]
    Reversed,
    #[error("a range may span at most 366 days")]
    TooLong,
    #[error("{0:?} is not a known time zone")]
    Zone(String),
}

impl Period {
    /// The period of the same length just before this one.
    pub fn previous(&self) -> Period {
        let len = self.to - self.from;
        Period {
            from: self.from - len,
            to: self.from,
        }
    }

    pub fn contains(&self, t: Millis) -> bool {
        self.from <= t && t < self.to
    }

    /// The local day containing `now` in the organization's zone.
    pub fn today(now: Millis, tz: &str) -> Result<Period, PeriodError> {
        let zone = TimeZone::get(tz).map_err(|_| PeriodError::Zone(tz.into()))?;
        let at =
            Timestamp::from_millisecond(now).map_err(|_| PeriodError::Date(now.to_string()))?;
        let date = zone.to_datetime(at).date();
        Self::days(date, date, &zone)
    }

    /// Whole local days `from..=to` (dates as YYYY-MM-DD).
    pub fn dates(from: &str, to: &str, tz: &str) -> Result<Period, PeriodError> {
        let zone = TimeZone::get(tz).map_err(|_| PeriodError::Zone(tz.into()))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<jiff::civil::Date>()
                .map_err(|_| PeriodError::Date(s.into()))
        };
        let (a, b) = (parse(from)?, parse(to)?);
        if b < a {
            return Err(PeriodError::Reversed);
        }
        if (b - a).get_days() > 365 {
            return Err(PeriodError::TooLong);
        }
        Self::days(a, b, &zone)
    }

    fn days(
        a: jiff::civil::Date,
        b: jiff::civil::Date,
        zone: &TimeZone,
    ) -> Result<Period, PeriodError> {
        let bad = |_| PeriodError::Date(a.to_string());
        // Midnight may not exist on a DST day; the compatible reading is
        // the first instant of the local day either way.
        let start = zone
            .to_ambiguous_timestamp(a.at(0, 0, 0, 0))
            .compatible()
            .map_err(bad)?;
        let next = b.tomorrow().map_err(bad)?;
        let end = zone
            .to_ambiguous_timestamp(next.at(0, 0, 0, 0))
            .compatible()
            .map_err(bad)?;
        Ok(Period {
            from: start.as_millisecond(),
            to: end.as_millisecond(),
        })
    }
}

/// Metrics for a period and the trend of each against the period before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compared {
    pub current: Metrics,
    pub previous: Metrics,
    pub success: Trend,
    pub response: Trend,
    pub cost: Trend,
    pub csat: Trend,
    pub intervention: Trend,
}

impl Compared {
    pub fn of(current: Totals, previous: Totals) -> Compared {
        let (c, p) = (Metrics::from(current), Metrics::from(previous));
        Compared {
            current: c,
            previous: p,
            success: Trend::of(c.success_rate, p.success_rate, true),
            response: Trend::of(c.avg_first_response_ms, p.avg_first_response_ms, false),
            cost: Trend::of(
                c.cost_per_interaction_micros,
                p.cost_per_interaction_micros,
                false,
            ),
            csat: Trend::of(c.csat, p.csat, true),
            intervention: Trend::of(c.intervention_rate, p.intervention_rate, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn i(outcome: Outcome, resp: Option<i64>, cost: i64, csat: Option<u8>) -> Interaction {
        Interaction {
            outcome,
            started_at: 0,
            first_response_ms: resp,
            cost_micros: cost,
            tokens: 10,
            csat,
            human_intervened: false,
        }
    }

    #[test]
    fn metrics_are_what_the_interactions_add_up_to() {
        let items = [
            i(Outcome::Success, Some(1_000), 120_000, Some(9)),
            i(Outcome::Success, Some(3_000), 80_000, None),
            i(Outcome::HandedOff, None, 50_000, Some(4)),
            i(Outcome::Failure, Some(2_000), 0, Some(2)),
        ];
        let m = Metrics::from(Totals::of(&items));
        assert_eq!(m.interactions, 4);
        assert_eq!(m.success_rate, Some(0.5));
        assert_eq!(m.avg_first_response_ms, Some(2_000.0));
        assert_eq!(m.cost_total_micros, 250_000);
        assert_eq!(m.cost_per_interaction_micros, Some(62_500.0));
        assert_eq!(m.csat, Some(5.0));
        assert_eq!(m.intervention_rate, Some(0.25));
        let empty = Metrics::from(Totals::default());
        assert_eq!((empty.success_rate, empty.csat), (None, None));
    }

    #[test]
    fn trends_say_whether_the_move_is_good() {
        let up = Trend::of(Some(0.9), Some(0.8), true);
        assert_eq!(
            (up.direction, up.good, up.arrow()),
            (TrendDirection::Up, true, "▲")
        );
        let slower = Trend::of(Some(3_000.0), Some(2_000.0), false);
        assert_eq!((slower.direction, slower.good), (TrendDirection::Up, false));
        assert_eq!(
            Trend::of(Some(1.0), None, true).direction,
            TrendDirection::New
        );
        assert_eq!(
            Trend::of(Some(1.001), Some(1.0), true).direction,
            TrendDirection::Flat
        );
    }

    #[test]
    fn periods_are_local_days_and_the_previous_is_as_long() {
        // 2026-03-08 is 23 hours long in New York.
        let p = Period::dates("2026-03-08", "2026-03-08", "America/New_York").unwrap();
        assert_eq!(p.to - p.from, 23 * 3_600_000);
        assert_eq!(p.previous().to, p.from);
        assert_eq!(p.previous().to - p.previous().from, p.to - p.from);
        let week = Period::dates("2026-12-01", "2026-12-07", "UTC").unwrap();
        assert_eq!(week.to - week.from, 7 * 86_400_000);
        let now = week.from + 6 * 86_400_000 + 3_600_000;
        let today = Period::today(now, "UTC").unwrap();
        assert!(today.contains(now) && !today.contains(today.to));
        assert_eq!(
            Period::dates("2026-12-07", "2026-12-01", "UTC"),
            Err(PeriodError::Reversed)
        );
        assert!(matches!(
            Period::dates("yesterday", "2026-12-01", "UTC"),
            Err(PeriodError::Date(_))
        ));
        assert!(matches!(
            Period::today(0, "Mars/Base"),
            Err(PeriodError::Zone(_))
        ));
    }

    fn arb() -> impl Strategy<Value = Interaction> {
        (
            prop::sample::select(Outcome::ALL.to_vec()),
            prop::option::of(0i64..600_000),
            0i64..10_000_000,
            prop::option::of(0u8..=10),
            any::<bool>(),
        )
            .prop_map(|(o, r, c, s, h)| Interaction {
                outcome: o,
                started_at: 0,
                first_response_ms: r,
                cost_micros: c,
                tokens: 1,
                csat: s,
                human_intervened: h,
            })
    }

    proptest! {
        #[test]
        fn totals_of_a_split_merge_to_the_totals_of_the_whole(
            items in prop::collection::vec(arb(), 0..40), cut in 0usize..40,
        ) {
            let cut = cut.min(items.len());
            let (a, b) = items.split_at(cut);
            prop_assert_eq!(Totals::of(a).merge(Totals::of(b)), Totals::of(&items));
            let m = Metrics::from(Totals::of(&items));
            for r in [m.success_rate, m.intervention_rate].into_iter().flatten() {
                prop_assert!((0.0..=1.0).contains(&r));
            }
            if let Some(c) = m.csat { prop_assert!((0.0..=10.0).contains(&c)); }
        }
    }
}
