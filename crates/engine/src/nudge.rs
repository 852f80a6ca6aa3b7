//! The nudge sender: the scheduler's handlers for a step
//! falling due and for a failed send's retry, the per-tenant senders they
//! hand messages to, and the sweep that marks sends cut off by a crash.
//!
//! The order of a send is the whole of "never twice" (no message reaches a
//! provider twice, even across crashes): the
//! store claims the step (`sending`, committed) before the provider is
//! called, and only then records what the provider said. A transient
//! failure is retried by a job of its own with exponential backoff and
//! jitter, under the same idempotency key; a permanent one, an opt-out
//! or a stop in between is never retried; and a send whose outcome is not
//! known (a timeout after the request went out, a crash) becomes `unknown`
//! and is shown instead of sent again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bos_channels::{
    smtp::{SmtpConfig, SmtpSender, SmtpTls},
    twilio::{TwilioConfig, TwilioSender},
    DevSink, Medium, Outgoing, SendError, Sender,
};
use bos_core::jobs::Backoff;
use bos_core::nudge::Channel;
use bos_core::Millis;
use bos_store::inbox::NudgeCopy;
use bos_store::nudge::{ChannelConfig, Claimed, StepOutcome, StepRequest, SEND_JOB, STEP_JOB};
use bos_store::{Store, StoreError};
use rand::Rng;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use crate::links::MessageLinks;
use crate::scheduler::{JobContext, JobError, RunnerBuilder, Scheduler};

/// How the sender reaches the world.
#[derive(Clone)]
pub struct NudgeConfig {
    /// The public URLs messages carry (tracking, unsubscribe, delivery
    /// reports), built by the web layer from its routes.
    pub links: Arc<dyn MessageLinks>,
    /// Twilio's API base; tests point it at a local fake.
    pub twilio_base_url: String,
    /// Per send: longer than any provider's own answer time.
    pub send_timeout: Duration,
    /// Allow SMTP hosts on private networks (tests and self-hosted relays
    /// on the same machine); off, a tenant cannot make us connect inside
    /// our network.
    pub allow_private_hosts: bool,
    /// Waits between attempts of a failing send.
    pub backoff: Backoff,
    /// A send still `sending` this long after its claim was cut off by a
    /// crash (longer than any send takes, so a live send is never swept).
    pub sending_lease_ms: Millis,
    /// Where a sent nudge is shown in the customer's conversation; `None`
    /// (benchmarks, tests of sending alone) shows it nowhere.
    pub inbox: Option<crate::inbox::Inbox>,
}

impl std::fmt::Debug for NudgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NudgeConfig")
            .field("twilio_base_url", &self.twilio_base_url)
            .field("send_timeout", &self.send_timeout)
            .field("allow_private_hosts", &self.allow_private_hosts)
            .field("backoff", &self.backoff)
            .field("sending_lease_ms", &self.sending_lease_ms)
            .finish_non_exhaustive()
    }
}

impl NudgeConfig {
    /// The defaults, with messages' URLs from `links`.
    pub fn new(links: Arc<dyn MessageLinks>) -> Self {
        NudgeConfig {
            links,
            twilio_base_url: "https://api.twilio.com".into(),
            send_timeout: Duration::from_secs(30),
            allow_private_hosts: false,
            // 30 s, doubling, capped at 1 h: ten attempts span about 4 h,
            // which rides out a provider's bad afternoon without spamming it.
            backoff: Backoff {
                base_ms: 30_000,
                factor: 2,
                max_ms: 3_600_000,
            },
            sending_lease_ms: bos_store::nudge::SENDING_LEASE_MS,
            inbox: None,
        }
    }
}

/// Counts of what the sender did since start, for benchmarks and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NudgeStats {
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
    pub unknown: u64,
}

/// A sender and the settings it was built from.
type CachedSender = (ChannelConfig, Arc<dyn Sender>);

#[derive(Clone)]
pub struct Nudger {
    shared: Arc<Shared>,
}

