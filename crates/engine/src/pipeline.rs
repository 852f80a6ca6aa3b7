//! The intake pipeline's worker: it takes stored inbound
//! events in arrival order, reads each one (core's `interpret`), resolves
//! its identifiers under the tenant's rules, and has the store apply a
//! batch in one transaction — identity → timeline → intent → lead state →
//! timers. After the commit it publishes what changed on the live bus, the
//! feed the dashboard streams over SSE.
//!
//! Failures: an unreadable event is parked at once (its bytes will not
//! change); an error while applying rolls the batch back and the events are
//! applied one by one, so only the failing one is retried with backoff and,
//! out of attempts, parked for a person. Endpoints call [`Pipeline::notify`]
//! after storing; a poll once a second covers other replicas and retries.
//!
//! A submitted form with a message (a `message` field) is also the
//! customer's message on the inbox's form channel, once per event; the
//! pipeline's own timeline line stands for it.
//!
//! It also owns the handlers of the timers it sets: the ghosting timer
//! (`lead.ghosting`) and the checkout abandonment window (`checkout.abandon`).

use crate::bus::{Bus, BusEvent, LeadChange};
use crate::scheduler::{JobContext, JobError, RunnerBuilder, Scheduler};
use bos_core::identity::{normalize, IdentifierKind};
use bos_core::intake::interpret::interpret;
use bos_core::Millis;
use bos_store::identity::Traits;
use bos_store::pipeline::{
    Applied, DueEvent, Item, PipelineSettings, Ready, Work, ABANDON_JOB, GHOST_JOB,
};
use bos_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Events taken per transaction: large batches write each hot page (a
/// profile's, a lead's, an index leaf) to the log once per commit instead
/// of once per event. Writing those pages was a quarter of the writer's
/// time at 1,024 (measured with perf while draining a backlog); at 8,192
/// a backlog drains about 35 % faster. Under a steady load batches are only
/// what arrived since the last one, so this bounds catching up, not how
/// soon a single event is seen.
pub const BATCH: u32 = 8192;

fn batch() -> u32 {
    std::env::var("BOS_PIPELINE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BATCH)
}

/// The form field whose text is the customer's message to the business
/// (the field the form snippet offers as "Message").
pub const FORM_MESSAGE_FIELD: &str = bos_core::inbox::FORM_MESSAGE_FIELD;

/// How long a tenant's settings are reused before being read again.
const SETTINGS_TTL_MS: i64 = 5_000;

struct Shared {
    scheduler: Scheduler,
    notify: Notify,
    bus: Bus,
    settings: Mutex<HashMap<Uuid, (Arc<PipelineSettings>, Millis)>>,
}

/// The pipeline: cheap to clone, one per process.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub taken: usize,
    pub processed: usize,
    pub failed: usize,
}

impl Pipeline {
    /// A pipeline that publishes on a bus of its own (in-process only):
    /// for the command line and benchmarks, where nothing follows it live.
    pub fn new(scheduler: Scheduler) -> Pipeline {
        let bus = Bus::new(scheduler.store().clone());
        Pipeline::with_bus(scheduler, bus)
    }

    /// A pipeline that publishes what it applies on `bus`.
    pub fn with_bus(scheduler: Scheduler, bus: Bus) -> Pipeline {
        Pipeline {
            shared: Arc::new(Shared {
                scheduler,
                notify: Notify::new(),
                bus,
                settings: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn store(&self) -> &Store {
        self.shared.scheduler.store()
    }

    fn now(&self) -> Millis {
        self.shared.scheduler.clock().now_ms()
    }

    /// New events were stored: wake the worker.
    pub fn notify(&self) {
        self.shared.notify.notify_one();
    }

    /// The live bus it publishes on.
    pub fn bus(&self) -> &Bus {
        &self.shared.bus
    }

    /// Forgets a tenant's cached settings (they were just saved).
    pub fn settings_changed(&self, org: Uuid) {
        self.shared
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&org);
    }

    async fn settings(&self, org: Uuid) -> Result<Arc<PipelineSettings>, StoreError> {
        let now = self.now();
        if let Some((s, at)) = self
            .shared
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&org)
        {
            if now - at < SETTINGS_TTL_MS {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(self.store().pipeline_settings(org).await?);
        self.shared
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(org, (s.clone(), now));
        Ok(s)
    }

    /// Processes what is due until nothing is (tests and benchmarks drain
    /// the queue instead of waiting for the worker). Reading and preparing
    /// the next batch overlaps applying the current one (the SQLite writer
    /// thread applies while this task parses): the next read starts after
    /// the last event taken, so the two never hold the same event.
    pub async fn drain(&self) -> Result<Pass, StoreError> {
        let mut total = Pass::default();
        let limit = batch();
        let mut items = self.fetch(None, limit).await?;
        let mut from_start = true;
        loop {
            if items.is_empty() {
                if from_start {
                    return Ok(total);
                }
                // Events committed out of id order, or retries now due:
                // one more look from the start of the queue.
                from_start = true;
                items = self.fetch(None, limit).await?;
                continue;
            }
            from_start = false;
            let cursor = items.last().map(|i| (i.event.next_at, i.event.id));
            let (applied, next) = tokio::join!(self.apply(items), self.fetch(cursor, limit));
            let p = applied?;
            total.taken += p.taken;
            total.processed += p.processed;
            total.failed += p.failed;
            items = next?;
        }
    }

    /// One batch: read, prepare, apply, publish.
    pub async fn pass(&self, limit: u32) -> Result<Pass, StoreError> {
        let items = self.fetch(None, limit).await?;
        self.apply(items).await
    }

    /// Reads due events (after `after`, in queue order) and prepares them.
    async fn fetch(
        &self,
        after: Option<(Millis, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Item>, StoreError> {
        let due = self
            .store()
            .due_inbound_after(self.now(), after, limit)
            .await?;
        let mut items = Vec::with_capacity(due.len());
        let mut cache: HashMap<Uuid, Arc<PipelineSettings>> = HashMap::new();
        for ev in due {
            let settings = match cache.get(&ev.org_id) {
                Some(s) => s.clone(),
                None => {
                    let s = self.settings(ev.org_id).await?;
                    cache.insert(ev.org_id, s.clone());
                    s
                }
            };
            let work = prepare(&ev, &settings.identity);
            items.push(Item {
                event: ev,
                work,
                settings,
            });
        }
        Ok(items)
    }

    /// Applies prepared events: the batch in one transaction, or one by one
    /// when the batch fails.
    async fn apply(&self, items: Vec<Item>) -> Result<Pass, StoreError> {
        if items.is_empty() {
            return Ok(Pass::default());
        }
        let now = self.now();
        let mut pass = Pass {
            taken: items.len(),
            ..Pass::default()
        };
        let items: Arc<[Item]> = items.into();
        match self.store().apply_inbound(items.clone(), now).await {
            Ok(r) => {
                pass.processed = r.events.len();
                if let Some(at) = r.earliest_timer {
                    self.shared.scheduler.wake(at);
                }
                self.publish_applied(&items, r.events.iter().map(|e| &e.applied));
                self.forms_to_inbox(&items, r.events.iter().map(|e| &e.applied), now)
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, events = items.len(), "intake batch failed; applying its events one by one");
                for i in 0..items.len() {
                    let item = &items[i];
                    let one: Arc<[Item]> = Arc::from(vec![item.clone()]);
                    match self.store().apply_inbound(one, now).await {
                        Ok(r) => {
                            pass.processed += 1;
                            if let Some(at) = r.earliest_timer {
                                self.shared.scheduler.wake(at);
                            }
                            self.publish_applied(
                                std::slice::from_ref(item),
                                r.events.iter().map(|e| &e.applied),
                            );
                            self.forms_to_inbox(
                                std::slice::from_ref(item),
                                r.events.iter().map(|e| &e.applied),
                                now,
                            )
                            .await;
                        }
                        Err(e) => {
                            pass.failed += 1;
                            let ev = &item.event;
                            let parked = self
                                .store()
                                .fail_inbound(ev.org_id, ev.id, e.to_string(), now)
                                .await?;
                            tracing::warn!(org = %ev.org_id, event = %ev.id, error = %e, parked, "intake event failed");
                        }
                    }
                }
            }
        }
        Ok(pass)
    }

    /// Submitted forms with a message become the customer's message in
    /// the inbox (form channel), once per event: the event's id is the
    /// message's provider id, so a replay stores nothing new. The event is
    /// committed already, with a timer that writes this copy if the write
    /// here fails (retried with backoff until it is written); written
    /// here, the timer is cancelled.
    async fn forms_to_inbox<'a>(
        &self,
        items: &[Item],
        applied: impl Iterator<Item = &'a Applied>,
        now: Millis,
    ) {
        let inbox = crate::inbox::Inbox::new(self.store().clone(), self.shared.bus.clone());
        for (item, a) in items.iter().zip(applied) {
            let profile = match a {
                Applied::Processed { profile_id, .. } | Applied::Replayed { profile_id } => {
                    *profile_id
                }
                _ => continue,
            };
            let Work::Apply(ready) = &item.work else {
                continue;
            };
            let sig = &ready.interp.signal;
            if sig.event_type != "form_submitted" {
                continue;
            }
            let Some(text) = sig
                .form_fields
                .get(FORM_MESSAGE_FIELD)
                .filter(|t| !t.trim().is_empty())
            else {
                continue;
            };
            let ev = &item.event;
            let m = crate::inbox::Inbound {
                provider_message_id: Some(format!("form:{}", ev.id)),
                on_timeline_already: true,
                ..crate::inbox::Inbound::text(profile, bos_core::inbox::Channel::Form, text.clone())
            };
            match inbox.record_inbound(ev.org_id, m, now).await {
                Ok(_) => {
                    let key = bos_store::inbox::form_copy_key(ev.id);
                    if let Err(e) = self
                        .shared
                        .scheduler
                        .cancel(ev.org_id, bos_store::inbox::INBOX_FORM_JOB, &key)
                        .await
                    {
                        // Harmless: the timer finds the message written.
                        tracing::debug!(org = %ev.org_id, event = %ev.id, error = %e, "inbox copy timer not cancelled");
                    }
                }
                Err(e) => {
                    tracing::warn!(org = %ev.org_id, event = %ev.id, error = %e, "form message not written to the inbox yet; its timer will retry");
                }
            }
        }
    }

    fn publish_applied<'a>(&self, items: &[Item], applied: impl Iterator<Item = &'a Applied>) {
        let changed = items.iter().zip(applied).filter_map(|(item, a)| match a {
            Applied::Processed {
                profile_id,
                transition,
                created,
                ..
            } => Some(BusEvent::lead(
                item.event.org_id,
                *profile_id,
                if transition.is_some() {
                    LeadChange::State
                } else {
                    LeadChange::Event
                },
                *created,
            )),
            _ => None,
        });
        self.shared.bus.publish_all(changed);
    }

    /// Runs the worker until `shutdown` resolves: a pass whenever woken,
    /// and at least once a second (retries, other replicas' events).
    pub fn start(&self) -> Worker {
        let me = self.clone();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(async move {
            loop {
                if *stop_rx.borrow() {
                    break;
                }
                match me.drain().await {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "intake pipeline pass failed"),
                }
                tokio::select! {
                    _ = me.shared.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop_rx.changed() => {}
                }
            }
        });
        Worker {
            stop: stop_tx,
            handle,
        }
    }

    /// Registers the handlers of the pipeline's timers on a runner.
    pub fn handlers(&self, runner: RunnerBuilder) -> RunnerBuilder {
        let ghost = self.clone();
        let abandon = self.clone();
        let form = self.clone();
        runner
            .handle(GHOST_JOB, move |job| {
                let p = ghost.clone();
                async move { p.on_ghost_timer(job).await }
            })
            .handle(ABANDON_JOB, move |job| {
                let p = abandon.clone();
                async move { p.on_abandon_timer(job).await }
            })
            .handle(bos_store::inbox::INBOX_FORM_JOB, move |job| {
                let p = form.clone();
                async move { p.on_form_copy(job).await }
            })
    }

    /// The timer's side of `forms_to_inbox`: writes the form's message
    /// into the inbox, retried with backoff until it is written.
    async fn on_form_copy(&self, job: JobContext) -> Result<(), JobError> {
        let event = payload_field(&job, "event_id")?;
        let profile = Uuid::parse_str(&payload_field(&job, "profile_id")?)
            .map_err(|e| JobError::permanent(format!("bad profile id in payload: {e}")))?;
        let text = payload_field(&job, "text")?;
        let inbox = crate::inbox::Inbox::new(self.store().clone(), self.shared.bus.clone());
        let m = crate::inbox::Inbound {
            provider_message_id: Some(format!("form:{event}")),
            on_timeline_already: true,
            ..crate::inbox::Inbound::text(profile, bos_core::inbox::Channel::Form, text)
        };
        let at = serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|v| v.get("at").and_then(serde_json::Value::as_i64))
            .unwrap_or_else(|| self.now());
        inbox
            .record_inbound(job.org_id, m, at)
            .await
            .map(|_| ())
            .map_err(|e| JobError::retry(format!("writing the form's message to the inbox: {e}")))
    }

    async fn on_ghost_timer(&self, job: JobContext) -> Result<(), JobError> {
        let profile = payload_field(&job, "profile_id")?;
        let profile = Uuid::parse_str(&profile)
            .map_err(|e| JobError::permanent(format!("bad profile id in payload: {e}")))?;
        let (changed, again) = self
            .store()
            .lead_inactivity(job.org_id, profile, self.now())
            .await
            .map_err(|e| JobError::retry(e.to_string()))?;
        if let Some(at) = again {
            self.shared.scheduler.wake(at);
        }
        if let Some(c) = changed {
            self.shared.bus.publish(BusEvent::lead(
                job.org_id,
                c.profile_id,
                LeadChange::State,
                false,
            ));
        }
        Ok(())
    }

    async fn on_abandon_timer(&self, job: JobContext) -> Result<(), JobError> {
        let checkout = payload_field(&job, "checkout_id")?;
        let r = self
            .store()
            .checkout_abandoned(job.org_id, checkout, self.now())
            .await
            .map_err(|e| JobError::retry(e.to_string()))?;
        if let Some((profile, wake)) = r {
            if let Some(at) = wake {
                self.shared.scheduler.wake(at);
            }
            self.shared.bus.publish(BusEvent::lead(
                job.org_id,
                profile,
                LeadChange::Abandoned,
                false,
            ));
        }
        Ok(())
    }
}

fn payload_field(job: &JobContext, field: &str) -> Result<String, JobError> {
    let v: serde_json::Value = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::permanent(format!("payload is not JSON: {e}")))?;
    v.get(field)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| JobError::permanent(format!("payload has no {field}")))
}

