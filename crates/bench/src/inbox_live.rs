//! `bos-bench inbox-live`: an inbound message's way from the provider's
//! webhook to a member's open inbox. A server wired as `bos serve` wires
//! it (the live bus and the intake pipeline started, on port 0) holds a
//! Twilio SMS channel; a member's browser is stood in for by a client
//! subscribed to the inbox's live stream (`GET /inbox/stream`, server-sent
//! events). The bench then posts signed inbound SMS hooks one at a time and
//! measures, from the hook's 200, (a) the arrival of the stream's
//! `conversation` event for that customer's thread and (b) the moment the
//! message is readable over the API (`GET /api/v1/conversations/{id}`,
//! asked again at once until it holds the message). Budget: p99 ≤ 1 s from
//! acknowledgement to the message on an open inbox.
//!
//! With `--keep` and `--org` it runs against an organization of a kept
//! `bos-bench inbox` seed, so the hooks land among millions of messages.

use crate::percentiles;
use anyhow::{anyhow, Context, Result};
use bos::http1::read_response;
use bos_store::nudge::ChannelConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use uuid::Uuid;

const TWILIO_SID: &str = "ACbench00000000000000000000000000";
const TWILIO_TOKEN: &str = "bench-auth-token";
const OUR_NUMBER: &str = "+15005550006";
/// Customers the hooks come from, in turn: consecutive hooks are always
/// for different threads, so an event is never mistaken for the last one's.
const CUSTOMERS: u64 = 20;
/// The longest wait for one event before the run is called broken.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Options {
    pub hooks: u64,
    pub database_url: Option<String>,
    pub keep: Option<String>,
    pub org: Option<String>,
}

/// One `conversation` event of the stream: its thread and when it came.
struct Heard {
    conversation: Uuid,
    at: Instant,
}

/// Reads the live stream and forwards each `conversation` event.
async fn read_stream(mut s: TcpStream, tx: mpsc::UnboundedSender<Heard>) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = String::new();
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(anyhow!("the live stream closed"));
        }
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        // Events end with a blank line; chunk-size lines of the transfer
        // encoding fall between them and are skipped with the rest.
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            if !block.contains("event: conversation") {
                continue;
            }
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(data)?;
            let id = v["id"]
                .as_str()
                .and_then(|x| Uuid::parse_str(x).ok())
                .ok_or_else(|| anyhow!("a conversation event without an id: {data}"))?;
            if tx
                .send(Heard {
                    conversation: id,
                    at,
                })
                .is_err()
            {
                return Ok(());
            }
        }
    }
}

