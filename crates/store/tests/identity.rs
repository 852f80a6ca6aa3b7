//! Conformance suite for the God View store (both engines): resolution,
//! merges and unmerges, the timeline, search, duplicates, export and erase.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::{OrgName, Slug};
use bos_store::identity::{
    IdentifyAction, IdentifyInput, NewEvent, ProfileQuery, ProfileSort, TimelineQuery, Traits,
};
use bos_store::testing::TestDb;
use uuid::Uuid;

use IdentifierKind::*;

fn id(k: IdentifierKind, v: &str) -> Identifier {
    Identifier::new(k, v)
}

async fn setup() -> (TestDb, Uuid) {
    let db = TestDb::new().await.unwrap();
    let org = db
        .store
        .create_org(
            &OrgName::parse("Acme").unwrap(),
            &Slug::parse("acme").unwrap(),
            1,
        )
        .await
        .unwrap();
    (db, org.id)
}

fn input(
    ids: &[Identifier],
    first: &str,
    event: Option<(&str, &str, i64, i64)>,
    now: i64,
) -> IdentifyInput {
    IdentifyInput {
        identifiers: ids.to_vec(),
        traits: Traits {
            first_name: first.into(),
            last_name: if first.is_empty() {
                String::new()
            } else {
                "Doe".into()
            },
            company: String::new(),
            custom: Default::default(),
        },
        source: "test".into(),
        event: event.map(|(kind, key, at, revenue)| NewEvent {
            kind: kind.into(),
            summary: format!("{kind} {key}"),
            occurred_at: at,
            data: "{}".into(),
            key: Some(key.into()),
            revenue_cents: revenue,
            is_order: revenue > 0,
        }),
        now,
    }
}

