//! The live bus: what changed, per organization, for the pages that follow
//! it live (the intake dashboard, an import's progress, and later the
//! inbox, agents and alerts). It owns the event types, the per-organization
//! fan-out inside one process, and — on PostgreSQL — carrying events to
//! every other server process on the same database.
//!
//! An event names what changed by id only (a lead's profile, an import);
//! whoever shows it loads the current state. So an event is small, never
//! stale, carries no customer data over the database's notification
//! channel, and losing or repeating one costs a re-read, never a wrong page.
//!
//! Across processes: each process sends what it publishes with `NOTIFY`
//! (many events packed per notification, under PostgreSQL's payload limit)
//! and one `LISTEN` connection hands what other processes sent to its own
//! subscribers; its own notifications are recognised by the process id in
//! the payload and skipped, since they were delivered locally at once. When
//! the listening connection drops, subscribers get [`Received::Missed`]
//! once it listens again: events sent meanwhile are lost, so a view
//! re-reads (the intake dashboard reloads; an import's page reads its row).
//! On SQLite there is one process per database: the bus is in-process only.

use bos_store::live::{LiveSignal, MAX_PAYLOAD};
use bos_store::Store;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Events a subscriber may be behind before it is told it missed some
/// (and re-reads). Per organization, so a busy tenant never makes a quiet
/// one's page fall behind. A burst larger than this (a backlog drained in
/// one batch) is cheaper to show by reloading than row by row.
pub const ROOM: usize = 1024;

/// How a lead changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadChange {
    /// A new touchpoint.
    Event,
    /// It moved (a rule, a person's quick action, a timer).
    State,
    /// Its checkout was abandoned.
    Abandoned,
}

impl LeadChange {
    /// The name the dashboard's script reads.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadChange::Event => "event",
            LeadChange::State => "state",
            LeadChange::Abandoned => "abandoned",
        }
    }

    fn code(self) -> char {
        match self {
            LeadChange::Event => 'e',
            LeadChange::State => 's',
            LeadChange::Abandoned => 'a',
        }
    }

    fn from_code(c: &str) -> Option<LeadChange> {
        match c {
            "e" => Some(LeadChange::Event),
            "s" => Some(LeadChange::State),
            "a" => Some(LeadChange::Abandoned),
            _ => None,
        }
    }
}

/// What changed in an organization. Each kind carries the ids its readers
/// load, nothing they show. Later kinds (a message, a conversation, an
/// agent's status, a hand-off, an alert) are new variants with a wire tag
/// of their own; a process that does not know a tag skips it, so processes
/// of two versions can share a database during a rolling deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// A lead changed; `created`: the lead (its profile) is new.
    Lead {
        profile_id: Uuid,
        change: LeadChange,
        created: bool,
    },
    /// An import moved on: a batch saved, or it ended.
    ImportProgress { import_id: Uuid },
    /// A conversation changed: a message in or out, a delivery status, an
    /// assignment, a resolve or reopen.
    Conversation { conversation_id: Uuid },
    /// An agent changed: a heartbeat, a pause or resume, an interaction.
    Agent { agent_id: Uuid },
}

/// An event on the bus: what changed, and in which organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusEvent {
    pub org_id: Uuid,
    pub live: Live,
}

impl BusEvent {
    pub fn lead(org_id: Uuid, profile_id: Uuid, change: LeadChange, created: bool) -> BusEvent {
        BusEvent {
            org_id,
            live: Live::Lead {
                profile_id,
                change,
                created,
            },
        }
    }

    pub fn import_progress(org_id: Uuid, import_id: Uuid) -> BusEvent {
        BusEvent {
            org_id,
            live: Live::ImportProgress { import_id },
        }
    }

    pub fn conversation(org_id: Uuid, conversation_id: Uuid) -> BusEvent {
        BusEvent {
            org_id,
            live: Live::Conversation { conversation_id },
        }
    }

