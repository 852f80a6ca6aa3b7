//! The capability services against a real store (SQLite always, PostgreSQL
//! with `BOS_TEST_DATABASE_URL`), without HTTP: what the API and the pages
//! both rely on holds here on its own.

use bos_core::nudge::Channel;
use bos_core::{Email, OrgName, Role, Slug};
use bos_engine::admin::{self, Actor, AdminError};
use bos_engine::channels::{self, ChannelError, ChannelInput};
use bos_engine::identity::{self, IdentityError};
use bos_engine::leads::{self, Action, Done, LeadDeps, LeadError};
use bos_engine::links::Links;
use bos_engine::nudge::{NudgeConfig, Nudger};
use bos_engine::{LeadChange, Live, Pipeline, Received, Scheduler, TestClock};
use bos_store::identity::{IdentifyAction, Traits};
use bos_store::intake::{NewInbound, NewSource, SourceKind};
use bos_store::nudge::ChannelConfig;
use bos_store::testing::TestDb;
use bos_store::StoreError;
use std::sync::Arc;
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

struct Env {
    db: TestDb,
    sched: Scheduler,
    org: Uuid,
}

async fn env(name: &str) -> Env {
    let db = TestDb::new().await.expect("test database");
    let org = db
        .store
        .create_org(
            &OrgName::parse(name).unwrap(),
            &Slug::from_name(name).unwrap(),
            1,
        )
        .await
        .unwrap()
        .id;
    let clock = Arc::new(TestClock::new(T0));
    let sched = Scheduler::new(db.store.clone(), clock);
    Env { db, sched, org }
}

async fn member(e: &Env, email: &str, role: Role) -> Uuid {
    let u =
        e.db.store
            .create_user(&Email::parse(email).unwrap(), "", "x", false, T0)
            .await
            .unwrap();
    e.db.store
        .upsert_membership(e.org, u.id, role, T0)
        .await
        .unwrap();
    u.id
}

struct TestLinks;

/// Messages' links, for a sender that only sends service e-mail here.
struct NoLinks;

impl bos_engine::links::MessageLinks for NoLinks {
    fn open_pixel(&self, t: &str) -> String {
        format!("https://bos.test/open/{t}")
    }
    fn click(&self, t: &str) -> String {
        format!("https://bos.test/click/{t}")
    }
    fn unsubscribe(&self, t: &str) -> String {
        format!("https://bos.test/unsubscribe/{t}")
    }
    fn delivery_status(&self, h: &str) -> String {
        format!("https://bos.test/status/{h}")
    }
}

impl Links for TestLinks {
    fn invitation(&self, token: &str) -> String {
        format!("https://bos.test/accept/{token}")
    }
}