/// `application/x-www-form-urlencoded` of plain ASCII values.
fn form(params: &[(&str, &str)]) -> String {
    let enc = |v: &str| {
        let mut o = String::new();
        for b in v.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => o.push(b as char),
                b' ' => o.push('+'),
                _ => o.push_str(&format!("%{b:02X}")),
            }
        }
        o
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn run(o: Options) -> Result<()> {
    if o.hooks < CUSTOMERS * 2 {
        return Err(anyhow!("--hooks must be at least {}", CUSTOMERS * 2));
    }
    let (url, _guard) = match o.keep.clone() {
        Some(url) => (url, None),
        None => {
            let (url, guard) = bos_store::testing::fresh_url_on(o.database_url.clone()).await?;
            (url, Some(guard))
        }
    };
    let store = bos_store::Store::open(&bos_store::StoreOptions {
        url,
        max_connections: 8,
    })
    .await?;
    let now = bos::now();
    let org = match &o.org {
        Some(slug) => store
            .org_by_slug(slug)
            .await?
            .with_context(|| format!("no organization {slug} in this database"))?,
        None => {
            store
                .create_org(
                    &bos_core::OrgName::parse("Inbox live").map_err(|e| anyhow!(e))?,
                    &bos_core::Slug::parse(&format!("live-{}", Uuid::new_v4().simple()))
                        .map_err(|e| anyhow!(e))?,
                    now,
                )
                .await?
        }
    };
    let hook = store
        .put_channel_config(
            org.id,
            bos_core::nudge::Channel::Sms,
            &ChannelConfig::Twilio {
                account_sid: TWILIO_SID.into(),
                auth_token: TWILIO_TOKEN.into(),
                from: OUR_NUMBER.into(),
                webhook_shared_key: None,
            },
            now,
        )
        .await?;
    // A member with a live session, as the browser holds it, and an API key.
    let token = crate::pages::signed_in_member(&store, org.id, "live", now).await?;
    let key = bos_engine::admin::issue_api_key(
        &store,
        org.id,
        "inbox-live bench",
        &bos_core::ScopeSet::parse("admin").map_err(|e| anyhow!(e))?,
        None,
        now,
    )
    .await?
    .secret;

    // The server, wired as `bos serve` wires it.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let config = bos_web::WebConfig {
        public_url: format!("http://{addr}"),
        ..bos_web::WebConfig::default()
    };
    let cookie = if config.secure_cookies {
        "__Host-bos_session"
    } else {
        "bos_session"
    };
    let state = bos_web::AppState::new(store.clone(), Arc::new(bos_web::SystemClock), config);
    let bus = state
        .bus
        .start()
        .await
        .context("cannot listen for live updates")?;
    let pipeline = state.pipeline.start();
    let app = bos_web::app(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });

    // The open inbox.
    let mut sse = TcpStream::connect(addr).await?;
    sse.write_all(
        format!(
            "GET /inbox/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Cookie: {cookie}={token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_stream(sse, tx));

    let path = format!("/hooks/twilio/{hook}/sms");
    let signed_url = format!("http://{addr}{path}");
    let mut hooks = TcpStream::connect(addr).await?;
    let mut api = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut threads: Vec<Option<Uuid>> = vec![None; CUSTOMERS as usize];
    let (mut to_event, mut to_readable) = (Vec::new(), Vec::new());
    let (mut event_first, mut api_tries) = (0u64, 0u64);
    let run_tag = Uuid::new_v4().simple().to_string();
    println!(
        "inbox-live: engine {:?}, {} hooks from {CUSTOMERS} customers, one at a time",
        store.kind(),
        o.hooks
    );
    // The first round (one hook per customer) opens the threads and is not
    // measured; the rest is.
    for n in 0..o.hooks {
        let who = n % CUSTOMERS;
        let phone = format!("+1415555{:04}", 100 + who);
        let word = format!("live{run_tag}n{n}");
        let sid = format!("SMbench{run_tag}{n}");
        let body = form(&[
            ("MessageSid", &sid),
            ("AccountSid", TWILIO_SID),
            ("From", &phone),
            ("To", OUR_NUMBER),
            ("Body", &format!("Where is my order? ref {word}")),
            ("NumMedia", "0"),
        ]);
        let sig = bos_channels::twilio::signature(
            TWILIO_TOKEN,
            &signed_url,
            &bos_channels::twilio::parse_form(body.as_bytes()),
        );
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             X-Twilio-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        hooks.write_all(req.as_bytes()).await?;
        let status = read_response(&mut hooks, &mut buf).await?;
        let acked = Instant::now();
        if status != 200 {
            let body = String::from_utf8_lossy(&buf[..buf.len().min(2_000)]);
            return Err(anyhow!("the SMS hook answered {status}: {body}"));
        }
        // The first hook from a customer opens their thread: found by its
        // unique word, so the thread's events are known for what they are.
        if threads[who as usize].is_none() {
            let hit = store
                .search_inbox(org.id, &word, 5)
                .await?
                .into_iter()
                .find(|h| h.message_id.is_some())
                .ok_or_else(|| anyhow!("hook {n}'s message is not in the inbox"))?;
            threads[who as usize] = Some(hit.conversation_id);
        }
        let thread = threads[who as usize].unwrap_or_default();
        // The stream's event for this customer's thread (its first one
        // after the hook was sent).
        let heard = loop {
            let h = tokio::time::timeout(EVENT_TIMEOUT, rx.recv())
                .await
                .map_err(|_| anyhow!("no live event within {EVENT_TIMEOUT:?} of hook {n}"))?
                .ok_or_else(|| anyhow!("the live stream ended"))?;
            if h.at < sent {
                continue;
            }
            if h.conversation == thread {
                break h;
            }
        };
        if n < CUSTOMERS {
            continue;
        }
        if heard.at <= acked {
            event_first += 1;
        }
        to_event.push(heard.at.saturating_duration_since(acked).as_micros() as u64);
        // Readable over the API: asked at once from the 200, again until
        // it answers with the message.
        let get = format!(
            "GET /api/v1/conversations/{thread} HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {key}\r\n\r\n"
        );
        let readable = loop {
            api_tries += 1;
            buf.fill(0);
            api.write_all(get.as_bytes()).await?;
            let status = read_response(&mut api, &mut buf).await?;
            if status != 200 {
                return Err(anyhow!("GET conversation answered {status}"));
            }
            let t = Instant::now();
            if buf.windows(word.len()).any(|w| w == word.as_bytes()) {
                break t;
            }
            if t.duration_since(acked) > EVENT_TIMEOUT {
                return Err(anyhow!("hook {n}'s message never became readable"));
            }
        };
        to_readable.push(readable.saturating_duration_since(acked).as_micros() as u64);
    }
    reader.abort();
    pipeline.shutdown().await;
    bus.shutdown();

    let measured = to_event.len();
    let show = |name: &str, v: Vec<u64>| {
        let (p50, _, p99, max) = percentiles(v.clone());
        let p95 = {
            let mut s = v;
            s.sort_unstable();
            s[((s.len() as f64 * 0.95) as usize).min(s.len() - 1)]
        };
        println!(
            "  {name:<38} p50 {:>8.2} ms   p95 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
            p50 as f64 / 1000.0,
            p95 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            max as f64 / 1000.0
        );
        serde_json::json!({"case": name, "p50_ms": p50 as f64 / 1000.0,
            "p95_ms": p95 as f64 / 1000.0, "p99_ms": p99 as f64 / 1000.0,
            "max_ms": max as f64 / 1000.0})
    };
    let e = show("hook 200 → live event (budget p99 ≤ 1 s)", to_event.clone());
    let r = show("hook 200 → readable over the API", to_readable);
    let (_, _, p99, _) = percentiles(to_event);
    println!(
        "  {measured} measured; the event came before the 200 was read {event_first} times; \
         {api_tries} API reads; budget: {}",
        if p99 <= 1_000_000 { "ok" } else { "OVER" }
    );
    println!(
        "{}",
        serde_json::json!({"bench": "inbox-live", "engine": format!("{:?}", store.kind()),
            "hooks": measured, "cases": [e, r]})
    );
    Ok(())
}
