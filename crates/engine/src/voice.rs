//! Voice agents' calls into BOS: what a verified Vapi or Retell delivery
//! (read by `bos_core::agents::voice` into one [`VoiceReport`]) changes.
//!
//! A live call (Vapi's `status-update` `in-progress`, Retell's
//! `call_started`) makes the agent's last heartbeat `talking` from the
//! call's start, so its card reads `talking · m:ss`; the call's end sets it
//! back to idle, unless another call has become the live one since.
//!
//! The report of an ended call (Vapi's `end-of-call-report`, Retell's
//! `call_ended` and `call_analyzed`) finds or creates the customer by the
//! phone number, writes the transcript into their one conversation on the
//! `voice` channel (the customer's turns in, the AI's out, authored by the
//! agent), puts one line on their timeline, and records one interaction
//! with cost, outcome, sentiment and summary, so the agent's metrics count
//! it. Everything is keyed by the call's id, so a platform's redelivery,
//! or Retell's two reports of one call, store each thing once; Retell's
//! analysis, which comes after the call's end, completes the interaction
//! already stored rather than adding one.
//!
//! An outcome the platform evaluated (Vapi's `successEvaluation`, Retell's
//! `call_successful`) is the interaction's; a call transferred to a person
//! is `handed_off`; a call not evaluated counts as a success unless it
//! ended in an error, unanswered or busy (decision 0040). A call with no
//! customer number (a web call) is recorded without a conversation.

use bos_core::agents::{CallEvent, Outcome, Reported, Speaker, VoiceReport};
use bos_core::inbox::{AuthorKind, Channel, DeliveryStatus};
use bos_core::Millis;
use bos_store::agents::{InteractionUpdate, TranscriptLine};
use bos_store::identity::Traits;
use bos_store::inbox::{people_text, OutboundMessage, Recorded};
use uuid::Uuid;

use crate::agents::{
    AgentError, Agents, HeartbeatInput, InteractionInput, LINE_MAX_CHARS, SUMMARY_MAX_CHARS,
    TRANSCRIPT_MAX_LINES,
};
use crate::bus::{Bus, BusEvent};
use crate::inbox::{Inbound, Inbox, InboxError, MAX_TEXT_CHARS};

/// Why a call report could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Inbox(#[from] InboxError),
}

impl From<bos_store::StoreError> for VoiceError {
    fn from(e: bos_store::StoreError) -> Self {
        VoiceError::Agent(e.into())
    }
}

/// What one delivery changed, for the hook's log and its tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallApplied {
    /// Transcript turns stored for the first time.
    pub turns: usize,
    /// Turns a previous delivery had stored already.
    pub repeated_turns: usize,
    /// The call's interaction.
    pub interaction: Option<Uuid>,
    /// This delivery stored the interaction.
    pub recorded: bool,
    /// This delivery completed an interaction stored before (an analysis).
    pub completed: bool,
    /// The conversation the transcript is in.
    pub conversation: Option<Uuid>,
    /// The agent's live status moved (a call began or ended).
    pub live: bool,
}

/// Voice calls applied to the agents and the inbox.
#[derive(Clone)]
pub struct Voice {
    agents: Agents,
    inbox: Inbox,
    bus: Bus,
}

/// What the agent's heartbeat says while a call is live: the call it is on.
fn on_call(call_id: &str) -> String {
    format!("On call {call_id}")
}

/// Vapi and Retell name a transfer to a person so.
fn transferred(reason: &str) -> bool {
    matches!(reason, "assistant-forwarded-call" | "call_transfer")
}

/// A call that never became a conversation: an error, no answer, busy,
/// voicemail, a number that cannot be dialled (in Vapi's `endedReason` and
/// Retell's `disconnection_reason` words).
fn failed_call(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "error",
        "failed",
        "no-answer",
        "no_answer",
        "did-not-answer",
        "busy",
        "voicemail",
        "invalid_destination",
    ]
    .iter()
    .any(|w| r.contains(w))
}