#[tokio::test]
async fn admin_rules_hold_without_http() {
    let e = env("Admin Co").await;
    let store = &e.db.store;
    let owner = member(&e, "owner@example.com", Role::Owner).await;
    let plain = member(&e, "plain@example.com", Role::Member).await;
    let as_owner = Actor {
        org_id: e.org,
        role: Role::Owner,
        user_id: Some(owner),
    };
    let as_member = Actor {
        org_id: e.org,
        role: Role::Member,
        user_id: Some(plain),
    };
    let mailer = Nudger::new(e.sched.clone(), NudgeConfig::new(Arc::new(NoLinks)));
    let engine = e.db.engine_name();

    // A member may not invite; an owner may, and gets the link the web
    // layer built from the token (never a route spelled here).
    let r = admin::invite(
        store,
        &mailer,
        &TestLinks,
        &as_member,
        "new@example.com",
        Role::Member,
        T0,
    )
    .await;
    assert!(
        matches!(r, Err(AdminError::Forbidden(_))),
        "{engine}: {r:?}",
        r = r.err()
    );
    let inv = admin::invite(
        store,
        &mailer,
        &TestLinks,
        &as_owner,
        "new@example.com",
        Role::Admin,
        T0,
    )
    .await
    .unwrap();
    assert!(
        inv.accept_url.starts_with("https://bos.test/accept/"),
        "{engine}"
    );
    assert!(!inv.emailed, "{engine}: the development sink sends nothing");
    // The store keeps the token's digest, so the link's token finds it.
    let token = inv.accept_url.rsplit('/').next().unwrap();
    let found = store
        .invitation_by_token(&bos_engine::tokens::sha256(token))
        .await
        .unwrap();
    assert_eq!(
        found.map(|(i, _)| i.id),
        Some(inv.invitation.id),
        "{engine}"
    );
    let r = admin::invite(
        store,
        &mailer,
        &TestLinks,
        &as_owner,
        "plain@example.com",
        Role::Member,
        T0,
    )
    .await;
    assert!(matches!(r, Err(AdminError::Conflict(_))), "{engine}");
    let r = admin::invite(
        store,
        &mailer,
        &TestLinks,
        &as_owner,
        "not an address",
        Role::Member,
        T0,
    )
    .await;
    assert!(
        matches!(r, Err(AdminError::Invalid { field: "email", .. })),
        "{engine}"
    );

    // The last owner stays.
    let r = admin::remove(store, &as_owner, owner).await;
    assert!(matches!(r, Err(AdminError::Conflict(_))), "{engine}");
    let m = admin::change_role(store, &as_owner, plain, Role::Admin)
        .await
        .unwrap();
    assert_eq!(m.role, Role::Admin, "{engine}");

    // Keys: named, scoped, only by admins; another tenant's is not found.
    let r = admin::create_key(store, &as_owner, "  ", &["admin".into()], T0).await;
    assert!(
        matches!(r, Err(AdminError::Invalid { field: "name", .. })),
        "{engine}"
    );
    let r = admin::create_key(store, &as_member, "sync", &["admin".into()], T0).await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{engine}");
    let k = admin::create_key(store, &as_owner, "sync", &["ingest".into()], T0)
        .await
        .unwrap();
    assert!(k.secret.starts_with("bos_"), "{engine}");
    let other = Actor {
        org_id: Uuid::now_v7(),
        ..as_owner
    };
    let r = admin::revoke_key(store, &other, k.key.id, T0).await;
    assert!(
        matches!(r, Err(AdminError::Store(StoreError::NotFound))),
        "{engine}"
    );
    admin::revoke_key(store, &as_owner, k.key.id, T0)
        .await
        .unwrap();
}

