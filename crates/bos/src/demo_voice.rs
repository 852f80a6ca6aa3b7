//! The demo's voice agents' calls: a few varied phone calls, as Vapi's
//! end-of-call reports and Retell's `call_ended` and `call_analyzed`
//! events, signed with each agent's webhook secret in the platform's own
//! scheme and posted to the server's real voice hooks, so the Command
//! Center and the inbox show voice threads, costs and outcomes exactly as
//! a connected platform would make them. Call ids are per day: posting
//! again the same day stores nothing twice, a new day adds that day's calls.

use anyhow::{anyhow, Context, Result};
use bos_core::agents::{retell_sign, vapi_sign, AgentProvider};
use bos_store::Store;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

/// A voice agent the demo posts calls for: its id and the secret its
/// platform signs with.
#[derive(Clone)]
pub struct VoiceAgent {
    pub id: Uuid,
    pub secret: String,
}

impl std::fmt::Debug for VoiceAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VoiceAgent({})", self.id)
    }
}

/// The demo's Vapi and Retell agents, made once (with a random webhook
/// secret each) and found again on the next start.
pub async fn ensure_agents(store: &Store, org: Uuid, now: i64) -> Result<(VoiceAgent, VoiceAgent)> {
    let existing = store.agents(org).await?;
    let mut out = Vec::new();
    for (provider, name, platform) in [
        (AgentProvider::Vapi, "Riley (Vapi)", "asst_demo_riley"),
        (AgentProvider::Retell, "Sam (Retell)", "agent_demo_sam"),
    ] {
        let id = match existing.iter().find(|a| a.provider == provider) {
            Some(a) => a.id,
            None => {
                let agents = bos_engine::agents::Agents::new(
                    store.clone(),
                    bos_engine::Bus::new(store.clone()),
                );
                let (view, _key) = agents
                    .create(
                        org,
                        None,
                        bos_engine::agents::CreateAgent {
                            name: name.into(),
                            kind: "voice".into(),
                            provider: provider.as_str().into(),
                            platform_agent_id: Some(platform.into()),
                            webhook_secret: Some(bos_engine::tokens::random_token(24)),
                        },
                        now,
                    )
                    .await
                    .map_err(|e| anyhow!("creating the demo's {provider} agent: {e}"))?;
                view.agent.id
            }
        };
        let hook = store
            .agent_hook(id)
            .await?
            .ok_or_else(|| anyhow!("the demo's {provider} agent has no webhook secret"))?;
        out.push(VoiceAgent {
            id,
            secret: hook.secret,
        });
    }
    let retell = out.pop().expect("two agents");
    let vapi = out.pop().expect("two agents");
    Ok((vapi, retell))
}

/// One scripted call: who spoke, in order, and how it went.
struct Script {
    /// Seconds from the start, and the line; `true` for the AI.
    turns: &'static [(f64, bool, &'static str)],
    seconds: i64,
    /// US dollars.
    cost: f64,
    success: bool,
    summary: &'static str,
    /// Retell's words for the caller's mood.
    sentiment: &'static str,
    ended: &'static str,
}

const VAPI_CALLS: &[Script] = &[
    Script {
        turns: &[
            (0.6, true, "Thanks for calling Demo Shop, this is Riley. How can I help?"),
            (4.8, false, "Hi, I'd like to move my delivery to Friday, I won't be home Thursday."),
            (9.2, true, "Of course. I can see order 4417 arriving Thursday. Friday morning between nine and twelve works, shall I book it?"),
            (15.5, false, "Yes please, that's perfect."),
            (17.9, true, "Done: it now arrives Friday between nine and twelve. You'll get a text with the tracking link."),
            (23.4, false, "Great, thank you so much!"),
        ],
        seconds: 31,
        cost: 0.0912,
        success: true,
        summary: "The caller moved the delivery of order 4417 to Friday morning; confirmed by text.",
        sentiment: "Positive",
        ended: "customer-ended-call",
    },
    Script {
        turns: &[
            (0.5, true, "Thanks for calling Demo Shop, this is Riley. How can I help?"),
            (3.9, false, "Do you have the canvas tote in olive? I want to pick it up today."),
            (8.1, true, "We have two in olive at the Market Street store. I can hold one under your name until closing at seven."),
            (14.6, false, "Hold one please."),
            (16.2, true, "It's on hold for you. Anything else?"),
            (18.8, false, "No, that's all, thanks."),
        ],
        seconds: 24,
        cost: 0.0734,
        success: true,
        summary: "Held an olive canvas tote at Market Street for pickup today.",
        sentiment: "Positive",
        ended: "customer-ended-call",
    },
    Script {
        turns: &[
            (0.6, true, "Thanks for calling Demo Shop, this is Riley. How can I help?"),
            (4.0, false, "I was charged twice for my order and I want to speak to a person."),
            (8.7, true, "I'm sorry about the double charge. I'm transferring you to our billing team now."),
        ],
        seconds: 14,
        cost: 0.0421,
        success: false,
        summary: "Double charge reported; the caller asked for a person and was transferred to billing.",
        sentiment: "Negative",
        ended: "assistant-forwarded-call",
    },
];

