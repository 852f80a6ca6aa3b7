//! Configuration: one table lists every option with its environment
//! variable, TOML key, default and whether it is secret. Values come from
//! the defaults, then the optional TOML file (`--config` / `BOS_CONFIG`),
//! then the environment, then command-line flags — later wins.
//! `bos config` prints the table with the values in force.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct OptionSpec {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
}

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec { key: "listen", env: "BOS_LISTEN", default: "127.0.0.1:8080", secret: false, help: "Address and port the HTTP server listens on." },
    OptionSpec { key: "data_dir", env: "BOS_DATA_DIR", default: "./data", secret: false, help: "Directory for the embedded SQLite database (bos.db)." },
    OptionSpec { key: "database_url", env: "DATABASE_URL", default: "", secret: true, help: "postgres://user:pass@host/db to use PostgreSQL; empty means SQLite in data_dir." },
    OptionSpec { key: "public_url", env: "BOS_PUBLIC_URL", default: "", secret: false, help: "URL people use to reach BOS (for links and the CSRF origin check); default http://<listen>." },
    OptionSpec { key: "secure_cookies", env: "BOS_SECURE_COOKIES", default: "auto", secret: false, help: "auto | true | false. auto: Secure __Host- cookies for https and localhost; plain cookies otherwise." },
    OptionSpec { key: "session_idle_minutes", env: "BOS_SESSION_IDLE_MINUTES", default: "480", secret: false, help: "A session ends after this long without requests." },
    OptionSpec { key: "session_absolute_hours", env: "BOS_SESSION_ABSOLUTE_HOURS", default: "168", secret: false, help: "A session ends this long after sign-in, whatever the activity." },
    OptionSpec { key: "body_limit_kb", env: "BOS_BODY_LIMIT_KB", default: "1024", secret: false, help: "Largest accepted request body in KiB (413 above)." },
    OptionSpec { key: "import_limit_mb", env: "BOS_IMPORT_LIMIT_MB", default: "200", secret: false, help: "Largest contacts file accepted by an import upload (UI and API), in MiB (413 above). Uploads wait in <data_dir>/imports while they are imported." },
    OptionSpec { key: "db_max_connections", env: "BOS_DB_MAX_CONNECTIONS", default: "8", secret: false, help: "Read pool size on SQLite; pool size on PostgreSQL." },
    OptionSpec { key: "twilio_base_url", env: "BOS_TWILIO_BASE_URL", default: "https://api.twilio.com", secret: false, help: "Twilio's API base URL for sending SMS (point it at a test double in staging)." },
    OptionSpec { key: "meta_base_url", env: "BOS_META_BASE_URL", default: "https://graph.facebook.com", secret: false, help: "Meta's Graph API base URL for Instagram and Facebook replies (point it at a test double in staging)." },
    OptionSpec { key: "allow_private_outbound", env: "BOS_ALLOW_PRIVATE_OUTBOUND", default: "false", secret: false, help: "true lets tenants' SMTP hosts be on private networks or this machine (a local relay); false refuses them." },
    OptionSpec { key: "nudge_send_timeout_seconds", env: "BOS_NUDGE_SEND_TIMEOUT_SECONDS", default: "30", secret: false, help: "How long a provider may take to answer one nudge send; after that its outcome is unknown and it is not sent again." },
    OptionSpec { key: "nudge_sending_lease_ms", env: "BOS_NUDGE_SENDING_LEASE_MS", default: "120000", secret: false, help: "A nudge left sending this long by a crashed process becomes unknown (shown, never re-sent). Keep it above the send timeout." },
    OptionSpec { key: "job_concurrency", env: "BOS_JOB_CONCURRENCY", default: "16", secret: false, help: "Jobs (nudge steps and sends, lead timers) handled at once by this process. More sends bulk nudges faster, but a crash leaves every send then in flight unknown (never re-sent)." },
    OptionSpec { key: "job_lease_ms", env: "BOS_JOB_LEASE_MS", default: "300000", secret: false, help: "How long a claimed job is held before another replica may take it over (a crashed process's jobs wait this long)." },
    OptionSpec { key: "secret_key", env: "BOS_SECRET_KEY", default: "", secret: true, help: "32 random bytes in base64 (openssl rand -base64 32) that seal provider secrets at rest. Empty: the key file is used (created on first start). Required to be the same on every replica." },
    OptionSpec { key: "secret_key_file", env: "BOS_SECRET_KEY_FILE", default: "", secret: false, help: "Key file used when secret_key is empty; default <data_dir>/secret.key, created with mode 0600 on first start. Back it up with the database." },
    OptionSpec { key: "secret_keys_old", env: "BOS_SECRET_KEYS_OLD", default: "", secret: true, help: "Comma-separated older keys that still open secrets sealed before a rotation (see `bos secrets rotate`)." },
    OptionSpec { key: "header_read_timeout_seconds", env: "BOS_HEADER_READ_TIMEOUT_SECONDS", default: "10", secret: false, help: "A client must send a request's headers within this long (also the wait for the next request on a kept-alive connection); slower ones are disconnected." },
    OptionSpec { key: "idle_timeout_seconds", env: "BOS_IDLE_TIMEOUT_SECONDS", default: "60", secret: false, help: "A connection with no request being handled and no byte sent either way for this long is closed." },
    OptionSpec { key: "max_connections", env: "BOS_MAX_CONNECTIONS", default: "4096", secret: false, help: "Client connections served at once; more wait to be accepted. Keep it well below the process's open-file limit (ulimit -n)." },
    OptionSpec { key: "trusted_proxies", env: "BOS_TRUSTED_PROXIES", default: "", secret: false, help: "Reverse proxies (IP addresses or CIDR networks, comma-separated) whose X-Forwarded-For names the client; empty trusts none and the client is the TCP peer." },
    OptionSpec { key: "log", env: "BOS_LOG", default: "info,sqlx=warn", secret: false, help: "Log filter: a level, or target=level pairs separated by commas." },
    OptionSpec { key: "log_format", env: "BOS_LOG_FORMAT", default: "human", secret: false, help: "human | json." },
];

