//! Quiet hours: nothing is sent while the customer's local clock
//! is inside the campaign's quiet window. The scheduler asks
//! [`next_allowed`] when a step falls due and schedules the send for the
//! answer instead. Local time comes from the IANA time zone database bundled
//! into the binary (jiff's `tzdb-bundle-always`), so the answer does not
//! depend on the host having `/usr/share/zoneinfo` and is the same on every
//! replica.

use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use super::campaign::QuietHours;
use crate::Millis;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TzError {
    #[error("{name:?} is not a known time zone; use an IANA name such as \"Europe/Paris\" or \"America/New_York\"")]
    UnknownZone { name: String },
    #[error("{millis} ms is outside the supported range of dates")]
    OutOfRange { millis: Millis },
    #[error("quiet hours {start}–{end} are not minutes of a day; use 0 to 1439 for each")]
    InvalidQuietHours { start: u16, end: u16 },
}

/// The first instant at or after `due_utc_ms` whose local time in `tz` is
/// outside `quiet`.
///
/// Across DST changes: when quiet hours end at a local time that does not
/// exist (the spring-forward gap), the answer is the instant the clocks jump,
/// which is the first local time after the end; when they end at a local
/// time that happens twice (fall back), the answer is the first occurrence
/// that is not before `due`. Quiet hours may resume after such an answer
/// (the repeated hour), but the answer itself is never inside them.
pub fn next_allowed(due_utc_ms: Millis, tz: &str, quiet: &QuietHours) -> Result<Millis, TzError> {
    let zone = TimeZone::get(tz).map_err(|_| TzError::UnknownZone {
        name: tz.to_string(),
    })?;
    let invalid = || TzError::InvalidQuietHours {
        start: quiet.start_minute,
        end: quiet.end_minute,
    };
    if quiet.start_minute >= 24 * 60 || quiet.end_minute >= 24 * 60 {
        return Err(invalid());
    }
    let out_of_range = |_| TzError::OutOfRange { millis: due_utc_ms };
    let mut at = Timestamp::from_millisecond(due_utc_ms).map_err(out_of_range)?;
    // One step answers almost always; another may be needed when the time
    // found lands back in quiet hours after a DST jump (a window ending in a
    // gap and starting again just past it).
    for _ in 0..4 {
        let local = zone.to_datetime(at);
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if !quiet.contains(minute) {
            return Ok(at.as_millisecond());
        }
        // Inside the window: it ends today, unless it wraps midnight and we
        // are in its evening part, when it ends tomorrow.
        let mut end_date = local.date();
        if quiet.start_minute > quiet.end_minute && minute >= quiet.start_minute {
            end_date = end_date.tomorrow().map_err(out_of_range)?;
        }
        let end = end_date.at(
            (quiet.end_minute / 60) as i8,
            (quiet.end_minute % 60) as i8,
            0,
            0,
        );
        let ambiguous = zone.to_ambiguous_timestamp(end);
        let next = match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => ambiguous.compatible(),
            AmbiguousOffset::Fold { .. } => ambiguous
                .earlier()
                .ok()
                .filter(|t| *t >= at)
                .map_or_else(|| ambiguous.later(), Ok),
            AmbiguousOffset::Gap { before, after } => {
                // The end time is skipped; the clocks jump past it at the
                // transition that lies between its two readings.
                let a = before.to_timestamp(end).map_err(out_of_range)?;
                let b = after.to_timestamp(end).map_err(out_of_range)?;
                match zone.following(a.min(b)).next() {
                    Some(t) => Ok(t.timestamp()),
                    None => ambiguous.compatible(),
                }
            }
        }
        .map_err(out_of_range)?;
        at = next.max(at);
    }
    Err(invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(rfc3339: &str) -> Millis {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn q(start: (u16, u16), end: (u16, u16)) -> QuietHours {
        QuietHours {
            start_minute: start.0 * 60 + start.1,
            end_minute: end.0 * 60 + end.1,
        }
    }

    const NIGHT: QuietHours = QuietHours {
        start_minute: 21 * 60,
        end_minute: 8 * 60,
    };

    #[test]
    fn outside_quiet_hours_the_due_time_stands() {
        let due = ms("2026-06-10T12:34:56.789Z"); // 14:34 in Paris
        assert_eq!(next_allowed(due, "Europe/Paris", &NIGHT), Ok(due));
    }

    #[test]
    fn evening_and_morning_parts_of_a_wrapped_window() {
        // 22:00 in Paris (summer, UTC+2) waits for 08:00 the next day.
        assert_eq!(
            next_allowed(ms("2026-06-10T20:00:00Z"), "Europe/Paris", &NIGHT),
            Ok(ms("2026-06-11T06:00:00Z"))
        );
        // 03:00 waits for 08:00 the same day.
        assert_eq!(
            next_allowed(ms("2026-06-11T01:00:00Z"), "Europe/Paris", &NIGHT),
            Ok(ms("2026-06-11T06:00:00Z"))
        );
        // A window inside one day.
        let lunch = q((12, 0), (13, 30));
        assert_eq!(
            next_allowed(ms("2026-06-11T10:15:00Z"), "Europe/Paris", &lunch),
            Ok(ms("2026-06-11T11:30:00Z"))
        );
    }

    #[test]
    fn new_york_spring_forward() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let tz = "America/New_York";
        // Overnight window: the night is an hour shorter.
        assert_eq!(
            next_allowed(ms("2026-03-08T04:00:00Z"), tz, &NIGHT), // 23:00 EST
            Ok(ms("2026-03-08T12:00:00Z"))                        // 08:00 EDT
        );
        // A window ending at 02:30, which does not exist that night: the
        // first allowed instant is the jump itself, 03:00 EDT.
        let ends_in_gap = q((22, 0), (2, 30));
        assert_eq!(
            next_allowed(ms("2026-03-08T06:45:00Z"), tz, &ends_in_gap), // 01:45 EST
            Ok(ms("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn new_york_fall_back() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC).
        let tz = "America/New_York";
        assert_eq!(
            next_allowed(ms("2026-11-01T02:00:00Z"), tz, &NIGHT), // 22:00 EDT
            Ok(ms("2026-11-01T13:00:00Z"))                        // 08:00 EST
        );
        // A window ending at 01:30, which happens twice.
        let ends_in_fold = q((22, 0), (1, 30));
        assert_eq!(
            next_allowed(ms("2026-11-01T04:30:00Z"), tz, &ends_in_fold), // 00:30 EDT
            Ok(ms("2026-11-01T05:30:00Z"))                               // first 01:30
        );
        assert_eq!(
            next_allowed(ms("2026-11-01T06:10:00Z"), tz, &ends_in_fold), // 01:10 EST
            Ok(ms("2026-11-01T06:30:00Z"))                               // second 01:30
        );
    }

    #[test]
    fn paris_dst_changes() {
        let tz = "Europe/Paris";
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        assert_eq!(
            next_allowed(ms("2026-03-28T21:00:00Z"), tz, &NIGHT), // 22:00 CET
            Ok(ms("2026-03-29T06:00:00Z"))                        // 08:00 CEST
        );
        let ends_in_gap = q((23, 0), (2, 15));
        assert_eq!(
            next_allowed(ms("2026-03-29T00:30:00Z"), tz, &ends_in_gap), // 01:30 CET
            Ok(ms("2026-03-29T01:00:00Z"))                              // 03:00 CEST
        );
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET.
        assert_eq!(
            next_allowed(ms("2026-10-24T21:00:00Z"), tz, &NIGHT), // 23:00 CEST
            Ok(ms("2026-10-25T07:00:00Z"))                        // 08:00 CET
        );
    }

    #[test]
    fn unknown_zone_is_refused() {
        let err = next_allowed(0, "Mars/Olympus_Mons", &NIGHT).unwrap_err();
        assert_eq!(
            err,
            TzError::UnknownZone {
                name: "Mars/Olympus_Mons".into()
            }
        );
        assert!(err.to_string().contains("IANA"));
    }

    const ZONES: [&str; 9] = [
        "UTC",
        "America/New_York",
        "Europe/Paris",
        "Australia/Lord_Howe", // half-hour DST
        "America/St_Johns",    // half-hour offset with DST
        "Asia/Kolkata",
        "Pacific/Chatham", // 45-minute offset with DST
        "America/Santiago",
        "Europe/London",
    ];

    fn local_minute(at: Millis, tz: &str) -> u16 {
        let zone = TimeZone::get(tz).unwrap();
        let dt = zone.to_datetime(Timestamp::from_millisecond(at).unwrap());
        dt.hour() as u16 * 60 + dt.minute() as u16
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn the_answer_is_the_first_allowed_instant(
            // 2000-01-01 .. 2040-01-01
            due in 946_684_800_000i64..2_208_988_800_000,
            zone in 0..ZONES.len(),
            start in 0u16..1440,
            end in 0u16..1440,
        ) {
            prop_assume!(start != end);
            let tz = ZONES[zone];
            let quiet = QuietHours { start_minute: start, end_minute: end };
            let at = next_allowed(due, tz, &quiet).unwrap();
            prop_assert!(at >= due);
            prop_assert!(!quiet.contains(local_minute(at, tz)));
            prop_assert!(at - due < 25 * 3_600_000, "waited {} ms", at - due);
            if at > due {
                // A millisecond earlier was still quiet: nothing was skipped.
                prop_assert!(quiet.contains(local_minute(at - 1, tz)));
            }
        }
    }
}