struct Shared {
    scheduler: Scheduler,
    config: NudgeConfig,
    /// Senders by tenant and channel, rebuilt when the settings change (the
    /// config is part of the key), so SMTP connections are pooled.
    senders: Mutex<HashMap<(Uuid, &'static str), CachedSender>>,
    stats: Mutex<NudgeStats>,
    /// Due steps waiting for the batcher (started on first use, inside
    /// the runtime).
    steps: OnceLock<mpsc::UnboundedSender<StepCall>>,
}

type StepResult = Result<(StepOutcome, Vec<Millis>), StoreError>;

/// A due step on its way to the batcher, and where its outcome goes.
struct StepCall {
    req: StepRequest,
    reply: oneshot::Sender<StepResult>,
}

/// Most due steps decided in one transaction.
const STEP_BATCH_MAX: usize = 512;

/// Batches written at once: while they commit, the next due steps gather
/// into the next batch.
const STEP_BATCHES_IN_FLIGHT: usize = 2;

impl Nudger {
    pub fn new(scheduler: Scheduler, config: NudgeConfig) -> Nudger {
        Nudger {
            shared: Arc::new(Shared {
                scheduler,
                config,
                senders: Mutex::new(HashMap::new()),
                stats: Mutex::new(NudgeStats::default()),
                steps: OnceLock::new(),
            }),
        }
    }

    fn store(&self) -> &Store {
        self.shared.scheduler.store()
    }

    fn now(&self) -> Millis {
        self.shared.scheduler.clock().now_ms()
    }

    pub fn stats(&self) -> NudgeStats {
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut NudgeStats)) {
        f(&mut self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Registers the step, retry and inbox copy handlers on a runner.
    pub fn handlers(&self, runner: RunnerBuilder) -> RunnerBuilder {
        let step = self.clone();
        let retry = self.clone();
        let copy = self.clone();
        runner
            .handle(STEP_JOB, move |job| {
                let n = step.clone();
                async move { n.on_step(job).await }
            })
            .handle(SEND_JOB, move |job| {
                let n = retry.clone();
                async move { n.on_retry(job).await }
            })
            .handle(bos_store::inbox::INBOX_NUDGE_JOB, move |job| {
                let n = copy.clone();
                async move { n.on_inbox_copy(job).await }
            })
    }

    async fn on_step(&self, job: JobContext) -> Result<(), JobError> {
        let id = payload_uuid(&job, "enrollment_id")?;
        let random: u32 = rand::thread_rng().gen();
        let (reply, answer) = oneshot::channel();
        self.step_queue()
            .send(StepCall {
                req: StepRequest {
                    org: job.org_id,
                    enrollment: id,
                    random,
                },
                reply,
            })
            .map_err(|_| JobError::retry("the nudge step batcher has stopped"))?;
        let (outcome, timers) = answer
            .await
            .map_err(|_| JobError::retry("the nudge step batch was dropped"))?
            .map_err(retry)?;
        for t in timers {
            self.shared.scheduler.wake(t);
        }
        match outcome {
            StepOutcome::Send(claimed) => self.deliver(*claimed).await,
            StepOutcome::Delivered { shown_in, .. } => {
                self.count(|s| s.sent += 1);
                if let Some(conversation) = shown_in {
                    self.shown_in_inbox(job.org_id, conversation);
                }
                Ok(())
            }
            StepOutcome::Failed(why) => {
                tracing::info!(org = %job.org_id, enrollment = %id, %why, "nudge step could not be rendered");
                self.count(|s| s.failed += 1);
                Ok(())
            }
            StepOutcome::Wait(_) | StepOutcome::Nothing(_) => Ok(()),
        }
    }

    /// The batcher's queue, starting the batcher on first use.
    fn step_queue(&self) -> &mpsc::UnboundedSender<StepCall> {
        self.shared.steps.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(batch_steps(
                self.shared.scheduler.clone(),
                self.shared.config.links.clone(),
                rx,
            ));
            tx
        })
    }

