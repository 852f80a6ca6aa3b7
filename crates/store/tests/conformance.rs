//! The store conformance suite: written once, run against SQLite always and
//! against PostgreSQL when `BOS_TEST_DATABASE_URL` is set (CI sets it). Each
//! test gets a fresh database.

use bos_core::{Email, OrgName, Role, ScopeSet, Slug};
use bos_store::testing::TestDb;
use bos_store::{SessionRecord, StoreError};

async fn db() -> TestDb {
    TestDb::new().await.expect("test database")
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

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

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = db().await;
    assert_eq!(
        db.store.migrate().await.unwrap(),
        0,
        "{}: second run applies nothing",
        db.engine_name()
    );
    db.store.ping().await.unwrap();
}

#[tokio::test]
async fn orgs_users_memberships() {
    let db = db().await;
    let s = &db.store;
    let a = org(&db, "Acme").await;
    let b = org(&db, "Beta Shop").await;
    assert!(matches!(
        s.create_org(
            &OrgName::parse("Acme again").unwrap(),
            &Slug::parse("acme").unwrap(),
            1
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let u = s
        .create_user(&email("ann@example.com"), "Ann", "hash", false, 5)
        .await
        .unwrap();
    assert!(matches!(
        s.create_user(&email("ANN@example.com"), "Dup", "hash", false, 5)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.user_by_email(&email("ann@example.com"))
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    s.upsert_membership(a.id, u.id, Role::Owner, 6)
        .await
        .unwrap();
    s.upsert_membership(b.id, u.id, Role::Member, 6)
        .await
        .unwrap();
    let orgs = s.user_orgs(u.id).await.unwrap();
    assert_eq!(orgs.len(), 2);
    assert_eq!(orgs[0].org.slug, "acme");
    assert_eq!(orgs[0].role, Role::Owner);
    assert_eq!(s.membership(b.id, u.id).await.unwrap(), Some(Role::Member));
    // The last owner can be neither demoted nor removed.
    assert!(matches!(
        s.set_role(a.id, u.id, Role::Admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.remove_member(a.id, u.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.membership(a.id, u.id).await.unwrap(),
        Some(Role::Owner),
        "refused change rolled back"
    );
    // Another tenant's member is not found.
    let v = s
        .create_user(&email("vic@example.com"), "Vic", "hash", true, 5)
        .await
        .unwrap();
    s.upsert_membership(b.id, v.id, Role::Member, 7)
        .await
        .unwrap();
    assert!(matches!(
        s.set_role(a.id, v.id, Role::Admin).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.remove_member(a.id, v.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.member(a.id, v.id).await,
        Err(StoreError::NotFound)
    ));
    s.remove_member(b.id, v.id).await.unwrap();
    assert_eq!(s.members(b.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sessions_end_at_password_change() {
    let db = db().await;
    let s = &db.store;
    let a = org(&db, "Acme").await;
    let u = s
        .create_user(&email("ann@example.com"), "Ann", "h1", false, 5)
        .await
        .unwrap();
    let rec = SessionRecord {
        token_hash: vec![1; 32],
        user_id: u.id,
        org_id: Some(a.id),
        csrf_token: "csrf".into(),
        created_at: 10,
        last_seen_at: 10,
        expires_at: 1000,
    };
    s.create_session(&rec).await.unwrap();
    assert_eq!(s.session(&[1; 32]).await.unwrap(), Some(rec.clone()));
    s.touch_session(&[1; 32], 20).await.unwrap();
    assert_eq!(s.session(&[1; 32]).await.unwrap().unwrap().last_seen_at, 20);
    s.set_password(u.id, "h2", false, 30).await.unwrap();
    assert_eq!(s.session(&[1; 32]).await.unwrap(), None);
    assert_eq!(s.user(u.id).await.unwrap().password_hash, "h2");
    s.create_session(&SessionRecord {
        token_hash: vec![2; 32],
        ..rec.clone()
    })
    .await
    .unwrap();
    assert_eq!(s.purge_expired(1000, 10_000, 10_000).await.unwrap(), 1);
}

#[tokio::test]
async fn login_failures() {
    let db = db().await;
    let s = &db.store;
    for t in 0..5 {
        s.record_login_failure("ann@example.com", 100 + t)
            .await
            .unwrap();
    }
    s.record_login_failure("bob@example.com", 100)
        .await
        .unwrap();
    assert_eq!(
        s.login_failures_since("ann@example.com", 101)
            .await
            .unwrap(),
        vec![102, 103, 104]
    );
    s.clear_login_failures("ann@example.com").await.unwrap();
    assert!(s
        .login_failures_since("ann@example.com", 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.login_failures_since("bob@example.com", 0)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn api_keys_are_tenant_scoped() {
    let db = db().await;
    let s = &db.store;
    let a = org(&db, "Acme").await;
    let b = org(&db, "Beta").await;
    let scopes = ScopeSet::parse("ingest,admin").unwrap();
    let k = s
        .create_api_key(a.id, "ci", "bos_abcdefgh", &[9; 32], &scopes, None, 50)
        .await
        .unwrap();
    let found = s.api_key_by_hash(&[9; 32]).await.unwrap().unwrap();
    let (with_org, o) = s.api_key_with_org_by_hash(&[9; 32]).await.unwrap().unwrap();
    assert_eq!((with_org.id, o.id, o.name.as_str()), (k.id, a.id, "Acme"));
    assert_eq!(found.id, k.id);
    assert_eq!(found.scopes, vec!["ingest", "admin"]);
    assert!(matches!(
        s.api_key(b.id, k.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.revoke_api_key(b.id, k.id, 60).await,
        Err(StoreError::NotFound)
    ));
    s.revoke_api_key(a.id, k.id, 60).await.unwrap();
    s.revoke_api_key(a.id, k.id, 70).await.unwrap();
    assert_eq!(s.api_key(a.id, k.id).await.unwrap().revoked_at, Some(60));
    assert!(s
        .api_key_with_org_by_hash(&[9; 32])
        .await
        .unwrap()
        .is_none());
    assert!(
        s.api_key_by_hash(&[9; 32]).await.unwrap().is_none(),
        "revoked keys fail at once"
    );
    assert!(matches!(
        s.create_api_key(a.id, "dup", "bos_x", &[9; 32], &scopes, None, 80)
            .await,
        Err(StoreError::Conflict(_))
    ));
}

/// Many concurrent writers: all land, and one failing write (a duplicate)
/// neither fails nor rolls back the writes committed beside it.
#[tokio::test]
async fn concurrent_writes_group_commit() {
    let db = db().await;
    let s = db.store.clone();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user{}@example.com", i % 150);
            s.create_user(&Email::parse(&name).unwrap(), "x", "h", false, i)
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, conflicts), (150, 50));
    for i in 0..150 {
        let e = email(&format!("user{i}@example.com"));
        assert!(s.user_by_email(&e).await.unwrap().is_some());
    }
}
