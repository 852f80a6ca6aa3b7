//! Conformance suite for agents' storage (both engines): an agent is
//! created with its bound key, heartbeats and pauses are kept, interactions
//! are stored once per external id, the SQL totals equal `Totals::of` the
//! stored interactions for a day and a range, and no tenant sees another's.

use bos_core::agents::{AgentKind, AgentProvider, Heartbeat, Outcome, Period, Totals};
use bos_core::{OrgName, Slug};
use bos_store::agents::{AgentKey, NewAgent, NewInteraction, TranscriptLine};
use bos_store::testing::TestDb;
use bos_store::{Store, StoreError};
use uuid::Uuid;

const DAY: i64 = 86_400_000;
/// 2026-12-07T00:00:00Z.
const D0: i64 = 1_796_601_600_000;

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

async fn agent(s: &Store, org: Uuid, name: &str, hash: &[u8]) -> Uuid {
    s.create_agent(
        org,
        &NewAgent {
            name: name.into(),
            kind: AgentKind::Chat,
            provider: AgentProvider::Api,
            platform_agent_id: None,
            webhook_secret: None,
        },
        &AgentKey {
            display_prefix: format!("bos_{name}"),
            key_hash: hash.to_vec(),
            created_by: None,
        },
        1,
    )
    .await
    .unwrap()
    .0
    .id
}

fn interaction(agent: Uuid, n: i64, at: i64) -> NewInteraction {
    let outcome = [Outcome::Success, Outcome::Failure, Outcome::HandedOff][(n % 3) as usize];
    NewInteraction {
        agent_id: agent,
        profile_id: None,
        conversation_id: None,
        outcome,
        started_at: at,
        ended_at: Some(at + 60_000),
        first_response_ms: (n % 4 != 0).then_some(500 * n),
        cost_micros: 12_345 * n,
        tokens: 100 + n,
        csat: (n % 5 != 0).then_some((n % 11) as u8),
        sentiment: Some((n % 10) as f64 + 0.5),
        human_intervened: n % 7 == 0,
        summary: Some(format!("interaction {n}")),
        transcript: vec![TranscriptLine {
            role: "agent".into(),
            text: "Hello".into(),
        }],
        external_id: Some(format!("ext-{n}")),
    }
}

#[tokio::test]
async fn an_agent_is_made_with_its_bound_key_and_keeps_beats_and_pauses() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let id = agent(s, a, "Ava", b"hash-ava").await;
    let (key, _) = s
        .api_key_with_org_by_hash(b"hash-ava")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.agent_id, Some(id));
    assert_eq!(key.scopes, vec!["agent".to_string()]);

    let stored = s.agent(a, id).await.unwrap();
    assert_eq!((stored.last_heartbeat_at, stored.paused), (None, false));
    assert_eq!(stored.key_prefix.as_deref(), Some("bos_Ava"));

    let h = Heartbeat::new(
        "talking",
        Some("Call with Ann"),
        None,
        Some(900),
        Some(5_000),
        1_000,
    )
    .unwrap();
    s.agent_heartbeat(a, id, &h, 1_000).await.unwrap();
    let stored = s.agent(a, id).await.unwrap();
    assert_eq!(stored.last, Some(h));
    assert_eq!(stored.last_heartbeat_at, Some(1_000));

    let who = Uuid::now_v7();
    assert!(s
        .set_agent_paused(a, id, true, Some(who), "Owner", 2_000)
        .await
        .unwrap());
    // Pausing again keeps the first pause.
    assert!(!s
        .set_agent_paused(a, id, true, None, "Other", 3_000)
        .await
        .unwrap());
    let stored = s.agent(a, id).await.unwrap();
    assert_eq!(
        (
            stored.paused,
            stored.paused_at,
            stored.paused_by,
            stored.paused_by_name.as_deref()
        ),
        (true, Some(2_000), Some(who), Some("Owner"))
    );
    assert!(s
        .set_agent_paused(a, id, false, None, "", 4_000)
        .await
        .unwrap());
    assert!(!s.agent(a, id).await.unwrap().paused);
}

#[tokio::test]
async fn totals_equal_the_totals_of_the_stored_interactions() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let ava = agent(s, a, "Ava", b"h1").await;
    let bo = agent(s, a, "Bo", b"h2").await;
    // Three days of interactions, at uneven hours, for two agents.
    for n in 0..60i64 {
        let who = if n % 2 == 0 { ava } else { bo };
        let at = D0 - DAY + n * 3_700_000;
        let r = s
            .record_agent_interaction(a, &interaction(who, n, at), at)
            .await
            .unwrap();
        assert!(r.created);
    }
    // A retry of the same external id is stored once.
    let again = s
        .record_agent_interaction(a, &interaction(ava, 0, D0 - DAY), 5)
        .await
        .unwrap();
    assert!(!again.created);

    let today = Period::today(D0 + 3_600_000, "UTC").unwrap();
    let range = Period::dates("2026-12-06", "2026-12-08", "UTC").unwrap();
    for p in [today, today.previous(), range] {
        for who in [None, Some(ava), Some(bo)] {
            let stored = s.agent_interactions(a, who, p, 10_000).await.unwrap();
            let expect = Totals::of(&stored.iter().map(|i| i.metric()).collect::<Vec<_>>());
            assert_eq!(s.agent_totals(a, who, p).await.unwrap(), expect);
            assert!(stored.iter().all(|i| p.contains(i.new.started_at)));
            assert!(who.is_none_or(|w| stored.iter().all(|i| i.new.agent_id == w)));
        }
        let by_agent = s.agent_totals_by_agent(a, p).await.unwrap();
        let merged = by_agent
            .iter()
            .fold(Totals::default(), |t, (_, x)| t.merge(*x));
        assert_eq!(merged, s.agent_totals(a, None, p).await.unwrap());
    }
    let all = s.agent_interactions(a, None, range, 10_000).await.unwrap();
    assert_eq!(all.len(), 60);
    assert_eq!(all[1].new, interaction(bo, 1, all[1].new.started_at));
    assert!(s.agent_totals(a, None, today).await.unwrap().count > 0);
}

#[tokio::test]
async fn no_tenant_sees_another_tenants_agents() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let b = org(s, "beta").await;
    let ava = agent(s, a, "Ava", b"h1").await;
    s.record_agent_interaction(a, &interaction(ava, 1, D0), D0)
        .await
        .unwrap();
    assert!(s.agents(b).await.unwrap().is_empty());
    assert!(matches!(s.agent(b, ava).await, Err(StoreError::NotFound)));
    let h = Heartbeat::new("idle", None, None, None, None, D0).unwrap();
    assert!(matches!(
        s.agent_heartbeat(b, ava, &h, D0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_agent_paused(b, ava, true, None, "x", D0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.record_agent_interaction(b, &interaction(ava, 2, D0), D0)
            .await,
        Err(StoreError::NotFound)
    ));
    let day = Period::today(D0, "UTC").unwrap();
    assert_eq!(
        s.agent_totals(b, None, day).await.unwrap(),
        Totals::default()
    );
    assert_eq!(
        s.agent_totals(b, Some(ava), day).await.unwrap(),
        Totals::default()
    );
    assert!(s
        .agent_interactions(b, None, day, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.agent_totals(a, None, day).await.unwrap().count, 1);
}
