//! Messages customers send us (an SMS, an emailed reply): recorded once
//! on their timeline (by provider id), found by the message they answer
//! or by their address, and acted on: a reply ends their sequences, a
//! STOP or START keyword opts their address out of (or back into) the
//! channel.

use super::{
    channel_str, opt_out_tx, stop_tx, timeline_event, InboundMessage, InboundOutcome,
    MESSAGE_ID_DOMAIN,
};
use crate::engine::write_db;
use crate::identity::{identify_tx, IdentifyInput, NewEvent, Traits};
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::identity::{normalize, IdentifierKind};
use bos_core::nudge::{Channel, Event};
use bos_core::Millis;
use serde_json::json;
use uuid::Uuid;

impl crate::Store {
    /// A message from a customer (inbound SMS or email): recorded on their
    /// timeline once (by provider id), it ends their sequences as a reply,
    /// and a STOP/START keyword opts their address out of (or back into)
    /// that channel everywhere at once.
    pub async fn inbound_message(
        &self,
        org: Uuid,
        msg: InboundMessage,
        now: Millis,
    ) -> Result<InboundOutcome, StoreError> {
        let settings = self.pipeline_settings(org).await?;
        write_db!(self, |db| async move {
            let key = format!("msg:{}:{}", msg.provider, msg.provider_id);
            // A reply names the message it answers: find its customer first.
            let mut root = None;
            for mid in &msg.in_reply_to {
                // Our Message-IDs are `{execution id}@bos.nudge`.
                let Some(id) = mid
                    .trim_matches(|c| c == '<' || c == '>')
                    .strip_suffix(MESSAGE_ID_DOMAIN)
                    .and_then(|s| Uuid::parse_str(s).ok())
                else {
                    continue;
                };
                let r = db
                    .opt(
                        q("select profile_id from nudge_executions where org_id = $1 and id = $2")
                            .bind(org)
                            .bind(id),
                    )
                    .await?;
                if let Some(r) = r {
                    root = Some(r.uuid("profile_id")?);
                    break;
                }
            }
            let kind = if msg.channel == Channel::Sms {
                IdentifierKind::Phone
            } else {
                IdentifierKind::Email
            };
            let address = normalize(&kind, &msg.from, &settings.identity.default_region)
                .map(|i| i.value)
                .unwrap_or_else(|_| msg.from.trim().to_lowercase());
            let (label, summary) = match msg.channel {
                Channel::Sms => ("SMS", msg.text.chars().take(140).collect::<String>()),
                _ => (
                    "Email",
                    msg.subject
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| msg.text.chars().take(140).collect()),
                ),
            };
            let event = NewEvent {
                kind: "message_in".into(),
                summary: format!("{label} from customer: {summary}"),
                occurred_at: now,
                data: json!({ "channel": channel_str(msg.channel), "from": msg.from, "to": msg.to,
                              "subject": msg.subject, "text": msg.text, "provider": msg.provider })
                .to_string(),
                key: Some(key.clone()),
                revenue_cents: 0,
                is_order: false,
            };
            let duplicate = db
                .opt(
                    q("select root_id from timeline where org_id = $1 and event_key = $2")
                        .bind(org)
                        .bind(key.as_str()),
                )
                .await?;
            if let Some(d) = duplicate {
                return Ok(InboundOutcome {
                    profile_id: d.uuid("root_id")?,
                    duplicate: true,
                    stopped: 0,
                    opted: None,
                });
            }
            let root = match root {
                Some(p) => {
                    let root = db
                        .opt(
                            q("select root_id from profiles where org_id = $1 and id = $2")
                                .bind(org)
                                .bind(p),
                        )
                        .await?
                        .map(|r| r.uuid("root_id"))
                        .transpose()?
                        .unwrap_or(p);
                    timeline_event(db, org, root, &event).await?;
                    root
                }
                None => {
                    let Ok(id) = normalize(&kind, &msg.from, &settings.identity.default_region)
                    else {
                        return Err(StoreError::Invalid(format!(
                            "the sender {:?} is not a valid {}",
                            msg.from,
                            if msg.channel == Channel::Sms {
                                "phone number"
                            } else {
                                "email address"
                            }
                        )));
                    };
                    let input = IdentifyInput {
                        identifiers: vec![id],
                        traits: Traits::default(),
                        source: msg.provider.clone(),
                        event: Some(event),
                        now,
                    };
                    identify_tx(db, org, &settings.identity, &input)
                        .await?
                        .profile_id
                }
            };
            let mut opted = None;
            let stopped = match msg.opt {
                Some(out) => {
                    opt_out_tx(
                        db,
                        org,
                        msg.channel,
                        &address,
                        Some(root),
                        &format!("{label} keyword"),
                        out,
                        now,
                    )
                    .await?;
                    opted = Some(out);
                    0
                }
                None => {
                    // The latest nudge on this channel gets the reply.
                    db.exec(
                        q("update nudge_executions set replied_at = $4, updated_at = $4 where org_id = $1 and id = \
                           (select id from nudge_executions where org_id = $1 and channel = $3 and profile_id in \
                           (select id from profiles where org_id = $1 and root_id = $2) and sent_at is not null \
                           and replied_at is null order by sent_at desc limit 1)")
                        .bind(org)
                        .bind(root)
                        .bind(channel_str(msg.channel))
                        .bind(now),
                    )
                    .await?;
                    stop_tx(db, org, root, Event::Replied, None, now).await?
                }
            };
            Ok(InboundOutcome {
                profile_id: root,
                duplicate: false,
                stopped,
                opted,
            })
        })
    }
}
