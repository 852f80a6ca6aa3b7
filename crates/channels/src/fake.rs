//! Local fake providers for tests here and in other crates (web HTTP tests,
//! the provider-outage test): a Twilio Messages API on axum and a minimal SMTP
//! server on plain tokio TCP, both on 127.0.0.1 with an OS-chosen port. Each
//! records what it accepted, counts attempts, and can be switched into a
//! failure mode mid-test. Everything is recorded before the reply is written,
//! so a test can assert as soon as its send returns, with no sleeping.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::smtp::{SmtpConfig, SmtpTls};
use crate::twilio::TwilioConfig;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not poison the fake for the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------ Twilio

/// How the fake Twilio answers (checked before authentication, like an outage
/// in front of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioFail {
    None,
    Status500,
    Status429,
    /// Read the request, never answer.
    Hang,
}

/// An SMS the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSms {
    pub to: String,
    /// `From`, or the `MessagingServiceSid` when that was given instead.
    pub from: String,
    pub body: String,
    pub status_callback: Option<String>,
    pub idempotency_token: Option<String>,
}

struct TwilioState {
    account_sid: String,
    auth_token: String,
    mode: Mutex<TwilioFail>,
    messages: Mutex<Vec<FakeSms>>,
    attempts: AtomicUsize,
    next_id: AtomicU64,
}

/// A fake Twilio Messages API. Dropping it stops the server.
pub struct FakeTwilio {
    addr: SocketAddr,
    pub account_sid: String,
    pub auth_token: String,
    state: Arc<TwilioState>,
    task: JoinHandle<()>,
}

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        let state = Arc::new(TwilioState {
            account_sid: "AC00000000000000000000000000000001".to_string(),
            auth_token: "fake-auth-token".to_string(),
            mode: Mutex::new(TwilioFail::None),
            messages: Mutex::new(Vec::new()),
            attempts: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_create),
            )
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Twilio");
        let addr = listener.local_addr().expect("fake Twilio address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio {
            addr,
            account_sid: state.account_sid.clone(),
            auth_token: state.auth_token.clone(),
            state,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A sender configuration pointing here, with `timeout`.
    pub fn config(&self, timeout: Duration) -> TwilioConfig {
        TwilioConfig {
            base_url: self.base_url(),
            account_sid: self.account_sid.clone(),
            auth_token: self.auth_token.clone(),
            timeout,
        }
    }

    pub fn set_failing(&self, mode: TwilioFail) {
        *lock(&self.state.mode) = mode;
    }

    pub fn messages(&self) -> Vec<FakeSms> {
        lock(&self.state.messages).clone()
    }

    /// Every request to the Messages endpoint, whatever the answer.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn twilio_error(status: StatusCode, code: u32, message: String) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

async fn twilio_create(
    State(st): State<Arc<TwilioState>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.attempts.fetch_add(1, Ordering::SeqCst);
    let mode = *lock(&st.mode);
    match mode {
        TwilioFail::None => {}
        TwilioFail::Status500 => {
            return twilio_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "Internal Server Error".into(),
            )
        }
        TwilioFail::Status429 => {
            return twilio_error(
                StatusCode::TOO_MANY_REQUESTS,
                20429,
                "Too Many Requests".into(),
            )
        }
        TwilioFail::Hang => std::future::pending::<()>().await,
    }

    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", st.account_sid, st.auth_token))
    );
    let auth_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !auth_ok || sid != st.account_sid {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate".into());
    }

    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let Some(to) = get("To") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.".into(),
        );
    };
    if !is_e164(&to) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let Some(from) = get("From").or_else(|| get("MessagingServiceSid")) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' phone number is required.".into(),
        );
    };
    let Some(text) = get("Body") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21602,
            "Message body is required.".into(),
        );
    };
    let status = if from.starts_with("MG") {
        "accepted"
    } else {
        "queued"
    };
    let n = st.next_id.fetch_add(1, Ordering::SeqCst);
    let msg_sid = format!("SM{n:032x}");
    lock(&st.messages).push(FakeSms {
        to: to.clone(),
        from: from.clone(),
        body: text.clone(),
        status_callback: get("StatusCallback"),
        idempotency_token: headers
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let body = serde_json::json!({
        "sid": msg_sid,
        "account_sid": st.account_sid,
        "to": to,
        "from": from,
        "body": text,
        "status": status,
        "num_segments": "1",
        "error_code": null,
        "error_message": null,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

// -------------------------------------------------------------------- SMTP

/// How the fake SMTP server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpFail {
    None,
    /// `451 4.3.0` to MAIL FROM: try again later.
    Reply451,
    /// `550 5.1.1` to RCPT TO: mailbox unknown.
    Reply550,
    /// Receive the whole message (and record it: the server got it), then
    /// close the connection without the final reply, the case where the
    /// sender cannot know whether the mail was accepted.
    DropAfterData,
}

/// A message the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, CRLF line ends.
    pub data: String,
}

struct SmtpState {
    mode: Mutex<SmtpFail>,
    messages: Mutex<Vec<FakeMail>>,
    attempts: AtomicUsize,
}

/// A minimal SMTP server (EHLO/HELO, AUTH PLAIN/LOGIN accepting anything,
/// MAIL, RCPT, DATA, RSET, NOOP, QUIT). Dropping it stops accepting.
pub struct FakeSmtp {
    addr: SocketAddr,
    state: Arc<SmtpState>,
    task: JoinHandle<()>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        let state = Arc::new(SmtpState {
            mode: Mutex::new(SmtpFail::None),
            messages: Mutex::new(Vec::new()),
            attempts: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake SMTP");
        let addr = listener.local_addr().expect("fake SMTP address");
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, st.clone()));
            }
        });
        FakeSmtp { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A plaintext sender configuration pointing here, with `timeout`.
    pub fn config(&self, timeout: Duration) -> SmtpConfig {
        SmtpConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            tls: SmtpTls::None,
            username: None,
            password: None,
            timeout,
        }
    }

    pub fn set_failing(&self, mode: SmtpFail) {
        *lock(&self.state.mode) = mode;
    }

    pub fn messages(&self) -> Vec<FakeMail> {
        lock(&self.state.messages).clone()
    }

    /// MAIL FROM commands received, i.e. delivery attempts.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `MAIL FROM:<a@b> SIZE=1` → `a@b`.
