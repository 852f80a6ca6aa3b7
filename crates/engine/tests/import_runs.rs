//! Background import runs without HTTP: an upload received as a stream of
//! byte chunks becomes an import that runs to its end, the same file is
//! refused while it runs, a refused file leaves no row, and the sweep
//! marks a run whose task is gone.

use bos_core::{OrgName, Slug};
use bos_engine::imports::runs::{clean_file_name, STALE_MS};
use bos_engine::imports::{ImportRuns, RunError, UploadError, UploadMeta};
use bos_engine::{Bus, TestClock};
use bos_store::import::{ImportStatus, NewImport};
use bos_store::testing::TestDb;
use std::sync::Arc;
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

fn meta() -> UploadMeta {
    UploadMeta {
        file_name: clean_file_name("C:\\exports\\contacts.csv"),
        source: "import".into(),
        started_by: "a test".into(),
        user_id: None,
    }
}

fn chunks(text: &str) -> impl futures_util::Stream<Item = Result<Vec<u8>, String>> + Unpin {
    // Two chunks, split inside a row: the spool must not care where.
    let (a, b) = text.as_bytes().split_at(text.len() / 2);
    futures_util::stream::iter(vec![Ok(a.to_vec()), Ok(b.to_vec())])
}

async fn setup() -> (TestDb, Arc<TestClock>, Arc<ImportRuns>, Uuid) {
    let db = TestDb::new().await.expect("test database");
    let org = db
        .store
        .create_org(
            &OrgName::parse("Runs").unwrap(),
            &Slug::from_name("Runs").unwrap(),
            T0,
        )
        .await
        .unwrap()
        .id;
    let clock = Arc::new(TestClock::new(T0));
    let dir = std::env::temp_dir().join(format!("bos-engine-runs-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = Arc::new(ImportRuns::new(
        db.store.clone(),
        Bus::new(db.store.clone()),
        clock.clone(),
        dir,
        1024 * 1024,
    ));
    (db, clock, runs, org)
}

#[tokio::test]
async fn an_upload_runs_to_its_end_and_is_counted() {
    let (db, _clock, runs, org) = setup().await;
    let csv = "email,first_name\nann@a.example,Ann\nbob@b.example,Bob\nnot-an-email,Nobody\n";
    let rec = runs.receive(org, chunks(csv), meta()).await.unwrap();
    assert_eq!(rec.status, ImportStatus::Queued);
    assert_eq!(rec.file_name, "contacts.csv");
    assert_eq!(rec.total_rows, 3);
    runs.wait(rec.id).await;
    let done = db.store.import_record(org, rec.id).await.unwrap();
    assert_eq!(done.status, ImportStatus::Done, "{:?}", done.error);
    assert_eq!(done.tally.processed_rows, 3);
    assert_eq!(done.tally.created, 2);
    assert_eq!(done.tally.rejected, 1);
    // Uploading it again imports nothing new.
    let again = runs.receive(org, chunks(csv), meta()).await.unwrap();
    runs.wait(again.id).await;
    let again = db.store.import_record(org, again.id).await.unwrap();
    assert_eq!((again.tally.created, again.tally.unchanged), (0, 2));
}

#[tokio::test]
async fn a_refused_file_leaves_no_row_and_a_running_one_is_not_started_twice() {
    let (db, clock, runs, org) = setup().await;
    let err = runs
        .receive(org, chunks("first_name,last_name\nAnn,Doe\n"), meta())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Upload(UploadError::Columns(_))),
        "{err:?}"
    );
    assert!(db.store.list_imports(org, 10).await.unwrap().is_empty());

    // A run whose task is gone: its row stays queued until the sweep.
    let csv = "email\nann@a.example\n";
    let digest = bos_engine::imports::driver::digest_of(csv.as_bytes()).unwrap();
    let stale = db
        .store
        .create_import(
            org,
            &NewImport {
                file_name: "contacts.csv".into(),
                digest,
                source: "import".into(),
                total_rows: 1,
                ignored_columns: vec![],
                started_by: "a dead server".into(),
                user_id: None,
            },
            T0,
        )
        .await
        .unwrap();
    let err = runs.receive(org, chunks(csv), meta()).await.unwrap_err();
    assert!(
        matches!(err, RunError::AlreadyRunning { id, .. } if id == stale.id),
        "{err:?}"
    );
    assert_eq!(runs.sweep().await.unwrap(), 0);
    clock.advance_ms(STALE_MS + 1);
    assert_eq!(runs.sweep().await.unwrap(), 1);
    let swept = db.store.import_record(org, stale.id).await.unwrap();
    assert_eq!(swept.status, ImportStatus::Interrupted);
}
