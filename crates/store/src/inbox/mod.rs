//! The Unified Inbox's storage: one conversation per customer per
//! organization, every message in and out on every channel, each member's
//! read mark, and search. Writes go through one transaction each over the
//! `Db` seam (both engines): an inbound message finds or starts its
//! customer's conversation, reopens it when resolved, and is stored once
//! however many times the provider delivers it (its provider id is unique
//! per organization and channel); an outbound message is written `pending`
//! before any provider is called, then settles forward only. Reads list
//! conversations with filters, sorts and an opaque cursor, open one with
//! its messages, and search text and customers with highlight offsets. A
//! reply learns where the customer can be reached and is written before
//! its provider is called; a sweep settles replies a crash cut off.
//! Meta sources (a page or Instagram account) keep their sealed
//! credentials here too, and replies' idempotency keys their first answer.
//! Everything is scoped by organization.

mod bulk;
mod copies;
pub(crate) use copies::{form_copy_tx, show_nudge_tx};
mod idempotency;
mod meta;
mod read;
mod reply;
mod search;
mod service;
mod value;
mod write;

#[doc(hidden)]
pub use bulk::{BulkConversation, BulkMessage};
pub use copies::{
    form_copy_key, nudge_copy_key, NudgeCopy, INBOX_COPY_GRACE_MS, INBOX_FORM_JOB, INBOX_NUDGE_JOB,
};
pub use idempotency::{KeyClaim, IDEMPOTENCY_TTL_MS, MAX_IDEMPOTENCY_KEY_LEN};
pub use meta::{MetaCredentials, MetaSource};
pub use read::{
    AuthorFilter, ConversationDetail, ConversationSummary, ListQuery, Message, Page, Sort,
    StatusFilter,
};
pub use reply::{EmailThread, ReplyTargets, ReplyWritten};
pub use search::{SearchHit, SearchIn, SnippetPart, MAX_HITS};
pub use service::InboxTimelineEntry;
pub(crate) use value::refresh_value;
pub use write::{InboundMessage, OutboundMessage, Recorded};

/// The most conversations one list page holds.
pub const MAX_PAGE: u32 = 200;
/// The most messages one conversation page holds (the newest ones).
pub const MAX_MESSAGES: u32 = 500;
/// How much of the last message a thread list row shows.
pub const PREVIEW_CHARS: usize = 140;

/// The bit a channel sets in `conversations.channels`.
pub(crate) fn channel_bit(c: bos_core::inbox::Channel) -> i64 {
    use bos_core::inbox::Channel::*;
    match c {
        Sms => 1,
        Email => 2,
        Instagram => 4,
        Facebook => 8,
        Form => 16,
        Voice => 32,
    }
}

/// The text customer search looks in: name, e-mail and phone. Search
/// matches words by prefix, so a phone number also goes in as its last
/// ten and last seven digits: people type numbers without the country or
/// area code.
pub fn people_text(name: &str, email: &str, phone: &str) -> String {
    let mut parts: Vec<String> = vec![name.trim().to_string(), email.trim().to_string()];
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        parts.push(phone.trim().to_string());
        parts.push(digits.clone());
        for n in [10, 7] {
            if digits.len() > n {
                parts.push(digits[digits.len() - n..].to_string());
            }
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

/// The first [`PREVIEW_CHARS`] characters of a message, on one line.
pub(crate) fn preview(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(PREVIEW_CHARS).collect();
    if one_line.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_one_short_line() {
        assert_eq!(preview("  hello\n\n  there "), "hello there");
        let long = "x".repeat(PREVIEW_CHARS + 10);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn people_text_adds_short_forms_of_the_phone() {
        assert_eq!(
            people_text(" Ann Doe ", "ann@example.com", "+1 (555) 010-0123"),
            "Ann Doe ann@example.com +1 (555) 010-0123 15550100123 5550100123 0100123"
        );
        assert_eq!(people_text("Ann", "", ""), "Ann");
    }

    #[test]
    fn channel_bits_are_distinct() {
        let bits: Vec<i64> = bos_core::inbox::Channel::ALL
            .iter()
            .map(|c| channel_bit(*c))
            .collect();
        let or = bits.iter().fold(0, |a, b| a | b);
        assert_eq!(or.count_ones() as usize, bits.len());
    }
}