    pub fn agent(org_id: Uuid, agent_id: Uuid) -> BusEvent {
        BusEvent {
            org_id,
            live: Live::Agent { agent_id },
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Something changed in the subscribed organization.
    Event(Live),
    /// Events may have been lost (the subscriber fell behind, or the link
    /// to other processes dropped and is back): re-read what is shown.
    Missed,
}

/// Sent on an organization's channel.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    Event(Live),
    Missed,
}

struct Inner {
    /// This process's bus: recognises its own notifications.
    replica: Uuid,
    store: Store,
    /// Organizations someone here is following → their channel.
    orgs: Mutex<HashMap<Uuid, broadcast::Sender<Delivery>>>,
    /// Events to send to other processes, once started on PostgreSQL.
    outbound: OnceLock<mpsc::UnboundedSender<BusEvent>>,
}

/// The live bus of one process: cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

/// One organization's events, from subscription on.
pub struct Subscription {
    org: Uuid,
    rx: broadcast::Receiver<Delivery>,
    bus: Arc<Inner>,
}

impl Subscription {
    /// The organization followed.
    pub fn org(&self) -> Uuid {
        self.org
    }

    /// The next event (or word that some were missed); `None` once the bus
    /// is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        use broadcast::error::RecvError;
        match self.rx.recv().await {
            Ok(Delivery::Event(l)) => Some(Received::Event(l)),
            Ok(Delivery::Missed) | Err(RecvError::Lagged(_)) => Some(Received::Missed),
            Err(RecvError::Closed) => None,
        }
    }

    /// The next event if one is already waiting, without waiting: what a
    /// caller that just published checks (tests drain this way, never sleep).
    pub fn try_recv(&mut self) -> Option<Received> {
        use broadcast::error::TryRecvError;
        match self.rx.try_recv() {
            Ok(Delivery::Event(l)) => Some(Received::Event(l)),
            Ok(Delivery::Missed) | Err(TryRecvError::Lagged(_)) => Some(Received::Missed),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The last follower of an organization takes its channel along
        // (this receiver still counts until the end of this call).
        let mut orgs = self.bus.orgs.lock().unwrap_or_else(|e| e.into_inner());
        if orgs
            .get(&self.org)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            orgs.remove(&self.org);
        }
    }
}

