//! BOS services that combine the store with the pure rules: one module per
//! capability holding every operation with business rules that more than
//! one caller (the API, the UI, the CLI) needs, with typed inputs and an
//! error of its own; the clock every time-based capability reads; the
//! durable scheduler that runs their jobs (ghosting timers, abandonment
//! windows, retries, nudges); and the live bus the live pages follow.
//! Nothing here knows HTTP, HTML or a route: public URLs come in through
//! [`links::Links`].

/// Members, invitations and API keys: who may do what.
pub mod admin;
/// AI agents as workers: registry, heartbeats, pauses, interactions, metrics.
pub mod agents;
/// The live bus: per-organization events, across processes on PostgreSQL.
pub mod bus;
/// Nudge campaigns and nudge settings: checked, stored, status moves.
pub mod campaigns;
/// How each channel sends: checked settings, kept secrets.
pub mod channels;
/// Wall clock or test clock, with sleeping.
pub mod clock;
/// Customer identity: normalize, resolve, explain; timeline kinds.
pub mod identity;
/// Contacts import: the CSV driver and the upload spool.
pub mod imports;
/// The Unified Inbox: messages in and out, assign, resolve, reply.
pub mod inbox;
/// Quick actions on leads: convert, lose, reopen, assign, tag.
pub mod leads;
/// The public URLs services hand out, built by the web layer.
pub mod links;
/// The nudge sender: step and retry handlers, senders, crash sweep.
pub mod nudge;
/// The intake pipeline's worker, live bus and timer handlers.
pub mod pipeline;
/// Intake rules: intent scoring and lead settings, checked and saved.
pub mod rules;
/// Scheduling jobs and running them: timer, leases, retries, shutdown.
pub mod scheduler;
/// Intake sources: kinds, names, credentials made once.
pub mod sources;
/// Random tokens and their digests.
pub mod tokens;
/// Voice agents' calls (Vapi, Retell): live status, transcripts, interactions.
pub mod voice;

pub use bus::{Bus, BusEvent, LeadChange, Live, Received, Subscription};
pub use clock::{Clock, SystemClock, TestClock};
pub use pipeline::Pipeline;
pub use scheduler::{
    JobContext, JobError, Progress, Runner, RunnerBuilder, RunnerConfig, Scheduler,
};
