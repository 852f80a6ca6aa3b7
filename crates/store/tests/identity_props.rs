//! Invariants of streaming resolution through the real store (both
//! engines): identity never crosses organizations, and replaying events
//! changes nothing. Each case runs on fresh databases.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::{OrgName, Slug};
use bos_store::identity::{IdentifyAction, IdentifyInput, NewEvent, Traits};
use bos_store::testing::TestDb;
use proptest::prelude::*;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Ev {
    org: usize,
    ids: Vec<(usize, u8)>,
}

fn to_input(i: usize, e: &Ev) -> IdentifyInput {
    let kinds = [
        IdentifierKind::Email,
        IdentifierKind::Phone,
        IdentifierKind::ShopifyCustomerId,
        IdentifierKind::AnonymousId,
    ];
    IdentifyInput {
        identifiers: e
            .ids
            .iter()
            .map(|(k, v)| Identifier::new(kinds[*k].clone(), format!("v{v}")))
            .collect(),
        traits: Traits::default(),
        source: "prop".into(),
        event: Some(NewEvent {
            kind: "page_view".into(),
            summary: format!("event {i}"),
            occurred_at: 1_000 + i as i64,
            data: "{}".into(),
            key: Some(format!("e{i}")),
            revenue_cents: 0,
            is_order: false,
        }),
        now: 1_000 + i as i64,
    }
}

/// Runs `events` (those of `only`, or all) and returns, per organization,
/// the partition of event indices by the profile they ended up on.
async fn run(events: &[Ev], only: Option<usize>, replay: bool) -> BTreeMap<usize, Vec<Vec<usize>>> {
    let db = TestDb::new().await.unwrap();
    let mut orgs = Vec::new();
    for n in 0..2 {
        orgs.push(
            db.store
                .create_org(
                    &OrgName::parse(&format!("Org {n}")).unwrap(),
                    &Slug::parse(&format!("org-{n}")).unwrap(),
                    1,
                )
                .await
                .unwrap()
                .id,
        );
    }
    let rules = IdentityRules::default();
    let rounds = if replay { 2 } else { 1 };
    for round in 0..rounds {
        for (i, e) in events.iter().enumerate() {
            if only.is_some_and(|o| o != e.org) {
                continue;
            }
            let out = db
                .store
                .identify(orgs[e.org], &rules, &to_input(i, e))
                .await
                .unwrap();
            if round == 1 {
                assert_eq!(
                    out.action,
                    IdentifyAction::Replayed,
                    "a replayed event changes nothing"
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for (o, org) in orgs.iter().enumerate() {
        let mut groups: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.iter().enumerate() {
            if e.org != o || only.is_some_and(|x| x != o) {
                continue;
            }
            let root = root_of(&db, *org, i).await;
            groups.entry(root).or_default().push(i);
        }
        let mut g: Vec<Vec<usize>> = groups.into_values().collect();
        g.sort();
        out.insert(o, g);
    }
    out
}

async fn root_of(db: &TestDb, org: Uuid, i: usize) -> Uuid {
    // The event's timeline entry carries its current root.
    let q = bos_store::identity::ProfileQuery {
        limit: 200,
        ..Default::default()
    };
    let p = db.store.list_profiles(org, &q).await.unwrap();
    for prof in p {
        let tl = db
            .store
            .timeline(
                org,
                prof.id,
                &bos_store::identity::TimelineQuery {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if tl.iter().any(|e| e.summary == format!("event {i}")) {
            return prof.id;
        }
    }
    panic!("event {i} is on no timeline");
}

fn arb_events() -> impl Strategy<Value = Vec<Ev>> {
    let ev = (
        0usize..2,
        proptest::collection::vec((0usize..4, 0u8..5), 1..3),
    )
        .prop_map(|(org, ids)| Ev { org, ids });
    proptest::collection::vec(ev, 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn never_across_organizations_and_replays_change_nothing(events in arb_events()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let together = run(&events, None, true).await;
            for o in 0..2 {
                let alone = run(&events, Some(o), false).await;
                assert_eq!(together[&o], alone[&o], "organization {o} resolved differently next to the other");
            }
        });
    }
}