/// The background tasks of a started bus.
pub struct BusWorker {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BusWorker {
    /// Stops listening and sending (at shutdown).
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

impl Bus {
    /// An in-process bus over `store`; [`Bus::start`] links it to the
    /// other processes on the same PostgreSQL database.
    pub fn new(store: Store) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                replica: Uuid::new_v4(),
                store,
                orgs: Mutex::new(HashMap::new()),
                outbound: OnceLock::new(),
            }),
        }
    }

    /// Follows one organization's events from now on.
    pub fn subscribe(&self, org: Uuid) -> Subscription {
        let mut orgs = self.inner.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let rx = orgs
            .entry(org)
            .or_insert_with(|| broadcast::channel(ROOM).0)
            .subscribe();
        Subscription {
            org,
            rx,
            bus: self.inner.clone(),
        }
    }

    /// Publishes one event: to this process's subscribers at once, and to
    /// the other processes' once started on PostgreSQL.
    pub fn publish(&self, e: BusEvent) {
        self.publish_all(std::iter::once(e));
    }

    /// Publishes events in order (a pipeline batch: one lock for all).
    pub fn publish_all(&self, events: impl IntoIterator<Item = BusEvent>) {
        let out = self.inner.outbound.get();
        let orgs = self.inner.orgs.lock().unwrap_or_else(|e| e.into_inner());
        if out.is_none() && orgs.is_empty() {
            // Nobody follows anything here and nothing goes elsewhere.
            return;
        }
        for e in events {
            if let Some(tx) = orgs.get(&e.org_id) {
                let _ = tx.send(Delivery::Event(e.live));
            }
            if let Some(out) = out {
                let _ = out.send(e);
            }
        }
    }

    /// Delivers events heard from another process to subscribers here.
    fn deliver_local(&self, events: &[BusEvent]) {
        let orgs = self.inner.orgs.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            if let Some(tx) = orgs.get(&e.org_id) {
                let _ = tx.send(Delivery::Event(e.live));
            }
        }
    }

    /// Tells every subscriber here that events may have been lost.
    fn missed_everywhere(&self) {
        let orgs = self.inner.orgs.lock().unwrap_or_else(|e| e.into_inner());
        for tx in orgs.values() {
            let _ = tx.send(Delivery::Missed);
        }
    }

    /// Links this bus to the other processes on the same database: on
    /// PostgreSQL it starts listening (before this returns, so nothing
    /// sent afterwards is missed) and sending; on SQLite it does nothing.
    /// Call once per process; later calls do nothing.
    pub async fn start(&self) -> Result<BusWorker, bos_store::StoreError> {
        let mut tasks = Vec::new();
        if self.inner.outbound.get().is_some() {
            return Ok(BusWorker { tasks });
        }
        let Some(mut listener) = self.inner.store.listen_live().await? else {
            return Ok(BusWorker { tasks });
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if self.inner.outbound.set(tx).is_err() {
            // Started concurrently by another caller.
            return Ok(BusWorker { tasks });
        }
        tasks.push(tokio::spawn(send_loop(
            self.inner.store.clone(),
            self.inner.replica,
            rx,
        )));
        // The listener holds the bus weakly: it ends with the last clone.
        let weak = Arc::downgrade(&self.inner);
        let me = self.inner.replica;
        tasks.push(tokio::spawn(async move {
            loop {
                let signal = listener.recv().await;
                let Some(inner) = weak.upgrade() else { break };
                let bus = Bus { inner };
                match signal {
                    Ok(LiveSignal::Payload(p)) => match decode(&p) {
                        Some((from, _)) if from == me => {}
                        Some((_, events)) => bus.deliver_local(&events),
                        None => tracing::debug!(payload = %p, "live notification not understood"),
                    },
                    Ok(LiveSignal::Reconnected) => {
                        tracing::warn!("live notifications: reconnected; followers re-read");
                        bus.missed_everywhere();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live notifications lost; listening again");
                        bus.missed_everywhere();
                        drop(bus);
                        // Back off while the database is unreachable.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
        Ok(BusWorker { tasks })
    }
}

/// Largest number of events sent in one flush (one statement).
const FLUSH: usize = 8192;

/// Sends what this process publishes: whatever is queued goes in one
/// statement, so a pipeline batch costs one round trip, not one per lead.
async fn send_loop(store: Store, replica: Uuid, mut rx: mpsc::UnboundedReceiver<BusEvent>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push(first);
        while batch.len() < FLUSH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let payloads = encode(replica, &batch, MAX_PAYLOAD);
        if let Err(e) = store.notify_live(payloads).await {
            // Other processes' pages miss these; they still show the
            // state on their next event or reload.
            tracing::warn!(error = %e, events = batch.len(), "live notifications not sent");
        }
    }
}

/// The wire format's version, first on every payload.
const WIRE: &str = "1";

/// Packs events into notification payloads of at most `max` bytes, in
/// order: `1 <process> <org> <item> <item>…`, one organization per payload,
/// an item being `l:<profile>:<e|s|a>:<0|1>` (a lead), `i:<import>`,
/// `c:<conversation>` or `a:<agent>`.
pub fn encode(replica: Uuid, events: &[BusEvent], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_org = None;
    let mut item = String::new();
    for e in events {
        item.clear();
        match e.live {
            Live::Lead {
                profile_id,
                change,
                created,
            } => {
                let _ = write!(
                    item,
                    " l:{profile_id}:{}:{}",
                    change.code(),
                    u8::from(created)
                );
            }
            Live::ImportProgress { import_id } => {
                let _ = write!(item, " i:{import_id}");
            }
            Live::Conversation { conversation_id } => {
                let _ = write!(item, " c:{conversation_id}");
            }
            Live::Agent { agent_id } => {
                let _ = write!(item, " a:{agent_id}");
            }
        }
        if cur_org != Some(e.org_id) || cur.len() + item.len() > max {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            let _ = write!(cur, "{WIRE} {replica} {}", e.org_id);
            cur_org = Some(e.org_id);
        }
        cur.push_str(&item);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads a payload: the sending process and its events. `None` when it is
/// not a payload of this version; items of unknown kinds are skipped.
pub fn decode(payload: &str) -> Option<(Uuid, Vec<BusEvent>)> {
    let mut parts = payload.split(' ');
    if parts.next()? != WIRE {
        return None;
    }
    let replica = Uuid::parse_str(parts.next()?).ok()?;
    let org_id = Uuid::parse_str(parts.next()?).ok()?;
    let mut events = Vec::new();
    for item in parts {
        let mut f = item.split(':');
        let live = match f.next() {
            Some("l") => {
                let profile_id = f.next().and_then(|s| Uuid::parse_str(s).ok());
                let change = f.next().and_then(LeadChange::from_code);
                let created = match f.next() {
                    Some("1") => Some(true),
                    Some("0") => Some(false),
                    _ => None,
                };
                match (profile_id, change, created) {
                    (Some(profile_id), Some(change), Some(created)) => Live::Lead {
                        profile_id,
                        change,
                        created,
                    },
                    _ => continue,
                }
            }
            Some("i") => match f.next().and_then(|s| Uuid::parse_str(s).ok()) {
                Some(import_id) => Live::ImportProgress { import_id },
                None => continue,
            },
            Some("c") => match f.next().and_then(|s| Uuid::parse_str(s).ok()) {
                Some(conversation_id) => Live::Conversation { conversation_id },
                None => continue,
            },
            Some("a") => match f.next().and_then(|s| Uuid::parse_str(s).ok()) {
                Some(agent_id) => Live::Agent { agent_id },
                None => continue,
            },
            _ => continue,
        };
        events.push(BusEvent { org_id, live });
    }
    Some((replica, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(org: Uuid, change: LeadChange, created: bool) -> BusEvent {
        BusEvent::lead(org, Uuid::new_v4(), change, created)
    }

    #[test]
    fn payloads_round_trip_in_order_one_org_each_under_the_limit() {
        let (a, b, me) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut events = Vec::new();
        for i in 0..500 {
            let change = [LeadChange::Event, LeadChange::State, LeadChange::Abandoned][i % 3];
            events.push(lead(a, change, i % 2 == 0));
        }
        events.push(BusEvent::import_progress(b, Uuid::new_v4()));
        events.push(BusEvent::conversation(b, Uuid::new_v4()));
        events.push(BusEvent::agent(b, Uuid::new_v4()));
        events.push(lead(a, LeadChange::State, false));
        let payloads = encode(me, &events, MAX_PAYLOAD);
        // 500 leads of about 43 bytes do not fit one payload; org b and the
        // return to org a each start a new one.
        assert!(payloads.len() >= 5, "{}", payloads.len());
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let mut back = Vec::new();
        for p in &payloads {
            let (from, evs) = decode(p).unwrap();
            assert_eq!(from, me);
            assert!(evs.windows(2).all(|w| w[0].org_id == w[1].org_id));
            back.extend(evs);
        }
        assert_eq!(back, events);
    }

    #[test]
    fn an_event_too_large_for_the_limit_alone_still_goes_alone() {
        let me = Uuid::new_v4();
        let e = lead(Uuid::new_v4(), LeadChange::Event, true);
        // A tiny limit: each event gets a payload of its own.
        let payloads = encode(me, &[e, e, e], 10);
        assert_eq!(payloads.len(), 3);
        assert_eq!(decode(&payloads[0]).unwrap().1, vec![e]);
    }

    #[test]
    fn unknown_kinds_are_skipped_and_other_versions_refused() {
        let (me, org, p) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let s = format!("1 {me} {org} m:{p}:x l:{p}:s:1 l:{p}:q:1 i:nope i:{p}");
        let (_, evs) = decode(&s).unwrap();
        assert_eq!(
            evs,
            vec![
                BusEvent::lead(org, p, LeadChange::State, true),
                BusEvent::import_progress(org, p)
            ]
        );
        assert_eq!(decode(&format!("2 {me} {org} i:{p}")), None);
        assert_eq!(decode("1 nope"), None);
        assert_eq!(decode(""), None);
    }

    async fn bus() -> (Bus, bos_store::testing::TestDb) {
        let db = bos_store::testing::TestDb::new().await.unwrap();
        (Bus::new(db.store.clone()), db)
    }

    /// The next thing received, bounded: never a sleep.
    async fn next(s: &mut Subscription) -> Received {
        tokio::time::timeout(Duration::from_secs(20), s.recv())
            .await
            .expect("nothing arrived")
            .expect("the bus is gone")
    }

    /// Nothing is waiting on the subscription.
    fn nothing_waiting(s: &mut Subscription) {
        assert!(matches!(
            s.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
    }

    #[tokio::test]
    async fn every_follower_of_an_organization_gets_its_events_and_only_its() {
        let (bus, _db) = bus().await;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a1 = bus.subscribe(a);
        let mut a2 = bus.subscribe(a);
        let mut b1 = bus.subscribe(b);
        let ea = lead(a, LeadChange::Event, true);
        let eb = BusEvent::import_progress(b, Uuid::new_v4());
        bus.publish_all([ea, eb]);
        assert_eq!(next(&mut a1).await, Received::Event(ea.live));
        assert_eq!(next(&mut a2).await, Received::Event(ea.live));
        assert_eq!(next(&mut b1).await, Received::Event(eb.live));
        nothing_waiting(&mut a1);
        nothing_waiting(&mut a2);
        nothing_waiting(&mut b1);
        assert_eq!(a1.org(), a);
    }

    #[tokio::test]
    async fn a_follower_far_behind_is_told_it_missed_events() {
        let (bus, _db) = bus().await;
        let a = Uuid::new_v4();
        let mut s = bus.subscribe(a);
        bus.publish_all((0..ROOM + 1).map(|_| lead(a, LeadChange::Event, false)));
        assert_eq!(next(&mut s).await, Received::Missed);
        // Then the newest ones still come.
        assert!(matches!(next(&mut s).await, Received::Event(_)));
    }

    #[tokio::test]
    async fn the_last_follower_gone_takes_the_channel_along() {
        let (bus, _db) = bus().await;
        let a = Uuid::new_v4();
        let s1 = bus.subscribe(a);
        let s2 = bus.subscribe(a);
        drop(s1);
        assert_eq!(bus.inner.orgs.lock().unwrap().len(), 1);
        drop(s2);
        assert!(bus.inner.orgs.lock().unwrap().is_empty());
        // Publishing with nobody following is fine.
        bus.publish(lead(a, LeadChange::State, false));
    }

    #[tokio::test]
    async fn on_postgresql_events_reach_another_process_once_and_not_their_own_twice() {
        let (one, db) = bus().await;
        if db.engine_name() != "postgres" {
            // One process per SQLite file: nothing to carry, and start does nothing.
            assert!(one.start().await.unwrap().tasks.is_empty());
            return;
        }
        // Another process: its own pool on the same database.
        let store_two = Store::open(&bos_store::StoreOptions {
            url: db.url.clone(),
            max_connections: 2,
        })
        .await
        .unwrap();
        let two = Bus::new(store_two);
        let _w1 = one.start().await.unwrap();
        let _w2 = two.start().await.unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut on_one = one.subscribe(a);
        let mut on_two = two.subscribe(a);
        let mut b_on_two = two.subscribe(b);

        let first = lead(a, LeadChange::Event, true);
        one.publish(first);
        assert_eq!(next(&mut on_one).await, Received::Event(first.live));
        // Heard by the other process: so process one's notification is
        // committed, and its own listener hears it before anything later.
        assert_eq!(next(&mut on_two).await, Received::Event(first.live));

        let second = lead(a, LeadChange::State, false);
        two.publish(second);
        assert_eq!(next(&mut on_two).await, Received::Event(second.live));
        // Process one's next event is the other's, not its own again.
        assert_eq!(next(&mut on_one).await, Received::Event(second.live));
        nothing_waiting(&mut on_one);
        // Organization b's follower saw none of a's.
        nothing_waiting(&mut b_on_two);
    }
}