const RETELL_CALLS: &[Script] = &[
    Script {
        turns: &[
            (0.4, true, "Hello, this is Sam from Demo Shop, calling about the desk lamp you returned."),
            (5.1, false, "Oh yes, it arrived broken. I'm really disappointed."),
            (9.3, true, "I'm sorry. I've sent a replacement by express; it arrives tomorrow, and you keep the refund code for next time."),
            (17.0, false, "Okay, that's fair. Thanks for sorting it."),
        ],
        seconds: 27,
        cost: 0.118,
        success: true,
        summary: "Broken desk lamp: an express replacement was sent and a refund code given.",
        sentiment: "Neutral",
        ended: "agent_hangup",
    },
    Script {
        turns: &[
            (0.4, true, "Hello, this is Sam from Demo Shop. You left a rain jacket in your cart; can I help you finish the order?"),
            (6.2, false, "Not interested, please don't call me again."),
            (9.0, true, "Understood, I've noted that. Have a good day."),
        ],
        seconds: 12,
        cost: 0.052,
        success: false,
        summary: "Cart follow-up declined; the customer asked not to be called.",
        sentiment: "Negative",
        ended: "user_hangup",
    },
];

/// The fixed numbers calls come from when no callers are given.
const FALLBACK_CALLERS: &[&str] = &[
    "+14155550181",
    "+14155550182",
    "+14155550183",
    "+14155550184",
    "+14155550185",
];

fn vapi_report(call_id: &str, caller: &str, started: i64, s: &Script) -> Value {
    let iso = bos_web::api::rfc3339;
    let mut transcript = String::new();
    let mut messages = vec![
        json!({"role": "system", "message": "You are Riley, Demo Shop's phone assistant.", "time": started, "secondsFromStart": 0}),
    ];
    for (at, ai, text) in s.turns {
        let (role, who) = if *ai { ("bot", "AI") } else { ("user", "User") };
        transcript.push_str(&format!("{who}: {text}\n"));
        messages.push(json!({"role": role, "message": text,
            "time": started + (at * 1000.0) as i64, "secondsFromStart": at}));
    }
    json!({"message": {
        "timestamp": started + s.seconds * 1000,
        "type": "end-of-call-report",
        "endedReason": s.ended,
        "call": {"id": call_id, "type": "inboundPhoneCall", "assistantId": "asst_demo_riley",
            "status": "ended", "customer": {"number": caller}},
        "customer": {"number": caller},
        "assistant": {"id": "asst_demo_riley", "name": "Riley"},
        "startedAt": iso(started),
        "endedAt": iso(started + s.seconds * 1000),
        "cost": s.cost,
        "durationSeconds": s.seconds,
        "analysis": {"summary": s.summary, "successEvaluation": if s.success { "true" } else { "false" },
            "structuredData": {"sentiment": s.sentiment}},
        "artifact": {"transcript": transcript, "messages": messages}
    }})
}

fn retell_event(event: &str, call_id: &str, caller: &str, started: i64, s: &Script) -> Value {
    let turns: Vec<Value> = s
        .turns
        .iter()
        .map(|(at, ai, text)| {
            let first = text.split_whitespace().next().unwrap_or("");
            json!({"role": if *ai { "agent" } else { "user" }, "content": text,
                "words": [{"word": first, "start": at, "end": at + 0.3}]})
        })
        .collect();
    let mut call = json!({
        "call_type": "phone_call", "direction": "outbound",
        "from_number": "+14155550100", "to_number": caller,
        "call_id": call_id, "agent_id": "agent_demo_sam", "call_status": "ended",
        "start_timestamp": started, "end_timestamp": started + s.seconds * 1000,
        "duration_ms": s.seconds * 1000,
        "disconnection_reason": s.ended,
        "transcript_object": turns,
        // Cents.
        "call_cost": {"combined_cost": s.cost * 100.0, "total_duration_seconds": s.seconds},
    });
    if event == "call_analyzed" {
        call["call_analysis"] = json!({"call_summary": s.summary, "in_voicemail": false,
            "user_sentiment": s.sentiment, "call_successful": s.success});
    }
    json!({"event": event, "call": call})
}

/// A signed delivery: the path, its signature headers, the body.
type Delivery = (String, Vec<(&'static str, String)>, Vec<u8>);

/// `host:port` of an `http://` base URL.
fn addr_of(base_url: &str) -> Result<String> {
    let rest = base_url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("the demo posts to a plain http:// address, not {base_url}"))?;
    Ok(rest.split('/').next().unwrap_or(rest).to_string())
}

async fn post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Result<u16> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = vec![0u8; 64 * 1024];
    crate::http1::read_response(&mut s, &mut buf).await
}

