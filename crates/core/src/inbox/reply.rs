//! Whether a reply can go out on a channel, and the sentence the composer
//! shows when it cannot: the customer must have an address there, must not
//! have opted out of it, the channel must be connected, and Instagram and
//! Facebook must still be inside their messaging window (24 hours, or 7
//! days with Meta's `HUMAN_AGENT` tag for a person). Checked in this
//! order, so the sentence names the first thing to fix. Also how an
//! address is shown in the composer: masked, enough to recognise, not
//! enough to copy.

use crate::inbox::model::Channel;
use crate::inbox::window::{reply_window, ReplyWindow};
use crate::Millis;

/// The channels a reply can go out on, in the order the composer lists them.
pub const REPLY_CHANNELS: [Channel; 4] = [
    Channel::Sms,
    Channel::Email,
    Channel::Instagram,
    Channel::Facebook,
];

/// What is known about one channel of one customer when replying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelFacts {
    /// Their phone, e-mail address, Instagram-scoped or page-scoped id.
    pub address: Option<String>,
    /// They asked not to be contacted on this channel (STOP, unsubscribe).
    pub opted_out: bool,
    /// The organization can send on this channel (Instagram and Facebook
    /// need a connected Meta page; SMS and e-mail always have at least the
    /// development sink).
    pub connected: bool,
    /// When the customer last wrote on this channel.
    pub last_inbound_at: Option<Millis>,
    /// A person (a member, in the composer) writes the reply, so Meta's
    /// `HUMAN_AGENT` tag may carry it past the 24-hour window.
    pub human: bool,
}

/// Whether a reply may go out on `channel` now: `Ok(())`, or the sentence
/// the composer shows.
pub fn can_reply(channel: Channel, facts: &ChannelFacts, now: Millis) -> Result<(), String> {
    let name = channel.label();
    if !channel.can_reply() {
        return Err(format!(
            "{name} messages cannot be answered there: reply on another channel."
        ));
    }
    let has_address = facts
        .address
        .as_deref()
        .is_some_and(|a| !a.trim().is_empty());
    if !has_address {
        return Err(match channel {
            Channel::Sms => {
                "No phone number: add one on the customer's page to text them.".to_string()
            }
            Channel::Email => {
                "No e-mail address: add one on the customer's page to e-mail them.".to_string()
            }
            _ => format!(
                "No {name} account: {name} only lets you answer people who wrote to you there."
            ),
        });
    }
    if facts.opted_out {
        return Err(match channel {
            Channel::Sms => "Opted out of SMS: they texted STOP, and only they can undo it by \
                             texting START."
                .to_string(),
            Channel::Email => "Opted out of e-mail: they unsubscribed, so no e-mail may go to \
                               them."
                .to_string(),
            _ => format!("Opted out of {name}: they asked not to be contacted there."),
        });
    }
    if !facts.connected {
        return Err(format!(
            "{name} is not connected: add a Meta source in Settings → Sources to answer there."
        ));
    }
    match reply_window(channel, facts.last_inbound_at, now, facts.human) {
        ReplyWindow::Closed { reason } => Err(reason),
        ReplyWindow::Always | ReplyWindow::Open { .. } | ReplyWindow::HumanAgent { .. } => Ok(()),
    }
}

/// Whether an allowed reply must carry Meta's `HUMAN_AGENT` tag: a person
/// answering an Instagram or Facebook customer past the 24 hours.
pub fn needs_human_agent_tag(channel: Channel, facts: &ChannelFacts, now: Millis) -> bool {
    matches!(
        reply_window(channel, facts.last_inbound_at, now, facts.human),
        ReplyWindow::HumanAgent { .. }
    )
}

