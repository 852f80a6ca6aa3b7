//! Lead states that match the data (both engines): customers who came in
//! other than through the event flow (an import, the demo's seed, records
//! from before leads existed) get a lead, `converted` with the reason when
//! they have orders and `new` otherwise; Intake's counts then agree with
//! the customers list; running the backfill again changes nothing; and a
//! lead a person already decided on is never moved.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::leads::{Input, LeadState};
use bos_core::{OrgName, Slug};
use bos_store::identity::{IdentifyInput, NewEvent, Traits};
use bos_store::testing::TestDb;
use bos_store::Store;
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

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

/// An imported customer with `orders` orders on record.
async fn imported(s: &Store, org: Uuid, email: &str, orders: u32) -> Uuid {
    let mut id = None;
    for i in 0..orders.max(1) {
        let event = (orders > 0).then(|| NewEvent {
            kind: "purchase".into(),
            summary: "Order imported".into(),
            occurred_at: T0 - 1_000 + i64::from(i),
            data: "{}".into(),
            key: Some(format!("{email}-{i}")),
            revenue_cents: 2_500,
            is_order: true,
        });
        let out = s
            .identify(
                org,
                &IdentityRules::default(),
                &IdentifyInput {
                    identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
                    traits: Traits::default(),
                    source: "import".into(),
                    event,
                    now: T0,
                },
            )
            .await
            .unwrap();
        id = Some(out.profile_id);
    }
    id.unwrap()
}

fn count(counts: &[(String, i64)], state: &str) -> i64 {
    counts
        .iter()
        .find(|(s, _)| s == state)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test]
async fn customers_with_orders_become_converted_leads_once_and_the_counts_agree() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let acme = org(s, "acme").await;
    let other = org(s, "other").await;
    let buyer = imported(s, acme, "buyer@acme.test", 3).await;
    let once = imported(s, acme, "once@acme.test", 1).await;
    let browser = imported(s, acme, "browser@acme.test", 0).await;
    let won = imported(s, acme, "won@acme.test", 0).await;
    let theirs = imported(s, other, "buyer@other.test", 2).await;
    // A person decided on one lead already: it is never moved.
    s.lead_action(acme, won, Input::MarkLost, "ann@acme.test".into(), T0)
        .await
        .unwrap();
    assert!(
        s.lead(acme, buyer).await.unwrap().is_none(),
        "no lead before"
    );

    let done = s.sync_lead_states(acme, "backfill", T0 + 5).await.unwrap();
    assert_eq!((done.converted, done.created_new), (2, 1), "{done:?}");
    let lead = s.lead(acme, buyer).await.unwrap().expect("a lead");
    assert_eq!(lead.state, LeadState::Converted);
    let h = s.lead_history(acme, buyer).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].from_state, h[0].to_state, h[0].actor.as_str()),
        (LeadState::New, LeadState::Converted, "backfill")
    );
    assert_eq!(h[0].reason, "3 orders on record when lead tracking began");
    let h = s.lead_history(acme, once).await.unwrap();
    assert_eq!(h[0].reason, "1 order on record when lead tracking began");
    assert_eq!(
        s.lead(acme, browser).await.unwrap().unwrap().state,
        LeadState::New
    );
    assert_eq!(
        s.lead(acme, won).await.unwrap().unwrap().state,
        LeadState::Lost
    );
    // The customers list and the profile say the same.
    let p = s.profile(acme, buyer).await.unwrap();
    assert_eq!(p.lead_state, "converted");
    // Intake counts every customer, in the state the data calls for.
    let (states, _) = s.lead_counts(acme).await.unwrap();
    let total: i64 = states.iter().map(|(_, n)| n).sum();
    assert_eq!(total, s.count_profiles(acme).await.unwrap());
    assert_eq!(
        (
            count(&states, "converted"),
            count(&states, "new"),
            count(&states, "lost")
        ),
        (2, 1, 1)
    );
    // The other tenant was not touched.
    assert!(s.lead(other, theirs).await.unwrap().is_none());

    // Again: nothing to do, nothing recorded twice.
    let again = s.sync_lead_states(acme, "backfill", T0 + 9).await.unwrap();
    assert_eq!((again.converted, again.created_new), (0, 0));
    assert_eq!(s.lead_history(acme, buyer).await.unwrap().len(), 1);

    // An open lead whose orders arrived by import later converts too.
    s.lead_action(acme, won, Input::Reopen, "ann@acme.test".into(), T0 + 10)
        .await
        .unwrap();
    imported(s, acme, "won@acme.test", 1).await;
    let late = s.sync_lead_states(acme, "import", T0 + 20).await.unwrap();
    assert_eq!((late.converted, late.created_new), (1, 0));
    assert_eq!(
        s.lead(acme, won).await.unwrap().unwrap().state,
        LeadState::Converted
    );
}
