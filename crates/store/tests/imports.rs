//! Conformance suite for import runs (both engines): a run's life from
//! queued to done, failed or interrupted, its bounded list of rejected
//! rows, the active-run check per file, the customers of a file, the
//! sweep of runs whose server died, and organizations kept apart.

use bos_core::identity::import::Rejection;
use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::{OrgName, Slug};
use bos_store::identity::Traits;
use bos_store::import::{ImportRow, ImportSource};
use bos_store::import::{ImportStatus, ImportTally, NewImport, RowNote, KEPT_ROWS};
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

fn new_import(digest: &str) -> NewImport {
    NewImport {
        file_name: "contacts.csv".into(),
        digest: digest.into(),
        source: "import".into(),
        total_rows: 3,
        ignored_columns: vec!["notes".into()],
        started_by: "ann@example.com".into(),
        user_id: None,
    }
}

#[tokio::test]
async fn an_import_runs_from_queued_to_done() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let b = org(s, "beta").await;
    let rec = s.create_import(a, &new_import("d1"), 100).await.unwrap();
    assert_eq!(rec.status, ImportStatus::Queued);
    assert_eq!(s.import_record(a, rec.id).await.unwrap(), rec);
    // Another organization neither reads nor finds it.
    assert!(matches!(
        s.import_record(b, rec.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.list_imports(b, 10).await.unwrap().is_empty());
    assert!(s.active_import_of(b, "d1").await.unwrap().is_none());
    assert_eq!(
        s.active_import_of(a, "d1").await.unwrap().unwrap().id,
        rec.id
    );
    assert!(
        !s.update_import_progress(a, rec.id, &ImportTally::default(), 101)
            .await
            .unwrap(),
        "a queued import takes no progress"
    );

    assert!(s.start_import(a, rec.id, 110).await.unwrap());
    assert!(
        !s.start_import(a, rec.id, 111).await.unwrap(),
        "starts once"
    );
    let mut t = ImportTally {
        processed_rows: 2,
        created: 1,
        ..Default::default()
    };
    t.reject([Rejection {
        line: 3,
        reason: "no identifier".into(),
    }]);
    assert!(s.update_import_progress(a, rec.id, &t, 120).await.unwrap());
    let mid = s.import_record(a, rec.id).await.unwrap();
    assert_eq!(
        (mid.status, mid.updated_at, mid.percent()),
        (ImportStatus::Running, 120, 66)
    );
    assert_eq!(mid.tally, t);
    s.heartbeat_import(a, rec.id, 125).await.unwrap();
    assert_eq!(s.import_record(a, rec.id).await.unwrap().updated_at, 125);

    t.processed_rows = 3;
    t.matched = 1;
    t.warn([RowNote {
        line: 2,
        message: "phone '12' is not a phone number".into(),
    }]);
    assert!(s.finish_import(a, rec.id, &t, None, 130).await.unwrap());
    let done = s.import_record(a, rec.id).await.unwrap();
    assert_eq!(
        (done.status, done.finished_at, done.percent()),
        (ImportStatus::Done, Some(130), 100)
    );
    assert_eq!(done.tally, t);
    assert_eq!(done.ignored_columns, vec!["notes".to_string()]);
    assert!(
        !s.finish_import(a, rec.id, &t, Some("late"), 140)
            .await
            .unwrap(),
        "ends once"
    );
    assert!(s.active_import_of(a, "d1").await.unwrap().is_none());

    // Listed newest first, without the row lists.
    let second = s.create_import(a, &new_import("d2"), 200).await.unwrap();
    let list = s.list_imports(a, 10).await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second.id, rec.id]
    );
    assert!(list[1].tally.rejections.is_empty() && list[1].tally.rejected == 1);

    // A failure keeps its reason.
    assert!(s
        .fail_import(a, second.id, "cannot read", 210)
        .await
        .unwrap());
    let failed = s.import_record(a, second.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (ImportStatus::Failed, Some("cannot read"))
    );
}

#[tokio::test]
async fn rejected_rows_are_bounded_but_counted() {
    let mut t = ImportTally::default();
    t.reject((1..=KEPT_ROWS as u64 + 5).map(|line| Rejection {
        line,
        reason: "x".into(),
    }));
    assert_eq!(
        (t.rejected, t.rejections.len()),
        (KEPT_ROWS as u64 + 5, KEPT_ROWS)
    );
    assert_eq!(t.rejections.last().unwrap().line, KEPT_ROWS as u64);
    // And they survive the round trip.
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let rec = s.create_import(a, &new_import("d"), 1).await.unwrap();
    s.start_import(a, rec.id, 2).await.unwrap();
    s.finish_import(a, rec.id, &t, None, 3).await.unwrap();
    assert_eq!(s.import_record(a, rec.id).await.unwrap().tally, t);
}