fn path_arg(rest: &str) -> String {
    let rest = rest.trim();
    match (rest.find('<'), rest.find('>')) {
        (Some(a), Some(b)) if a < b => rest[a + 1..b].to_string(),
        _ => rest.split_whitespace().next().unwrap_or("").to_string(),
    }
}

async fn smtp_session(stream: TcpStream, st: Arc<SmtpState>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    macro_rules! reply {
        ($s:expr) => {
            if write.write_all($s.as_bytes()).await.is_err() {
                return;
            }
        };
    }
    reply!("220 fake.smtp ESMTP ready\r\n");
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match read.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let verb = verb.to_ascii_uppercase();
        let upper_rest = rest.to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                reply!("250-fake.smtp\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN\r\n")
            }
            "HELO" => reply!("250 fake.smtp\r\n"),
            "AUTH" => {
                let mut parts = rest.split_whitespace();
                let mech = parts.next().unwrap_or("").to_ascii_uppercase();
                let initial = parts.next();
                let prompts = match (mech.as_str(), initial) {
                    ("PLAIN", Some(_)) => 0,
                    ("PLAIN", None) => 1,
                    ("LOGIN", Some(_)) => 1,
                    ("LOGIN", None) => 2,
                    _ => {
                        reply!("504 5.5.4 mechanism not supported\r\n");
                        continue;
                    }
                };
                for i in 0..prompts {
                    // "Username:" / "Password:" in base64; PLAIN's is empty.
                    let prompt = match (mech.as_str(), prompts - i) {
                        ("LOGIN", 2) => "334 VXNlcm5hbWU6\r\n",
                        ("LOGIN", _) => "334 UGFzc3dvcmQ6\r\n",
                        _ => "334 \r\n",
                    };
                    reply!(prompt);
                    line.clear();
                    match read.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
                reply!("235 2.7.0 Authentication successful\r\n");
            }
            "MAIL" if upper_rest.starts_with("FROM:") => {
                st.attempts.fetch_add(1, Ordering::SeqCst);
                if *lock(&st.mode) == SmtpFail::Reply451 {
                    reply!("451 4.3.0 Temporary local problem, try again later\r\n");
                    continue;
                }
                from = Some(path_arg(&rest[5..]));
                to.clear();
                reply!("250 2.1.0 Ok\r\n");
            }
            "RCPT" if upper_rest.starts_with("TO:") => {
                if from.is_none() {
                    reply!("503 5.5.1 Error: need MAIL command\r\n");
                    continue;
                }
                let rcpt = path_arg(&rest[3..]);
                if *lock(&st.mode) == SmtpFail::Reply550 {
                    reply!(&format!(
                        "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n"
                    ));
                    continue;
                }
                to.push(rcpt);
                reply!("250 2.1.5 Ok\r\n");
            }
            "DATA" => {
                if to.is_empty() {
                    reply!("503 5.5.1 Error: need RCPT command\r\n");
                    continue;
                }
                reply!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut data = String::new();
                loop {
                    line.clear();
                    match read.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = String::from_utf8_lossy(&line);
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                lock(&st.messages).push(FakeMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                if *lock(&st.mode) == SmtpFail::DropAfterData {
                    return;
                }
                let n = lock(&st.messages).len();
                reply!(&format!("250 2.0.0 Ok: queued as FAKE{n}\r\n"));
            }
            "RSET" => {
                from = None;
                to.clear();
                reply!("250 2.0.0 Ok\r\n");
            }
            "NOOP" => reply!("250 2.0.0 Ok\r\n"),
            "QUIT" => {
                reply!("221 2.0.0 Bye\r\n");
                return;
            }
            _ => reply!("502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}
