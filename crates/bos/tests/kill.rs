//! Crash under load: 10,000 signed webhooks are sent to a real `bos serve`
//! process while it is killed (SIGKILL, no goodbye) five times and started
//! again. The sender behaves like a provider: anything but a 2xx is sent
//! again later with the same `webhook-id`. Afterwards every acknowledged
//! event must be stored (0 lost) and applied by the pipeline exactly once
//! (0 processed twice): one timeline entry each, and each event claimed by
//! exactly one committed pipeline transaction (`attempts = 1`).
//!
//! Runs on SQLite, or on PostgreSQL with `BOS_TEST_DATABASE_URL`.

use bos_core::intake::standard_webhooks::{self, Secret};
use bos_store::intake::{NewSource, SourceKind};
use bos_store::{Store, StoreOptions};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EVENTS: usize = 10_000;
/// The key `bos serve` seals provider secrets with: the test's own store
/// must seal the sources it makes under the same one.
const SECRET_KEY: &str = "S2lsbC10ZXN0LWtleS0zMi1ieXRlcy1sb25nLi4uLi4=";

fn test_keys() -> bos_store::secrets::Keyring {
    bos_store::secrets::Keyring::new(
        bos_store::secrets::SecretKey::parse(SECRET_KEY).unwrap(),
        vec![],
    )
}
const KILLS: usize = 5;
const SENDERS: usize = 16;

fn start(url: &str, dir: &std::path::Path, addr: &str) -> Child {
    start_with(url, dir, addr, &[])
}

fn start_with(url: &str, dir: &std::path::Path, addr: &str, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bos"))
        .arg("serve")
        .arg("--listen")
        .arg(addr)
        .arg("--data-dir")
        .arg(dir)
        .env("DATABASE_URL", url)
        .env("BOS_SECRET_KEY", SECRET_KEY)
        .env("BOS_LOG", "error")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bos serve")
}