/// The running worker.
pub struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Stops after the pass in progress (its transaction commits or not as
    /// a whole: nothing is half-applied).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// Reads one event and resolves its identifiers under the tenant's rules.
pub fn prepare(ev: &DueEvent, rules: &bos_core::identity::IdentityRules) -> Work {
    let interp = match interpret(
        &ev.source_kind,
        &ev.kind,
        ev.payload.as_bytes(),
        ev.received_at,
    ) {
        Ok(i) => i,
        Err(e) => return Work::Park(format!("The event could not be read: {e}.")),
    };
    let mut ids = Vec::new();
    let mut problems = Vec::new();
    for (k, v) in &interp.identifiers {
        let kind = match IdentifierKind::parse(k) {
            Ok(kind) => kind,
            Err(e) => {
                problems.push(e.0);
                continue;
            }
        };
        // Custom kinds exist once a person adds them to the rules.
        if matches!(kind, IdentifierKind::Custom(_)) && !rules.kinds.contains_key(&kind) {
            problems.push(format!("{k}: not an identifier kind of this organization"));
            continue;
        }
        match normalize(&kind, v, &rules.default_region) {
            Ok(id) if rules.blocked(&id) => problems.push(format!("{id} is on the blocklist")),
            Ok(id) => {
                if !ids.contains(&id) {
                    ids.push(id)
                }
            }
            Err(e) => problems.push(format!("{k}: {}", e.0)),
        }
    }
    if ids.is_empty() {
        let why = if problems.is_empty() {
            match ev.kind.as_str() {
                "carts/create" | "carts/update" => {
                    "A Shopify cart names no customer; its checkout will.".to_string()
                }
                _ => {
                    "The event names nobody: no email, phone, user id or anonymous id.".to_string()
                }
            }
        } else {
            format!("No usable identifier: {}.", problems.join("; "))
        };
        return Work::Skip(why);
    }
    let traits = Traits {
        first_name: interp.first_name.clone(),
        last_name: interp.last_name.clone(),
        company: interp.company.clone(),
        custom: interp.traits.clone(),
    };
    Work::Apply(Box::new(Ready {
        identifiers: ids,
        traits,
        interp,
    }))
}