#[tokio::test]
async fn the_sweep_interrupts_only_runs_that_stopped_reporting() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let b = org(s, "beta").await;
    let dead = s.create_import(a, &new_import("d1"), 1_000).await.unwrap();
    s.start_import(a, dead.id, 1_000).await.unwrap();
    let queued_dead = s.create_import(b, &new_import("d2"), 1_000).await.unwrap();
    let alive = s.create_import(a, &new_import("d3"), 1_000).await.unwrap();
    s.start_import(a, alive.id, 1_000).await.unwrap();
    s.heartbeat_import(a, alive.id, 50_000).await.unwrap();
    let finished = s.create_import(a, &new_import("d4"), 1_000).await.unwrap();
    s.start_import(a, finished.id, 1_000).await.unwrap();
    s.finish_import(a, finished.id, &ImportTally::default(), None, 1_500)
        .await
        .unwrap();

    assert_eq!(
        s.interrupt_stale_imports(10_000, "server stopped", 60_000)
            .await
            .unwrap(),
        2
    );
    for (o, id) in [(a, dead.id), (b, queued_dead.id)] {
        let r = s.import_record(o, id).await.unwrap();
        assert_eq!(
            (r.status, r.error.as_deref(), r.finished_at),
            (
                ImportStatus::Interrupted,
                Some("server stopped"),
                Some(60_000)
            )
        );
    }
    assert_eq!(
        s.import_record(a, alive.id).await.unwrap().status,
        ImportStatus::Running
    );
    assert_eq!(
        s.import_record(a, finished.id).await.unwrap().status,
        ImportStatus::Done
    );
    // An interrupted run takes no more progress: its task stops.
    assert!(!s
        .update_import_progress(a, dead.id, &ImportTally::default(), 61_000)
        .await
        .unwrap());
    // Interrupting one run by id (at shutdown).
    assert!(s
        .interrupt_import(a, alive.id, "shutdown", 62_000)
        .await
        .unwrap());
    assert!(!s
        .interrupt_import(a, alive.id, "shutdown", 62_000)
        .await
        .unwrap());
    assert!(
        !s.interrupt_import(b, finished.id, "shutdown", 62_000)
            .await
            .unwrap(),
        "not B's"
    );
}

#[tokio::test]
async fn the_customers_of_a_file_in_line_order() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let a = org(s, "acme").await;
    let b = org(s, "beta").await;
    let rules = IdentityRules::default();
    let row = |line: u64, email: &str, first: &str| ImportRow {
        line,
        identifiers: vec![Identifier::new(IdentifierKind::Email, email)],
        traits: Traits {
            first_name: first.into(),
            last_name: String::new(),
            company: String::new(),
            custom: Default::default(),
        },
    };
    let src = |hash: &str| ImportSource {
        source: "import".into(),
        file_name: "c.csv".into(),
        file_hash: hash.into(),
    };
    let rows = vec![
        row(2, "zed@x.com", "Zed"),
        row(3, "amy@x.com", "Amy"),
        row(4, "zed@x.com", "Zed"),
    ];
    s.import_rows(a, &rules, rows.clone(), &src("aaaa"), 1)
        .await
        .unwrap();
    s.import_rows(
        a,
        &rules,
        vec![row(2, "other@x.com", "Other")],
        &src("bbbb"),
        1,
    )
    .await
    .unwrap();
    s.import_rows(b, &rules, rows, &src("aaaa"), 1)
        .await
        .unwrap();
    let names = |v: Vec<bos_store::identity::Profile>| {
        v.into_iter().map(|p| p.first_name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.import_profiles(a, "aaaa", 10).await.unwrap()),
        vec!["Zed", "Amy"]
    );
    assert_eq!(
        names(s.import_profiles(a, "aaaa", 1).await.unwrap()),
        vec!["Zed"]
    );
    assert_eq!(
        names(s.import_profiles(a, "bbbb", 10).await.unwrap()),
        vec!["Other"]
    );
    assert!(s.import_profiles(a, "cccc", 10).await.unwrap().is_empty());
    // The same file in another organization names that organization's customers.
    let ours: Vec<Uuid> = s
        .import_profiles(a, "aaaa", 10)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    let theirs = s.import_profiles(b, "aaaa", 10).await.unwrap();
    assert_eq!(theirs.len(), 2);
    assert!(theirs.iter().all(|p| !ours.contains(&p.id)));
}