#[tokio::test]
async fn identity_resolves_and_explains_without_http() {
    let e = env("Identity Co").await;
    let store = &e.db.store;
    let engine = e.db.engine_name();
    let raw = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // Nothing usable: every problem named, nothing stored.
    let r = identity::resolve(
        store,
        e.org,
        &raw(&[("email", "nope"), ("shoe_size", "9")]),
        Traits::default(),
        "test",
        None,
        T0,
    )
    .await;
    match r {
        Err(IdentityError::NoUsableIdentifier(why)) => {
            assert!(why.contains("email 'nope'"), "{engine}: {why}");
            assert!(why.contains("shoe_size"), "{engine}: {why}");
        }
        other => panic!("{engine}: {:?}", other.map(|r| r.explanation)),
    }
    let first = identity::resolve(
        store,
        e.org,
        &raw(&[("email", "Ann@Example.com"), ("phone", "bad")]),
        Traits::default(),
        "test",
        None,
        T0,
    )
    .await
    .unwrap();
    assert_eq!(first.outcome.action, IdentifyAction::Created, "{engine}");
    assert_eq!(first.rejected.len(), 1, "{engine}");
    assert!(
        first.explanation.contains("new profile"),
        "{engine}: {}",
        first.explanation
    );
    let again = identity::resolve(
        store,
        e.org,
        &raw(&[("email", "ann@example.com")]),
        Traits::default(),
        "test",
        None,
        T0 + 1,
    )
    .await
    .unwrap();
    assert_eq!(
        again.outcome.profile_id, first.outcome.profile_id,
        "{engine}"
    );
    assert_eq!(again.outcome.action, IdentifyAction::Attached, "{engine}");

    // Rules: a blocklist entry must be kind:value; a blocked identifier
    // is never used for matching.
    let mut input = identity::RulesInput {
        default_region: "us".into(),
        blocklist: vec!["front-desk".into()],
        ..Default::default()
    };
    let r = identity::save_rules(store, e.org, &input, T0).await;
    assert!(
        matches!(
            r,
            Err(IdentityError::InvalidRules {
                field: "blocklist",
                ..
            })
        ),
        "{engine}"
    );
    input.blocklist = vec!["email:Desk@Example.com".into(), "".into()];
    let saved = identity::save_rules(store, e.org, &input, T0)
        .await
        .unwrap();
    assert_eq!(saved.default_region, "US");
    assert_eq!(
        store.identity_rules(e.org).await.unwrap().blocklist,
        saved.blocklist,
        "{engine}"
    );
    let r = identity::resolve(
        store,
        e.org,
        &raw(&[("email", "desk@example.com")]),
        Traits::default(),
        "test",
        None,
        T0 + 2,
    )
    .await;
    assert!(
        matches!(r, Err(IdentityError::NoUsableIdentifier(ref why)) if why.contains("blocklist")),
        "{engine}"
    );

    // Merging by hand, and undoing it.
    let bob = identity::resolve(
        store,
        e.org,
        &raw(&[("email", "bob@example.com")]),
        Traits::default(),
        "test",
        None,
        T0 + 3,
    )
    .await
    .unwrap()
    .outcome
    .profile_id;
    let ann = first.outcome.profile_id;
    let r = identity::merge(store, e.org, ann, ann, "rep@example.com", T0 + 4).await;
    assert!(matches!(r, Err(IdentityError::SameProfile)), "{engine}");
    let r = identity::merge(store, Uuid::now_v7(), ann, bob, "rep@example.com", T0 + 4).await;
    assert!(
        matches!(r, Err(IdentityError::Store(StoreError::NotFound))),
        "{engine}: another tenant's"
    );
    let m = identity::merge(store, e.org, ann, bob, "rep@example.com", T0 + 4)
        .await
        .unwrap();
    assert_eq!(
        store.profile(e.org, bob).await.unwrap().id,
        store.profile(e.org, ann).await.unwrap().id,
        "{engine}"
    );
    let r = identity::merge(store, e.org, ann, bob, "rep@example.com", T0 + 5).await;
    assert!(
        matches!(r, Err(IdentityError::SameProfile)),
        "{engine}: already one"
    );
    identity::unmerge(store, e.org, m, "rep@example.com", T0 + 6)
        .await
        .unwrap();
    assert_ne!(
        store.profile(e.org, bob).await.unwrap().id,
        store.profile(e.org, ann).await.unwrap().id,
        "{engine}"
    );
    let r = identity::unmerge(store, e.org, m, "rep@example.com", T0 + 7).await;
    assert!(
        matches!(r, Err(IdentityError::CannotUnmerge(_))),
        "{engine}: {r:?}"
    );
}

