//! Where the keys that seal provider secrets at rest come from, and
//! `bos secrets rotate`.
//!
//! `secret_key` (`BOS_SECRET_KEY`) names the current key; without it the
//! key file (`secret_key_file`, by default `secret.key` in the data
//! directory, next to `bos.db`) holds it, and is created with a random key
//! and mode 0600 on first start. The file's first key is current, the
//! others stay readable; `secret_keys_old` (`BOS_SECRET_KEYS_OLD`) adds
//! readable keys too. Every replica of a PostgreSQL deployment must use the
//! same keys: set `BOS_SECRET_KEY` there.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use bos_store::secrets::{Keyring, SecretKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the current key was found.
pub enum KeySource {
    Config,
    File(PathBuf),
}

pub fn key_file(c: &Config) -> PathBuf {
    let f = c.get("secret_key_file").trim();
    if f.is_empty() {
        Path::new(c.get("data_dir")).join("secret.key")
    } else {
        PathBuf::from(f)
    }
}

fn parse_list(text: &str, what: &str) -> Result<Vec<SecretKey>> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|k| SecretKey::parse(k).with_context(|| format!("a key in {what} is unusable")))
        .collect()
}

/// Writes `keys` (the first current) to `path`, readable by its owner only.
pub fn write_key_file(path: &Path, keys: &[&SecretKey]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(&tmp)
        .with_context(|| format!("cannot write the key file {}", tmp.display()))?;
    writeln!(
        f,
        "# BOS secret keys (base64). The first seals provider secrets; the others only open\n\
         # values sealed before a rotation. Keep this file private and backed up with the database."
    )?;
    for k in keys {
        writeln!(f, "{}", k.to_base64())?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot replace the key file {}", path.display()))?;
    Ok(())
}

/// The configured keyring, creating the key file on first start.
pub fn keyring(c: &Config) -> Result<(Keyring, KeySource)> {
    let mut old = parse_list(
        c.get("secret_keys_old"),
        "secret_keys_old (BOS_SECRET_KEYS_OLD)",
    )?;
    let configured = c.get("secret_key").trim();
    if !configured.is_empty() {
        let current =
            SecretKey::parse(configured).context("secret_key (BOS_SECRET_KEY) is unusable")?;
        return Ok((Keyring::new(current, old), KeySource::Config));
    }
    let path = key_file(c);
    if !path.exists() {
        let k = SecretKey::generate();
        write_key_file(&path, &[&k])?;
        tracing::info!(file = %path.display(), key = k.id(), "created a secret key file");
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let mut keys = parse_list(&text, &path.display().to_string())?;
    if keys.is_empty() {
        bail!(
            "the key file {} holds no key: restore it from a backup, or set BOS_SECRET_KEY",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(&path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "the secret key file is readable by others: chmod 600 it");
            }
        }
    }
    let current = keys.remove(0);
    keys.append(&mut old);
    Ok((Keyring::new(current, keys), KeySource::File(path)))
}