    async fn on_retry(&self, job: JobContext) -> Result<(), JobError> {
        let id = payload_uuid(&job, "execution_id")?;
        let claimed = self
            .store()
            .claim_retry(job.org_id, id, self.now(), self.shared.config.links.clone())
            .await
            .map_err(retry)?;
        match claimed {
            Some(c) => self.deliver(c).await,
            None => Ok(()),
        }
    }

    /// Hands a claimed send to its provider and records the answer. A
    /// failure to record is returned to the runner but never re-sends: the
    /// row stays `sending` and the sweep makes it `unknown`.
    async fn deliver(&self, c: Claimed) -> Result<(), JobError> {
        let store = self.store().clone();
        let sender = match self.sender(&c).await {
            Ok(s) => s,
            Err(why) => {
                self.count(|s| s.failed += 1);
                return store
                    .execution_failed(c.org_id, c.execution_id, why, None, self.now())
                    .await
                    .map_err(retry);
            }
        };
        let out = Outgoing {
            medium: if c.channel == Channel::Sms {
                Medium::Sms
            } else {
                Medium::Email
            },
            to: c.to.clone(),
            from: c.from.clone(),
            reply_to: None,
            subject: c.subject.clone(),
            text: c.text.clone(),
            html: c.html.clone(),
            message_id: c.message_id.clone(),
            in_reply_to: None,
            references: Vec::new(),
            idempotency_key: c.idem_key.clone(),
            unsubscribe_url: c.unsubscribe_url.clone(),
            status_callback: c.status_callback.clone(),
        };
        let answer = match tokio::time::timeout(
            self.shared.config.send_timeout + Duration::from_secs(5),
            sender.send(&out),
        )
        .await
        {
            Ok(a) => a,
            Err(_) => Err(SendError::Ambiguous(
                "the provider did not answer in time".into(),
            )),
        };
        let now = self.now();
        let r = match answer {
            Ok(receipt) => {
                self.count(|s| s.sent += 1);
                // With an inbox, the same commit sets the timer that
                // shows the nudge there even if the write below fails.
                let r = store
                    .execution_sent_then(
                        c.org_id,
                        c.execution_id,
                        receipt.provider_id,
                        receipt.status == "delivered",
                        self.shared.config.inbox.is_some(),
                        now,
                    )
                    .await;
                match r {
                    Ok(Some(NudgeCopy::Shown(Some(conversation)))) => {
                        self.shown_in_inbox(c.org_id, conversation)
                    }
                    Ok(Some(NudgeCopy::Later(due))) => self.shared.scheduler.wake(due),
                    _ => {}
                }
                r.map(|_| ())
            }
            Err(SendError::Transient(why)) if c.attempt < c.max_attempts => {
                self.count(|s| s.retried += 1);
                let wait = self
                    .shared
                    .config
                    .backoff
                    .delay(c.attempt, rand::thread_rng().gen::<f64>());
                let at = now + wait.max(1);
                let r = store
                    .execution_failed(c.org_id, c.execution_id, why, Some(at), now)
                    .await;
                self.shared.scheduler.wake(at);
                r
            }
            Err(SendError::Transient(why)) => {
                self.count(|s| s.failed += 1);
                let why = format!("{why} (gave up after {} attempts)", c.attempt);
                store
                    .execution_failed(c.org_id, c.execution_id, why, None, now)
                    .await
            }
            Err(SendError::Permanent(why)) => {
                self.count(|s| s.failed += 1);
                store
                    .execution_failed(c.org_id, c.execution_id, why, None, now)
                    .await
            }
            Err(SendError::Ambiguous(why)) => {
                self.count(|s| s.unknown += 1);
                store
                    .execution_unknown(c.org_id, c.execution_id, why, now)
                    .await
            }
        };
        r.map_err(|e| {
            // Not a retry of the send: the claim stays and the sweep decides.
            JobError::permanent(format!("recording the provider's answer failed: {e}"))
        })
    }

