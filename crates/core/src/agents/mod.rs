//! AI agents as workers: what an agent is (its kind and who runs it), what
//! it reports in a heartbeat, the live status a member sees on the Command
//! Center ("talking · 2:34", "handling 3 conversations", "offline"), the
//! metrics a period of its interactions adds up to with the trend against
//! the period before, and the signed end-of-call reports of the voice
//! platforms (Vapi and Retell) read into one shape. Storage, the clock and
//! the providers live outside this crate; they pass facts and times in.

/// Success rate, response time, cost, CSAT and human intervention over a period.
pub mod metrics;
/// Agents, their heartbeats and the live status derived from them.
pub mod status;
/// Vapi and Retell: signatures and end-of-call reports.
pub mod voice;

pub use metrics::{
    Compared, Interaction, Metrics, Outcome, Period, PeriodError, Totals, Trend, TrendDirection,
};
pub use status::{
    AgentFacts, AgentKind, AgentProvider, Heartbeat, HeartbeatError, LiveStatus, Reported,
    DEFAULT_HEARTBEAT_INTERVAL_MS, MISSED_BEATS_OFFLINE,
};
pub use voice::{
    parse_retell, parse_vapi, retell_sign, retell_verify, vapi_sign, vapi_verify, CallEvent,
    Speaker, Turn, VapiAuth, VoiceError, VoiceReport, VoiceVerifyError, RETELL_TOLERANCE_MS,
};
