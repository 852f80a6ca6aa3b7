//! Replies under an idempotency key: a client that retries a timed-out
//! `POST …/messages`, or a person who double-clicks Send, sends once. The
//! first request with a key claims it and stores the answer it gave (its
//! status and body, rendered by the caller); a repeat from the same caller
//! within 24 hours gets that answer back and nothing is sent again. The
//! same key with a different request is refused, so a client bug that
//! reuses keys cannot silently drop a message. Keys belong to one caller
//! (an API key, or a member in the composer) in one organization.

use bos_core::Millis;
use bos_store::inbox::{KeyClaim, MAX_IDEMPOTENCY_KEY_LEN};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::reply::{Reply, ReplyBy};
use super::{Inbox, InboxError};

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedReply {
    /// Send it, then store the answer with [`Inbox::answer_reply_key`].
    Send,
    /// Answered already: give this answer again, send nothing.
    Replay { status: u16, body: String },
    /// The first request with this key has not answered yet.
    InFlight { since: Millis },
}

/// Who a key belongs to, as stored.
fn principal(by: &ReplyBy) -> String {
    match by {
        ReplyBy::Member(user) => format!("member:{user}"),
        ReplyBy::ApiKey { id, .. } => format!("key:{id}"),
        ReplyBy::Agent { id, .. } => format!("agent:{id}"),
    }
}

/// The request a key stands for: the conversation, the channel, the text
/// and the subject, each length-prefixed so no two requests share one.
pub fn fingerprint(conversation: Uuid, reply: &Reply) -> String {
    let mut h = Sha256::new();
    let subject = reply.subject.as_deref().unwrap_or("");
    for part in [
        conversation.to_string().as_str(),
        reply.channel.as_str(),
        reply.text.as_str(),
        subject,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update([u8::from(reply.subject.is_some())]);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as clients may send it: 1–255 visible ASCII characters.
pub fn check_key(key: &str) -> Result<(), InboxError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(InboxError::Invalid {
            field: "Idempotency-Key",
            detail: format!(
                "An idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters \
                 (a UUID is a good one)."
            ),
        });
    }
    Ok(())
}

impl Inbox {
    /// Claims `key` for this reply. A key first used for another request
    /// is refused (`Invalid`, field `Idempotency-Key`).
    pub async fn claim_reply_key(
        &self,
        org: Uuid,
        by: &ReplyBy,
        key: &str,
        conversation: Uuid,
        reply: &Reply,
        now: Millis,
    ) -> Result<KeyedReply, InboxError> {
        check_key(key)?;
        let claim = self
            .store
            .claim_idempotency_key(
                org,
                &principal(by),
                key,
                &fingerprint(conversation, reply),
                now,
            )
            .await?;
        Ok(match claim {
            KeyClaim::Claimed => KeyedReply::Send,
            KeyClaim::Answered { status, body } => KeyedReply::Replay { status, body },
            KeyClaim::Running { since } => KeyedReply::InFlight { since },
            KeyClaim::Mismatch => {
                return Err(InboxError::Invalid {
                    field: "Idempotency-Key",
                    detail: "This Idempotency-Key was already used for a different request \
                             (another conversation, channel, text or subject) in the last 24 \
                             hours: use a new key for a new message."
                        .into(),
                })
            }
        })
    }

    /// Stores the answer given to the request that claimed `key`; repeats
    /// get it back.
    pub async fn answer_reply_key(
        &self,
        org: Uuid,
        by: &ReplyBy,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), InboxError> {
        Ok(self
            .store
            .answer_idempotency_key(org, &principal(by), key, status, body)
            .await?)
    }
}

impl Inbox {
    /// Gives a claimed key up, for a request refused before anything was
    /// written (a closed channel, a bad input): the same key may then be
    /// used again, for the corrected request.
    pub async fn release_reply_key(
        &self,
        org: Uuid,
        by: &ReplyBy,
        key: &str,
    ) -> Result<(), InboxError> {
        Ok(self
            .store
            .release_idempotency_key(org, &principal(by), key)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bos_core::inbox::Channel;

    fn r(text: &str, subject: Option<&str>) -> Reply {
        Reply {
            channel: Channel::Email,
            text: text.into(),
            subject: subject.map(str::to_string),
        }
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let c = Uuid::nil();
        assert_eq!(fingerprint(c, &r("a", None)), fingerprint(c, &r("a", None)));
        assert_ne!(fingerprint(c, &r("a", None)), fingerprint(c, &r("b", None)));
        assert_ne!(
            fingerprint(c, &r("a", None)),
            fingerprint(c, &r("a", Some("")))
        );
        assert_ne!(
            fingerprint(c, &r("ab", Some("c"))),
            fingerprint(c, &r("a", Some("bc")))
        );
        assert_ne!(
            fingerprint(c, &r("a", None)),
            fingerprint(Uuid::from_u128(1), &r("a", None))
        );
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(check_key("0b8f3c1e-5d7a-4f1b-9c3e-2a6d8e4f0b1c").is_ok());
        for bad in ["", "has space", "tab\t", "é", &"x".repeat(256)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
