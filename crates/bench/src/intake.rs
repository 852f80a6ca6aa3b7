//! `bos-bench intake`: the intake path against its budgets (issue 4;
//! `docs/benchmarks.md`): HTTP ingest throughput of Segment-compatible `/v1/track` calls
//! (each a unique `messageId`, verified, stored durably before the 200),
//! acknowledgement latency at a fixed offered rate (open loop: latency is
//! measured from each request's *scheduled* send time, so a stall is not
//! hidden by the sender waiting for it), and the pipeline alone draining
//! the stored events (identity → timeline → intent → lead state → timers).
//!
//! The pipeline worker is stopped while ingest is measured, so each figure
//! is one component's; the stored events are then the pipeline's input.
//!
//! With `--gzip`, ingest is also measured with every body gzipped
//! (`Content-Encoding: gzip`, RudderStack's SDK default), in rounds that
//! alternate with plain JSON so both see the same database size, and the
//! two figures are printed side by side. The requests of both kinds are
//! built (and compressed) before their round starts: the figures are the
//! server's cost, not the load generator's.

use crate::percentiles;
use anyhow::{anyhow, Result};
use bos::http1::read_response;
use bos_store::intake::{NewSource, SourceKind};
use bos_store::{Store, StoreOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub rate: u64,
    pub rate_seconds: u64,
    pub lag_rate: u64,
    /// The fast-acknowledgement test instead: signed webhooks of this many KiB at `rate`.
    pub webhook_kb: Option<usize>,
    pub users: u64,
    pub database_url: Option<String>,
    /// Also measure ingest with gzipped bodies, against plain JSON.
    pub gzip: bool,
}