/// Resolved configuration, with where each value came from.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, (String, &'static str)>,
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut values: BTreeMap<&'static str, (String, &'static str)> = OPTIONS
            .iter()
            .map(|o| (o.key, (o.default.to_string(), "default")))
            .collect();
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("BOS_CONFIG").map(PathBuf::from));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            for (k, v) in table {
                let Some(spec) = OPTIONS.iter().find(|o| o.key == k) else {
                    bail!(
                        "unknown option '{k}' in {}: run `bos config` to list the options",
                        path.display()
                    );
                };
                let s = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => bail!(
                        "option '{k}' in {} must be a string, number or boolean, not a {}",
                        path.display(),
                        other.type_str()
                    ),
                };
                values.insert(spec.key, (s, "file"));
            }
        }
        for o in OPTIONS {
            if let Ok(v) = std::env::var(o.env) {
                values.insert(o.key, (v, "env"));
            }
        }
        let c = Config { values };
        c.validate()?;
        Ok(c)
    }

    pub fn set(&mut self, key: &'static str, value: String) {
        self.values.insert(key, (value, "flag"));
    }

    /// Whether `key` still has its default value (nothing set it).
    pub fn is_default(&self, key: &str) -> bool {
        self.values
            .get(key)
            .is_none_or(|(_, from)| *from == "default")
    }

    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map(|(v, _)| v.as_str()).unwrap_or("")
    }

    fn num(&self, key: &str) -> Result<i64> {
        self.get(key)
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| {
                format!(
                    "option {key} must be a positive whole number, not '{}'",
                    self.get(key)
                )
            })
    }

    pub fn validate(&self) -> Result<()> {
        for k in [
            "session_idle_minutes",
            "session_absolute_hours",
            "body_limit_kb",
            "import_limit_mb",
            "db_max_connections",
        ] {
            self.num(k)?;
        }
        if !matches!(self.get("secure_cookies"), "auto" | "true" | "false") {
            bail!("option secure_cookies must be auto, true or false");
        }
        if !matches!(self.get("log_format"), "human" | "json") {
            bail!("option log_format must be human or json");
        }
        // A send still `sending` after the lease is taken for one a crash
        // cut off and marked unknown: a lease shorter than a live send may
        // take (its timeout plus the five seconds' grace around it) would
        // mark sends that then succeed as unknown for good.
        let timeout_ms = self.num("nudge_send_timeout_seconds")?.saturating_mul(1000);
        let lease_ms = self.num("nudge_sending_lease_ms")?;
        if lease_ms <= timeout_ms.saturating_add(5_000) {
            bail!(
                "option nudge_sending_lease_ms ({lease_ms}) must be longer than a send may take: \
                 nudge_send_timeout_seconds ({} s) plus 5 s, so more than {} ms; raise the lease or lower the timeout",
                timeout_ms / 1000,
                timeout_ms.saturating_add(5_000)
            );
        }
        self.num("job_concurrency")?;
        self.serve_limits()?;
        self.trusted_proxies()?;
        Ok(())
    }

    pub fn listen(&self) -> &str {
        self.get("listen")
    }

    pub fn database_url(&self) -> String {
        let u = self.get("database_url").trim();
        if u.is_empty() {
            format!(
                "sqlite://{}",
                Path::new(self.get("data_dir")).join("bos.db").display()
            )
        } else {
            u.to_string()
        }
    }

    pub fn public_url(&self) -> String {
        let p = self.get("public_url").trim().trim_end_matches('/');
        if !p.is_empty() {
            return p.to_string();
        }
        let listen = self.listen();
        let listen = listen
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]");
        format!("http://{listen}")
    }

    pub fn secure_cookies(&self) -> bool {
        match self.get("secure_cookies") {
            "true" => true,
            "false" => false,
            _ => {
                let p = self.public_url();
                p.starts_with("https://")
                    || ["http://localhost", "http://127.", "http://[::1]"]
                        .iter()
                        .any(|pre| p.starts_with(pre))
            }
        }
    }

    pub fn store_options(&self) -> Result<bos_store::StoreOptions> {
        Ok(bos_store::StoreOptions {
            url: self.database_url(),
            max_connections: self.num("db_max_connections")? as u32,
        })
    }

    pub fn job_lease_ms(&self) -> Result<i64> {
        self.num("job_lease_ms")
    }

    pub fn job_concurrency(&self) -> Result<usize> {
        Ok(self.num("job_concurrency")?.min(100_000) as usize)
    }

    pub fn serve_limits(&self) -> Result<bos_web::ServeLimits> {
        Ok(bos_web::ServeLimits {
            header_read_timeout: std::time::Duration::from_secs(
                self.num("header_read_timeout_seconds")? as u64,
            ),
            idle_timeout: std::time::Duration::from_secs(self.num("idle_timeout_seconds")? as u64),
            max_connections: self.num("max_connections")?.min(1_000_000) as usize,
        })
    }

    pub fn trusted_proxies(&self) -> Result<bos_core::edge::TrustedProxies> {
        bos_core::edge::TrustedProxies::parse(self.get("trusted_proxies"))
            .map_err(|e| anyhow::anyhow!("option trusted_proxies: {e}"))
    }

    pub fn web(&self) -> Result<bos_web::WebConfig> {
        Ok(bos_web::WebConfig {
            secure_cookies: self.secure_cookies(),
            public_url: self.public_url(),
            session_idle_ms: self.num("session_idle_minutes")? * 60_000,
            session_absolute_ms: self.num("session_absolute_hours")? * 3_600_000,
            body_limit_bytes: self.num("body_limit_kb")? as usize * 1024,
            import_limit_bytes: self.num("import_limit_mb")? as u64 * 1024 * 1024,
            import_dir: Path::new(self.get("data_dir")).join("imports"),
            nudge_send_timeout_ms: (self.num("nudge_send_timeout_seconds")? * 1000) as u64,
            nudge_sending_lease_ms: self.num("nudge_sending_lease_ms")?,
            twilio_base_url: self
                .get("twilio_base_url")
                .trim_end_matches('/')
                .to_string(),
            meta_base_url: self.get("meta_base_url").trim_end_matches('/').to_string(),
            trusted_proxies: self.trusted_proxies()?,
            serve_limits: self.serve_limits()?,
            allow_private_outbound: match self.get("allow_private_outbound").trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" | "" => false,
                other => anyhow::bail!("allow_private_outbound is {other:?}; use true or false"),
            },
        })
    }

    /// The table for `bos config`: every option, its value and source,
    /// secrets masked.
    pub fn describe(&self) -> String {
        let mut out = String::from(
            "OPTION                  ENV                          SOURCE   VALUE (default)\n",
        );
        for o in OPTIONS {
            let (v, src) = self.values.get(o.key).cloned().unwrap_or_default();
            let shown = if o.secret && !v.is_empty() {
                "***".to_string()
            } else {
                v
            };
            out.push_str(&format!(
                "{:<23} {:<28} {:<8} {} ({}){}\n    {}\n",
                o.key,
                o.env,
                src,
                if shown.is_empty() {
                    "\"\"".into()
                } else {
                    shown
                },
                if o.default.is_empty() {
                    "\"\""
                } else {
                    o.default
                },
                if o.secret { " [secret]" } else { "" },
                o.help
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &str)]) -> Config {
        let mut values: BTreeMap<&'static str, (String, &'static str)> = OPTIONS
            .iter()
            .map(|o| (o.key, (o.default.to_string(), "default")))
            .collect();
        for (k, v) in pairs {
            values.insert(*k, (v.to_string(), "test"));
        }
        Config { values }
    }

    #[test]
    fn the_defaults_are_valid() {
        with(&[]).validate().unwrap();
    }

    #[test]
    fn a_sending_lease_shorter_than_a_send_is_refused_with_the_numbers() {
        let e = with(&[("nudge_sending_lease_ms", "20000")])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("nudge_sending_lease_ms (20000)"), "{e}");
        assert!(e.contains("more than 35000 ms"), "{e}");
        with(&[
            ("nudge_sending_lease_ms", "20000"),
            ("nudge_send_timeout_seconds", "10"),
        ])
        .validate()
        .unwrap();
    }

    #[test]
    fn trusted_proxies_and_serve_limits_are_read_and_checked() {
        let c = with(&[
            ("trusted_proxies", "10.0.0.0/8, 192.0.2.7"),
            ("header_read_timeout_seconds", "5"),
            ("max_connections", "100"),
        ]);
        c.validate().unwrap();
        let w = c.web().unwrap();
        assert!(w.trusted_proxies.trusts("10.1.2.3".parse().unwrap()));
        assert!(!w.trusted_proxies.trusts("192.0.2.8".parse().unwrap()));
        assert_eq!(w.serve_limits.header_read_timeout.as_secs(), 5);
        assert_eq!(w.serve_limits.max_connections, 100);
        let e = with(&[("trusted_proxies", "10.0.0.0/8, proxy.internal")])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("trusted_proxies") && e.contains("proxy.internal"),
            "{e}"
        );
        assert!(with(&[("idle_timeout_seconds", "0")]).validate().is_err());
    }

    #[test]
    fn job_concurrency_must_be_a_positive_number() {
        let e = with(&[("job_concurrency", "0")])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("job_concurrency"), "{e}");
    }
}