/// A lead for `email`, made the way production makes one: an event
/// through a source and the pipeline.
async fn lead(e: &Env, pipeline: &Pipeline, email: &str) -> Uuid {
    let store = &e.db.store;
    let src = store
        .create_source(
            e.org,
            NewSource {
                kind: SourceKind::Segment,
                name: "site".into(),
                secret: None,
                key_hash: Some(vec![3; 32]),
                config: None,
            },
            T0,
        )
        .await
        .unwrap();
    let payload = serde_json::json!({
        "type": "identify", "messageId": "m1", "userId": "u1",
        "traits": {"email": email},
    });
    store
        .ingest(
            e.org,
            src.id,
            vec![NewInbound {
                external_id: "m1".into(),
                kind: "identify".into(),
                payload: payload.to_string(),
            }],
            T0,
        )
        .await
        .unwrap();
    pipeline.drain().await.unwrap();
    store
        .lead_feed(
            e.org,
            &bos_store::pipeline::LeadFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()[0]
        .profile_id
}

#[tokio::test]
async fn lead_actions_move_tag_assign_and_tell_the_bus() {
    let e = env("Leads Co").await;
    let store = &e.db.store;
    let engine = e.db.engine_name();
    member(&e, "Rep@Example.com", Role::Member).await;
    let pipeline = Pipeline::new(e.sched.clone());
    let profile = lead(&e, &pipeline, "buyer@example.com").await;
    let mut bus = pipeline.bus().subscribe(e.org);
    let deps = LeadDeps {
        store,
        scheduler: &e.sched,
        bus: pipeline.bus(),
    };

    // Assignees are members, matched in any case and stored as the member's.
    let r = leads::assignee(store, e.org, "stranger@example.com").await;
    assert!(
        matches!(
            r,
            Err(LeadError::Invalid {
                field: "assignee",
                ..
            })
        ),
        "{engine}"
    );
    let who = leads::assignee(store, e.org, " rep@example.com ")
        .await
        .unwrap();
    assert_eq!(who.as_deref(), Some("rep@example.com"), "{engine}");
    assert_eq!(leads::assignee(store, e.org, "").await.unwrap(), None);
    assert!(matches!(
        leads::tag(" "),
        Err(LeadError::Invalid { field: "tag", .. })
    ));

    let done = leads::act(
        &deps,
        e.org,
        profile,
        Action::MarkConverted,
        "rep@example.com",
        T0 + 10,
    )
    .await
    .unwrap();
    assert_eq!(done, Done::Moved("converted"), "{engine}");
    let ev = bus.try_recv().expect("a dashboard hears of the move");
    assert_eq!(
        ev,
        Received::Event(Live::Lead {
            profile_id: profile,
            change: LeadChange::State,
            created: false,
        }),
        "{engine}"
    );
    // Converting a converted lead does not apply: nothing moves, nobody is told.
    let done = leads::act(
        &deps,
        e.org,
        profile,
        Action::MarkConverted,
        "rep@example.com",
        T0 + 20,
    )
    .await
    .unwrap();
    assert_eq!(done, Done::Unchanged, "{engine}");
    assert!(bus.try_recv().is_none(), "{engine}");

    leads::act(
        &deps,
        e.org,
        profile,
        Action::Assign(who),
        "rep@example.com",
        T0 + 30,
    )
    .await
    .unwrap();
    leads::act(
        &deps,
        e.org,
        profile,
        leads::tag(" vip ").unwrap(),
        "rep@example.com",
        T0 + 40,
    )
    .await
    .unwrap();
    let l = store.lead(e.org, profile).await.unwrap().unwrap();
    assert_eq!(l.state, "converted", "{engine}");
    assert_eq!(l.assignee.as_deref(), Some("rep@example.com"), "{engine}");
    assert_eq!(leads::tags_of(&l.tags), vec!["vip".to_string()], "{engine}");
    let history = store.lead_history(e.org, profile).await.unwrap();
    assert!(
        history
            .iter()
            .any(|t| t.to_state == "converted" && t.actor == "rep@example.com"),
        "{engine}"
    );
}

#[tokio::test]
async fn channel_settings_are_checked_and_secrets_kept() {
    let e = env("Channels Co").await;
    let store = &e.db.store;
    let engine = e.db.engine_name();
    let twilio = |sid: &str, token: &str| ChannelInput {
        provider: "twilio".into(),
        account_sid: Some(sid.into()),
        auth_token: Some(token.into()),
        from: Some("+14155550123".into()),
        ..Default::default()
    };
    let sid = "AC0123456789abcdef0123456789abcdef";
    let token = "0123456789abcdef0123456789abcdef";
    let r = channels::save(
        store,
        e.org,
        Channel::Sms,
        &twilio("AC12", token),
        false,
        T0,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(ChannelError::Invalid {
                field: "account_sid",
                ..
            })
        ),
        "{engine}"
    );
    let saved = channels::save(store, e.org, Channel::Sms, &twilio(sid, token), false, T0)
        .await
        .unwrap();
    assert_eq!(saved.channel, Channel::Sms);
    // Empty keeps the stored token for the same account…
    channels::save(store, e.org, Channel::Sms, &twilio(sid, ""), false, T0 + 1)
        .await
        .unwrap();
    match store.channel_config(e.org, Channel::Sms).await.unwrap() {
        ChannelConfig::Twilio { auth_token, .. } => assert_eq!(auth_token, token, "{engine}"),
        other => panic!("{engine}: {}", other.provider()),
    }
    // …but never hands it to another account.
    let other_sid = "ACffffffffffffffffffffffffffffffff";
    let r = channels::save(
        store,
        e.org,
        Channel::Sms,
        &twilio(other_sid, ""),
        false,
        T0 + 2,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(ChannelError::Invalid {
                field: "auth_token",
                ..
            })
        ),
        "{engine}"
    );
    // An SMTP host inside the network is refused unless the server allows it.
    let smtp = ChannelInput {
        provider: "smtp".into(),
        host: Some("127.0.0.1".into()),
        port: Some(587),
        from: Some("Shop <shop@example.com>".into()),
        ..Default::default()
    };
    let r = channels::save(store, e.org, Channel::Email, &smtp, false, T0).await;
    assert!(
        matches!(r, Err(ChannelError::Invalid { field: "host", .. })),
        "{engine}"
    );
    channels::save(store, e.org, Channel::Email, &smtp, true, T0)
        .await
        .unwrap();
    // The development sink keeps no keys, so one sent with it is refused.
    let dev = ChannelInput {
        provider: "dev".into(),
        auth_token: Some(token.into()),
        ..Default::default()
    };
    let r = channels::save(store, e.org, Channel::Sms, &dev, false, T0).await;
    assert!(
        matches!(
            r,
            Err(ChannelError::Invalid {
                field: "auth_token",
                ..
            })
        ),
        "{engine}"
    );
}

