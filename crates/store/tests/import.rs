//! Conformance suite for bulk import (both engines): a batch import ends
//! exactly where streaming `identify` of the same rows ends, a second run
//! of the same file changes nothing, merges happen across rows and across
//! batches, and organizations never see each other's identifiers.

use bos_core::identity::{Identifier, IdentifierKind, IdentityRules};
use bos_core::{OrgName, Slug};
use bos_store::identity::{
    IdentifyAction, IdentifyInput, ProfileQuery, ProfileSort, TimelineQuery, Traits,
};
use bos_store::import::{ImportCounts, ImportRow, ImportSource};
use bos_store::testing::TestDb;
use bos_store::Store;
use uuid::Uuid;

use IdentifierKind::*;

const NOW: i64 = 1_700_000_000_000;

fn id(k: IdentifierKind, v: &str) -> Identifier {
    Identifier::new(k, v)
}

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

fn source(hash: &str) -> ImportSource {
    ImportSource {
        source: "import".into(),
        file_name: "contacts.csv".into(),
        file_hash: hash.into(),
    }
}

fn row(line: u64, ids: &[Identifier], first: &str) -> ImportRow {
    ImportRow {
        line,
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
    }
}

/// Rows drawn from small pools of identifiers, so that rows attach to and
/// merge with each other, within a batch and across batches, and the
/// per-profile limits (one Shopify id) and the blocklist come into play.
fn generated_rows(n: u64, seed: u64) -> Vec<ImportRow> {
    let mut x = seed;
    let mut next = move |m: u64| {
        // xorshift: deterministic, no dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    (0..n)
        .map(|i| {
            let mut ids = Vec::new();
            let k = 1 + next(3);
            for _ in 0..k {
                ids.push(match next(9) {
                    0..=2 => id(Email, &format!("p{}@example.org", next(120))),
                    3..=4 => id(Phone, &format!("+1415555{:04}", next(90))),
                    5 => id(InstagramId, &format!("{}", 1 + next(40))),
                    6 => id(ShopifyCustomerId, &format!("{}", 1 + next(60))),
                    7 => id(AnonymousId, &format!("anon-{}", next(500))),
                    _ => {
                        if next(4) == 0 {
                            id(Email, "test@test.com")
                        } else {
                            id(Email, &format!("u{i}@example.org"))
                        }
                    }
                });
            }
            let first = ["", "Ann", "Bob", "Cy"][next(4) as usize];
            row(i + 2, &ids, first)
        })
        .collect()
}

/// Everything observable about an organization's people, independent of
/// ids: per current profile its fields, identities, member count, the file
/// lines on its timeline, and how many merges explain it.
async fn snapshot(s: &Store, org: Uuid) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_profiles(
                org,
                &ProfileQuery {
                    sort: Some(ProfileSort::Created),
                    after: after.clone(),
                    limit: 200,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.name_lc(), last.id));
        for p in page {
            let mut ids: Vec<String> = s
                .profile_identities(org, p.id)
                .await
                .unwrap()
                .into_iter()
                .map(|l| format!("{}:{}@{}", l.kind, l.value, l.source))
                .collect();
            ids.sort();
            let tl = s
                .timeline(
                    org,
                    p.id,
                    &TimelineQuery {
                        limit: 500,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut lines: Vec<i64> = tl
                .iter()
                .filter(|e| e.kind == "import")
                .map(|e| {
                    let d: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                    d["line"].as_i64().unwrap()
                })
                .collect();
            lines.sort();
            let merges = tl.iter().filter(|e| e.kind == "merge").count();
            let members = s.cluster_members(org, p.id).await.unwrap().len();
            out.push(format!(
                "{}|{}|{}|{}|{}|{}|active {}|members {members}|merges {merges}|lines {lines:?}|ids {ids:?}",
                p.first_name,
                p.last_name,
                p.display_name,
                p.company,
                p.primary_email,
                p.primary_phone,
                p.last_active_at
            ));
        }
    }
    out.sort();
    out
}

/// Streams rows one by one through `identify`, counting as import counts.
async fn stream(
    s: &Store,
    org: Uuid,
    rules: &IdentityRules,
    rows: &[ImportRow],
    src: &ImportSource,
) -> ImportCounts {
    let mut c = ImportCounts::default();
    for r in rows {
        c.rows += 1;
        if r.identifiers.iter().all(|i| rules.blocked(i)) {
            continue;
        }
        let out = s
            .identify(
                org,
                rules,
                &IdentifyInput {
                    identifiers: r.identifiers.clone(),
                    traits: r.traits.clone(),
                    source: src.source.clone(),
                    event: Some(src.event(r.line, NOW)),
                    now: NOW,
                },
            )
            .await
            .unwrap();
        match out.action {
            IdentifyAction::Created => c.created += 1,
            IdentifyAction::Attached => c.attached += 1,
            IdentifyAction::Merged => c.merged += 1,
            IdentifyAction::Replayed => c.replayed += 1,
        }
        c.absorbed += out.merged.len() as u64;
        c.linked += out.linked.len() as u64;
        c.dropped += out.dropped.len() as u64;
    }
    c
}

async fn import(
    s: &Store,
    org: Uuid,
    rules: &IdentityRules,
    rows: &[ImportRow],
    src: &ImportSource,
    batch: usize,
) -> ImportCounts {
    let mut total = ImportCounts::default();
    for chunk in rows.chunks(batch) {
        total.add(
            s.import_rows(org, rules, chunk.to_vec(), src, NOW)
                .await
                .unwrap(),
        );
    }
    total
}

#[tokio::test]
async fn import_ends_where_streaming_identify_ends() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let rows = generated_rows(400, 0x9e37_79b9_7f4a_7c15);
    let src = source("feedc0de");
    // Some people exist before the import (from streaming events).
    let seed = generated_rows(40, 42);
    let seed_src = source("5eed");

    let (a, b, c) = (
        org(s, "streamed").await,
        org(s, "batches").await,
        org(s, "one-batch").await,
    );
    for o in [a, b, c] {
        stream(s, o, &rules, &seed, &seed_src).await;
    }
    let streamed = stream(s, a, &rules, &rows, &src).await;
    let in_batches = import(s, b, &rules, &rows, &src, 37).await;
    let at_once = import(s, c, &rules, &rows, &src, rows.len()).await;

    let without_rejections = |mut x: ImportCounts| {
        x.rejected.clear();
        x
    };
    assert_eq!(
        without_rejections(in_batches.clone()),
        streamed,
        "{}",
        db.engine_name()
    );
    assert_eq!(
        without_rejections(at_once.clone()),
        streamed,
        "{}",
        db.engine_name()
    );
    // The data really exercises every outcome.
    assert!(
        streamed.created > 0 && streamed.attached > 0 && streamed.merged > 0,
        "{streamed:?}"
    );
    assert!(
        streamed.dropped > 0,
        "limits and the blocklist come into play: {streamed:?}"
    );

    let snap_a = snapshot(s, a).await;
    assert_eq!(snapshot(s, b).await, snap_a, "{}", db.engine_name());
    assert_eq!(snapshot(s, c).await, snap_a, "{}", db.engine_name());
}