fn track_request(key_b64: &str, user: u64, msg: &str, n: u64) -> Vec<u8> {
    let body = track_body(user, msg, n);
    format!(
        "POST /v1/track HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic {key_b64}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The same call, its body gzipped as an SDK does (default level).
fn gzip_track_request(key_b64: &str, user: u64, msg: &str, n: u64) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(track_body(user, msg, n).as_bytes());
    let body = e.finish().unwrap_or_default();
    let mut req = format!(
        "POST /v1/track HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic {key_b64}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

fn track_body(user: u64, msg: &str, n: u64) -> String {
    // Realistic mix: mostly page-like product views, some carts, a few
    // checkouts, identified by user id with an e-mail now and then.
    let (event, extra) = match n % 20 {
        0 => ("Checkout Started", r#","properties":{"value":129.90}"#),
        1 | 2 => (
            "Product Added",
            r#","properties":{"name":"Tee","price":19.99}"#,
        ),
        _ => ("Product Viewed", r#","properties":{"name":"Tee"}"#),
    };
    let traits = if n.is_multiple_of(5) {
        format!(
            r#","context":{{"traits":{{"email":"user{user}@bench.test"}},"campaign":{{"source":"google","medium":"cpc"}}}}"#
        )
    } else {
        String::new()
    };
    format!(r#"{{"userId":"u-{user}","messageId":"{msg}","event":"{event}"{extra}{traits}}}"#)
}

/// Who the `n`-th request is about: a well-mixed hash of (connection, i),
/// so every connection sends about a different person each time.
fn user_of(n: u64, users: u64) -> u64 {
    let mut h = n ^ 0x9E37_79B9_7F4A_7C15;
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h ^ (h >> 31)) % users.max(1)
}

/// What the load generator sends.
enum Requests {
    /// Segment `/v1/track` with this Basic credential.
    Track(String),
    /// Standard Webhooks deliveries of about `kb` KiB each (the fast-acknowledgement test).
    Webhook {
        path: String,
        secret: bos_core::intake::standard_webhooks::Secret,
        kb: usize,
    },
    /// Requests built beforehand, per connection, taken in order; a
    /// connection that has used all of its own stops.
    Prepared(Vec<std::sync::Mutex<std::vec::IntoIter<Vec<u8>>>>),
}

impl Requests {
    fn build(&self, c: u64, user: u64, msg: &str, n: u64) -> Option<Vec<u8>> {
        Some(match self {
            Requests::Prepared(per_conn) => {
                return per_conn
                    .get(c as usize)?
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .next()
            }
            Requests::Track(key) => track_request(key, user, msg, n),
            Requests::Webhook { path, secret, kb } => {
                let note = "x".repeat(kb * 1024);
                let body = format!(
                    r#"{{"type":"lead.created","data":{{"email":"user{user}@bench.test","summary":"Lead","note":"{note}"}}}}"#
                );
                let ts = bos::now() / 1000;
                let sig =
                    bos_core::intake::standard_webhooks::sign(secret, msg, ts, body.as_bytes());
                format!(
                    "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nwebhook-id: {msg}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
        })
    }

    /// `per_conn` track calls, gzipped or not, for each of `connections`,
    /// with the ids and people `drive` would give them under `tag`.
    fn prepared(
        key_b64: &str,
        gzip: bool,
        connections: usize,
        per_conn: u64,
        users: u64,
        tag: &str,
    ) -> Requests {
        let build = if gzip {
            gzip_track_request
        } else {
            track_request
        };
        Requests::Prepared(
            (0..connections as u64)
                .map(|c| {
                    let reqs: Vec<Vec<u8>> = (0..per_conn)
                        .map(|i| {
                            let n = c * 1_000_000_000 + i;
                            build(key_b64, user_of(n, users), &format!("{tag}-{c}-{i}"), n)
                        })
                        .collect();
                    std::sync::Mutex::new(reqs.into_iter())
                })
                .collect(),
        )
    }
}

struct Load {
    latencies: Vec<u64>,
    errors: u64,
    secs: f64,
}

/// Closed loop (`rate` None: as fast as the server answers) or open loop
/// at `rate` requests/s spread over the connections.
async fn drive(
    addr: SocketAddr,
    requests: Arc<Requests>,
    connections: usize,
    dur: Duration,
    rate: Option<u64>,
    users: u64,
    tag: &str,
) -> Result<Load> {
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    let tag: Arc<str> = Arc::from(tag);
    for c in 0..connections as u64 {
        let requests = requests.clone();
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r as f64));
            // Stagger the connections across one interval.
            let mut next = start
                + interval
                    .map(|i| i.mul_f64(c as f64 / connections as f64))
                    .unwrap_or_default();
            let mut i = 0u64;
            loop {
                if interval.is_some() {
                    if next >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                } else if Instant::now() >= deadline {
                    break;
                }
                let scheduled = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                let n = c * 1_000_000_000 + i;
                let user = user_of(n, users);
                let Some(req) = requests.build(c, user, &format!("{tag}-{c}-{i}"), n) else {
                    break;
                };
                s.write_all(&req).await?;
                let status = read_response(&mut s, &mut buf).await?;
                lat.push(scheduled.elapsed().as_micros() as u64);
                if status != 200 {
                    errors += 1;
                }
                i += 1;
                if let Some(iv) = interval {
                    next += iv;
                }
            }
            Ok::<_, anyhow::Error>((lat, errors))
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        latencies.extend(l);
        errors += e;
    }
    Ok(Load {
        latencies,
        errors,
        secs: start.elapsed().as_secs_f64(),
    })
}

pub async fn run(o: Options) -> Result<()> {
    let (url, _guard) = match &o.database_url {
        Some(u) => {
            let (u, g) = bos_store::testing::fresh_url_on(Some(u.clone())).await?;
            (u, g)
        }
        None => bos_store::testing::fresh_url_on(None).await?,
    };
    let store = Store::open(&StoreOptions {
        url,
        max_connections: 8,
    })
    .await?;
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Bench").map_err(|e| anyhow!(e))?,
            &bos_core::Slug::parse(&format!("bench-{}", uuid::Uuid::new_v4().simple()))
                .map_err(|e| anyhow!(e))?,
            bos::now(),
        )
        .await?;
    let key = format!("wk_bench_{}", uuid::Uuid::new_v4().simple());
    let src = store
        .create_source(
            org.id,
            NewSource {
                kind: SourceKind::Segment,
                name: "bench".into(),
                secret: None,
                key_hash: Some(bos_web::auth::sha256(&key)),
                config: None,
            },
            bos::now(),
        )
        .await?;
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    let key_b64 = Arc::new(Requests::Track(basic.clone()));
    let state = bos_web::AppState::new(
        store.clone(),
        Arc::new(bos_web::SystemClock),
        bos_web::WebConfig::default(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let app = bos_web::app(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    println!(
        "intake: engine {:?}, {} connections, {} distinct users",
        store.kind(),
        o.connections,
        o.users
    );

    if let Some(kb) = o.webhook_kb {
        return fast_ack(&store, org.id, addr, kb, &o).await;
    }

    // 1. Throughput, closed loop (after a 1 s warm-up).
    let warm = drive(
        addr,
        key_b64.clone(),
        o.connections,
        Duration::from_secs(1),
        None,
        o.users,
        "w",
    )
    .await?;
    let t = drive(
        addr,
        key_b64.clone(),
        o.connections,
        Duration::from_secs(o.seconds),
        None,
        o.users,
        "t",
    )
    .await?;
    let n = t.latencies.len() as u64;
    let eps = n as f64 / t.secs;
    let (p50, _, p99, _) = percentiles(t.latencies);
    println!(
        "  ingest /v1/track, closed loop: {eps:>8.0} events/s  p50 {p50} µs  p99 {p99} µs  errors {}  (budget ≥ 15,000/s)",
        t.errors
    );
    let gzip = if o.gzip {
        // Enough prepared requests for each round at several times the
        // warm-up's pace, so no connection runs out early.
        let warm_eps = warm.latencies.len() as f64 / warm.secs;
        let round_s = (o.seconds / 2).max(1);
        let per_conn =
            ((warm_eps.max(eps) * round_s as f64 * 3.0) / o.connections as f64).ceil() as u64 + 100;
        let (mut plain_n, mut plain_s, mut gz_n, mut gz_s, mut gz_err) =
            (0u64, 0f64, 0u64, 0f64, 0u64);
        for round in 0..2 {
            // Each round's requests are built (and compressed) before it,
            // outside the timing, plain ones too: the same work is left to
            // the load generator in both.
            let tag = format!("p{round}");
            let reqs = Requests::prepared(&basic, false, o.connections, per_conn, o.users, &tag);
            let p = drive(
                addr,
                Arc::new(reqs),
                o.connections,
                Duration::from_secs(round_s),
                None,
                o.users,
                &tag,
            )
            .await?;
            plain_n += p.latencies.len() as u64;
            plain_s += p.secs;
            let tag = format!("z{round}");
            let reqs = Requests::prepared(&basic, true, o.connections, per_conn, o.users, &tag);
            let g = drive(
                addr,
                Arc::new(reqs),
                o.connections,
                Duration::from_secs(round_s),
                None,
                o.users,
                &tag,
            )
            .await?;
            gz_n += g.latencies.len() as u64;
            gz_s += g.secs;
            gz_err += g.errors;
        }
        let (plain_eps, gz_eps) = (plain_n as f64 / plain_s, gz_n as f64 / gz_s);
        println!(
            "  ingest /v1/track, alternating rounds: plain JSON {plain_eps:>8.0} events/s, gzip {gz_eps:>8.0} events/s ({:+.1} %)  gzip errors {gz_err}  (done: gzip within 20 %)",
            (gz_eps / plain_eps - 1.0) * 100.0
        );
        Some((plain_eps, gz_eps, gz_err))
    } else {
        None
    };

    // 2. Acknowledgement latency at a fixed offered rate.
    let r = drive(
        addr,
        key_b64.clone(),
        o.connections,
        Duration::from_secs(o.rate_seconds),
        Some(o.rate),
        o.users,
        "r",
    )
    .await?;
    let rn = r.latencies.len() as u64;
    let (rp50, rp90, rp99, rmax) = percentiles(r.latencies);
    println!(
        "  ack latency at {} req/s offered ({} sent): p50 {rp50} µs  p90 {rp90} µs  p99 {rp99} µs  max {rmax} µs  errors {}  (budget p99 ≤ 20 ms)",
        o.rate, rn, r.errors
    );

    // 3. The pipeline alone, over everything stored above.
    let stored = store.inbound_count(org.id, src.id).await?;
    let started = Instant::now();
    let pass = state.pipeline.drain().await?;
    let secs = started.elapsed().as_secs_f64();
    let pps = pass.taken as f64 / secs;
    println!(
        "  pipeline: {} of {stored} stored events processed in {secs:.2} s: {pps:>8.0} events/s  failed {}  (budget ≥ 10,000/s)",
        pass.taken, pass.failed
    );
    // 4. Pipeline lag under a steady load: the worker running as in `bos
    //    serve`, events offered at `lag_rate`/s; lag = processed − received.
    let worker = state.pipeline.start();
    let since = bos::now();
    let lag_load = drive(
        addr,
        key_b64.clone(),
        o.connections,
        Duration::from_secs(o.rate_seconds),
        Some(o.lag_rate),
        o.users,
        "l",
    )
    .await?;
    // Let the worker finish what it holds: drain the rest here.
    state.pipeline.drain().await?;
    worker.shutdown().await;
    let lag_acks = lag_load.latencies.clone();
    let (a50, _, a99, amax) = percentiles(lag_acks);
    println!(
        "  ack latency at {} req/s offered with the pipeline running: p50 {a50} µs  p99 {a99} µs  max {amax} µs",
        o.lag_rate
    );
    let lags: Vec<u64> = store
        .inbound_lags(org.id, since)
        .await?
        .into_iter()
        .map(|l| l.max(0) as u64 * 1000)
        .collect();
    let lag_n = lags.len();
    let (l50, l90, l99, lmax) = percentiles(lags);
    println!(
        "  pipeline lag at {} events/s offered ({} events, ack errors {}): p50 {} ms  p90 {} ms  p99 {} ms  max {} ms  (budget p99 ≤ 1 s)",
        o.lag_rate, lag_n, lag_load.errors, l50 / 1000, l90 / 1000, l99 / 1000, lmax / 1000
    );
    let (states, cats) = store.lead_counts(org.id).await?;
    println!("  leads by state {states:?}, by intent {cats:?}");
    println!(
        "{}",
        serde_json::json!({
            "bench": "intake", "engine": format!("{:?}", store.kind()), "connections": o.connections,
            "ingest_events_per_s": eps.round(), "ingest_p50_us": p50, "ingest_p99_us": p99, "ingest_requests": n,
            "ingest_errors": t.errors, "rate": o.rate, "rate_p50_us": rp50, "rate_p99_us": rp99, "rate_max_us": rmax,
            "rate_requests": rn, "rate_errors": r.errors,
            "lag_rate": o.lag_rate, "lag_ack_p99_us": a99, "lag_events": lag_n, "lag_p50_ms": l50 / 1000, "lag_p99_ms": l99 / 1000, "lag_max_ms": lmax / 1000,
            "pipeline_events": pass.taken, "pipeline_events_per_s": pps.round(), "pipeline_failed": pass.failed,
            "gzip_plain_events_per_s": gzip.map(|g| g.0.round()), "gzip_events_per_s": gzip.map(|g| g.1.round()),
            "gzip_errors": gzip.map(|g| g.2),
        })
    );
    store.close().await;
    Ok(())
}

/// The fast-acknowledgement test: signed Standard Webhooks deliveries of `kb` KiB at the
/// offered rate for `rate_seconds`; every answer must be 2xx, p99 < 1 s.
async fn fast_ack(
    store: &Store,
    org: uuid::Uuid,
    addr: SocketAddr,
    kb: usize,
    o: &Options,
) -> Result<()> {
    let secret = bos_core::intake::standard_webhooks::Secret::from_bytes(vec![9u8; 32])
        .map_err(|e| anyhow!(e.to_string()))?;
    let src = store
        .create_source(
            org,
            NewSource {
                kind: SourceKind::Webhook,
                name: "bench hooks".into(),
                secret: Some(secret.encode()),
                key_hash: None,
                config: None,
            },
            bos::now(),
        )
        .await?;
    let requests = Arc::new(Requests::Webhook {
        path: format!("/hooks/{}", src.id),
        secret,
        kb,
    });
    let r = drive(
        addr,
        requests,
        o.connections,
        Duration::from_secs(o.rate_seconds),
        Some(o.rate),
        o.users,
        "h",
    )
    .await?;
    let n = r.latencies.len();
    let (p50, p90, p99, max) = percentiles(r.latencies);
    println!(
        "  R5: {n} signed webhooks of {kb} KiB at {} req/s for {} s: p50 {} ms  p90 {} ms  p99 {} ms  max {} ms  non-2xx {}  (pass: p99 < 1 s)",
        o.rate, o.rate_seconds, p50 / 1000, p90 / 1000, p99 / 1000, max / 1000, r.errors
    );
    println!(
        "{}",
        serde_json::json!({"bench": "intake-r5", "kb": kb, "rate": o.rate, "seconds": o.rate_seconds, "requests": n,
                           "p50_us": p50, "p99_us": p99, "max_us": max, "errors": r.errors})
    );
    Ok(())
}