#[tokio::test]
async fn sources_are_checked_and_get_their_credential_once() {
    let e = env("Sources Co").await;
    let store = &e.db.store;
    let engine = e.db.engine_name();
    use bos_engine::sources::{self, SourceError};
    let r = sources::create(store, e.org, "segment", "  ", None, None, T0).await;
    assert!(
        matches!(r, Err(SourceError::Invalid { field: "name", .. })),
        "{engine}"
    );
    let r = sources::create(store, e.org, "shopify", "shop", None, None, T0).await;
    assert!(
        matches!(
            r,
            Err(SourceError::Invalid {
                field: "secret",
                ..
            })
        ),
        "{engine}"
    );
    let r = sources::create(store, e.org, "segment", "site", Some("x".into()), None, T0).await;
    assert!(
        matches!(
            r,
            Err(SourceError::Invalid {
                field: "secret",
                ..
            })
        ),
        "{engine}"
    );
    let r = sources::create(
        store,
        e.org,
        "form",
        "f",
        None,
        Some("javascript:alert(1)".into()),
        T0,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(SourceError::Invalid {
                field: "thank_you_url",
                ..
            })
        ),
        "{engine}"
    );
    let r = sources::create(store, e.org, "carrier-pigeon", "p", None, None, T0).await;
    assert!(
        matches!(r, Err(SourceError::Invalid { field: "kind", .. })),
        "{engine}"
    );

    let (seg, key) = sources::create(store, e.org, "segment", " site ", None, None, T0)
        .await
        .unwrap();
    assert_eq!(seg.name, "site", "{engine}");
    let key = key.expect("a write key, shown once");
    // Only the key's digest is kept.
    assert!(seg.secret.is_none(), "{engine}");
    let (hook, secret) = sources::create(store, e.org, "webhook", "hooks", None, None, T0)
        .await
        .unwrap();
    assert!(
        secret.as_deref().is_some_and(|s| s.starts_with("whsec_")),
        "{engine}"
    );
    let (shop, none) = sources::create(
        store,
        e.org,
        "shopify",
        "shop",
        Some("shpss_1".into()),
        None,
        T0,
    )
    .await
    .unwrap();
    assert!(none.is_none(), "{engine}: the merchant already has it");
    let listed: Vec<Uuid> = store
        .sources(e.org)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![seg.id, hook.id, shop.id], "{engine}");
    assert_ne!(key, secret.unwrap());
}

#[tokio::test]
async fn intake_rules_are_checked_and_saved() {
    use bos_engine::rules::{self, LeadSettingsInput, RulesError};
    let e = env("Rules Co").await;
    let store = &e.db.store;
    let engine = e.db.engine_name();
    let pipeline = Pipeline::new(e.sched.clone());
    let mut given = rules::lead_settings(store, e.org).await.unwrap();
    given.max_nudges = 21;
    let r = rules::save_lead_settings(store, &pipeline, e.org, &given, T0).await;
    assert!(
        matches!(
            r,
            Err(RulesError::Invalid {
                field: "max_nudges",
                ..
            })
        ),
        "{engine}"
    );
    let wanted = LeadSettingsInput {
        ghost_after_ms: 3 * 3_600_000,
        max_nudges: 2,
        engage_min_score: 40,
        abandon_after_ms: 30 * 60_000,
    };
    rules::save_lead_settings(store, &pipeline, e.org, &wanted, T0)
        .await
        .unwrap();
    assert_eq!(
        rules::lead_settings(store, e.org).await.unwrap(),
        wanted,
        "{engine}"
    );
    let r = rules::save_lead_settings(
        store,
        &pipeline,
        e.org,
        &LeadSettingsInput {
            abandon_after_ms: 1,
            ..wanted
        },
        T0,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(RulesError::Invalid {
                field: "abandon_after_ms",
                ..
            })
        ),
        "{engine}"
    );

    let mut intent = bos_core::intent::IntentRules::default();
    intent.thresholds.engaged = intent.thresholds.high_value + 1;
    let r = rules::save_intent_rules(store, &pipeline, e.org, &intent, T0).await;
    assert!(
        matches!(
            r,
            Err(RulesError::Invalid {
                field: "thresholds",
                ..
            })
        ),
        "{engine}"
    );
    rules::save_intent_rules(store, &pipeline, e.org, &Default::default(), T0)
        .await
        .unwrap();
    assert_eq!(rules::sentence("rule x is bad."), "Rule x is bad.");
}

