//! BOS services that combine the store with the pure rules: the clock every
//! time-based capability reads, the durable scheduler that runs their
//! jobs (ghosting timers, abandonment windows, retries, nudges), and the
//! live bus the live pages follow.

/// The live bus: per-organization events, across processes on PostgreSQL.
pub mod bus;
/// Wall clock or test clock, with sleeping.
pub mod clock;
/// The nudge sender: step and retry handlers, senders, crash sweep.
pub mod nudge;
/// The intake pipeline's worker, live bus and timer handlers.
pub mod pipeline;
/// Scheduling jobs and running them: timer, leases, retries, shutdown.
pub mod scheduler;

pub use bus::{Bus, BusEvent, LeadChange, Live, Received, Subscription};
pub use clock::{Clock, SystemClock, TestClock};
pub use pipeline::Pipeline;
pub use scheduler::{
    JobContext, JobError, Progress, Runner, RunnerBuilder, RunnerConfig, Scheduler,
};
