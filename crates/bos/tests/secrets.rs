//! Provider secrets at rest, through the `bos` binary: the first start
//! makes a key file readable by its owner only, seals what an older release
//! left in plaintext, and `bos secrets rotate` moves every value to a new
//! key that the file then names first. Runs on SQLite, or on PostgreSQL
//! with `BOS_TEST_DATABASE_URL`.

use bos_store::intake::{NewSource, SourceKind};
use bos_store::secrets::{Keyring, SecretKey};
use bos_store::{Store, StoreOptions};
use std::path::Path;
use std::process::Command;

const SHOPIFY_SECRET: &str = "shpss_Binary-Test-Secret-42";

fn bos(url: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bos"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("BOS_DATA_DIR", dir)
        .env("BOS_LOG", "error")
        .env_remove("BOS_SECRET_KEY")
        .env_remove("BOS_SECRET_KEY_FILE")
        .env_remove("BOS_SECRET_KEYS_OLD")
        .output()
        .expect("run bos");
    assert!(
        out.status.success(),
        "bos {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The keys in the key file, current first.
fn file_keys(path: &Path) -> Vec<SecretKey> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| SecretKey::parse(l).unwrap())
        .collect()
}

#[tokio::test]
async fn first_start_makes_a_private_key_file_seals_old_plaintext_and_rotation_moves_every_value() {
    let (url, _guard) = bos_store::testing::fresh_url().await.unwrap();
    let dir = std::env::temp_dir().join(format!("bos-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = StoreOptions {
        url: url.clone(),
        max_connections: 2,
    };
    // A database as an older release left it: a Shopify secret in plaintext.
    let store = Store::open(&opts).await.unwrap();
    let org = store
        .create_org(
            &bos_core::OrgName::parse("Secrets Test").unwrap(),
            &bos_core::Slug::parse("secrets-test").unwrap(),
            0,
        )
        .await
        .unwrap();
    let src = store
        .create_source(
            org.id,
            NewSource {
                kind: SourceKind::Shopify,
                name: "shop".into(),
                secret: Some("placeholder".into()),
                key_hash: None,
                config: None,
            },
            0,
        )
        .await
        .unwrap();
    store
        .put_plaintext_source_secret_for_test(org.id, src.id, SHOPIFY_SECRET)
        .await
        .unwrap();
    assert_eq!(
        store.dump_provider_secret_columns().await.unwrap(),
        vec![SHOPIFY_SECRET.to_string()]
    );

    // Any command that opens the database: the key file appears, 0600.
    bos(&url, &dir, &["org", "list", "--json"]);
    let key_file = dir.join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let first = file_keys(&key_file);
    assert_eq!(first.len(), 1);
    let dump = store.dump_provider_secret_columns().await.unwrap();
    assert!(
        dump[0].starts_with(&format!("bos1:{}:", first[0].id())),
        "{dump:?}"
    );
    assert!(!dump[0].contains(SHOPIFY_SECRET));
    // A second start keeps the same key (nothing to reseal).
    bos(&url, &dir, &["org", "list", "--json"]);
    assert_eq!(file_keys(&key_file)[0].id(), first[0].id());
    assert_eq!(store.dump_provider_secret_columns().await.unwrap(), dump);

    // Rotation: a new key first in the file, the old kept below it, and
    // every value sealed under the new one.
    let out = bos(&url, &dir, &["secrets", "rotate", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["resealed"], 1);
    let after = file_keys(&key_file);
    assert_eq!(after.len(), 2);
    assert_eq!(v["key_id"], after[0].id());
    assert_eq!(after[1].id(), first[0].id());
    let dump = store.dump_provider_secret_columns().await.unwrap();
    assert!(
        dump[0].starts_with(&format!("bos1:{}:", after[0].id())),
        "{dump:?}"
    );
    // The new key alone opens it; the old one no longer does.
    store.set_secret_keys(Keyring::new(after[0].clone(), vec![]));
    assert_eq!(
        store
            .source(org.id, src.id)
            .await
            .unwrap()
            .secret
            .as_deref(),
        Some(SHOPIFY_SECRET)
    );
    store.set_secret_keys(Keyring::new(first[0].clone(), vec![]));
    assert!(store.source(org.id, src.id).await.is_err());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