    /// Tells live views that a sent nudge now shows in `conversation`
    /// (written in the send's own commit).
    fn shown_in_inbox(&self, org: Uuid, conversation: Uuid) {
        if let Some(inbox) = &self.shared.config.inbox {
            inbox.tell(org, conversation);
        }
    }

    /// Shows a sent nudge the inbox refused in the send's commit: the
    /// timer set in its place, retried with backoff until it is written.
    async fn on_inbox_copy(&self, job: JobContext) -> Result<(), JobError> {
        let execution = payload_uuid(&job, "execution_id")?;
        let Some(inbox) = &self.shared.config.inbox else {
            return Ok(());
        };
        inbox
            .record_nudge(job.org_id, execution, self.now())
            .await
            .map(|_| ())
            .map_err(|e| JobError::retry(format!("showing the nudge in the inbox: {e}")))
    }

    /// A sender for a channel's settings.
    async fn build_sender(&self, config: &ChannelConfig) -> Result<Arc<dyn Sender>, String> {
        let c = &self.shared.config;
        sender_for(
            config,
            &c.twilio_base_url,
            c.send_timeout,
            c.allow_private_hosts,
        )
        .await
    }

    /// Sends one e-mail that is not a nudge (an invitation's link) through
    /// `org`'s e-mail channel, when it has a real one: `Ok(false)` with the
    /// development sink (nothing would leave the server). Waits for the
    /// provider's answer, at most the send timeout.
    pub async fn send_service_email(
        &self,
        org: Uuid,
        to: &str,
        subject: &str,
        text: &str,
    ) -> Result<bool, String> {
        let config = self
            .store()
            .channel_config(org, Channel::Email)
            .await
            .map_err(|e| e.to_string())?;
        let ChannelConfig::Smtp { from, .. } = &config else {
            return Ok(false);
        };
        let sender = self.build_sender(&config).await?;
        let id = Uuid::now_v7();
        let m = Outgoing {
            medium: Medium::Email,
            to: to.to_string(),
            from: from.clone(),
            reply_to: None,
            subject: Some(subject.to_string()),
            text: text.to_string(),
            html: None,
            message_id: format!("{id}@bos.service"),
            in_reply_to: None,
            references: Vec::new(),
            idempotency_key: format!("service:{id}"),
            unsubscribe_url: None,
            status_callback: None,
        };
        match tokio::time::timeout(self.shared.config.send_timeout, sender.send(&m)).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the e-mail provider did not answer in time".into()),
        }
    }

    async fn sender(&self, c: &Claimed) -> Result<Arc<dyn Sender>, String> {
        let key = (c.org_id, c.channel.medium().as_str());
        if let Some((cfg, s)) = self
            .shared
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if *cfg == c.config {
                return Ok(s.clone());
            }
        }
        let sender = self.build_sender(&c.config).await?;
        self.shared
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (c.config.clone(), sender.clone()));
        Ok(sender)
    }

    /// Marks sends cut off by a crash as `unknown`, never to be re-sent.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let n = self
            .store()
            .sweep_sending(self.now(), self.shared.config.sending_lease_ms)
            .await?;
        if n > 0 {
            tracing::warn!(
                count = n,
                "nudges left sending by a crash are now unknown; they are not sent again"
            );
        }
        Ok(n)
    }

    /// Sweeps now and then every half lease (at most every minute) until
    /// the returned handle is aborted.
    pub fn start_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let every = Duration::from_millis(
            (self.shared.config.sending_lease_ms / 2).clamp(200, 60_000) as u64,
        );
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.sweep().await {
                    tracing::warn!(error = %e, "nudge sweep failed");
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// A sender for a channel's settings (the nudge sender's and the inbox
/// replies'); SMTP hosts are checked against the outbound guard at every
/// build.
pub(crate) async fn sender_for(
    config: &ChannelConfig,
    twilio_base_url: &str,
    timeout: Duration,
    allow_private_hosts: bool,
) -> Result<Arc<dyn Sender>, String> {
    let sender: Arc<dyn Sender> = match config {
        ChannelConfig::Dev => Arc::new(DevSink),
        ChannelConfig::Smtp {
            host,
            port,
            tls,
            username,
            password,
            ..
        } => {
            bos_channels::guard::check_host(host, *port, allow_private_hosts).await?;
            let tls = match tls.as_str() {
                "none" => SmtpTls::None,
                "implicit" => SmtpTls::Implicit,
                _ => SmtpTls::StartTls,
            };
            Arc::new(SmtpSender::new(SmtpConfig {
                host: host.clone(),
                port: *port,
                tls,
                username: username.clone(),
                password: password.clone(),
                timeout,
            })?)
        }
        ChannelConfig::Twilio {
            account_sid,
            auth_token,
            ..
        } => Arc::new(TwilioSender::new(TwilioConfig {
            base_url: twilio_base_url.to_string(),
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            timeout,
        })?),
    };
    Ok(sender)
}

/// Decides due steps in batches: each batch is one transaction (one
/// commit, one savepoint on SQLite) instead of one per step, which is what
/// bounds how many nudges a second one SQLite writer decides. A lone step
/// goes at once, so batching adds no wait when the load is light. Ends
/// when the `Nudger` is dropped (the queue closes).
async fn batch_steps(
    scheduler: Scheduler,
    links: Arc<dyn MessageLinks>,
    mut rx: mpsc::UnboundedReceiver<StepCall>,
) {
    let permits = Arc::new(Semaphore::new(STEP_BATCHES_IN_FLIGHT));
    let mut buf = Vec::with_capacity(STEP_BATCH_MAX);
    loop {
        // A permit first: while every batch is in flight, due steps queue
        // up and the next batch takes them all.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut buf, STEP_BATCH_MAX).await == 0 {
            return;
        }
        let calls = std::mem::take(&mut buf);
        let scheduler = scheduler.clone();
        let links = links.clone();
        tokio::spawn(async move {
            run_step_batch(&scheduler, links, calls).await;
            drop(permit);
        });
    }
}