#[tokio::test]
async fn campaigns_and_nudge_settings_are_checked_before_they_are_stored() {
    use bos_engine::campaigns::{self, CampaignError};
    use bos_store::nudge::{CampaignStatus, NudgeSettings};
    let e = env("Campaigns Co").await;
    let store = &e.db.store;
    let engine = e.db.engine_name();
    let c: bos_core::nudge::Campaign = serde_json::from_value(serde_json::json!({
        "name": "Cart", "trigger": {"kind": "checkout_abandoned"},
        "steps": [{"delay_ms": 3_600_000, "channel": "email", "variants": [
            {"name": "A", "weight": 1, "subject": "Your cart", "body": "Hi {{ first_name }}"}]}],
        "stop": {"converted": true, "replied": true, "opted_out": true},
        "quiet_hours": null, "max_attempts": 3, "reentry_cooldown_ms": 0
    }))
    .unwrap();
    let r = campaigns::create(store, e.org, &c, CampaignStatus::Archived, T0).await;
    assert!(
        matches!(
            r,
            Err(CampaignError::Invalid {
                field: "status",
                ..
            })
        ),
        "{engine}"
    );
    // A trait the organization never saw is refused with the builder's sentence.
    let mut unknown = c.clone();
    unknown.steps[0].variants[0].body = "Hi {{ shoe_size }}".into();
    let r = campaigns::create(store, e.org, &unknown, CampaignStatus::Draft, T0).await;
    assert!(
        matches!(
            r,
            Err(CampaignError::Invalid {
                field: "campaign",
                ..
            })
        ),
        "{engine}"
    );
    let id = campaigns::create(store, e.org, &c, CampaignStatus::Draft, T0)
        .await
        .unwrap();
    let row = campaigns::find(store, e.org, id).await.unwrap();
    campaigns::change_status(store, &e.sched, e.org, &row, CampaignStatus::Archived, T0)
        .await
        .unwrap();
    let row = campaigns::find(store, e.org, id).await.unwrap();
    let r =
        campaigns::change_status(store, &e.sched, e.org, &row, CampaignStatus::Active, T0).await;
    assert!(
        matches!(
            r,
            Err(CampaignError::Invalid {
                field: "status",
                ..
            })
        ),
        "{engine}: archived stays archived"
    );
    let r = campaigns::find(store, Uuid::now_v7(), id).await;
    assert!(
        matches!(r, Err(CampaignError::Store(StoreError::NotFound))),
        "{engine}"
    );
    assert!(campaigns::parse_status("paused").is_ok());
    assert!(campaigns::parse_status("gone").is_err());

    let bad_tz = NudgeSettings {
        timezone: "Mars/Olympus".into(),
        ..Default::default()
    };
    let r = campaigns::save_settings(store, e.org, &bad_tz, T0).await;
    assert!(
        matches!(
            r,
            Err(CampaignError::Invalid {
                field: "timezone",
                ..
            })
        ),
        "{engine}"
    );
    let mut ok = NudgeSettings {
        timezone: "Europe/Berlin".into(),
        ..Default::default()
    };
    campaigns::save_settings(store, e.org, &ok, T0)
        .await
        .unwrap();
    assert_eq!(
        store.nudge_settings(e.org).await.unwrap().timezone,
        "Europe/Berlin",
        "{engine}"
    );
    ok.windows.sms_ms = 0;
    let r = campaigns::save_settings(store, e.org, &ok, T0).await;
    assert!(
        matches!(
            r,
            Err(CampaignError::Invalid {
                field: "sms_window",
                ..
            })
        ),
        "{engine}"
    );
}
