//! Conformance suite for the inbox store (both engines): one conversation
//! per customer, redeliveries stored once, reopen on inbound, delivery
//! moving forward only, assign/resolve/reopen, unread per member, list
//! filters, sorts and cursors, search with highlights, and tenant isolation.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::inbox::{AuthorKind, Channel, DeliveryStatus, Priority, Status};
use bos_core::{Email, OrgName, Role, Slug};
use bos_store::identity::{IdentifyInput, Traits};
use bos_store::inbox::{
    people_text, AuthorFilter, InboundMessage, ListQuery, OutboundMessage, Page, Recorded,
    SearchIn, Sort, StatusFilter,
};
use bos_store::testing::TestDb;
use bos_store::{Store, StoreError};
use uuid::Uuid;

async fn org(s: &Store, slug: &str) -> Uuid {
    s.create_org(
        &OrgName::parse(slug).unwrap(),
        &Slug::parse(slug).unwrap(),
        1,
    )
    .await
    .unwrap()
    .id
}

async fn member(s: &Store, org: Uuid, email: &str) -> Uuid {
    let u = s
        .create_user(&Email::parse(email).unwrap(), "Member", "x", false, 1)
        .await
        .unwrap();
    s.upsert_membership(org, u.id, Role::Member, 1)
        .await
        .unwrap();
    u.id
}

async fn customer(s: &Store, org: Uuid, first: &str, email: &str) -> Uuid {
    s.identify(
        org,
        &IdentityRules::default(),
        &IdentifyInput {
            identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
            traits: Traits {
                first_name: first.into(),
                last_name: "Doe".into(),
                company: String::new(),
                custom: Default::default(),
            },
            source: "test".into(),
            event: None,
            now: 1,
        },
    )
    .await
    .unwrap()
    .profile_id
}

/// A page of `a`'s conversations (50 unless the query says).
async fn list(s: &Store, a: Uuid, q: ListQuery) -> Page {
    let limit = if q.limit == 0 { 50 } else { q.limit };
    s.list_conversations(a, &ListQuery { limit, ..q })
        .await
        .unwrap()
}

fn inbound(
    profile: Uuid,
    channel: Channel,
    pid: Option<&str>,
    text: &str,
    at: i64,
) -> InboundMessage {
    InboundMessage {
        profile_id: profile,
        channel,
        provider_message_id: pid.map(str::to_string),
        author_name: "Customer".into(),
        text: text.into(),
        html: None,
        subject: None,
        attachments: serde_json::json!([]),
        email_message_id: None,
        in_reply_to: None,
        references: vec![],
        priority: Priority::Normal,
        priority_reason: "no urgency signals".into(),
        people: String::new(),
        at,
    }
}

fn reply(
    profile: Uuid,
    channel: Channel,
    author: AuthorKind,
    text: &str,
    at: i64,
) -> OutboundMessage {
    OutboundMessage {
        profile_id: profile,
        channel,
        author,
        author_id: None,
        author_name: "Member".into(),
        text: text.into(),
        html: None,
        subject: None,
        attachments: serde_json::json!([]),
        provider_message_id: None,
        status: DeliveryStatus::Pending,
        email_message_id: None,
        in_reply_to: None,
        references: vec![],
        people: String::new(),
        at,
    }
}