async fn run_step_batch(scheduler: &Scheduler, links: Arc<dyn MessageLinks>, calls: Vec<StepCall>) {
    let store = scheduler.store();
    let reqs: Vec<StepRequest> = calls.iter().map(|c| c.req).collect();
    let now = scheduler.clock().now_ms();
    let n = calls.len();
    match store.nudge_steps(reqs, now, links.clone()).await {
        Ok(outcomes) if outcomes.len() == n => {
            for (c, o) in calls.into_iter().zip(outcomes) {
                let _ = c.reply.send(Ok(o));
            }
        }
        Ok(_) => {
            for c in calls {
                let _ = c.reply.send(Err(StoreError::Other(
                    "a step batch answered for a different number of steps".into(),
                )));
            }
        }
        Err(e) if n == 1 => {
            if let Some(c) = calls.into_iter().next() {
                let _ = c.reply.send(Err(e));
            }
        }
        Err(e) => {
            // The whole batch rolled back: one by one, so a step that fails
            // fails alone (its job retries) and the others go out.
            tracing::warn!(steps = n, error = %e, "a batch of nudge steps failed; deciding them one by one");
            for c in calls {
                let r = store
                    .nudge_step(
                        c.req.org,
                        c.req.enrollment,
                        scheduler.clock().now_ms(),
                        c.req.random,
                        links.clone(),
                    )
                    .await;
                let _ = c.reply.send(r);
            }
        }
    }
}

fn retry(e: StoreError) -> JobError {
    JobError::retry(e.to_string())
}

fn payload_uuid(job: &JobContext, field: &str) -> Result<Uuid, JobError> {
    let v: serde_json::Value = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent(format!("payload is not JSON: {e}")))?;
    v.get(field)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::permanent(format!("payload has no {field}")))
}
