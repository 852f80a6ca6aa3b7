//! The inbox service without HTTP (both engines): an inbound message gets
//! its priority, lands once however often it is delivered, writes one
//! timeline line and tells live views; assign and resolve write their
//! lines; refused moves say why.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::inbox::{Channel, Priority, Status};
use bos_core::{Email, OrgName, Role, Slug};
use bos_engine::inbox::{Inbound, Inbox, InboxError};
use bos_engine::{Bus, Live, Received};
use bos_store::identity::{IdentifyInput, TimelineQuery, Traits};
use bos_store::inbox::{ListQuery, Recorded};
use bos_store::testing::TestDb;
use bos_store::Store;
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

async fn setup() -> (TestDb, Inbox, Bus, Uuid, Uuid) {
    let db = TestDb::new().await.expect("test database");
    let s = &db.store;
    let org = s
        .create_org(
            &OrgName::parse("Inbox").unwrap(),
            &Slug::from_name("Inbox").unwrap(),
            T0,
        )
        .await
        .unwrap()
        .id;
    let profile = customer(s, org, "ann@example.com").await;
    let bus = Bus::new(s.clone());
    let inbox = Inbox::new(s.clone(), bus.clone());
    (db, inbox, bus, org, profile)
}

async fn customer(s: &Store, org: Uuid, email: &str) -> Uuid {
    s.identify(
        org,
        &IdentityRules::default(),
        &IdentifyInput {
            identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
            traits: Traits {
                first_name: "Ann".into(),
                last_name: "Doe".into(),
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

fn sms(profile: Uuid, sid: &str, text: &str) -> Inbound {
    Inbound {
        provider_message_id: Some(sid.into()),
        ..Inbound::text(profile, Channel::Sms, text)
    }
}

#[tokio::test]
async fn an_inbound_message_is_stored_once_with_priority_timeline_and_event() {
    let (db, inbox, bus, org, profile) = setup().await;
    let mut sub = bus.subscribe(org);
    let text = "This is terrible, I need a refund asap";
    let first = inbox
        .record_inbound(org, sms(profile, "SM1", text), T0)
        .await
        .unwrap();
    assert!(matches!(first, Recorded::New { started: true, .. }));
    for _ in 0..2 {
        let again = inbox
            .record_inbound(org, sms(profile, "SM1", text), T0 + 5)
            .await
            .unwrap();
        assert!(matches!(again, Recorded::AlreadyHad { .. }));
    }
    let conv = first.conversation_id();
    assert_eq!(
        sub.try_recv(),
        Some(Received::Event(Live::Conversation {
            conversation_id: conv
        }))
    );
    assert_eq!(sub.try_recv(), None, "a redelivery tells nobody");
    let detail = inbox.get(org, conv, None).await.unwrap();
    assert_eq!(detail.messages.len(), 1);
    assert_eq!(detail.conversation.priority, Priority::Urgent);
    let timeline = db
        .store
        .timeline(
            org,
            profile,
            &TimelineQuery {
                limit: 50,
                ..TimelineQuery::default()
            },
        )
        .await
        .unwrap();
    let lines: Vec<_> = timeline.iter().filter(|e| e.kind == "message_in").collect();
    assert_eq!(lines.len(), 1, "{timeline:?}");
}

#[tokio::test]
async fn assign_resolve_reopen_write_lines_and_refuse_no_ops() {
    let (db, inbox, _bus, org, profile) = setup().await;
    let member = {
        let u = db
            .store
            .create_user(
                &Email::parse("m@example.com").unwrap(),
                "Mia",
                "x",
                false,
                T0,
            )
            .await
            .unwrap();
        db.store
            .upsert_membership(org, u.id, Role::Member, T0)
            .await
            .unwrap();
        u.id
    };
    let conv = inbox
        .record_inbound(org, sms(profile, "SM2", "Hello there"), T0)
        .await
        .unwrap()
        .conversation_id();
    inbox.assign(org, conv, Some(member), T0 + 1).await.unwrap();
    let stranger = Uuid::now_v7();
    assert!(matches!(
        inbox.assign(org, conv, Some(stranger), T0 + 2).await,
        Err(InboxError::Invalid {
            field: "member_id",
            ..
        })
    ));
    inbox.resolve(org, conv, T0 + 3).await.unwrap();
    assert!(matches!(
        inbox.resolve(org, conv, T0 + 4).await,
        Err(InboxError::Conflict(_))
    ));
    inbox.reopen(org, conv, T0 + 5).await.unwrap();
    inbox.mark_read(org, conv, member, T0 + 6).await.unwrap();
    let page = inbox
        .list(
            org,
            Some(member),
            ListQuery {
                limit: 10,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].status, Status::Open);
    assert!(!page.items[0].unread);
    assert!(matches!(
        inbox.resolve(org, Uuid::now_v7(), T0).await,
        Err(InboxError::NotFound)
    ));
    let kinds: Vec<String> = db
        .store
        .timeline(
            org,
            profile,
            &TimelineQuery {
                limit: 50,
                ..TimelineQuery::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"conversation_assigned".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"conversation_resolved".to_string()),
        "{kinds:?}"
    );
    let hits = inbox.search(org, "hello", 10).await.unwrap();
    assert!(!hits.is_empty());
}