#[tokio::test]
async fn one_conversation_per_customer_across_channels_and_redeliveries_once() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let ann = customer(s, a, "Ann", "ann@example.com").await;

    let first = s
        .record_inbound(
            a,
            &inbound(
                ann,
                Channel::Instagram,
                Some("mid-1"),
                "Is the blue one in stock?",
                100,
            ),
        )
        .await
        .unwrap();
    let Recorded::New {
        conversation_id,
        started: true,
        reopened: false,
        ..
    } = first
    else {
        panic!("{first:?}");
    };
    // The same delivery three times is one message.
    for _ in 0..2 {
        let again = s
            .record_inbound(
                a,
                &inbound(
                    ann,
                    Channel::Instagram,
                    Some("mid-1"),
                    "Is the blue one in stock?",
                    100,
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            again,
            Recorded::AlreadyHad {
                conversation_id,
                message_id: first.message_id()
            }
        );
    }
    // The same provider id on another channel is another message.
    let sms = s
        .record_inbound(
            a,
            &inbound(ann, Channel::Sms, Some("mid-1"), "also by text", 200),
        )
        .await
        .unwrap();
    assert!(matches!(sms, Recorded::New { started: false, .. }));
    assert_eq!(sms.conversation_id(), conversation_id);
    let mail = s
        .record_inbound(a, &InboundMessage {
            html: Some("<p onclick=\"x()\">Hi <script>alert(1)</script><img src=\"https://t.example/p.gif\"></p>".into()),
            subject: Some("Order 12".into()),
            email_message_id: Some("abc@mail.example".into()),
            ..inbound(ann, Channel::Email, Some("mg-1"), "Hi", 300)
        })
        .await
        .unwrap();
    assert_eq!(mail.conversation_id(), conversation_id);

    let d = s.conversation(a, conversation_id, None).await.unwrap();
    assert_eq!(d.messages.len(), 3);
    assert_eq!(d.conversation.message_count, 3);
    assert_eq!(d.conversation.customer_name, "Ann Doe");
    assert_eq!(d.conversation.last_channel, Channel::Email);
    assert_eq!(d.conversation.last_message_at, 300);
    assert_eq!(d.conversation.waiting_since, Some(100));
    assert_eq!(
        d.conversation.channels,
        vec![Channel::Sms, Channel::Email, Channel::Instagram]
    );
    let html = d.messages[2].html.clone().unwrap();
    assert!(
        !html.contains("script") && !html.contains("onclick"),
        "{html}"
    );
    assert!(html.contains("data-remote-src"), "{html}");
    assert_eq!(d.messages[0].status, DeliveryStatus::Received);

    let (ids, subject) = s.last_email_ids(a, conversation_id).await.unwrap().unwrap();
    assert_eq!(ids.message_id.as_deref(), Some("abc@mail.example"));
    assert_eq!(subject.as_deref(), Some("Order 12"));
    assert_eq!(
        s.conversation_of_profile(a, ann).await.unwrap(),
        Some(conversation_id)
    );
}

