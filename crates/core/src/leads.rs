//! The lead state machine: which states a lead can be in, what
//! moves it between them, and the sentence the timeline shows for each move.
//! The caller owns time and storage: it passes in what happened (an
//! [`Input`], with timestamps) and records the [`Transition`] it gets back.
//! Per-tenant [`LeadSettings`] say how long silence lasts before a lead is
//! ghosting and how many nudges it gets before it is lost.

use serde::{Deserialize, Serialize};

use crate::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadState {
    /// Seen, but has not yet shown real interest.
    New,
    /// Showing interest.
    Engaged,
    /// Went quiet after showing interest; nudges go out.
    Ghosting,
    /// Bought. Final: repeat purchases and later activity keep it here.
    Converted,
    /// Stayed quiet through every nudge, or a person gave up on it. Only a
    /// person reopens it (activity alone does not); a purchase converts it.
    Lost,
}

impl LeadState {
    pub const ALL: [LeadState; 5] = [
        LeadState::New,
        LeadState::Engaged,
        LeadState::Ghosting,
        LeadState::Converted,
        LeadState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadState::New => "new",
            LeadState::Engaged => "engaged",
            LeadState::Ghosting => "ghosting",
            LeadState::Converted => "converted",
            LeadState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<LeadState> {
        LeadState::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            LeadState::New => "New",
            LeadState::Engaged => "Engaged",
            LeadState::Ghosting => "Ghosting",
            LeadState::Converted => "Converted",
            LeadState::Lost => "Lost",
        }
    }
}

/// A state equals its stored name (`LeadState::Engaged == "engaged"`).
impl PartialEq<&str> for LeadState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Still worth working on: new, engaged or ghosting.
pub fn is_open(state: LeadState) -> bool {
    matches!(
        state,
        LeadState::New | LeadState::Engaged | LeadState::Ghosting
    )
}

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// Per-tenant thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeadSettings {
    /// Silence after which an engaged lead is ghosting.
    pub ghost_after_ms: i64,
    /// Nudges a ghosting lead gets before it is lost.
    pub max_nudges: u32,
    /// Activity scoring at least this engages a new lead.
    pub engage_min_score: u8,
}