/// The outcome the platform's evaluation gives, or the transfer; `None`
/// when the report says neither.
fn evaluated(r: &VoiceReport) -> Option<Outcome> {
    if r.ended_reason.as_deref().is_some_and(transferred) {
        return Some(Outcome::HandedOff);
    }
    r.success.map(|ok| {
        if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    })
}

fn outcome_of(r: &VoiceReport) -> Outcome {
    evaluated(r).unwrap_or_else(|| {
        if r.ended_reason.as_deref().is_some_and(failed_call) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// The transcript as the interaction keeps it, within its limits (a long
/// call keeps its first lines; the conversation has every turn).
fn transcript_lines(r: &VoiceReport) -> Vec<TranscriptLine> {
    r.transcript
        .iter()
        .take(TRANSCRIPT_MAX_LINES)
        .map(|t| TranscriptLine {
            role: match t.speaker {
                Speaker::Agent => "agent",
                Speaker::Customer => "customer",
            }
            .into(),
            text: truncate(&t.text, LINE_MAX_CHARS),
        })
        .collect()
}

impl Voice {
    pub fn new(agents: Agents, inbox: Inbox, bus: Bus) -> Voice {
        Voice { agents, inbox, bus }
    }

    /// Applies a verified delivery for `agent` (of `org`) at `now`.
    pub async fn receive(
        &self,
        org: Uuid,
        agent: Uuid,
        r: &VoiceReport,
        now: Millis,
    ) -> Result<CallApplied, VoiceError> {
        // Vapi also says "ended" in a status-update; its end-of-call-report
        // carries the call itself.
        let status_only = r.delivery.starts_with("status-update");
        match r.event {
            CallEvent::Started => self.started(org, agent, r, now).await,
            CallEvent::Ended if status_only => Ok(CallApplied {
                live: self.ended(org, agent, &r.call_id, now).await?,
                ..CallApplied::default()
            }),
            CallEvent::Ended | CallEvent::Analyzed => self.report(org, agent, r, now).await,
            // Live transcript lines and everything else: the end-of-call
            // report has the whole transcript.
            CallEvent::Line(_) | CallEvent::Other(_) => Ok(CallApplied::default()),
        }
    }

    /// A call went live: the agent is talking since its start.
    async fn started(
        &self,
        org: Uuid,
        agent: Uuid,
        r: &VoiceReport,
        now: Millis,
    ) -> Result<CallApplied, VoiceError> {
        // A late "started" for a call already reported over changes nothing.
        if self
            .inbox
            .store()
            .agent_interaction_by_external_id(org, agent, &r.call_id)
            .await?
            .is_some()
        {
            return Ok(CallApplied::default());
        }
        self.agents
            .heartbeat(
                org,
                agent,
                HeartbeatInput {
                    status: Reported::Talking.as_str().into(),
                    activity: Some(on_call(&r.call_id)),
                    call_started_at: Some(r.started_at.unwrap_or(now).min(now)),
                    ..HeartbeatInput::default()
                },
                now,
            )
            .await?;
        Ok(CallApplied {
            live: true,
            ..CallApplied::default()
        })
    }

    /// A call ended: back to idle, if it is the call the agent is on.
    async fn ended(
        &self,
        org: Uuid,
        agent: Uuid,
        call_id: &str,
        now: Millis,
    ) -> Result<bool, VoiceError> {
        let view = self.agents.get(org, agent, now).await?;
        let on_this = view.agent.last.as_ref().is_some_and(|h| {
            h.status == Reported::Talking && h.activity.as_deref() == Some(&on_call(call_id))
        });
        if !on_this {
            return Ok(false);
        }
        self.agents
            .heartbeat(
                org,
                agent,
                HeartbeatInput {
                    status: Reported::Idle.as_str().into(),
                    ..HeartbeatInput::default()
                },
                now,
            )
            .await?;
        Ok(true)
    }

    /// The customer a number belongs to, made when it is new; `None` for
    /// no number, or one that cannot be a customer's (malformed, blocked).
    async fn customer(
        &self,
        org: Uuid,
        r: &VoiceReport,
        now: Millis,
    ) -> Result<Option<Uuid>, VoiceError> {
        let Some(phone) = r.customer_phone.as_deref() else {
            return Ok(None);
        };
        match crate::identity::resolve(
            self.inbox.store(),
            org,
            &[("phone".to_string(), phone.to_string())],
            Traits::default(),
            r.provider.as_str(),
            None,
            now,
        )
        .await
        {
            Ok(resolved) => Ok(Some(resolved.outcome.profile_id)),
            Err(crate::identity::IdentityError::Store(e)) => Err(e.into()),
            Err(e) => {
                tracing::info!(%org, call = %r.call_id, error = %e, "voice call: the number is not a customer's");
                Ok(None)
            }
        }
    }

    /// An ended call's report: the transcript, the timeline line, the
    /// interaction (or its completion), and the end of the live status.
    async fn report(
        &self,
        org: Uuid,
        agent: Uuid,
        r: &VoiceReport,
        now: Millis,
    ) -> Result<CallApplied, VoiceError> {
        let a = self.agents.get(org, agent, now).await?.agent;
        let mut applied = CallApplied::default();
        let started_at = r.started_at.or(r.ended_at).unwrap_or(now).min(now);
        let ended_at = r.ended_at.map(|e| e.clamp(started_at, now.max(started_at)));
        let profile = self.customer(org, r, now).await?;
        if let Some(profile) = profile {
            applied.conversation = self
                .transcript(org, &a.name, agent, profile, r, started_at, &mut applied)
                .await?;
        }
        let first_response_ms = r
            .transcript
            .iter()
            .find(|t| t.speaker == Speaker::Agent)
            .and_then(|t| t.offset_ms)
            .filter(|o| (0..=86_400_000).contains(o));
        let (id, created) = self
            .agents
            .record_reported(
                org,
                agent,
                InteractionInput {
                    customer_id: profile,
                    conversation_id: applied.conversation,
                    outcome: outcome_of(r).as_str().into(),
                    started_at,
                    ended_at,
                    first_response_ms,
                    cost_usd: r.cost_micros.map(|c| c as f64 / 1e6),
                    sentiment: r.sentiment,
                    summary: r.summary.as_deref().map(|s| truncate(s, SUMMARY_MAX_CHARS)),
                    transcript: transcript_lines(r),
                    external_id: Some(r.call_id.clone()),
                    ..InteractionInput::default()
                },
                now,
            )
            .await?;
        applied.interaction = Some(id);
        applied.recorded = created;
        if !created {
            // Retell's analysis after its call_ended, or a redelivery.
            let u = InteractionUpdate {
                outcome: evaluated(r),
                ended_at,
                cost_micros: r.cost_micros,
                sentiment: r.sentiment,
                summary: r.summary.as_deref().map(|s| truncate(s, SUMMARY_MAX_CHARS)),
                transcript: Some(transcript_lines(r)).filter(|t| !t.is_empty()),
            };
            applied.completed = matches!(
                self.agents.complete(org, agent, &r.call_id, &u).await?,
                Some((_, true))
            );
        }
        // The interaction's own line on the caller's timeline is written
        // by `Agents::record`, once per call.
        applied.live = self.ended(org, agent, &r.call_id, now).await?;
        Ok(applied)
    }

    /// Writes the call's turns into the customer's conversation, each once
    /// (its id is the call's and its place in the call), at the moment it
    /// was spoken. Returns the conversation.
    #[allow(clippy::too_many_arguments)]
    async fn transcript(
        &self,
        org: Uuid,
        agent_name: &str,
        agent: Uuid,
        profile: Uuid,
        r: &VoiceReport,
        started_at: Millis,
        applied: &mut CallApplied,
    ) -> Result<Option<Uuid>, VoiceError> {
        let store = self.inbox.store();
        let p = store.profile(org, profile).await?;
        let people = people_text(&p.display_name, &p.primary_email, &p.primary_phone);
        let mut conversation = None;
        let mut told = false;
        let mut at = started_at - 1;
        for (i, turn) in r.transcript.iter().enumerate() {
            // Spoken in order: never before the turn before it.
            at = (started_at + turn.offset_ms.unwrap_or(0)).max(at + 1);
            let id = format!("{}:{}:{i}", r.provider, r.call_id);
            let text = truncate(&turn.text, MAX_TEXT_CHARS);
            let recorded = match turn.speaker {
                Speaker::Customer => {
                    self.inbox
                        .record_inbound(
                            org,
                            Inbound {
                                provider_message_id: Some(id),
                                // One timeline line for the whole call.
                                on_timeline_already: true,
                                ..Inbound::text(p.root_id, Channel::Voice, text)
                            },
                            at,
                        )
                        .await?
                }
                Speaker::Agent => {
                    let rec = store
                        .record_outbound(
                            org,
                            &OutboundMessage {
                                profile_id: p.root_id,
                                channel: Channel::Voice,
                                author: AuthorKind::Agent,
                                author_id: Some(agent.to_string()),
                                author_name: agent_name.to_string(),
                                text,
                                html: None,
                                subject: None,
                                attachments: serde_json::Value::Array(Vec::new()),
                                provider_message_id: Some(id),
                                // Said on the call: the customer heard it.
                                status: DeliveryStatus::Delivered,
                                email_message_id: None,
                                in_reply_to: None,
                                references: Vec::new(),
                                people: people.clone(),
                                at,
                            },
                        )
                        .await
                        .map_err(InboxError::from)?;
                    told |= matches!(rec, Recorded::New { .. });
                    rec
                }
            };
            match recorded {
                Recorded::New { .. } => applied.turns += 1,
                Recorded::AlreadyHad { .. } => applied.repeated_turns += 1,
            }
            conversation = Some(recorded.conversation_id());
        }
        if let (true, Some(c)) = (told, conversation) {
            self.bus.publish(BusEvent::conversation(org, c));
        }
        Ok(conversation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bos_core::agents::AgentProvider;

    fn report(reason: Option<&str>, success: Option<bool>) -> VoiceReport {
        let body = serde_json::json!({"event": "call_ended", "call": {"call_id": "c"}});
        let mut r = bos_core::agents::parse_retell(body.to_string().as_bytes()).unwrap();
        r.ended_reason = reason.map(str::to_string);
        r.success = success;
        r
    }

    #[test]
    fn outcomes_follow_the_evaluation_then_the_ending() {
        assert_eq!(outcome_of(&report(None, Some(false))), Outcome::Failure);
        assert_eq!(
            outcome_of(&report(Some("user_hangup"), Some(true))),
            Outcome::Success
        );
        assert_eq!(
            outcome_of(&report(Some("call_transfer"), Some(true))),
            Outcome::HandedOff
        );
        assert_eq!(
            outcome_of(&report(Some("assistant-forwarded-call"), None)),
            Outcome::HandedOff
        );
        // Not evaluated: the ending decides.
        assert_eq!(
            outcome_of(&report(Some("customer-ended-call"), None)),
            Outcome::Success
        );
        for failed in [
            "dial_no_answer",
            "dial_busy",
            "error_llm_websocket_open",
            "pipeline-error-openai-llm-failed",
            "customer-did-not-answer",
            "voicemail_reached",
        ] {
            assert_eq!(
                outcome_of(&report(Some(failed), None)),
                Outcome::Failure,
                "{failed}"
            );
        }
        assert_eq!(evaluated(&report(Some("user_hangup"), None)), None);
        assert_eq!(report(None, None).provider, AgentProvider::Retell);
    }

    #[test]
    fn long_texts_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