/// `j•••@example.com`, `+•••••••0123`; a Meta id keeps its last four
/// digits. Enough for a person to recognise the address, not enough to
/// learn it.
pub fn mask_address(addr: &str) -> String {
    if let Some((local, domain)) = addr.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}•••@{domain}");
    }
    let chars: Vec<char> = addr.chars().collect();
    let keep = chars.len().min(4);
    let (head, tail) = chars.split_at(chars.len() - keep);
    let mut out = String::new();
    for (i, c) in head.iter().enumerate() {
        out.push(if i == 0 && *c == '+' { '+' } else { '•' });
    }
    out.extend(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::window::{HUMAN_AGENT_WINDOW_MS, MESSAGING_WINDOW_MS};
    use proptest::prelude::*;

    const H: Millis = 60 * 60 * 1000;

    fn ok(address: &str) -> ChannelFacts {
        ChannelFacts {
            address: Some(address.into()),
            opted_out: false,
            connected: true,
            last_inbound_at: Some(0),
            human: false,
        }
    }

    #[test]
    fn a_reachable_customer_can_be_answered() {
        for c in REPLY_CHANNELS {
            assert_eq!(can_reply(c, &ok("x"), H), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn the_first_thing_to_fix_is_named() {
        let no_address = ChannelFacts {
            address: Some("  ".into()),
            opted_out: true,
            connected: false,
            last_inbound_at: None,
            human: true,
        };
        assert!(can_reply(Channel::Sms, &no_address, 0)
            .unwrap_err()
            .starts_with("No phone number"));
        assert!(can_reply(Channel::Email, &no_address, 0)
            .unwrap_err()
            .starts_with("No e-mail address"));
        assert!(can_reply(Channel::Instagram, &no_address, 0)
            .unwrap_err()
            .starts_with("No Instagram account"));

        let opted = ChannelFacts {
            opted_out: true,
            connected: false,
            ..ok("+14155550123")
        };
        assert!(can_reply(Channel::Sms, &opted, 0)
            .unwrap_err()
            .starts_with("Opted out of SMS"));
        assert!(can_reply(Channel::Email, &opted, 0)
            .unwrap_err()
            .starts_with("Opted out of e-mail"));

        let unconnected = ChannelFacts {
            connected: false,
            ..ok("1784")
        };
        assert!(can_reply(Channel::Facebook, &unconnected, 0)
            .unwrap_err()
            .starts_with("Facebook is not connected"));
    }

    #[test]
    fn meta_channels_close_after_24_hours() {
        let facts = ok("1784");
        assert_eq!(can_reply(Channel::Instagram, &facts, 23 * H), Ok(()));
        let why = can_reply(Channel::Instagram, &facts, 27 * H).unwrap_err();
        assert!(why.contains("Instagram"), "{why}");
        assert!(why.contains("24 hours"), "{why}");
        assert!(why.contains("27 hours ago"), "{why}");
        // SMS and e-mail have no window.
        assert_eq!(can_reply(Channel::Sms, &facts, 1_000 * H), Ok(()));
        assert!(!needs_human_agent_tag(Channel::Sms, &facts, 1_000 * H));
    }

    #[test]
    fn a_member_answers_for_7_days_with_the_human_agent_tag() {
        let facts = ChannelFacts {
            human: true,
            ..ok("1784")
        };
        assert!(!needs_human_agent_tag(Channel::Instagram, &facts, 23 * H));
        assert_eq!(can_reply(Channel::Instagram, &facts, 27 * H), Ok(()));
        assert!(needs_human_agent_tag(Channel::Instagram, &facts, 27 * H));
        let why = can_reply(Channel::Facebook, &facts, 8 * 24 * H).unwrap_err();
        assert!(
            why.contains("7 days") && why.contains("8 days ago"),
            "{why}"
        );
    }

    #[test]
    fn forms_cannot_be_answered() {
        assert!(can_reply(Channel::Form, &ok("x"), 0).is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_address("jane@example.com"), "j•••@example.com");
        assert_eq!(mask_address("+14155550123"), "+•••••••0123");
        assert_eq!(mask_address("17841400000001"), "••••••••••0001");
        assert_eq!(mask_address("12"), "12");
    }

    proptest! {
        /// A reply is allowed exactly when every condition holds.
        #[test]
        fn allowed_exactly_when_every_condition_holds(
            channel in prop::sample::select(REPLY_CHANNELS.to_vec()),
            has_address in any::<bool>(),
            opted_out in any::<bool>(),
            connected in any::<bool>(),
            last in prop::option::of(0i64..1_000_000_000),
            after in 0i64..(3 * HUMAN_AGENT_WINDOW_MS),
            human in any::<bool>(),
        ) {
            let facts = ChannelFacts {
                address: has_address.then(|| "a@b".to_string()),
                opted_out,
                connected,
                last_inbound_at: last,
                human,
            };
            let now = last.unwrap_or(0) + after;
            let window = if human { HUMAN_AGENT_WINDOW_MS } else { MESSAGING_WINDOW_MS };
            let in_window = !channel.has_messaging_window()
                || (last.is_some() && after < window);
            let expected = has_address && !opted_out && connected && in_window;
            prop_assert_eq!(can_reply(channel, &facts, now).is_ok(), expected);
        }

        /// A masked phone number shows its last four digits and no other.
        #[test]
        fn masking_hides_all_but_the_last_four(digits in "[0-9]{8,15}") {
            let masked = mask_address(&format!("+{digits}"));
            prop_assert!(masked.ends_with(&digits[digits.len() - 4..]));
            prop_assert_eq!(masked.chars().filter(char::is_ascii_digit).count(), 4);
        }
    }
}