#[tokio::test]
async fn importing_the_same_file_again_changes_nothing() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let o = org(s, "acme").await;
    let rows = generated_rows(150, 7);
    let src = source("abc123");
    let first = import(s, o, &rules, &rows, &src, 64).await;
    assert_eq!(first.replayed, 0);
    let before = snapshot(s, o).await;
    let profiles = s.count_profiles(o).await.unwrap();

    // Another batch size and a later clock: still every row a replay.
    let mut again = ImportCounts::default();
    for chunk in rows.chunks(23) {
        again.add(
            s.import_rows(o, &rules, chunk.to_vec(), &src, NOW + 60_000)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        again.replayed,
        rows.len() as u64 - first.rejected.len() as u64,
        "{again:?}"
    );
    assert_eq!(
        (again.created, again.attached, again.merged, again.linked),
        (0, 0, 0, 0)
    );
    assert_eq!(s.count_profiles(o).await.unwrap(), profiles);
    assert_eq!(snapshot(s, o).await, before, "{}", db.engine_name());

    // The same line twice in one batch is a replay too.
    let dup = vec![
        row(999, &[id(Email, "twice@x.org")], ""),
        row(999, &[id(Email, "twice@x.org")], ""),
    ];
    let c = s.import_rows(o, &rules, dup, &src, NOW).await.unwrap();
    assert_eq!((c.created, c.replayed), (1, 1));
}