/// Posts the day's calls through the real hooks of the server at
/// `base_url` (`http://host:port`): three Vapi end-of-call reports and two
/// Retell calls (`call_ended`, then `call_analyzed`), from `callers` in
/// turn (demo customers' numbers; fixed ones when empty), over the hours
/// before `now`. Returns how many deliveries the server took.
pub async fn post_calls(
    base_url: &str,
    vapi: &VoiceAgent,
    retell: &VoiceAgent,
    callers: &[String],
    now: i64,
) -> Result<usize> {
    let addr = addr_of(base_url)?;
    let day = now / 86_400_000;
    let caller = |i: usize| -> String {
        callers
            .get(i % callers.len().max(1))
            .cloned()
            .unwrap_or_else(|| FALLBACK_CALLERS[i % FALLBACK_CALLERS.len()].to_string())
    };
    let mut ok = 0;
    let mut deliveries: Vec<Delivery> = Vec::new();
    for (i, s) in VAPI_CALLS.iter().enumerate() {
        let started = now - (i as i64 + 1) * 47 * 60_000;
        let body = vapi_report(&format!("demo-{day}-vapi-{i}"), &caller(i), started, s)
            .to_string()
            .into_bytes();
        let ts = now.to_string();
        let sig = vapi_sign(vapi.secret.as_bytes(), &ts, &body);
        deliveries.push((
            format!("/hooks/vapi/{}", vapi.id),
            vec![("x-timestamp", ts), ("x-signature", sig)],
            body,
        ));
    }
    for (i, s) in RETELL_CALLS.iter().enumerate() {
        let started = now - (i as i64 + 1) * 61 * 60_000 - 13 * 60_000;
        let id = format!("demo-{day}-retell-{i}");
        let who = caller(VAPI_CALLS.len() + i);
        for event in ["call_ended", "call_analyzed"] {
            let body = retell_event(event, &id, &who, started, s)
                .to_string()
                .into_bytes();
            let sig = retell_sign(retell.secret.as_bytes(), &body, now);
            deliveries.push((
                format!("/hooks/retell/{}", retell.id),
                vec![("x-retell-signature", sig)],
                body,
            ));
        }
    }
    for (path, headers, body) in deliveries {
        match post(&addr, &path, &headers, &body).await {
            Ok(200) => ok += 1,
            Ok(status) => tracing::warn!(status, %path, "demo voice: a call report was refused"),
            Err(e) => tracing::warn!(error = %e, %path, "demo voice: a call report failed"),
        }
    }
    Ok(ok)
}

/// For `bos demo`: makes the demo shop's voice agents if needed and, once
/// the server listens on `listen`, posts the day's calls from the shop's
/// best customers' numbers (so the threads land on people God View knows).
pub async fn start(store: &Store, listen: &str) -> Result<()> {
    let org = crate::org_by_slug(store, "demo-shop").await?.id;
    let (vapi, retell) = ensure_agents(store, org, crate::now()).await?;
    let callers: Vec<String> = store
        .list_profiles(
            org,
            &bos_store::identity::ProfileQuery {
                sort: Some(bos_store::identity::ProfileSort::Ltv),
                limit: 40,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(|p| p.primary_phone)
        .filter(|p| p.starts_with('+'))
        .take(5)
        .collect();
    let addr = listen.to_string();
    tokio::spawn(async move {
        // Up to ten seconds for the server to listen.
        for _ in 0..100 {
            if TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let base = format!("http://{addr}");
        match post_calls(&base, &vapi, &retell, &callers, crate::now()).await {
            Ok(n) => tracing::info!(deliveries = n, "demo voice calls posted"),
            Err(e) => tracing::warn!(error = %e, "demo voice calls not posted"),
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_read_as_the_platforms_reports() {
        let v = vapi_report("c1", "+14155550181", 1_000_000, &VAPI_CALLS[0]);
        let r = bos_core::agents::parse_vapi(v.to_string().as_bytes()).unwrap();
        assert_eq!(r.transcript.len(), VAPI_CALLS[0].turns.len());
        assert_eq!((r.success, r.cost_micros), (Some(true), Some(91_200)));
        assert_eq!(r.sentiment, Some(8.0));
        let e = retell_event(
            "call_analyzed",
            "c2",
            "+14155550182",
            1_000_000,
            &RETELL_CALLS[1],
        );
        let r = bos_core::agents::parse_retell(e.to_string().as_bytes()).unwrap();
        assert_eq!(r.customer_phone.as_deref(), Some("+14155550182"));
        assert_eq!((r.success, r.cost_micros), (Some(false), Some(52_000)));
        assert_eq!(addr_of("http://127.0.0.1:8080/").unwrap(), "127.0.0.1:8080");
        assert!(addr_of("https://x").is_err());
    }
}
