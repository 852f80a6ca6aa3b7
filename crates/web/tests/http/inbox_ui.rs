//! The Inbox tab over HTTP: the thread list with its filters and unread
//! counts, search with escaped highlights, opening a conversation (read
//! for that member), the author badges, e-mail HTML with remote images
//! off until asked, assign / resolve / reopen through the forms, the
//! customer page's link back, and the live stream carrying a new message
//! to the list and the open thread.

use crate::support::*;
use bos_core::inbox::{AuthorKind, Channel};
use bos_engine::inbox::{Inbound, Inbox, Sent};
use bos_store::inbox::Recorded;
use bos_web::Clock;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use std::time::Duration;
use uuid::Uuid;

fn inbox(app: &TestApp) -> Inbox {
    Inbox::new(app.store().clone(), app.state.bus.clone())
}

/// A customer with a name and an e-mail address.
async fn customer(app: &TestApp, org: Uuid, first: &str, last: &str, email: &str) -> Uuid {
    use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
    app.store()
        .identify(
            org,
            &IdentityRules::default(),
            &bos_store::identity::IdentifyInput {
                identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
                traits: bos_store::identity::Traits {
                    first_name: first.into(),
                    last_name: last.into(),
                    company: String::new(),
                    custom: Default::default(),
                },
                source: "test".into(),
                event: None,
                now: T0,
            },
        )
        .await
        .unwrap()
        .profile_id
}

fn conversation_of(r: Recorded) -> Uuid {
    match r {
        Recorded::New {
            conversation_id, ..
        }
        | Recorded::AlreadyHad {
            conversation_id, ..
        } => conversation_id,
    }
}

async fn receive(app: &TestApp, org: Uuid, m: Inbound) -> Uuid {
    conversation_of(
        inbox(app)
            .record_inbound(org, m, app.clock.now_ms())
            .await
            .unwrap(),
    )
}

