//! `bos leads backfill`, through the binary: on a database whose customers
//! came in without leads (an older release, an import), customers with
//! orders become converted leads with the reason and the others new ones;
//! a second run changes nothing. Runs on SQLite, or on PostgreSQL with
//! `BOS_TEST_DATABASE_URL`.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::leads::LeadState;
use bos_store::identity::{IdentifyInput, NewEvent, Traits};
use bos_store::{Store, StoreOptions};
use std::path::Path;
use std::process::Command;

fn bos(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bos"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("BOS_DATA_DIR", dir)
        .env("BOS_LOG", "error")
        .output()
        .expect("run bos");
    assert!(
        out.status.success(),
        "bos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn customer(s: &Store, org: uuid::Uuid, email: &str, order: bool) -> uuid::Uuid {
    s.identify(
        org,
        &IdentityRules::default(),
        &IdentifyInput {
            identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
            traits: Traits::default(),
            source: "import".into(),
            event: order.then(|| NewEvent {
                kind: "purchase".into(),
                summary: "Order imported".into(),
                occurred_at: 5,
                data: "{}".into(),
                key: Some(format!("order-{email}")),
                revenue_cents: 1_200,
                is_order: true,
            }),
            now: 10,
        },
    )
    .await
    .unwrap()
    .profile_id
}

#[tokio::test]
async fn backfill_converts_customers_with_orders_once() {
    let (url, _guard) = bos_store::testing::fresh_url().await.unwrap();
    let dir = std::env::temp_dir().join(format!("bos-leads-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = StoreOptions {
        url: url.clone(),
        max_connections: 2,
    };
    let store = Store::open(&opts).await.unwrap();
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Leads Test").unwrap(),
            &bos_core::Slug::parse("leads-test").unwrap(),
            0,
        )
        .await
        .unwrap()
        .id;
    let buyer = customer(&store, org, "buyer@leads.test", true).await;
    let visitor = customer(&store, org, "visitor@leads.test", false).await;
    store.close().await;

    let first: serde_json::Value = serde_json::from_str(&bos(
        &url,
        &dir,
        &["leads", "backfill", "--org", "leads-test", "--json"],
    ))
    .unwrap();
    assert_eq!(
        first,
        serde_json::json!([{"org": "leads-test", "converted": 1, "created_new": 1}])
    );
    let again: serde_json::Value =
        serde_json::from_str(&bos(&url, &dir, &["leads", "backfill", "--json"])).unwrap();
    assert_eq!(
        again,
        serde_json::json!([{"org": "leads-test", "converted": 0, "created_new": 0}])
    );
    let text = bos(&url, &dir, &["leads", "backfill"]);
    assert!(text.contains("0 customer(s) marked converted"), "{text}");

    let store = Store::open(&opts).await.unwrap();
    let lead = store.lead(org, buyer).await.unwrap().unwrap();
    assert_eq!(lead.state, LeadState::Converted);
    let h = store.lead_history(org, buyer).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].reason, "1 order on record when lead tracking began");
    assert_eq!(
        store.lead(org, visitor).await.unwrap().unwrap().state,
        LeadState::New
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