/// One delivery over a fresh connection; the status, or None when the
/// server was not there or went away mid-request.
async fn deliver(addr: &str, path: &str, headers: &str, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: kill\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out);
    text.get(9..12)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_five_kills_and_are_applied_once() {
    let (url, _guard) = bos_store::testing::fresh_url().await.unwrap();
    let dir = std::env::temp_dir().join(format!("bos-kill-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = StoreOptions {
        url: url.clone(),
        max_connections: 4,
    };
    let store = Store::open(&opts).await.unwrap();
    store.set_secret_keys(test_keys());
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Kill Test").unwrap(),
            &bos_core::Slug::parse("kill-test").unwrap(),
            0,
        )
        .await
        .unwrap();
    let secret = Secret::from_bytes(vec![7u8; 32]).unwrap();
    let src = store
        .create_source(
            org.id,
            NewSource {
                kind: SourceKind::Webhook,
                name: "kill".into(),
                secret: Some(secret.encode()),
                key_hash: None,
                config: None,
            },
            0,
        )
        .await
        .unwrap();
    store.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let path = Arc::new(format!("/hooks/{}", src.id));
    let mut child = start(&url, &dir, &addr);

    // Senders: each owns a slice of the events and retries until a 2xx.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let progress = Arc::new(AtomicUsize::new(0));
    let secret = Arc::new(secret);
    let mut senders = Vec::new();
    for w in 0..SENDERS {
        let (acked, progress, secret, path, addr) = (
            acked.clone(),
            progress.clone(),
            secret.clone(),
            path.clone(),
            addr.clone(),
        );
        senders.push(tokio::spawn(async move {
            for i in (w..EVENTS).step_by(SENDERS) {
                let id = format!("msg_{i:05}");
                let body = serde_json::json!({
                    "type": "lead.created",
                    "timestamp": "2026-11-28T10:00:00Z",
                    "data": {"email": format!("p{i}@kill.test"), "summary": format!("Lead {i}")}
                })
                .to_string()
                .into_bytes();
                loop {
                    let ts = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    let sig = standard_webhooks::sign(&secret, &id, ts, &body);
                    let headers = format!(
                        "webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n"
                    );
                    match deliver(&addr, &path, &headers, &body).await {
                        Some(s) if (200..300).contains(&s) => {
                            acked.lock().unwrap().insert(id.clone());
                            progress.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        // Refused, 5xx or cut off: the provider retries.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }

    // Kill the server at evenly spaced points of the run, restart at once.
    for k in 1..=KILLS {
        let at = EVENTS * k / (KILLS + 1);
        while progress.load(Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().expect("SIGKILL bos serve");
        child.wait().unwrap();
        child = start(&url, &dir, &addr);
    }
    for s in senders {
        s.await.unwrap();
    }
    // A graceful stop: the worker finishes its batch in progress.
    unsafe_free_sigterm(&mut child);

    // Whatever the killed servers left pending is drained here, through
    // the same pipeline a server runs.
    let store = Store::open(&opts).await.unwrap();
    store.set_secret_keys(test_keys());
    let sched = bos_engine::Scheduler::new(store.clone(), Arc::new(bos_engine::SystemClock));
    let pass = bos_engine::Pipeline::new(sched).drain().await.unwrap();
    assert_eq!(pass.failed, 0);

    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        EVENTS,
        "the sender retries until each is acknowledged"
    );
    let stored = store.inbound_count(org.id, src.id).await.unwrap();
    assert_eq!(
        stored as usize, EVENTS,
        "0 acknowledged events lost, none stored twice"
    );
    let counts = store.inbound_status_counts(org.id).await.unwrap();
    assert_eq!(
        counts.get("processed").copied(),
        Some(EVENTS as i64),
        "{counts:?}"
    );
    let (timeline, max_attempts, profiles) = store.intake_audit(org.id).await.unwrap();
    assert_eq!(timeline, EVENTS as i64, "one timeline entry per event");
    assert_eq!(
        max_attempts, 1,
        "each event applied by exactly one committed transaction"
    );
    assert_eq!(profiles, EVENTS as i64, "one profile per person");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM through `kill(1)` (the crate forbids unsafe code, so no libc).
fn unsafe_free_sigterm(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// A crash in the send window: 1,000 nudges go out over SMTP (a fake server in this
/// process) from a real `bos serve` that is SIGKILLed 10 times while it
/// sends, including between the provider's answer and our commit. Pass: no
/// message reaches the provider twice; every send ends `sent` or, when a
/// kill left its outcome open, `unknown` (shown, never retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nudges_are_never_sent_twice_across_ten_kills_in_the_send_window() {
    use bos_channels::fake::FakeSmtp;
    use bos_core::nudge::{Campaign, Channel, Step, StopConditions, Trigger, Variant};
    use bos_store::nudge::{CampaignStatus, ChannelConfig};
    const SENDS: usize = 1_000;
    const NUDGE_KILLS: usize = 10;

    let smtp = FakeSmtp::start().await;
    let (url, _guard) = bos_store::testing::fresh_url().await.unwrap();
    let dir = std::env::temp_dir().join(format!("bos-r8-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = StoreOptions {
        url: url.clone(),
        max_connections: 4,
    };
    let store = Store::open(&opts).await.unwrap();
    store.set_secret_keys(test_keys());
    let org = store
        .create_org(
            &bos_core::OrgName::parse("R8 Test").unwrap(),
            &bos_core::Slug::parse("r8-test").unwrap(),
            0,
        )
        .await
        .unwrap();
    let secret = Secret::from_bytes(vec![9u8; 32]).unwrap();
    let src = store
        .create_source(
            org.id,
            NewSource {
                kind: SourceKind::Webhook,
                name: "r8".into(),
                secret: Some(secret.encode()),
                key_hash: None,
                config: None,
            },
            0,
        )
        .await
        .unwrap();
    let campaign = Campaign {
        name: "Welcome".into(),
        trigger: Trigger::Event {
            name: "trial.started".into(),
        },
        steps: vec![Step {
            delay_ms: 60_000,
            channel: Channel::Email,
            variants: vec![Variant {
                name: "A".into(),
                weight: 1,
                subject: Some("Welcome aboard".into()),
                body: "Reply to this email if you need anything.".into(),
            }],
        }],
        stop: StopConditions::default(),
        quiet_hours: None,
        max_attempts: 5,
        reentry_cooldown_ms: 0,
        priority: 0,
    };
    campaign.validate(&[]).unwrap();
    let campaign_id = uuid::Uuid::now_v7();
    store
        .put_campaign(org.id, campaign_id, &campaign, CampaignStatus::Active, 0)
        .await
        .unwrap();
    store
        .put_channel_config(
            org.id,
            Channel::Email,
            &ChannelConfig::Smtp {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                tls: "none".into(),
                username: None,
                password: None,
                from: "Shop <shop@example.com>".into(),
                mailgun_signing_key: None,
                postmark_password: None,
            },
            0,
        )
        .await
        .unwrap();
    store.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let env = [
        ("BOS_ALLOW_PRIVATE_OUTBOUND", "true"),
        // Sends to the local fake take milliseconds: a one-second timeout,
        // and a crashed send is called unknown 6.5 s after its claim (the
        // least the configuration allows: timeout plus 5 s of grace).
        ("BOS_NUDGE_SEND_TIMEOUT_SECONDS", "1"),
        ("BOS_NUDGE_SENDING_LEASE_MS", "6500"),
        // A killed server's claimed jobs are taken over after two seconds.
        ("BOS_JOB_LEASE_MS", "2000"),
    ];
    let mut child = start_with(&url, &dir, &addr, &env);
    let path = format!("/hooks/{}", src.id);
    // The trial started five minutes ago, so each step is due at once.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 300;
    let stamp = bos_web::api::rfc3339(started as i64 * 1000);
    // The provider side: deliver every event, retrying like a provider.
    let sender = {
        let (addr, secret) = (addr.clone(), Arc::new(secret));
        tokio::spawn(async move {
            for i in 0..SENDS {
                let id = format!("r8_{i:05}");
                let body = serde_json::json!({
                    "type": "trial.started",
                    "timestamp": stamp,
                    "data": {"email": format!("t{i}@r8.test")}
                })
                .to_string()
                .into_bytes();
                loop {
                    let ts = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    let sig = standard_webhooks::sign(&secret, &id, ts, &body);
                    let headers = format!(
                        "webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n"
                    );
                    match deliver(&addr, &path, &headers, &body).await {
                        Some(s) if (200..300).contains(&s) => break,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        })
    };
    // Kill the server each time another tenth of the messages reached the
    // provider: in the middle of the send stream, so some kills land
    // between a provider's answer and our commit.
    let mut kills = 0;
    for k in 1..=NUDGE_KILLS {
        let at = SENDS * k / (NUDGE_KILLS + 2);
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while smtp.attempts() < at && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.kill().expect("SIGKILL bos serve");
        child.wait().unwrap();
        kills += 1;
        child = start_with(&url, &dir, &addr, &env);
    }
    sender.await.unwrap();
    // Wait for the last server to finish: every step claimed and settled
    // (the sweep turns the killed servers' open sends into unknown).
    let store = Store::open(&opts).await.unwrap();
    store.set_secret_keys(test_keys());
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut x;
    loop {
        x = store
            .campaign_executions(org.id, campaign_id, 10_000)
            .await
            .unwrap();
        let open = x
            .iter()
            .filter(|e| e.status == "sending" || e.status == "retrying")
            .count();
        if x.len() == SENDS && open == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not settled: {} executions, {open} open",
            x.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unsafe_free_sigterm(&mut child);
    assert_eq!(kills, NUDGE_KILLS);
    // One execution per customer and step (the idempotency key)...
    let mut keys: Vec<_> = x.iter().map(|e| e.enrollment_id).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), SENDS);
    // ...and no message at the provider twice.
    let mails = smtp.messages();
    let mut ids: Vec<String> = mails
        .iter()
        .filter_map(|m| {
            m.data
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        ids.len(),
        mails.len(),
        "every message carries our Message-ID"
    );
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "0 sent twice");
    let sent = x.iter().filter(|e| e.status == "sent").count();
    let unknown = x.iter().filter(|e| e.status == "unknown").count();
    assert_eq!(sent + unknown, SENDS, "only sent or unknown: {x:?}");
    // Every `sent` one reached the provider; the provider holds nothing we
    // did not claim.
    for e in x.iter().filter(|e| e.status == "sent") {
        assert!(
            ids.iter().any(|l| l.contains(&e.message_id)),
            "sent but not at the provider: {}",
            e.message_id
        );
    }
    assert!(mails.len() <= SENDS);
    eprintln!(
        "R8: {SENDS} sends, {kills} kills: {sent} sent, {unknown} unknown, {} at the provider, 0 twice",
        mails.len()
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