#[tokio::test]
async fn resolve_merge_unmerge_roundtrip() {
    let (db, org) = setup().await;
    let s = &db.store;
    let rules = IdentityRules::default();
    // John on Instagram.
    let ig = s
        .identify(
            org,
            &rules,
            &input(
                &[id(InstagramId, "1001")],
                "John",
                Some(("message_in", "ig-1", 100, 0)),
                100,
            ),
        )
        .await
        .unwrap();
    assert_eq!(ig.action, IdentifyAction::Created);
    // John on Shopify, with an order.
    let shop = s
        .identify(
            org,
            &rules,
            &input(
                &[
                    id(ShopifyCustomerId, "42"),
                    id(Phone, "+14155552671"),
                    id(Email, "john@x.com"),
                ],
                "",
                Some(("purchase", "order-1", 200, 5000)),
                200,
            ),
        )
        .await
        .unwrap();
    assert_eq!(shop.action, IdentifyAction::Created);
    assert_ne!(ig.profile_id, shop.profile_id);
    // A DM that carries the phone: the two are one person.
    let m = s
        .identify(
            org,
            &rules,
            &input(
                &[id(InstagramId, "1001"), id(Phone, "+14155552671")],
                "",
                Some(("message_in", "ig-2", 300, 0)),
                300,
            ),
        )
        .await
        .unwrap();
    assert_eq!(m.action, IdentifyAction::Merged);
    assert_eq!(m.profile_id, ig.profile_id, "the oldest profile survives");
    assert_eq!(m.merged, vec![(shop.profile_id, id(Phone, "+14155552671"))]);
    // Old ids keep resolving.
    let p = s.profile(org, shop.profile_id).await.unwrap();
    assert_eq!(p.id, ig.profile_id);
    assert_eq!(
        (
            p.ltv_cents,
            p.order_count,
            p.primary_email.as_str(),
            p.first_name.as_str()
        ),
        (5000, 1, "john@x.com", "John")
    );
    assert_eq!(s.profile_identities(org, p.id).await.unwrap().len(), 4);
    let tl = s
        .timeline(
            org,
            p.id,
            &TimelineQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        tl.iter().filter(|e| e.kind != "merge").count(),
        3,
        "{kinds:?}"
    );
    assert!(tl
        .iter()
        .any(|e| e.kind == "merge" && e.summary.contains("phone +14155552671")));
    // Replaying an event changes nothing.
    let again = s
        .identify(
            org,
            &rules,
            &input(
                &[id(ShopifyCustomerId, "42")],
                "",
                Some(("purchase", "order-1", 200, 5000)),
                400,
            ),
        )
        .await
        .unwrap();
    assert_eq!(again.action, IdentifyAction::Replayed);
    assert_eq!(s.profile(org, p.id).await.unwrap().ltv_cents, 5000);

    // Unmerge: both come back with their own identities and events.
    let merges = s.profile_merges(org, p.id).await.unwrap();
    assert_eq!(merges.len(), 1);
    let restored = s
        .unmerge(org, merges[0].id, "ann@example.com", 500)
        .await
        .unwrap();
    assert_eq!(restored, shop.profile_id);
    let a = s.profile(org, ig.profile_id).await.unwrap();
    let b = s.profile(org, shop.profile_id).await.unwrap();
    assert_eq!(
        b.id, shop.profile_id,
        "the absorbed profile is its own root again"
    );
    assert_eq!((a.ltv_cents, b.ltv_cents, b.order_count), (0, 5000, 1));
    assert_eq!(
        a.primary_email, "",
        "fields filled by the merge are given back"
    );
    assert_eq!(b.primary_email, "john@x.com");
    let ids_a: Vec<String> = s
        .profile_identities(org, a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.kind)
        .collect();
    let ids_b: Vec<String> = s
        .profile_identities(org, b.id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.kind)
        .collect();
    assert_eq!(ids_a, vec!["instagram_id"]);
    assert_eq!(ids_b, vec!["email", "phone", "shopify_customer_id"]);
    let tl_a = s
        .timeline(
            org,
            a.id,
            &TimelineQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let tl_b = s
        .timeline(
            org,
            b.id,
            &TimelineQuery {
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys = |t: &[bos_store::identity::TimelineEntry]| {
        t.iter()
            .filter(|e| e.kind != "merge" && e.kind != "unmerge")
            .map(|e| e.summary.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&tl_a), vec!["message_in ig-2", "message_in ig-1"]);
    assert_eq!(keys(&tl_b), vec!["purchase order-1"]);
    assert!(tl_b.iter().any(|e| e.kind == "unmerge"));
    assert!(
        s.unmerge(org, merges[0].id, "x", 600).await.is_err(),
        "a merge is undone once"
    );
    // Manual merge back, then export and erase.
    let mid = s
        .merge_profiles(org, a.id, b.id, "ann@example.com", 700)
        .await
        .unwrap();
    assert_eq!(s.merge_record(org, mid).await.unwrap().reason, "manual");
    let export = s.export_profile(org, b.id).await.unwrap();
    assert_eq!(export.profile.id, a.id);
    assert_eq!(export.members.len(), 2);
    assert_eq!(export.identities.len(), 4);
    assert!(export.timeline.len() >= 5);
    let n = s.erase_profile(org, b.id).await.unwrap();
    assert!(n >= 10, "{n} rows erased");
    assert!(s.profile(org, a.id).await.is_err());
    assert_eq!(s.count_profiles(org).await.unwrap(), 0);
}

#[tokio::test]
async fn nested_merges_unmerge_the_middle() {
    let (db, org) = setup().await;
    let s = &db.store;
    let r = IdentityRules::default();
    let a = s
        .identify(
            org,
            &r,
            &input(
                &[id(Email, "a@x.com")],
                "",
                Some(("page_view", "a", 10, 100)),
                10,
            ),
        )
        .await
        .unwrap()
        .profile_id;
    let b = s
        .identify(
            org,
            &r,
            &input(
                &[id(Email, "b@x.com")],
                "",
                Some(("page_view", "b", 20, 200)),
                20,
            ),
        )
        .await
        .unwrap()
        .profile_id;
    let c = s
        .identify(
            org,
            &r,
            &input(
                &[id(Email, "c@x.com")],
                "",
                Some(("page_view", "c", 30, 400)),
                30,
            ),
        )
        .await
        .unwrap()
        .profile_id;
    // c joins b, then b (with c) joins a.
    s.identify(
        org,
        &r,
        &input(&[id(Email, "b@x.com"), id(Email, "c@x.com")], "", None, 40),
    )
    .await
    .unwrap();
    s.identify(
        org,
        &r,
        &input(&[id(Email, "a@x.com"), id(Email, "b@x.com")], "", None, 50),
    )
    .await
    .unwrap();
    assert_eq!(s.profile(org, c).await.unwrap().id, a);
    assert_eq!(s.profile(org, a).await.unwrap().ltv_cents, 700);
    // Undo b→a: b comes back with c still inside it.
    let m = s
        .profile_merges(org, a)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.absorbed_id == b && m.undone_at.is_none())
        .unwrap();
    s.unmerge(org, m.id, "t", 60).await.unwrap();
    assert_eq!(s.profile(org, c).await.unwrap().id, b);
    assert_eq!(s.profile(org, a).await.unwrap().ltv_cents, 100);
    assert_eq!(s.profile(org, b).await.unwrap().ltv_cents, 600);
    assert_eq!(s.profile_identities(org, b).await.unwrap().len(), 2);
}

#[tokio::test]
async fn limits_and_tenants() {
    let (db, org) = setup().await;
    let s = &db.store;
    let other = s
        .create_org(
            &OrgName::parse("Other").unwrap(),
            &Slug::parse("other").unwrap(),
            1,
        )
        .await
        .unwrap()
        .id;
    let r = IdentityRules::default();
    let p1 = s
        .identify(
            org,
            &r,
            &input(
                &[id(ShopifyCustomerId, "1"), id(Email, "family@x.com")],
                "",
                None,
                10,
            ),
        )
        .await
        .unwrap();
    let p2 = s
        .identify(
            org,
            &r,
            &input(
                &[id(ShopifyCustomerId, "2"), id(Email, "family@x.com")],
                "",
                None,
                20,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        p2.action,
        IdentifyAction::Created,
        "the family e-mail does not glue two shoppers"
    );
    assert_eq!(p2.dropped.len(), 1);
    assert_ne!(p1.profile_id, p2.profile_id);
    // The same identifiers in another organization are another person.
    let o = s
        .identify(
            other,
            &r,
            &input(&[id(ShopifyCustomerId, "1")], "", None, 30),
        )
        .await
        .unwrap();
    assert_eq!(o.action, IdentifyAction::Created);
    assert!(s.profile(other, p1.profile_id).await.is_err());
    assert!(s
        .profile_identities(other, p1.profile_id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn concurrent_events_for_one_new_person_make_one_profile() {
    let (db, org) = setup().await;
    let r = IdentityRules::default();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = db.store.clone();
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            s.identify(
                org,
                &r,
                &input(
                    &[id(Email, "new@x.com"), id(AnonymousId, &format!("dev-{i}"))],
                    "",
                    None,
                    100 + i,
                ),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().profile_id);
    }
    ids.dedup();
    assert_eq!(
        db.store.count_profiles(org).await.unwrap(),
        1,
        "{} profiles",
        db.store.count_profiles(org).await.unwrap()
    );
    assert_eq!(
        db.store
            .profile_identities(org, ids[0])
            .await
            .unwrap()
            .len(),
        9
    );
}

#[tokio::test]
async fn list_search_sort_timeline_pages_duplicates() {
    let (db, org) = setup().await;
    let s = &db.store;
    let r = IdentityRules::default();
    for (i, (first, email, phone, ltv)) in [
        ("Ann", "ann@x.com", "+14155550101", 500),
        ("Bob", "bob@y.com", "+14155550102", 9000),
        ("Cleo", "cleo@z.com", "+14155550103", 100),
    ]
    .iter()
    .enumerate()
    {
        let mut inp = input(
            &[id(Email, email), id(Phone, phone)],
            first,
            Some(("purchase", email, 100 + i as i64, *ltv)),
            100 + i as i64,
        );
        inp.traits.company = "Acme".into();
        s.identify(org, &r, &inp).await.unwrap();
    }
    // A second "Ann Doe" at Acme with no shared identifier: a possible duplicate.
    let mut dup = input(&[id(Email, "ann.doe@other.com")], "Ann", None, 200);
    dup.traits.company = "ACME ".into();
    let d = s.identify(org, &r, &dup).await.unwrap().profile_id;
    let q = |q: &str, sort| ProfileQuery {
        q: q.into(),
        sort: Some(sort),
        after: None,
        limit: 10,
    };
    let names = |v: Vec<bos_store::identity::Profile>| {
        v.into_iter().map(|p| p.display_name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            s.list_profiles(org, &q("", ProfileSort::Ltv))
                .await
                .unwrap()
        )[0],
        "Bob Doe"
    );
    assert_eq!(
        names(
            s.list_profiles(org, &q("bob@", ProfileSort::Ltv))
                .await
                .unwrap()
        ),
        vec!["Bob Doe"]
    );
    assert_eq!(
        names(
            s.list_profiles(org, &q("cl", ProfileSort::Name))
                .await
                .unwrap()
        ),
        vec!["Cleo Doe"]
    );
    assert_eq!(
        names(
            s.list_profiles(org, &q("415 555 0102", ProfileSort::Name))
                .await
                .unwrap()
        ),
        vec!["Bob Doe"]
    );
    assert_eq!(
        names(
            s.list_profiles(org, &q("ann", ProfileSort::Name))
                .await
                .unwrap()
        )
        .len(),
        2
    );
    assert!(s
        .list_profiles(org, &q("nobody", ProfileSort::Name))
        .await
        .unwrap()
        .is_empty());
    // Keyset pages cover everything once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_profiles(
                org,
                &ProfileQuery {
                    q: String::new(),
                    sort: Some(ProfileSort::Ltv),
                    after: after.clone(),
                    limit: 1,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.ltv_cents, last.name_lc(), last.id));
        seen.push(last.id);
    }
    assert_eq!(seen.len(), 4);
    let first_ann = s
        .list_profiles(org, &q("ann@", ProfileSort::Name))
        .await
        .unwrap()[0]
        .id;
    let dups = s.possible_duplicates(org, first_ann).await.unwrap();
    assert_eq!(dups.iter().map(|p| p.id).collect::<Vec<_>>(), vec![d]);

    // Timeline: filters and pages.
    let p = first_ann;
    for t in 0..25 {
        s.identify(
            org,
            &r,
            &input(
                &[id(Email, "ann@x.com")],
                "",
                Some((
                    if t % 2 == 0 { "page_view" } else { "cart_add" },
                    &format!("e{t}"),
                    1000 + t,
                    0,
                )),
                2000,
            ),
        )
        .await
        .unwrap();
    }
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .timeline(
                org,
                p,
                &TimelineQuery {
                    before,
                    limit: 7,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        before = page.last().map(|e| (e.occurred_at, e.id));
        let n = page.len();
        all.extend(page);
        if n < 7 {
            break;
        }
    }
    assert_eq!(all.len(), 26);
    assert!(all.windows(2).all(|w| w[0].occurred_at >= w[1].occurred_at));
    let carts = s
        .timeline(
            org,
            p,
            &TimelineQuery {
                kinds: vec!["cart_add".into()],
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(carts.len(), 12);
    let ranged = s
        .timeline(
            org,
            p,
            &TimelineQuery {
                from: Some(1010),
                to: Some(1020),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ranged.len(), 10);
}

/// Phone search reads E.164 prefix ranges of the identity links' primary
/// key, with the organization's default region for national input, and
/// falls back to the end of the number only when nothing starts with the
/// typed digits.
#[tokio::test]
async fn phone_search_by_prefix_ranges_with_the_default_region() {
    let (db, us) = setup().await;
    let s = &db.store;
    let r = IdentityRules::default();
    let mut ids = std::collections::BTreeMap::new();
    for (i, (first, phone)) in [
        ("Ann", "+14155552671"),
        ("Bob", "+14155559999"),
        ("Cleo", "+12125550100"),
        ("Dan", "+442079460958"),
        ("Eve", "+41445550123"),
    ]
    .iter()
    .enumerate()
    {
        let p = s
            .identify(
                us,
                &r,
                &input(&[id(Phone, phone)], first, None, 10 + i as i64),
            )
            .await
            .unwrap();
        ids.insert(*first, p.profile_id);
    }
    // Fay's second phone joins her to Ann's profile: one customer, listed once.
    s.identify(
        us,
        &r,
        &input(
            &[id(Email, "fay@x.com"), id(Phone, "+14155550000")],
            "Fay",
            None,
            20,
        ),
    )
    .await
    .unwrap();
    s.identify(
        us,
        &r,
        &input(
            &[id(Email, "fay@x.com"), id(Phone, "+14155552671")],
            "",
            None,
            21,
        ),
    )
    .await
    .unwrap();
    let search = |org: Uuid, term: &'static str| async move {
        let mut v: Vec<String> = s
            .list_profiles(
                org,
                &ProfileQuery {
                    q: term.into(),
                    sort: Some(ProfileSort::Name),
                    after: None,
                    limit: 50,
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.first_name)
            .collect();
        v.sort();
        v
    };
    let (ann, bob, cleo, dan, eve) = ("Ann", "Bob", "Cleo", "Dan", "Eve");
    // National input, with the US default region; the merged pair is one row.
    assert_eq!(search(us, "(415) 555").await, vec![ann, bob]);
    assert_eq!(search(us, "1 415 555 26").await, vec![ann]);
    assert_eq!(search(us, "415-555-2671").await, vec![ann]);
    assert_eq!(search(us, "212").await, vec![cleo]);
    // International input.
    assert_eq!(search(us, "+44 20 7946").await, vec![dan]);
    assert_eq!(search(us, "0044 20 7946").await, vec![dan]);
    assert_eq!(
        search(us, "41 44 555").await,
        vec![eve],
        "digits without their +"
    );
    // The end of a number, when nothing starts with the digits.
    assert_eq!(search(us, "2671").await, vec![ann]);
    assert_eq!(search(us, "555 0100").await, vec![cleo]);
    assert_eq!(
        search(us, "+2671").await,
        Vec::<String>::new(),
        "a + means the start"
    );
    assert_eq!(search(us, "(999) 1").await, Vec::<String>::new());

    // Keyset pages over a phone search cover each match once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_profiles(
                us,
                &ProfileQuery {
                    q: "415 555".into(),
                    sort: Some(ProfileSort::Name),
                    after: after.clone(),
                    limit: 1,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((0, last.name_lc(), last.id));
        seen.push(last.id);
    }
    assert_eq!(seen, vec![ids["Ann"], ids["Bob"]]);

    // Another organization dials from Great Britain and sees only its own.
    let gb = s
        .create_org(
            &OrgName::parse("Brit").unwrap(),
            &Slug::parse("brit").unwrap(),
            1,
        )
        .await
        .unwrap()
        .id;
    let gb_rules = IdentityRules {
        default_region: "GB".into(),
        ..IdentityRules::default()
    };
    s.set_identity_rules(gb, &gb_rules, 1).await.unwrap();
    s.identify(
        gb,
        &gb_rules,
        &input(&[id(Phone, "+442079460001")], "Gus", None, 30),
    )
    .await
    .unwrap();
    assert_eq!(search(gb, "020 7946").await, vec!["Gus"]);
    assert_eq!(search(gb, "020 7946 0001").await, vec!["Gus"]);
    assert_eq!(search(gb, "+44 20 7946").await, vec!["Gus"]);
    assert_eq!(
        search(us, "020 7946").await,
        Vec::<String>::new(),
        "0 is no US trunk prefix"
    );
}

/// Custom traits: given ones are laid over the profile's, a merge fills
/// the survivor's missing ones, and an unmerge gives those back.
#[tokio::test]
async fn custom_traits_overlay_merge_and_unmerge() {
    use serde_json::{json, Value};
    let (db, org) = setup().await;
    let s = &db.store;
    let rules = IdentityRules::default();
    let with = |ids: &[Identifier], traits: Value, now: i64| {
        let mut i = input(ids, "", None, now);
        i.traits.custom = serde_json::from_value(traits).unwrap();
        i
    };
    let traits_of =
        |p: bos_store::identity::Profile| -> Value { serde_json::from_str(&p.traits).unwrap() };
    let ann = s
        .identify(
            org,
            &rules,
            &with(
                &[id(Email, "ann@x.com")],
                json!({"plan": "gold", "seats": 3}),
                10,
            ),
        )
        .await
        .unwrap();
    // Given names win; the rest stay.
    s.identify(
        org,
        &rules,
        &with(&[id(Email, "ann@x.com")], json!({"plan": "silver"}), 20),
    )
    .await
    .unwrap();
    assert_eq!(
        traits_of(s.profile(org, ann.profile_id).await.unwrap()),
        json!({"plan": "silver", "seats": 3})
    );
    // Another profile with a time zone and its own plan, then a merge.
    let other = s
        .identify(
            org,
            &rules,
            &with(
                &[id(Phone, "+14155552671")],
                json!({"plan": "free", "timezone": "Asia/Tokyo"}),
                30,
            ),
        )
        .await
        .unwrap();
    let m = s
        .identify(
            org,
            &rules,
            &input(
                &[id(Email, "ann@x.com"), id(Phone, "+14155552671")],
                "",
                None,
                40,
            ),
        )
        .await
        .unwrap();
    assert_eq!(m.action, IdentifyAction::Merged);
    assert_eq!(
        traits_of(s.profile(org, ann.profile_id).await.unwrap()),
        json!({"plan": "silver", "seats": 3, "timezone": "Asia/Tokyo"}),
        "the survivor keeps its plan and gains the time zone it lacked"
    );
    let merges = s.profile_merges(org, ann.profile_id).await.unwrap();
    s.unmerge(org, merges[0].id, "t", 50).await.unwrap();
    assert_eq!(
        traits_of(s.profile(org, ann.profile_id).await.unwrap()),
        json!({"plan": "silver", "seats": 3})
    );
    assert_eq!(
        traits_of(s.profile(org, other.profile_id).await.unwrap()),
        json!({"plan": "free", "timezone": "Asia/Tokyo"})
    );
}

/// An event's identifiers are all looked up, however many it carries: three
/// kinds at once (SQLite reads them as one seek each), and a list longer
/// than one read (SQLite reads 64 at a time) whose only known identifier
/// comes last.
#[tokio::test]
async fn events_with_many_identifiers_find_their_profile() {
    let (db, org) = setup().await;
    let s = &db.store;
    let r = IdentityRules::default();
    let known = [
        id(Email, "ann@x.com"),
        id(Phone, "+14155550100"),
        id(InstagramId, "ig-ann"),
    ];
    let ann = s
        .identify(org, &r, &input(&known, "Ann", None, 10))
        .await
        .unwrap();
    assert_eq!(ann.action, IdentifyAction::Created);
    let again = s
        .identify(org, &r, &input(&known, "Ann", None, 20))
        .await
        .unwrap();
    assert_eq!(
        (again.action, again.profile_id),
        (IdentifyAction::Attached, ann.profile_id)
    );

    let mut many: Vec<Identifier> = (0..150)
        .map(|i| id(Email, &format!("alias{i}@x.com")))
        .collect();
    many.push(id(InstagramId, "ig-ann"));
    let out = s
        .identify(org, &r, &input(&many, "", None, 30))
        .await
        .unwrap();
    assert_eq!(out.profile_id, ann.profile_id);
    assert_eq!(out.action, IdentifyAction::Attached);
    // The e-mail limit (5 per profile) keeps four of the aliases.
    assert_eq!(out.linked.len(), 4);
    assert_eq!(out.dropped.len(), 146);
}