async fn page(app: &TestApp, b: &Browser, path: &str) -> String {
    let res = app.get(path, &b.cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    res.text().await.unwrap()
}

/// The `<li>` of a conversation in the list, or `None`.
fn row_of(html: &str, id: Uuid) -> Option<String> {
    let at = html.find(&format!("id=\"thread-{id}\""))?;
    let start = html[..at].rfind("<li")?;
    let end = html[start..].find("</li>")? + start;
    Some(html[start..end].to_string())
}

#[tokio::test]
async fn the_list_filters_counts_unread_and_opens_a_conversation_read() {
    let app = spawn_app().await;
    let t = app.tenant("Inbox Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "Lee", "ann@example.com").await;
    let bob = customer(&app, org, "Bob", "Stone", "bob@example.com").await;
    let ca = receive(
        &app,
        org,
        Inbound::text(ann, Channel::Sms, "Is the blue one in stock?"),
    )
    .await;
    app.clock.advance_ms(60_000);
    let cb = receive(
        &app,
        org,
        Inbound::text(
            bob,
            Channel::Instagram,
            "This is terrible, I want a refund now!",
        ),
    )
    .await;

    let html = page(&app, &t.browser, "/inbox").await;
    assert!(
        html.contains("href=\"/inbox\" class=\"active\""),
        "the nav entry is active"
    );
    let (ra, rb) = (row_of(&html, ca).unwrap(), row_of(&html, cb).unwrap());
    assert!(ra.contains("Ann Lee") && ra.contains("Is the blue one in stock?"));
    assert!(ra.contains("unread-dot") && ra.contains("chan-sms"));
    assert!(rb.contains("chan-instagram"));
    // Most recent first.
    assert!(html.find(&format!("thread-{cb}")) < html.find(&format!("thread-{ca}")));
    // The sidebar counts this member's unread conversations per channel.
    assert!(html.contains("data-channel=\"\"><span class=\"chan-dot chan-all\"></span><span class=\"grow\">All channels</span><span class=\"unread-count mono\" title=\"Unread conversations\">2</span>"));
    assert!(html.contains("<span class=\"grow\">SMS</span><span class=\"unread-count mono\" title=\"Unread conversations\">1</span>"), "{html}");

    // A channel filter leaves the other out.
    let sms = page(&app, &t.browser, "/inbox?channel=sms").await;
    assert!(row_of(&sms, ca).is_some() && row_of(&sms, cb).is_none());
    // An unknown filter value is dropped, not reflected.
    let odd = page(&app, &t.browser, "/inbox?channel=%3Cscript%3E&sort=bogus").await;
    assert!(!odd.contains("<script>") && row_of(&odd, ca).is_some());
    // Priority: the angry message is urgent or high; a priority filter follows it.
    let d = inbox(&app).get(org, cb, None).await.unwrap();
    let p = d.conversation.priority.as_str();
    let filtered = page(&app, &t.browser, &format!("/inbox?priority={p}")).await;
    assert!(row_of(&filtered, cb).is_some() && row_of(&filtered, ca).is_none());

    // Opening a conversation marks it read for this member only.
    let open = page(&app, &t.browser, &format!("/inbox/{ca}")).await;
    assert!(
        open.contains(&format!("href=\"/customers/{ann}\"")),
        "header links to the customer"
    );
    assert!(open.contains("Is the blue one in stock?"));
    assert!(!row_of(&open, ca).unwrap().contains("unread-dot"));
    assert!(row_of(&open, ca).unwrap().contains("selected"));
    let unread = page(&app, &t.browser, "/inbox?status=unread").await;
    assert!(row_of(&unread, ca).is_none() && row_of(&unread, cb).is_some());
    let other = app
        .user("second@inbox-shop.example", &t.org, bos_core::Role::Member)
        .await;
    let _ = other;
    let b2 = app.login("second@inbox-shop.example").await;
    let theirs = page(&app, &b2, "/inbox?status=unread").await;
    assert!(
        row_of(&theirs, ca).is_some(),
        "still unread for another member"
    );

    // Another organization's conversation is not found.
    let u = app.tenant("Other Shop").await;
    let res = app.get(&format!("/inbox/{ca}"), &u.browser.cookie).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.get("/inbox/not-a-uuid", &t.browser.cookie).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assign_resolve_reopen_through_the_forms() {
    let app = spawn_app().await;
    let t = app.tenant("Work Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "Work", "ann@work.example").await;
    let c = receive(
        &app,
        org,
        Inbound::text(ann, Channel::Email, "Where is my order?"),
    )
    .await;
    let b = &t.browser;

    let res = app
        .post_form(
            &format!("/inbox/{c}/assign"),
            &b.cookie,
            &[
                ("_csrf", &b.csrf),
                ("member", "me"),
                ("back", "status=all&x=1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("/inbox/{c}?status=all&done=assigned")
    );
    let mine = page(&app, b, "/inbox?status=mine").await;
    assert!(row_of(&mine, c).is_some());
    let html = page(&app, b, &format!("/inbox/{c}?done=assigned")).await;
    assert!(html.contains("Assigned."));
    assert!(!html.contains("id=\"assign-me\""), "already mine");

    // A bad member id is a clear 422, not a 500.
    let res = app
        .post_form(
            &format!("/inbox/{c}/assign"),
            &b.cookie,
            &[("_csrf", &b.csrf), ("member", "someone")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Without the CSRF token nothing happens.
    let res = app
        .post_form(&format!("/inbox/{c}/resolve"), &b.cookie, &[("member", "")])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = app
        .post_form(
            &format!("/inbox/{c}/resolve"),
            &b.cookie,
            &[("_csrf", &b.csrf)],
        )
        .await;
    assert_eq!(location(&res), format!("/inbox/{c}?done=resolved"));
    let html = page(&app, b, &format!("/inbox/{c}")).await;
    assert!(html.contains("id=\"reopen\"") && !html.contains("id=\"resolve\""));
    assert!(
        row_of(&page(&app, b, "/inbox").await, c).is_none(),
        "resolved leaves the open list"
    );
    assert!(row_of(&page(&app, b, "/inbox?status=resolved").await, c).is_some());
    // Resolving twice is a conflict with words, not a 500.
    let res = app
        .post_form(
            &format!("/inbox/{c}/resolve"),
            &b.cookie,
            &[("_csrf", &b.csrf)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    let res = app
        .post_form(
            &format!("/inbox/{c}/reopen"),
            &b.cookie,
            &[("_csrf", &b.csrf)],
        )
        .await;
    assert_eq!(location(&res), format!("/inbox/{c}?done=reopened"));
    assert!(row_of(&page(&app, b, "/inbox").await, c).is_some());
    // The customer's timeline says who took it and that it was resolved.
    let kinds: Vec<String> = app
        .timeline(org, ann)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"conversation_assigned".to_string()));
    assert!(kinds.contains(&"conversation_resolved".to_string()));

    // The customer page links back to the thread.
    let cust = page(&app, b, &format!("/customers/{ann}")).await;
    assert!(cust.contains(&format!("href=\"/inbox/{c}\" id=\"open-conversation\"")));
}

#[tokio::test]
async fn search_highlights_are_escaped_and_badges_name_the_author() {
    let app = spawn_app().await;
    let t = app.tenant("Search Shop").await;
    let org = t.org.id;
    let eve = customer(
        &app,
        org,
        "Eve<img src=x onerror=alert(1)>",
        "Hack",
        "eve@example.com",
    )
    .await;
    let c = receive(
        &app,
        org,
        Inbound::text(eve, Channel::Sms, "refund <script>alert(1)</script> please"),
    )
    .await;
    inbox(&app)
        .record_sent(
            org,
            Sent {
                profile_id: eve,
                channel: Channel::Email,
                author: AuthorKind::Automation,
                author_name: "Abandoned cart".into(),
                text: "Your cart is waiting".into(),
                html: None,
                subject: Some("Still thinking?".into()),
                provider_message_id: Some("nudge-1".into()),
                email_message_id: None,
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();

    let html = page(&app, &t.browser, "/inbox?q=refund").await;
    assert!(html.contains("<mark>refund</mark>"), "the match is marked");
    assert!(
        html.contains("&#60;script&#62;"),
        "the text around it is escaped"
    );
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<img src=x"));
    assert!(html.contains(&format!("href=\"/inbox/{c}?q=refund\"")));
    // A search for the customer's e-mail finds them too.
    let by_email = page(&app, &t.browser, "/inbox?q=eve%40example").await;
    assert!(by_email.contains(&format!("/inbox/{c}?q=eve%40example")));

    let open = page(&app, &t.browser, &format!("/inbox/{c}")).await;
    assert!(
        open.contains("author-auto\">Automated<"),
        "a nudge is Automated"
    );
    assert!(open.contains("Still thinking?"));
    assert!(!open.contains("<script>alert") && !open.contains("<img src=x"));
}

#[tokio::test]
async fn remote_images_stay_off_until_asked() {
    let app = spawn_app().await;
    let t = app.tenant("Mail Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "Mail", "ann@mail.example").await;
    let mut m = Inbound::text(ann, Channel::Email, "See the picture");
    m.subject = Some("Photo".into());
    m.html = Some(
        r#"<p onclick="alert(1)">See <b>this</b></p><img src="https://tracker.example/pixel.png" alt="p"><script>alert(2)</script>"#
            .into(),
    );
    let c = receive(&app, org, m).await;

    let res = app.get(&format!("/inbox/{c}"), &t.browser.cookie).await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains("<b>this</b>"), "formatting is kept");
    assert!(!html.contains("onclick") && !html.contains("alert(2)"));
    assert!(html.contains("data-remote-src=\"https://tracker.example/pixel.png\""));
    assert!(!html.contains(" src=\"https://tracker.example"));
    assert!(html.contains(&format!(
        "href=\"/inbox/{c}?images=1\" class=\"btn btn-ghost btn-xs show-images\""
    )));

    let res = app
        .get(&format!("/inbox/{c}?images=1"), &t.browser.cookie)
        .await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("img-src 'self' data: https:;") && csp.contains("script-src 'self';"));
    let html = res.text().await.unwrap();
    assert!(html.contains(" src=\"https://tracker.example/pixel.png\""));
    assert!(!html.contains("show-images"));
    // Every other page keeps the strict policy.
    let res = app.get("/inbox?images=1", &t.browser.cookie).await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!csp.contains("https:"));
}

/// Reads the stream until `needle` has arrived; bounded, never a sleep.
async fn read_until(res: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} on the stream; got {seen}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_stream_carries_new_messages_to_the_list_and_the_open_thread() {
    let app = spawn_app().await;
    let t = app.tenant("Live Shop").await;
    let other = app.tenant("Other Live Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "Live", "ann@live.example").await;
    let c = receive(&app, org, Inbound::text(ann, Channel::Sms, "first")).await;
    let stranger = customer(&app, other.org.id, "Zed", "Elsewhere", "zed@else.example").await;

    let open = |b: &Browser, q: String| {
        let http = app.http.clone();
        let url = app.url(&format!("/inbox/stream?{q}"));
        let cookie = b.cookie.clone();
        async move {
            let mut res = http
                .get(url)
                .header(COOKIE, format!("__Host-bos_session={cookie}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["content-type"], "text/event-stream");
            let mut seen = String::new();
            read_until(&mut res, &mut seen, "event: ready").await;
            (res, seen)
        }
    };
    let (mut s, mut seen) = open(&t.browser, format!("open={c}")).await;
    let (mut email_only, mut seen_email) = open(&t.browser, "channel=email".into()).await;

    // Another organization's message is never on this stream.
    receive(
        &app,
        other.org.id,
        Inbound::text(stranger, Channel::Sms, "secret of the other shop"),
    )
    .await;
    receive(
        &app,
        org,
        Inbound::text(ann, Channel::Sms, "second <b>message</b>"),
    )
    .await;
    read_until(&mut s, &mut seen, "event: conversation").await;
    read_until(&mut s, &mut seen, "second &#60;b&#62;message").await;
    assert!(!seen.contains("secret of the other shop"));
    let data: serde_json::Value = serde_json::from_str(
        seen.lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["id"], c.to_string());
    let row = data["row"].as_str().unwrap();
    assert!(row.contains(&format!("thread-{c}")) && row.contains("second"));
    assert!(
        !row.contains("unread-dot"),
        "the member is looking at it: read"
    );
    let thread = data["thread"].as_str().unwrap();
    assert!(thread.contains("first") && thread.contains("second"));

    // A list filtered to e-mail hears of it but gets no row.
    read_until(&mut email_only, &mut seen_email, "event: conversation").await;
    read_until(&mut email_only, &mut seen_email, "\"row\":\"\"").await;
    assert!(seen_email.contains("\"thread\":null"));
}

#[tokio::test]
async fn the_composer_says_why_a_channel_is_closed_and_sends_once() {
    let app = spawn_app().await;
    let t = app.tenant("Reply Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "Reply", "ann@reply.example").await;
    let mut m = Inbound::text(ann, Channel::Email, "Do you have it in blue?");
    m.subject = Some("Blue".into());
    m.provider_message_id = Some("reply-mail-1".into());
    m.email_message_id = Some("<blue-1@mail.reply.example>".into());
    let c = receive(&app, org, m).await;
    let b = &t.browser;

    let html = page(&app, b, &format!("/inbox/{c}")).await;
    assert!(html.contains("action=\"/inbox/"), "{html}");
    assert!(
        html.contains("<option value=\"email\" selected>E-mail · a•••@reply.example</option>"),
        "e-mail is chosen: the customer wrote there"
    );
    // No phone: SMS is closed and the composer says why.
    let why = &html[html.find("id=\"composer-why\"").expect("reasons listed")..];
    let sms_why = &why[why.find("data-channel=\"sms\"").unwrap()..];
    assert!(
        sms_why[..sms_why.find("</li>").unwrap()].len() > 60,
        "a sentence, not a flag"
    );
    assert!(html.contains("<option value=\"sms\" disabled>"));

    // Bad input is a clear 4xx, and nothing is sent.
    let res = app
        .post_form(
            &format!("/inbox/{c}/reply"),
            &b.cookie,
            &[("_csrf", &b.csrf), ("channel", "pigeon"), ("text", "hi")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form(
            &format!("/inbox/{c}/reply"),
            &b.cookie,
            &[("_csrf", &b.csrf), ("channel", "email"), ("text", "  ")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form(
            &format!("/inbox/{c}/reply"),
            &b.cookie,
            &[("_csrf", &b.csrf), ("channel", "sms"), ("text", "hi")],
        )
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(
        inbox(&app).get(org, c, None).await.unwrap().messages.len(),
        1
    );

    // A reply through the development sink.
    let res = app
        .post_form(
            &format!("/inbox/{c}/reply"),
            &b.cookie,
            &[
                ("_csrf", &b.csrf),
                ("channel", "email"),
                ("text", "Yes, <b>blue</b> is in stock."),
                ("subject", ""),
                ("back", "status=all"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/inbox/{c}?status=all&done=sent"));
    let html = page(&app, b, &format!("/inbox/{c}?status=all&done=sent")).await;
    assert!(html.contains("Reply sent."));
    let out = &html[html
        .rfind("msg msg-out")
        .expect("the reply is in the thread")..];
    assert!(out.contains("author-human\">Human<"));
    assert!(out.contains("Yes, &#60;b&#62;blue&#60;/b&#62; is in stock."));
    let d = inbox(&app).get(org, c, None).await.unwrap();
    assert_eq!(d.messages.len(), 2);
    assert_eq!(d.messages[1].subject.as_deref(), Some("Re: Blue"));
    // Another organization cannot reply in it.
    let u = app.tenant("Other Reply Shop").await;
    let res = app
        .post_form(
            &format!("/inbox/{c}/reply"),
            &u.browser.cookie,
            &[
                ("_csrf", &u.browser.csrf),
                ("channel", "email"),
                ("text", "hi"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// The composer carries a fresh random key per form: submitting the same
/// form twice (a double click) sends once; a refused submit frees its key
/// so the corrected form goes out; the next page has a new key.
#[tokio::test]
async fn a_double_submit_of_the_composer_sends_once() {
    let app = spawn_app().await;
    let t = app.tenant("Double Shop").await;
    let org = t.org.id;
    let ann = customer(&app, org, "Ann", "Double", "ann@double.example").await;
    let mut m = Inbound::text(ann, Channel::Email, "Is the tote back?");
    m.subject = Some("Tote".into());
    m.provider_message_id = Some("double-mail-1".into());
    let c = receive(&app, org, m).await;
    let b = &t.browser;
    let key_of = |html: &str| {
        let at = html
            .find("name=\"idempotency_key\" value=\"")
            .expect("the composer has a key")
            + "name=\"idempotency_key\" value=\"".len();
        html[at..at + 36].to_string()
    };
    let html = page(&app, b, &format!("/inbox/{c}")).await;
    let key = key_of(&html);
    assert_ne!(key, key_of(&page(&app, b, &format!("/inbox/{c}")).await));

    // Refused (SMS: no phone): the key is free again for the fixed form.
    let path = format!("/inbox/{c}/reply");
    let send = |channel: &'static str, key: String| {
        let (app, path) = (&app, &path);
        async move {
            app.post_form(
                path,
                &b.cookie,
                &[
                    ("_csrf", &b.csrf),
                    ("channel", channel),
                    ("text", "Yes, it is back."),
                    ("idempotency_key", &key),
                ],
            )
            .await
        }
    };
    let res = send("sms", key.clone()).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let res = send("email", key.clone()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/inbox/{c}?done=sent"));
    // The same form again: the first answer, nothing sent.
    let res = send("email", key.clone()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/inbox/{c}?done=sent"));
    let d = inbox(&app).get(org, c, None).await.unwrap();
    assert_eq!(d.messages.len(), 2, "one reply");
}
