//! The Unified Inbox's pure rules: what a conversation and a message are
//! (status, author, direction, channel, delivery status, and the one string
//! each is stored and sent as), how a conversation moves between open and
//! resolved and when it is unread for a member, how urgent a customer's
//! message is, how an e-mail reply threads in the customer's mail client,
//! when Instagram and Facebook still accept a reply, whether a reply can go
//! out on a channel at all, when a human conversation in progress holds the
//! customer's nudges, and how e-mail HTML is
//! made safe to show. Storage, providers and the clock live outside this
//! crate; they pass times and texts in and act on the answers.

/// E-mail threading: Message-ID, In-Reply-To, References and the subject.
pub mod email;
/// A human conversation in progress holds the customer's nudges.
pub mod handoff;
/// Conversations and messages: their states and the rules that move them.
pub mod model;
/// How urgent a message is: sentiment, VIP and intent.
pub mod priority;
/// Whether a reply can go out on a channel, and why not.
pub mod reply;
/// E-mail HTML made safe to display, remote images off until clicked.
pub mod sanitize;
/// The messaging window Instagram and Facebook impose on replies.
pub mod window;

/// The field of a submitted form whose text becomes the customer's
/// message in the inbox (form channel).
pub const FORM_MESSAGE_FIELD: &str = "message";

pub use email::{message_id, reply_headers, reply_subject, ReplyHeaders, ThreadIds};
pub use handoff::{nudges_held_until, HumanActivity, ASSIGNED_RECHECK_MS, MEMBER_REPLY_HOLD_MS};
pub use model::{
    is_unread, transition, AuthorKind, Channel, DeliveryStatus, Direction, Status, ThreadEvent,
    TransitionError,
};
pub use priority::{assess, sentiment, Assessment, Priority, PriorityInputs};
pub use reply::{can_reply, mask_address, needs_human_agent_tag, ChannelFacts, REPLY_CHANNELS};
pub use sanitize::{sanitize_email_html, REMOTE_SRC_ATTR};
pub use window::{reply_window, ReplyWindow, HUMAN_AGENT_WINDOW_MS, MESSAGING_WINDOW_MS};