impl Default for LeadSettings {
    fn default() -> Self {
        LeadSettings {
            ghost_after_ms: 3 * DAY,
            max_nudges: 3,
            engage_min_score: 15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadSettingsError {
    #[error("a lead should count as ghosting after between 1 minute and 90 days of silence (it is set to {ms} ms); pick a period in that range")]
    GhostAfter { ms: i64 },
    #[error("a ghosting lead may get 0 to 20 nudges before it is lost (it is set to {0}); pick a number in that range")]
    MaxNudges(u32),
    #[error("the intent score that engages a new lead must be from 0 to 100 (it is set to {0}); pick a score in that range")]
    EngageMinScore(u8),
}

impl LeadSettings {
    pub fn validate(&self) -> Result<(), LeadSettingsError> {
        if !(MINUTE..=90 * DAY).contains(&self.ghost_after_ms) {
            return Err(LeadSettingsError::GhostAfter {
                ms: self.ghost_after_ms,
            });
        }
        if self.max_nudges > 20 {
            return Err(LeadSettingsError::MaxNudges(self.max_nudges));
        }
        if self.engage_min_score > 100 {
            return Err(LeadSettingsError::EngageMinScore(self.engage_min_score));
        }
        Ok(())
    }
}

/// What happened to a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    /// An intake event for the lead's profile, with its intent score.
    /// `strong`: a form submitted, a checkout, a cart, a reply.
    Activity {
        score: u8,
        strong: bool,
        at: Millis,
    },
    /// An order was placed.
    Purchase {
        at: Millis,
    },
    /// The ghosting timer fired. It was set from an earlier activity, so the
    /// rule re-checks against the latest `last_active_at`.
    InactivityElapsed {
        last_active_at: Millis,
        now: Millis,
    },
    /// A nudge sequence step finished without a reply being seen.
    NudgeOutcome {
        nudges_sent: u32,
        last_active_at: Millis,
        now: Millis,
    },
    MarkConverted,
    MarkLost,
    Reopen,
}

/// One move, with the sentence the timeline shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: LeadState,
    pub to: LeadState,
    pub reason: String,
}

/// When the ghosting timer for activity at `last_active_at` should fire.
pub fn ghost_due_at(last_active_at: Millis, s: &LeadSettings) -> Millis {
    last_active_at.saturating_add(s.ghost_after_ms)
}

/// Silent for at least the ghosting period. A `now` before `last_active_at`
/// (activity stamped by a clock ahead of ours) counts as not silent.
fn silent(last_active_at: Millis, now: Millis, s: &LeadSettings) -> bool {
    now.saturating_sub(last_active_at) >= s.ghost_after_ms
}

/// "3 days", "1 day 4 hours", "45 minutes": the two largest units, because
/// the timeline is read by people, not parsed.
pub fn human_duration(ms: Millis) -> String {
    let ms = ms.max(0);
    let parts: Vec<String> = [(DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")]
        .into_iter()
        .scan(ms, |left, (unit, name)| {
            let n = *left / unit;
            *left %= unit;
            Some((n, name))
        })
        .filter(|&(n, _)| n > 0)
        .take(2)
        .map(|(n, name)| format!("{n} {name}{}", if n == 1 { "" } else { "s" }))
        .collect();
    if parts.is_empty() {
        "less than a minute".to_string()
    } else {
        parts.join(" ")
    }
}

/// The move `input` causes from `state`, or `None` when nothing changes:
/// activity on a lead already engaged, a timer that finds recent activity,
/// or a move the machine does not allow (converted is final).
pub fn next(state: LeadState, input: &Input, s: &LeadSettings) -> Option<Transition> {
    use LeadState::*;
    let (to, reason) = match (state, input) {
        (New, &Input::Activity { score, strong, .. }) if strong || score >= s.engage_min_score => {
            let how = if strong {
                "Showed strong interest"
            } else {
                "Showed interest"
            };
            (Engaged, format!("{how} (intent score {score})"))
        }
        (Ghosting, &Input::Activity { score, .. }) => {
            (Engaged, format!("Active again (intent score {score})"))
        }
        // A lost lead that buys has converted, whatever anyone decided.
        (New | Engaged | Ghosting | Lost, Input::Purchase { .. }) => {
            (Converted, "Placed an order".to_string())
        }
        (
            Engaged,
            &Input::InactivityElapsed {
                last_active_at,
                now,
            },
        ) if silent(last_active_at, now, s) => (
            Ghosting,
            format!(
                "No activity for {}",
                human_duration(now.saturating_sub(last_active_at))
            ),
        ),
        // Still silent a whole ghosting period on: a reply or visit would
        // already have re-engaged the lead, this guards the race with one.
        (
            Ghosting,
            &Input::NudgeOutcome {
                nudges_sent,
                last_active_at,
                now,
            },
        ) if nudges_sent >= s.max_nudges && silent(last_active_at, now, s) => (
            Lost,
            format!(
                "No response to {nudges_sent} nudge{} (no activity for {})",
                if nudges_sent == 1 { "" } else { "s" },
                human_duration(now.saturating_sub(last_active_at))
            ),
        ),
        (New | Engaged | Ghosting | Lost, Input::MarkConverted) => {
            (Converted, "Marked converted by a person".to_string())
        }
        (New | Engaged | Ghosting, Input::MarkLost) => {
            (Lost, "Marked lost by a person".to_string())
        }
        (Lost, Input::Reopen) => (Engaged, "Reopened by a person".to_string()),
        _ => return None,
    };
    Some(Transition {
        from: state,
        to,
        reason,
    })
}

/// The lead state a customer's order history alone calls for, when BOS
/// learns of them other than through its event flow (an import, the
/// demo's seed, customers from before leads existed): someone with orders
/// has converted, with the reason; anyone else is new. Returns the move to
/// record, or `None` when the state already agrees: no lead yet and no
/// orders (the caller creates it as new), an open lead without orders, or
/// a converted or lost one (never moved by this).
pub fn state_from_orders(current: Option<LeadState>, orders: i64) -> Option<Transition> {
    let from = current.unwrap_or(LeadState::New);
    if orders <= 0 || !is_open(from) {
        return None;
    }
    let reason = if orders == 1 {
        "1 order on record when lead tracking began".to_string()
    } else {
        format!("{orders} orders on record when lead tracking began")
    };
    Some(Transition {
        from,
        to: LeadState::Converted,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_history_alone_decides_between_new_and_converted() {
        assert_eq!(state_from_orders(None, 0), None);
        let t = state_from_orders(None, 3).expect("converted");
        assert_eq!((t.from, t.to), (LeadState::New, LeadState::Converted));
        assert_eq!(t.reason, "3 orders on record when lead tracking began");
        assert_eq!(
            state_from_orders(Some(LeadState::Ghosting), 1).map(|t| t.reason),
            Some("1 order on record when lead tracking began".into())
        );
        assert_eq!(state_from_orders(Some(LeadState::Engaged), 0), None);
        assert_eq!(state_from_orders(Some(LeadState::Lost), 4), None);
        assert_eq!(state_from_orders(Some(LeadState::Converted), 4), None);
    }
    use proptest::prelude::*;
    use LeadState::*;

    /// Every move the machine may make; the property test checks `next`
    /// against this list rather than against itself.
    const EDGES: [(LeadState, LeadState); 11] = [
        (New, Engaged),
        (New, Converted),
        (New, Lost),
        (Engaged, Ghosting),
        (Engaged, Converted),
        (Engaged, Lost),
        (Ghosting, Engaged),
        (Ghosting, Converted),
        (Ghosting, Lost),
        (Lost, Engaged),
        (Lost, Converted),
    ];

    const T0: Millis = 1_700_000_000_000;

    fn set() -> LeadSettings {
        LeadSettings::default()
    }

    fn to(state: LeadState, input: &Input) -> Option<LeadState> {
        next(state, input, &set()).map(|t| {
            assert_eq!(t.from, state);
            t.to
        })
    }

    fn reason(state: LeadState, input: &Input) -> String {
        next(state, input, &set()).unwrap().reason
    }

    #[test]
    fn every_state_against_every_kind_of_input() {
        let weak = Input::Activity {
            score: 14,
            strong: false,
            at: T0,
        };
        let scored = Input::Activity {
            score: 15,
            strong: false,
            at: T0,
        };
        let strong = Input::Activity {
            score: 0,
            strong: true,
            at: T0,
        };
        let buy = Input::Purchase { at: T0 };
        let quiet = Input::InactivityElapsed {
            last_active_at: T0,
            now: T0 + 3 * DAY,
        };
        let recent = Input::InactivityElapsed {
            last_active_at: T0,
            now: T0 + 3 * DAY - 1,
        };
        let given_up = Input::NudgeOutcome {
            nudges_sent: 3,
            last_active_at: T0,
            now: T0 + 5 * DAY,
        };
        let more_nudges = Input::NudgeOutcome {
            nudges_sent: 2,
            last_active_at: T0,
            now: T0 + 5 * DAY,
        };
        let replied = Input::NudgeOutcome {
            nudges_sent: 3,
            last_active_at: T0,
            now: T0 + DAY,
        };
        let inputs = [
            weak,
            scored,
            strong,
            buy,
            quiet,
            recent,
            given_up,
            more_nudges,
            replied,
            Input::MarkConverted,
            Input::MarkLost,
            Input::Reopen,
        ];
        let n = None;
        let (e, g, c, l) = (Some(Engaged), Some(Ghosting), Some(Converted), Some(Lost));
        #[rustfmt::skip]
        let expect: [(LeadState, [Option<LeadState>; 12]); 5] = [
            //            weak scored strong buy quiet recent given_up more replied mark_c mark_l reopen
            (New,       [n,   e,     e,     c,  n,    n,     n,       n,   n,      c,     l,     n]),
            (Engaged,   [n,   n,     n,     c,  g,    n,     n,       n,   n,      c,     l,     n]),
            (Ghosting,  [e,   e,     e,     c,  n,    n,     l,       n,   n,      c,     l,     n]),
            (Converted, [n,   n,     n,     n,  n,    n,     n,       n,   n,      n,     n,     n]),
            (Lost,      [n,   n,     n,     c,  n,    n,     n,       n,   n,      c,     n,     e]),
        ];
        for (from, row) in expect {
            for (input, want) in inputs.iter().zip(row) {
                assert_eq!(to(from, input), want, "{from:?} on {input:?}");
            }
        }
    }

    #[test]
    fn reasons_read_as_sentences() {
        let at = T0;
        assert_eq!(
            reason(
                New,
                &Input::Activity {
                    score: 20,
                    strong: false,
                    at
                }
            ),
            "Showed interest (intent score 20)"
        );
        assert_eq!(
            reason(
                New,
                &Input::Activity {
                    score: 5,
                    strong: true,
                    at
                }
            ),
            "Showed strong interest (intent score 5)"
        );
        assert_eq!(
            reason(
                Ghosting,
                &Input::Activity {
                    score: 55,
                    strong: false,
                    at
                }
            ),
            "Active again (intent score 55)"
        );
        assert_eq!(reason(New, &Input::Purchase { at }), "Placed an order");
        assert_eq!(
            reason(
                Engaged,
                &Input::InactivityElapsed {
                    last_active_at: at,
                    now: at + 3 * DAY
                }
            ),
            "No activity for 3 days"
        );
        assert_eq!(
            reason(
                Ghosting,
                &Input::NudgeOutcome {
                    nudges_sent: 3,
                    last_active_at: at,
                    now: at + 4 * DAY + 2 * HOUR + 5 * MINUTE
                }
            ),
            "No response to 3 nudges (no activity for 4 days 2 hours)"
        );
        assert_eq!(
            reason(Engaged, &Input::MarkConverted),
            "Marked converted by a person"
        );
        assert_eq!(reason(Engaged, &Input::MarkLost), "Marked lost by a person");
        assert_eq!(reason(Lost, &Input::Reopen), "Reopened by a person");
    }

    #[test]
    fn durations_are_humane() {
        assert_eq!(human_duration(0), "less than a minute");
        assert_eq!(human_duration(-5), "less than a minute");
        assert_eq!(human_duration(59_999), "less than a minute");
        assert_eq!(human_duration(MINUTE), "1 minute");
        assert_eq!(human_duration(45 * MINUTE + 30_000), "45 minutes");
        assert_eq!(human_duration(2 * HOUR + 5 * MINUTE), "2 hours 5 minutes");
        assert_eq!(human_duration(DAY + 5 * MINUTE), "1 day 5 minutes");
        assert_eq!(human_duration(3 * DAY), "3 days");
        assert_eq!(
            human_duration(DAY + 23 * HOUR + 59 * MINUTE),
            "1 day 23 hours"
        );
    }

    #[test]
    fn zero_max_nudges_loses_a_silent_ghosting_lead_at_once() {
        let s = LeadSettings {
            max_nudges: 0,
            ..set()
        };
        let input = Input::NudgeOutcome {
            nudges_sent: 0,
            last_active_at: T0,
            now: T0 + 3 * DAY,
        };
        assert_eq!(next(Ghosting, &input, &s).map(|t| t.to), Some(Lost));
    }

    #[test]
    fn a_timer_racing_a_clock_ahead_of_ours_does_not_ghost() {
        let input = Input::InactivityElapsed {
            last_active_at: T0,
            now: T0 - DAY,
        };
        assert_eq!(to(Engaged, &input), None);
        let far = Input::InactivityElapsed {
            last_active_at: Millis::MIN,
            now: Millis::MAX,
        };
        assert_eq!(to(Engaged, &far), Some(Ghosting));
    }

    #[test]
    fn ghost_timer_and_open_states() {
        assert_eq!(ghost_due_at(T0, &set()), T0 + 3 * DAY);
        assert_eq!(ghost_due_at(Millis::MAX, &set()), Millis::MAX);
        let open: Vec<_> = LeadState::ALL.into_iter().filter(|s| is_open(*s)).collect();
        assert_eq!(open, [New, Engaged, Ghosting]);
    }

    #[test]
    fn state_names_round_trip() {
        for s in LeadState::ALL {
            assert_eq!(LeadState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(LeadState::parse("New"), None);
        assert_eq!(Ghosting.label(), "Ghosting");
    }

    #[test]
    fn settings_validate_with_clear_messages() {
        assert_eq!(set().validate(), Ok(()));
        let with = |f: fn(&mut LeadSettings)| {
            let mut s = set();
            f(&mut s);
            s.validate()
        };
        assert_eq!(with(|s| s.ghost_after_ms = MINUTE), Ok(()));
        assert_eq!(with(|s| s.ghost_after_ms = 90 * DAY), Ok(()));
        let short = with(|s| s.ghost_after_ms = MINUTE - 1).unwrap_err();
        assert!(
            short.to_string().contains("between 1 minute and 90 days"),
            "{short}"
        );
        assert!(with(|s| s.ghost_after_ms = 90 * DAY + 1).is_err());
        assert_eq!(with(|s| s.max_nudges = 20), Ok(()));
        assert_eq!(
            with(|s| s.max_nudges = 21),
            Err(LeadSettingsError::MaxNudges(21))
        );
        assert_eq!(
            with(|s| s.engage_min_score = 101),
            Err(LeadSettingsError::EngageMinScore(101))
        );
        let stored: LeadSettings = serde_json::from_str(r#"{"max_nudges":5}"#).unwrap();
        assert_eq!(
            stored,
            LeadSettings {
                max_nudges: 5,
                ..set()
            }
        );
    }

    fn settings() -> impl Strategy<Value = LeadSettings> {
        (MINUTE..=90 * DAY, 0u32..=20, 0u8..=100).prop_map(
            |(ghost_after_ms, max_nudges, engage_min_score)| LeadSettings {
                ghost_after_ms,
                max_nudges,
                engage_min_score,
            },
        )
    }

    fn input() -> impl Strategy<Value = Input> {
        let t = T0..T0 + 200 * DAY;
        prop_oneof![
            (any::<u8>(), any::<bool>(), t.clone()).prop_map(|(score, strong, at)| {
                Input::Activity {
                    score: score % 101,
                    strong,
                    at,
                }
            }),
            t.clone().prop_map(|at| Input::Purchase { at }),
            (t.clone(), t.clone()).prop_map(|(last_active_at, now)| Input::InactivityElapsed {
                last_active_at,
                now
            }),
            (0u32..25, t.clone(), t).prop_map(|(nudges_sent, last_active_at, now)| {
                Input::NudgeOutcome {
                    nudges_sent,
                    last_active_at,
                    now,
                }
            }),
            Just(Input::MarkConverted),
            Just(Input::MarkLost),
            Just(Input::Reopen),
        ]
    }

    proptest! {
        #[test]
        fn any_run_from_new_only_walks_allowed_edges(s in settings(), inputs in prop::collection::vec(input(), 0..60)) {
            let mut state = New;
            for i in &inputs {
                if let Some(t) = next(state, i, &s) {
                    prop_assert_eq!(t.from, state);
                    prop_assert!(EDGES.contains(&(t.from, t.to)), "{:?} -> {:?} on {:?}", t.from, t.to, i);
                    prop_assert!(!t.reason.is_empty());
                    state = t.to;
                }
            }
        }

        #[test]
        fn converted_is_absorbing(s in settings(), i in input()) {
            prop_assert_eq!(next(Converted, &i, &s), None);
        }

        #[test]
        fn a_timer_within_the_ghosting_period_never_ghosts_or_loses(
            s in settings(), last in T0..T0 + 100 * DAY, frac in 0.0f64..1.0, nudges_sent in 0u32..25,
        ) {
            let now = last + ((s.ghost_after_ms - 1) as f64 * frac) as Millis;
            for state in LeadState::ALL {
                let timer = Input::InactivityElapsed { last_active_at: last, now };
                prop_assert_eq!(next(state, &timer, &s), None);
                let nudge = Input::NudgeOutcome { nudges_sent, last_active_at: last, now };
                prop_assert_eq!(next(state, &nudge, &s), None);
            }
            prop_assert!(ghost_due_at(last, &s) > now);
        }

        #[test]
        fn the_timer_set_by_ghost_due_at_ghosts_an_engaged_lead(s in settings(), last in T0..T0 + 100 * DAY) {
            let due = ghost_due_at(last, &s);
            let t = next(Engaged, &Input::InactivityElapsed { last_active_at: last, now: due }, &s);
            prop_assert_eq!(t.map(|t| t.to), Some(Ghosting));
        }

        #[test]
        fn inputs_round_trip_through_json(i in input()) {
            let back: Input = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
            prop_assert_eq!(back, i);
        }
    }
}
