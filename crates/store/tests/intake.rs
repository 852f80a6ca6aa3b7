//! Intake storage conformance, on SQLite and (with `BOS_TEST_DATABASE_URL`)
//! PostgreSQL: sources per tenant, the system lookups, and ingest that
//! stores a retried event once.

use bos_core::{OrgName, Slug};
use bos_store::intake::{NewInbound, NewSource, SourceKind};
use bos_store::testing::TestDb;

async fn org(db: &TestDb, name: &str) -> bos_store::Org {
    db.store
        .create_org(
            &OrgName::parse(name).unwrap(),
            &Slug::from_name(name).unwrap(),
            1,
        )
        .await
        .unwrap()
}

fn ev(id: &str) -> NewInbound {
    NewInbound {
        external_id: id.into(),
        kind: "track".into(),
        payload: format!("{{\"messageId\":\"{id}\"}}"),
    }
}

#[tokio::test]
async fn sources_are_tenant_scoped_and_found_by_credential() {
    let db = TestDb::new().await.unwrap();
    let a = org(&db, "Intake A").await;
    let b = org(&db, "Intake B").await;
    let seg = db
        .store
        .create_source(
            a.id,
            NewSource {
                kind: SourceKind::Segment,
                name: "site".into(),
                secret: None,
                key_hash: Some(vec![7; 32]),
                config: None,
            },
            10,
        )
        .await
        .unwrap();
    let hook = db
        .store
        .create_source(
            a.id,
            NewSource {
                kind: SourceKind::Webhook,
                name: "forms".into(),
                secret: Some("whsec_x".into()),
                key_hash: None,
                config: None,
            },
            11,
        )
        .await
        .unwrap();
    let form = db
        .store
        .create_source(
            a.id,
            NewSource {
                kind: SourceKind::Form,
                name: "landing".into(),
                secret: Some("fk_public".into()),
                key_hash: Some(vec![9; 32]),
                config: bos_store::intake::form_config(Some("https://ex.com/thanks")),
            },
            12,
        )
        .await
        .unwrap();
    let by_key = db
        .store
        .source_by_key_hash(&[9; 32])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_key, form);
    assert_eq!(
        by_key.thank_you_url().as_deref(),
        Some("https://ex.com/thanks")
    );
    assert_eq!(seg.thank_you_url(), None);
    let listed = db.store.sources(a.id).await.unwrap();
    assert_eq!(
        listed,
        vec![seg.clone(), hook.clone(), form.clone()],
        "{}",
        db.engine_name()
    );
    assert!(db.store.sources(b.id).await.unwrap().is_empty());
    assert!(db.store.source(b.id, seg.id).await.is_err());
    assert_eq!(
        db.store.source_by_key_hash(&[7; 32]).await.unwrap(),
        Some(seg.clone())
    );
    assert_eq!(db.store.source_by_key_hash(&[8; 32]).await.unwrap(), None);
    assert_eq!(db.store.source_by_id(hook.id).await.unwrap(), Some(hook));
    // The write-key hash is unique across every tenant.
    let dup = db
        .store
        .create_source(
            b.id,
            NewSource {
                kind: SourceKind::Segment,
                name: "clash".into(),
                secret: None,
                key_hash: Some(vec![7; 32]),
                config: None,
            },
            12,
        )
        .await;
    assert!(dup.is_err());
    // Lookups are cached, yet a rotated key stops working at once: the
    // old key was just looked up (and is cached), and fails right after.
    assert!(db
        .store
        .source_by_key_hash(&[7; 32])
        .await
        .unwrap()
        .is_some());
    db.store
        .set_source_key_hash(a.id, seg.id, vec![6; 32])
        .await
        .unwrap();
    assert_eq!(db.store.source_by_key_hash(&[7; 32]).await.unwrap(), None);
    assert_eq!(
        db.store.source_by_key_hash(&[6; 32]).await.unwrap(),
        Some(seg.clone())
    );
    // Another tenant's id cannot rotate it.
    assert!(db
        .store
        .set_source_key_hash(b.id, seg.id, vec![5; 32])
        .await
        .is_err());
    assert_eq!(
        db.store.source_by_key_hash(&[6; 32]).await.unwrap(),
        Some(seg)
    );
}

#[tokio::test]
async fn ingest_stores_each_event_once() {
    let db = TestDb::new().await.unwrap();
    let a = org(&db, "Ingest A").await;
    let b = org(&db, "Ingest B").await;
    let src = db
        .store
        .create_source(
            a.id,
            NewSource {
                kind: SourceKind::Segment,
                name: "site".into(),
                secret: None,
                key_hash: Some(vec![1; 32]),
                config: None,
            },
            1,
        )
        .await
        .unwrap();
    let r = db
        .store
        .ingest(a.id, src.id, vec![ev("m1"), ev("m2"), ev("m1")], 100)
        .await
        .unwrap();
    assert_eq!((r.inserted, r.duplicates), (2, 1), "{}", db.engine_name());
    // The same request again (a retry) and, concurrently, twice more.
    let (x, y, z) = tokio::join!(
        db.store.ingest(a.id, src.id, vec![ev("m1"), ev("m2")], 200),
        db.store.ingest(a.id, src.id, vec![ev("m3")], 200),
        db.store.ingest(a.id, src.id, vec![ev("m3")], 200),
    );
    assert_eq!(x.unwrap().inserted, 0);
    assert_eq!(y.unwrap().inserted + z.unwrap().inserted, 1);
    assert_eq!(db.store.inbound_count(a.id, src.id).await.unwrap(), 3);
    assert_eq!(db.store.inbound_count(b.id, src.id).await.unwrap(), 0);
    let recent = db.store.recent_inbound(a.id, src.id, 10).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0].external_id, "m3");
    assert_eq!(recent[0].status, "pending");
    let m1 = recent.iter().find(|e| e.external_id == "m1").unwrap();
    assert_eq!(m1.payload, "{\"messageId\":\"m1\"}");
    assert_eq!(m1.received_at, 100, "the first copy is kept");
    assert!(db
        .store
        .recent_inbound(b.id, src.id, 10)
        .await
        .unwrap()
        .is_empty());
}