#[tokio::test]
async fn replies_settle_forward_and_resolved_threads_reopen_on_inbound() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let ann = customer(s, a, "Ann", "ann@example.com").await;
    let conv = s
        .record_inbound(
            a,
            &inbound(ann, Channel::Facebook, Some("m_in"), "hello", 100),
        )
        .await
        .unwrap()
        .conversation_id();

    let out = s
        .record_outbound(
            a,
            &reply(ann, Channel::Facebook, AuthorKind::Member, "hi Ann", 150),
        )
        .await
        .unwrap();
    let msg = out.message_id();
    assert!(s
        .set_message_delivery(
            a,
            msg,
            DeliveryStatus::Sent,
            Some("m_out".into()),
            None,
            151
        )
        .await
        .unwrap());
    // An echo of our own send is the message we already have.
    let echo = s
        .record_outbound(
            a,
            &OutboundMessage {
                provider_message_id: Some("m_out".into()),
                status: DeliveryStatus::Sent,
                ..reply(ann, Channel::Facebook, AuthorKind::Member, "hi Ann", 152)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        echo,
        Recorded::AlreadyHad {
            conversation_id: conv,
            message_id: msg
        }
    );
    // Read receipt, then a late "delivered": forward only.
    assert_eq!(
        s.message_delivery_by_provider_id(a, Channel::Facebook, "m_out", DeliveryStatus::Read, 160)
            .await
            .unwrap(),
        Some(msg)
    );
    assert!(!s
        .set_message_delivery(a, msg, DeliveryStatus::Delivered, None, None, 161)
        .await
        .unwrap());
    assert_eq!(
        s.message_delivery_by_provider_id(a, Channel::Facebook, "nope", DeliveryStatus::Read, 160)
            .await
            .unwrap(),
        None
    );

    let d = s.conversation(a, conv, None).await.unwrap();
    assert_eq!(d.messages[1].status, DeliveryStatus::Read);
    assert_eq!(d.messages[1].provider_message_id.as_deref(), Some("m_out"));
    assert_eq!(
        d.conversation.waiting_since, None,
        "a member's reply answers"
    );

    // Resolve, refuse a second resolve, reopen on the next inbound message.
    s.resolve_conversation(a, conv, 200).await.unwrap();
    assert!(matches!(
        s.resolve_conversation(a, conv, 201).await,
        Err(StoreError::Conflict(_))
    ));
    let again = s
        .record_inbound(
            a,
            &inbound(ann, Channel::Sms, Some("SM1"), "one more thing", 300),
        )
        .await
        .unwrap();
    assert!(matches!(again, Recorded::New { reopened: true, .. }));
    assert_eq!(
        again.conversation_id(),
        conv,
        "threads reopen rather than multiply"
    );
    let d = s.conversation(a, conv, None).await.unwrap();
    assert_eq!(d.conversation.status, Status::Open);
    assert!(matches!(
        s.reopen_conversation(a, conv, 301).await,
        Err(StoreError::Conflict(_))
    ));
    s.resolve_conversation(a, conv, 302).await.unwrap();
    s.reopen_conversation(a, conv, 303).await.unwrap();

    // Customers cannot author outbound messages.
    assert!(matches!(
        s.record_outbound(a, &reply(ann, Channel::Sms, AuthorKind::Customer, "x", 1))
            .await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn unread_assignment_filters_sorts_and_cursors() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let me = member(s, a, "me@acme.example").await;
    let other = member(s, a, "other@acme.example").await;

    let mut convs = Vec::new();
    for i in 0..7i64 {
        let p = customer(s, a, &format!("C{i}"), &format!("c{i}@example.com")).await;
        let ch = if i % 2 == 0 {
            Channel::Sms
        } else {
            Channel::Email
        };
        let prio = match i {
            0 => Priority::Urgent,
            1 | 2 => Priority::High,
            3 => Priority::Low,
            _ => Priority::Normal,
        };
        let c = s
            .record_inbound(
                a,
                &InboundMessage {
                    priority: prio,
                    ..inbound(
                        p,
                        ch,
                        Some(&format!("p{i}")),
                        &format!("message {i}"),
                        1000 + i * 10,
                    )
                },
            )
            .await
            .unwrap()
            .conversation_id();
        convs.push((p, c));
    }
    // An AI agent answered conversation 5; a member answered 6.
    s.record_outbound(
        a,
        &reply(convs[5].0, Channel::Email, AuthorKind::Agent, "bot", 2000),
    )
    .await
    .unwrap();
    s.record_outbound(
        a,
        &reply(convs[6].0, Channel::Sms, AuthorKind::Member, "human", 2001),
    )
    .await
    .unwrap();

    // Unread per member.
    s.mark_conversation_read(a, convs[0].1, me, 5000)
        .await
        .unwrap();
    s.mark_conversation_read(a, convs[0].1, me, 10)
        .await
        .unwrap(); // never moves back
    let unread = list(
        s,
        a,
        ListQuery {
            member: Some(me),
            status: Some(StatusFilter::Unread),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(unread.items.len(), 6);
    assert!(unread.items.iter().all(|c| c.unread));
    let theirs = list(
        s,
        a,
        ListQuery {
            member: Some(other),
            status: Some(StatusFilter::Unread),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(theirs.items.len(), 7);

    let read = s.conversation(a, convs[0].1, Some(me)).await.unwrap();
    assert!(!read.conversation.unread);
    let not_read = s.conversation(a, convs[1].1, Some(me)).await.unwrap();
    assert!(not_read.conversation.unread);
    let nobody = s.conversation(a, convs[1].1, None).await.unwrap();
    assert!(!nobody.conversation.unread, "unread is per member");

    // Assignment.
    s.assign_conversation(a, convs[1].1, Some(me), 3000)
        .await
        .unwrap();
    s.assign_conversation(a, convs[2].1, Some(other), 3000)
        .await
        .unwrap();
    let stranger = Uuid::now_v7();
    assert!(matches!(
        s.assign_conversation(a, convs[3].1, Some(stranger), 3000)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let mine = list(
        s,
        a,
        ListQuery {
            member: Some(me),
            status: Some(StatusFilter::AssignedToMe),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        mine.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![convs[1].1]
    );
    s.resolve_conversation(a, convs[4].1, 3001).await.unwrap();
    let unassigned = list(
        s,
        a,
        ListQuery {
            status: Some(StatusFilter::Unassigned),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        unassigned.items.len(),
        4,
        "7 minus two assigned minus one resolved"
    );
    let resolved = list(
        s,
        a,
        ListQuery {
            status: Some(StatusFilter::Resolved),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(resolved.items.len(), 1);
    assert!(matches!(
        s.list_conversations(
            a,
            &ListQuery {
                status: Some(StatusFilter::Unread),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    s.assign_conversation(a, convs[1].1, None, 3002)
        .await
        .unwrap();

    // Channel, author and priority filters.
    let filters = [
        (
            ListQuery {
                channel: Some(Channel::Sms),
                ..Default::default()
            },
            4,
        ),
        (
            ListQuery {
                author: Some(AuthorFilter::Ai),
                ..Default::default()
            },
            1,
        ),
        (
            ListQuery {
                author: Some(AuthorFilter::Human),
                ..Default::default()
            },
            6,
        ),
        (
            ListQuery {
                priority: Some(Priority::High),
                ..Default::default()
            },
            2,
        ),
    ];
    for (query, expected) in filters {
        let what = format!("{query:?}");
        assert_eq!(list(s, a, query).await.items.len(), expected, "{what}");
    }
    let ai = list(
        s,
        a,
        ListQuery {
            author: Some(AuthorFilter::Ai),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ai.items[0].id, convs[5].1);

    // Every sort pages through everything once, in order, with a cursor.
    for sort in [
        Sort::Recent,
        Sort::OldestUnread,
        Sort::Priority,
        Sort::Value,
    ] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s
                .list_conversations(
                    a,
                    &ListQuery {
                        sort,
                        cursor: cursor.clone(),
                        limit: 2,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(page.items.len() <= 2);
            seen.extend(page.items.iter().cloned());
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let ids: std::collections::HashSet<Uuid> = seen.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), seen.len(), "{sort:?}: no repeats");
        match sort {
            Sort::Recent => {
                assert_eq!(seen.len(), 7);
                assert!(seen
                    .windows(2)
                    .all(|w| w[0].last_message_at >= w[1].last_message_at));
                assert_eq!(seen[0].id, convs[6].1);
            }
            Sort::OldestUnread => {
                // 5 and 6 were answered: only the five still waiting.
                assert_eq!(seen.len(), 5);
                assert!(seen
                    .windows(2)
                    .all(|w| w[0].waiting_since <= w[1].waiting_since));
                assert_eq!(seen[0].id, convs[0].1);
            }
            Sort::Priority => {
                assert_eq!(seen.len(), 7);
                assert_eq!(seen[0].priority, Priority::Urgent);
                assert_eq!(seen[6].priority, Priority::Low);
                assert!(seen.windows(2).all(|w| w[0].priority <= w[1].priority));
            }
            Sort::Value => assert_eq!(seen.len(), 7),
        }
    }
    // A cursor from another sort, or made up, is a clear 400.
    let page = s
        .list_conversations(
            a,
            &ListQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        s.list_conversations(
            a,
            &ListQuery {
                sort: Sort::Priority,
                cursor: page.next_cursor,
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.list_conversations(
            a,
            &ListQuery {
                cursor: Some("garbage".into()),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn search_finds_text_and_customers_with_plain_highlights() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let ann = customer(s, a, "Ann", "ann@example.com").await;
    let bob = customer(s, a, "Bob", "bob@example.com").await;
    s.record_inbound(
        a,
        &InboundMessage {
            people: people_text("Ann Doe", "ann@example.com", "+15550100"),
            ..inbound(
                ann,
                Channel::Sms,
                Some("s1"),
                "Where is my <b>refund</b>? Refunds are slow",
                100,
            )
        },
    )
    .await
    .unwrap();
    s.record_inbound(
        a,
        &InboundMessage {
            people: "Bob Doe bob@example.com".into(),
            ..inbound(bob, Channel::Email, Some("e1"), "Love the shoes", 200)
        },
    )
    .await
    .unwrap();

    let hits = s.search_inbox(a, "refun", 20).await.unwrap();
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(h.found_in, SearchIn::Message);
    assert_eq!(h.profile_id, ann);
    let marked: Vec<&str> = h
        .snippet
        .iter()
        .filter(|p| p.matched)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, vec!["refund", "Refunds"]);
    // The customer's text comes back as text; the UI escapes it.
    let all: String = h.snippet.iter().map(|p| p.text.as_str()).collect();
    assert!(all.contains("<b>"));

    let by_email = s.search_inbox(a, "bob@example.com", 20).await.unwrap();
    assert!(by_email
        .iter()
        .any(|h| h.found_in == SearchIn::Customer && h.profile_id == bob));
    let by_phone = s.search_inbox(a, "5550100", 20).await.unwrap();
    assert!(by_phone.iter().any(|h| h.profile_id == ann));
    assert!(
        s.search_inbox(a, "refund shoes", 20)
            .await
            .unwrap()
            .is_empty(),
        "all words required"
    );
    assert!(s
        .search_inbox(a, "\"* OR NEAR(", 20)
        .await
        .unwrap()
        .is_empty());
    assert!(s.search_inbox(a, "   ", 20).await.unwrap().is_empty());
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let b = org(s, "bravo").await;
    let ann = customer(s, a, "Ann", "ann@example.com").await;
    let b_member = member(s, b, "bee@bravo.example").await;
    let conv = s
        .record_inbound(
            a,
            &InboundMessage {
                people: "Ann secretword".into(),
                ..inbound(ann, Channel::Sms, Some("SM1"), "secretword", 100)
            },
        )
        .await
        .unwrap()
        .conversation_id();

    assert!(s
        .list_conversations(
            b,
            &ListQuery {
                limit: 50,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(matches!(
        s.conversation(b, conv, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(s
        .search_inbox(b, "secretword", 20)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.resolve_conversation(b, conv, 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.reopen_conversation(b, conv, 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.assign_conversation(b, conv, None, 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.mark_conversation_read(b, conv, b_member, 1).await,
        Err(StoreError::NotFound)
    ));
    // A member of B cannot be given A's conversation.
    assert!(matches!(
        s.assign_conversation(a, conv, Some(b_member), 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.conversation_of_profile(b, ann).await.unwrap(), None);
    assert!(s.last_email_ids(b, conv).await.unwrap().is_none());
    // B's delivery with A's provider id is B's own message.
    let bob = customer(s, b, "Bob", "bob@bravo.example").await;
    let rb = s
        .record_inbound(b, &inbound(bob, Channel::Sms, Some("SM1"), "hi", 100))
        .await
        .unwrap();
    assert!(matches!(rb, Recorded::New { .. }));
    assert_ne!(rb.conversation_id(), conv);
    assert_eq!(
        s.message_delivery_by_provider_id(b, Channel::Sms, "SM1", DeliveryStatus::Read, 1)
            .await
            .unwrap(),
        Some(rb.message_id())
    );
    let d = s.conversation(a, conv, None).await.unwrap();
    assert_eq!(d.messages[0].status, DeliveryStatus::Received);
}

#[tokio::test]
async fn the_same_delivery_at_once_three_times_is_one_message() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let ann = customer(s, a, "Ann", "ann@example.com").await;
    let m = inbound(ann, Channel::Instagram, Some("mid-race"), "hello", 100);
    let (x, y, z) = tokio::join!(
        s.record_inbound(a, &m),
        s.record_inbound(a, &m),
        s.record_inbound(a, &m)
    );
    let all = [x.unwrap(), y.unwrap(), z.unwrap()];
    let new = all
        .iter()
        .filter(|r| matches!(r, Recorded::New { .. }))
        .count();
    assert_eq!(new, 1, "{all:?}");
    assert!(all.iter().all(|r| r.message_id() == all[0].message_id()));
    let list = s
        .list_conversations(
            a,
            &ListQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].message_count, 1);
}

/// An order for `profile` worth `cents`, through identity resolution (the
/// path every purchase takes).
async fn order(s: &Store, org: Uuid, email: &str, cents: i64, key: &str) {
    s.identify(
        org,
        &IdentityRules::default(),
        &IdentifyInput {
            identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
            traits: Traits::default(),
            source: "test".into(),
            event: Some(bos_store::identity::NewEvent {
                kind: "order".into(),
                summary: "Order".into(),
                occurred_at: 5,
                data: "{}".into(),
                key: Some(key.into()),
                revenue_cents: cents,
                is_order: true,
            }),
            now: 5,
        },
    )
    .await
    .unwrap();
}

/// The "highest value first" list reads the value kept on the conversation:
/// it starts at the profile's value and follows every order, merge and
/// unmerge in the same write, and the list pages by it in order.
#[tokio::test]
async fn the_value_sort_follows_orders_merges_and_unmerges() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let ann = customer(s, a, "Ann", "ann@example.com").await;
    let bob = customer(s, a, "Bob", "bob@example.com").await;
    let cy = customer(s, a, "Cy", "cy@example.com").await;
    // Ann bought before she wrote: her conversation starts with the value.
    order(s, a, "ann@example.com", 5_000, "o1").await;
    for (k, p) in [ann, bob, cy].into_iter().enumerate() {
        s.record_inbound(a, &inbound(p, Channel::Sms, None, "hello", 100 + k as i64))
            .await
            .unwrap();
    }
    let values = |page: &Page| -> Vec<(Uuid, i64)> {
        page.items
            .iter()
            .map(|c| (c.profile_id, c.customer_ltv_cents))
            .collect()
    };
    let by_value = ListQuery {
        sort: Sort::Value,
        ..Default::default()
    };
    let page = list(s, a, by_value.clone()).await;
    assert_eq!(values(&page)[0], (ann, 5_000));
    // Bob's order after he wrote moves his conversation to the top.
    order(s, a, "bob@example.com", 9_000, "o2").await;
    let page = list(s, a, by_value.clone()).await;
    assert_eq!(values(&page), vec![(bob, 9_000), (ann, 5_000), (cy, 0)]);
    // A merge adds the absorbed value to the survivor's; an unmerge takes it back.
    let merge = s.merge_profiles(a, cy, ann, "test", 10).await.unwrap();
    let page = list(s, a, by_value.clone()).await;
    assert_eq!(values(&page)[0], (bob, 9_000));
    assert!(values(&page).contains(&(cy, 5_000)), "{:?}", values(&page));
    s.unmerge(a, merge, "test", 11).await.unwrap();
    let page = list(s, a, by_value.clone()).await;
    assert_eq!(values(&page), vec![(bob, 9_000), (ann, 5_000), (cy, 0)]);
    // One row a page: the cursor walks the same order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(
            s,
            a,
            ListQuery {
                cursor: cursor.clone(),
                limit: 1,
                ..by_value.clone()
            },
        )
        .await;
        seen.extend(values(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec![(bob, 9_000), (ann, 5_000), (cy, 0)]);
}

/// Search pages newest first whichever plan it takes: with the planner's
/// statistics gathered (PostgreSQL then walks the newest messages for a
/// word most messages hold, and takes the GIN index for a rare one), a
/// common word, its prefix and a rare word give exactly the newest
/// matches of this organization, in order.
#[tokio::test]
async fn search_pages_newest_first_for_common_and_rare_words() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let b = org(s, "other").await;
    let mut people = Vec::new();
    for (o, tag) in [(a, "a"), (b, "b")] {
        for k in 0..4 {
            let p = customer(s, o, "Cust", &format!("c{k}@{tag}.example.com")).await;
            people.push((o, p));
        }
    }
    let rare = [7, 61, 118];
    let mut n = 0;
    for k in 0..120i64 {
        for (i, (o, p)) in people.iter().enumerate() {
            // Org b's messages hold the same words, a little later: a page
            // of org a must never hold one.
            let text = if rare.contains(&k) {
                format!("parcel number {k} zanzibarite")
            } else {
                format!("parcel number {k}")
            };
            if !(k as usize + i).is_multiple_of(4) {
                continue;
            }
            n += 1;
            s.record_inbound(
                *o,
                &inbound(
                    *p,
                    Channel::Sms,
                    Some(&format!("m{n}")),
                    &text,
                    1_000 + k * 10 + i as i64,
                ),
            )
            .await
            .unwrap();
        }
    }
    s.bulk_analyze_inbox().await.unwrap();
    let texts = |hits: Vec<bos_store::inbox::SearchHit>| -> Vec<(i64, String)> {
        hits.into_iter()
            .filter(|h| h.found_in == SearchIn::Message)
            .map(|h| {
                let t: String = h.snippet.iter().map(|p| p.text.as_str()).collect();
                (h.at, t)
            })
            .collect()
    };
    // What org a holds, newest first.
    let mut expect: Vec<(i64, String)> = Vec::new();
    for k in 0..120i64 {
        for i in 0..4usize {
            if (k as usize + i).is_multiple_of(4) {
                let text = if rare.contains(&k) {
                    format!("parcel number {k} zanzibarite")
                } else {
                    format!("parcel number {k}")
                };
                expect.push((1_000 + k * 10 + i as i64, text));
            }
        }
    }
    expect.sort_by_key(|x| std::cmp::Reverse(x.0));
    for q in ["parcel", "parc", "number parcel"] {
        let got = texts(s.search_inbox(a, q, 20).await.unwrap());
        assert_eq!(got, expect[..20].to_vec(), "{q}");
    }
    let got = texts(s.search_inbox(a, "zanzibar", 20).await.unwrap());
    let want: Vec<_> = expect
        .iter()
        .filter(|(_, t)| t.contains("zanzibarite"))
        .cloned()
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got, want);
    assert!(s
        .search_inbox(a, "xyzzyplugh", 20)
        .await
        .unwrap()
        .is_empty());
    // A word every message holds, with a rare one: the rare one's matches.
    let got = texts(s.search_inbox(a, "parcel zanzibarite", 20).await.unwrap());
    assert_eq!(got, want);
}
