//! Query parameters both doors read, parsed once: the keyset cursors of
//! the customer list and the timeline, the customer list's sort, dates and
//! times, timeline filters, the delivery status filter, and the inbox's
//! thread list filters. The API and the UI call these; neither borrows
//! from the other.

use crate::error::AppError;
use bos_engine::identity;
use bos_store::identity::{Profile, ProfileSort, TimelineEntry, TimelineQuery};
use uuid::Uuid;

/// Encodes a keyset position as an opaque cursor.
pub fn encode_cursor(parts: &[String]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\u{1f}"))
}

pub fn decode_cursor(c: &str) -> Option<Vec<String>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    // A cursor is ours only if it could have come from `encode_cursor`:
    // no NUL (PostgreSQL cannot compare text holding one), so a forged
    // one is a 422 like any other bad cursor.
    if text.contains('\0') {
        return None;
    }
    Some(text.split('\u{1f}').map(str::to_string).collect())
}

pub fn customer_cursor(p: &Profile, sort: ProfileSort) -> String {
    let num = match sort {
        ProfileSort::LastActive => p.last_active_at,
        ProfileSort::Ltv => p.ltv_cents,
        ProfileSort::Created => p.created_at,
        ProfileSort::Name => 0,
    };
    encode_cursor(&[num.to_string(), p.name_lc(), p.id.to_string()])
}

pub fn parse_customer_cursor(c: &str) -> Result<(i64, String, Uuid), AppError> {
    let bad = || {
        AppError::invalid(
            "cursor",
            "this cursor is not valid: use next_cursor from the previous page",
        )
    };
    let parts = decode_cursor(c).ok_or_else(bad)?;
    match parts.as_slice() {
        [n, name, id] => Ok((
            n.parse().map_err(|_| bad())?,
            name.clone(),
            id.parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

pub fn parse_sort(s: &str) -> Result<ProfileSort, AppError> {
    ProfileSort::parse(s).ok_or_else(|| {
        AppError::invalid(
            "sort",
            format!("unknown sort '{s}': use last_active, ltv, created or name"),
        )
    })
}

pub fn parse_time(field: &'static str, t: &str) -> Result<i64, AppError> {
    if let Ok(d) = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok((d.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    // A plain date (from a date picker) means midnight UTC.
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(t, &fmt)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .map_err(|_| {
            AppError::invalid(
                field,
                format!("'{t}' is not a date (2026-11-25) or an RFC 3339 time"),
            )
        })
}

pub fn timeline_query(
    kind: &str,
    from: Option<&str>,
    to: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<TimelineQuery, AppError> {
    let kinds: Vec<String> = kind
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = kinds.iter().find(|k| !identity::is_known_kind(k)) {
        return Err(AppError::invalid(
            "kind",
            format!(
                "unknown kind '{bad}': use {}",
                identity::TIMELINE_KINDS.join(", ")
            ),
        ));
    }
    let before = match cursor {
        None | Some("") => None,
        Some(c) => {
            let bad = || {
                AppError::invalid(
                    "cursor",
                    "this cursor is not valid: use next_cursor from the previous page",
                )
            };
            match decode_cursor(c).ok_or_else(bad)?.as_slice() {
                [t, id] => Some((
                    t.parse().map_err(|_| bad())?,
                    id.parse().map_err(|_| bad())?,
                )),
                _ => return Err(bad()),
            }
        }
    };
    Ok(TimelineQuery {
        kinds,
        from: from
            .filter(|s| !s.is_empty())
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: to
            .filter(|s| !s.is_empty())
            .map(|t| parse_time("to", t))
            .transpose()?,
        before,
        limit,
    })
}

pub fn timeline_cursor(e: &TimelineEntry) -> String {
    encode_cursor(&[e.occurred_at.to_string(), e.id.to_string()])
}

/// The statuses a delivery can have, in the order filters list them.
pub const STATUSES: [&str; 4] = ["pending", "processed", "skipped", "parked"];

/// Checks a status filter; empty means none.
pub fn status_filter(s: Option<&str>) -> Result<Option<&str>, AppError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if STATUSES.contains(&s) => Ok(Some(s)),
        Some(_) => Err(AppError::invalid(
            "status",
            "Filter by one of pending, processed, skipped or parked, or leave status out.",
        )),
    }
}

/// The thread list's filters as a request names them; empty means none.
#[derive(Debug, Clone, Default)]
pub struct InboxFilters<'a> {
    pub channel: Option<&'a str>,
    pub status: Option<&'a str>,
    pub author: Option<&'a str>,
    pub priority: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub limit: Option<u32>,
}

fn given(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Checks the thread list's filters; each refusal names its field and
/// the values it takes. The member is the service's to set.
pub fn inbox_query(f: &InboxFilters<'_>) -> Result<bos_store::inbox::ListQuery, AppError> {
    use bos_core::inbox::{Channel, Priority};
    use bos_store::inbox::{AuthorFilter, ListQuery, Sort, StatusFilter, MAX_PAGE};
    let channel = match given(f.channel) {
        None => None,
        Some(c) => Some(Channel::parse(c).ok_or_else(|| {
            AppError::invalid(
                "channel",
                format!(
                    "unknown channel '{c}': use sms, email, instagram, facebook, form or voice"
                ),
            )
        })?),
    };
    let status = match given(f.status) {
        None => None,
        Some(s) => Some(StatusFilter::parse(s).ok_or_else(|| {
            AppError::invalid(
                "status",
                format!("unknown status '{s}': use unread, mine, unassigned, resolved or open"),
            )
        })?),
    };
    let author = match given(f.author) {
        None => None,
        Some(a) => Some(AuthorFilter::parse(a).ok_or_else(|| {
            AppError::invalid("author", format!("unknown author '{a}': use ai or human"))
        })?),
    };
    let priority = match given(f.priority) {
        None => None,
        Some(p) => Some(Priority::parse(p).ok_or_else(|| {
            AppError::invalid(
                "priority",
                format!("unknown priority '{p}': use urgent, high, normal or low"),
            )
        })?),
    };
    let sort = match given(f.sort) {
        None => Sort::default(),
        Some(s) => Sort::parse(s).ok_or_else(|| {
            AppError::invalid(
                "sort",
                format!("unknown sort '{s}': use recent, oldest_unread, priority or value"),
            )
        })?,
    };
    let limit = match f.limit {
        None => 50,
        Some(n @ 1..=MAX_PAGE) => n,
        Some(_) => {
            return Err(AppError::invalid(
                "limit",
                format!("a page holds 1 to {MAX_PAGE} conversations"),
            ))
        }
    };
    Ok(ListQuery {
        member: None,
        channel,
        status,
        author,
        priority,
        sort,
        cursor: given(f.cursor).map(str::to_string),
        limit,
    })
}