#[tokio::test]
async fn rows_merge_within_a_batch_and_across_batches() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let ann = |l| row(l, &[id(Email, "ann@x.org")], "Ann");
    let phone = |l| row(l, &[id(Phone, "+14155552671")], "");
    let both = |l| row(l, &[id(Email, "ann@x.org"), id(Phone, "+14155552671")], "");

    // Within one batch.
    let o = org(s, "one").await;
    let c = s
        .import_rows(
            o,
            &rules,
            vec![ann(2), phone(3), both(4)],
            &source("m1"),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        (c.created, c.attached, c.merged, c.absorbed),
        (2, 0, 1, 1),
        "{c:?}"
    );
    assert_eq!(s.count_profiles(o).await.unwrap(), 1);

    // Across batches: each row its own transaction.
    let o2 = org(s, "two").await;
    let mut t = ImportCounts::default();
    for r in [
        ann(2),
        phone(3),
        both(4),
        row(
            5,
            &[id(Email, "ANN-other@x.org"), id(Phone, "+14155552671")],
            "",
        ),
    ] {
        t.add(
            s.import_rows(o2, &rules, vec![r], &source("m2"), NOW)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        (t.created, t.attached, t.merged, t.absorbed),
        (2, 1, 1, 1),
        "{t:?}"
    );
    let people = s
        .list_profiles(
            o2,
            &ProfileQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(people.len(), 1);
    let p = &people[0];
    assert_eq!(
        (
            p.first_name.as_str(),
            p.primary_email.as_str(),
            p.primary_phone.as_str()
        ),
        ("Ann", "ann@x.org", "+14155552671")
    );
    assert_eq!(s.profile_identities(o2, p.id).await.unwrap().len(), 3);
    let merges = s.profile_merges(o2, p.id).await.unwrap();
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].actor, "import");
    // The merge is reversible like any other.
    s.unmerge(o2, merges[0].id, "ann@example.com", NOW + 1)
        .await
        .unwrap();
    assert_eq!(s.count_profiles(o2).await.unwrap(), 2);
}

#[tokio::test]
async fn organizations_do_not_share_identities() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let (a, b) = (org(s, "alpha").await, org(s, "beta").await);
    let rows = generated_rows(120, 99);
    let src = source("same-file");
    let ca = import(s, a, &rules, &rows, &src, 50).await;
    // The same file in another organization is not a replay there, and
    // finds none of the first organization's identifiers.
    let cb = import(s, b, &rules, &rows, &src, 50).await;
    assert_eq!(ca, cb, "{}", db.engine_name());
    assert_eq!(cb.replayed, 0);
    assert_eq!(snapshot(s, a).await, snapshot(s, b).await);
    let c = s
        .import_rows(
            b,
            &rules,
            vec![row(1000, &[id(Email, "only-in-b@x.org")], "")],
            &src,
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(c.created, 1);
    assert_eq!(
        s.count_profiles(a).await.unwrap() + 1,
        s.count_profiles(b).await.unwrap()
    );
}

#[tokio::test]
async fn unresolvable_rows_are_rejected_with_their_line() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let o = org(s, "acme").await;
    let rows = vec![
        row(2, &[id(Email, "test@test.com")], "Blocked"),
        row(3, &[], "Nobody"),
        row(
            4,
            &[id(Email, "test@test.com"), id(Email, "real@x.org")],
            "Real",
        ),
    ];
    let c = s
        .import_rows(o, &rules, rows, &source("r"), NOW)
        .await
        .unwrap();
    assert_eq!(
        c.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(
        c.rejected[0].reason.contains("blocklist"),
        "{:?}",
        c.rejected
    );
    assert_eq!((c.created, c.dropped), (1, 1));
    assert_eq!(s.count_profiles(o).await.unwrap(), 1);
}

#[tokio::test]
async fn an_import_into_no_organization_writes_nothing_and_leaves_foreign_keys_enforced() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let o = org(s, "real").await;
    let ghost = Uuid::now_v7();
    let rows = vec![row(2, &[id(Email, "nobody@x.org")], "No")];

    // SQLite writes import batches with foreign keys off: the batch itself
    // must refuse an organization that does not exist.
    let r = s
        .import_rows(ghost, &rules, rows.clone(), &source("g1"), NOW)
        .await;
    assert!(
        matches!(r, Err(bos_store::StoreError::NotFound)),
        "{r:?} on {}",
        db.engine_name()
    );

    // A real import, then a write on the same connection: foreign keys
    // are enforced again, so a profile under no organization is refused.
    let c = s
        .import_rows(o, &rules, rows, &source("g1"), NOW)
        .await
        .unwrap();
    assert_eq!(c.created, 1);
    let stray = IdentifyInput {
        identifiers: vec![id(Email, "stray@x.org")],
        traits: Traits::default(),
        source: "api".into(),
        event: None,
        now: NOW,
    };
    let r = s.identify(ghost, &rules, &stray).await;
    assert!(r.is_err(), "{r:?} on {}", db.engine_name());
    assert_eq!(s.count_profiles(o).await.unwrap(), 1);
}

#[tokio::test]
async fn rows_the_caller_thought_imported_are_still_resolved() {
    let db = TestDb::new().await.unwrap();
    let s = &db.store;
    let rules = IdentityRules::default();
    let o = org(s, "acme").await;
    let rows = generated_rows(120, 11);
    let src = source("skip1");
    assert!(s.imported_lines(o, "skip1").await.unwrap().is_empty());

    // Told every line was imported before (as after a person's erasure,
    // whose import entry went with them), none was: each row must still
    // end where streaming ends, through the unprepared path.
    let mut by_skip = ImportCounts::default();
    for chunk in rows.chunks(40) {
        let b = bos_store::import::prepare(&rules, &src, chunk.to_vec(), |_| true);
        by_skip.add(s.import_prepared(o, &rules, b, &src, NOW).await.unwrap());
    }
    let p = org(s, "plain").await;
    let plain = import(s, p, &rules, &rows, &src, 40).await;
    assert_eq!(
        (
            by_skip.created,
            by_skip.attached,
            by_skip.merged,
            by_skip.linked,
            by_skip.rejected.len()
        ),
        (
            plain.created,
            plain.attached,
            plain.merged,
            plain.linked,
            plain.rejected.len()
        ),
        "{}",
        db.engine_name()
    );
    assert_eq!(snapshot(s, o).await, snapshot(s, p).await);

    // And the lines now imported are the ones the store reports.
    let lines = s.imported_lines(o, "skip1").await.unwrap();
    let expected: std::collections::HashSet<u64> = rows
        .iter()
        .map(|r| r.line)
        .filter(|l| !plain.rejected.iter().any(|x| x.line == *l))
        .collect();
    assert_eq!(lines, expected);
    assert!(s.imported_lines(o, "other").await.unwrap().is_empty());
}
