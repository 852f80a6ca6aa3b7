//! Schema migrations, one ordered list per engine, embedded in the binary.
//!
//! A tiny runner instead of `sqlx::migrate!`: it needs no macro crate, keeps
//! both engines on one code path, and refuses to start when an applied
//! migration's text has changed (never edit an applied migration: add one).

use crate::StoreError;

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "platform",
        sql: include_str!("../migrations/sqlite/0001_platform.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sql: include_str!("../migrations/sqlite/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "imports",
        sql: include_str!("../migrations/sqlite/0003_imports.sql"),
    },
    Migration {
        version: 4,
        name: "jobs",
        sql: include_str!("../migrations/sqlite/0004_jobs.sql"),
    },
    Migration {
        version: 5,
        name: "index diet",
        sql: include_str!("../migrations/sqlite/0005_index_diet.sql"),
    },
    Migration {
        version: 6,
        name: "intake",
        sql: include_str!("../migrations/sqlite/0006_intake.sql"),
    },
    Migration {
        version: 7,
        name: "forms",
        sql: include_str!("../migrations/sqlite/0007_forms.sql"),
    },
    Migration {
        version: 8,
        name: "pipeline",
        sql: include_str!("../migrations/sqlite/0008_pipeline.sql"),
    },
    Migration {
        version: 9,
        name: "nudge",
        sql: include_str!("../migrations/sqlite/0009_nudge.sql"),
    },
    // SQLite only: PostgreSQL tables have no rowid to drop.
    Migration {
        version: 10,
        name: "links without rowid",
        sql: include_str!("../migrations/sqlite/0010_links_without_rowid.sql"),
    },
    Migration {
        version: 11,
        name: "hook replays",
        sql: include_str!("../migrations/sqlite/0011_hook_replays.sql"),
    },
    Migration {
        version: 12,
        name: "invitations",
        sql: include_str!("../migrations/sqlite/0012_invitations.sql"),
    },
    Migration {
        version: 14,
        name: "groups",
        sql: include_str!("../migrations/sqlite/0014_groups.sql"),
    },
    Migration {
        version: 18,
        name: "inbox",
        sql: include_str!("../migrations/sqlite/0018_inbox.sql"),
    },
    Migration {
        version: 19,
        name: "meta sources",
        sql: include_str!("../migrations/sqlite/0019_meta_sources.sql"),
    },
    Migration {
        version: 20,
        name: "inbox replies",
        sql: include_str!("../migrations/sqlite/0020_inbox_replies.sql"),
    },
    Migration {
        version: 22,
        name: "nudge_trust",
        sql: include_str!("../migrations/sqlite/0022_nudge_trust.sql"),
    },
    Migration {
        version: 23,
        name: "reply idempotency",
        sql: include_str!("../migrations/sqlite/0023_reply_idempotency.sql"),
    },
    Migration {
        version: 24,
        name: "search_vocab",
        sql: include_str!("../migrations/sqlite/0024_search_vocab.sql"),
    },
    Migration {
        version: 25,
        name: "agents",
        sql: include_str!("../migrations/sqlite/0025_agents.sql"),
    },
    Migration {
        version: 26,
        name: "agent_hooks",
        sql: include_str!("../migrations/sqlite/0026_agent_hooks.sql"),
    },
    Migration {
        version: 27,
        name: "agent stream",
        sql: include_str!("../migrations/sqlite/0027_agent_stream.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "platform",
        sql: include_str!("../migrations/postgres/0001_platform.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sql: include_str!("../migrations/postgres/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "imports",
        sql: include_str!("../migrations/postgres/0003_imports.sql"),
    },
    Migration {
        version: 4,
        name: "jobs",
        sql: include_str!("../migrations/postgres/0004_jobs.sql"),
    },
    Migration {
        version: 5,
        name: "index diet",
        sql: include_str!("../migrations/postgres/0005_index_diet.sql"),
    },
    Migration {
        version: 6,
        name: "intake",
        sql: include_str!("../migrations/postgres/0006_intake.sql"),
    },
    Migration {
        version: 7,
        name: "forms",
        sql: include_str!("../migrations/postgres/0007_forms.sql"),
    },
    Migration {
        version: 8,
        name: "pipeline",
        sql: include_str!("../migrations/postgres/0008_pipeline.sql"),
    },
    Migration {
        version: 9,
        name: "nudge",
        sql: include_str!("../migrations/postgres/0009_nudge.sql"),
    },
    // 10 is SQLite only (rowid); the runner applies each list in order and
    // does not need its versions to be consecutive.
    Migration {
        version: 11,
        name: "hook replays",
        sql: include_str!("../migrations/postgres/0011_hook_replays.sql"),
    },
    Migration {
        version: 12,
        name: "invitations",
        sql: include_str!("../migrations/postgres/0012_invitations.sql"),
    },
    Migration {
        version: 14,
        name: "groups",
        sql: include_str!("../migrations/postgres/0014_groups.sql"),
    },
    Migration {
        version: 18,
        name: "inbox",
        sql: include_str!("../migrations/postgres/0018_inbox.sql"),
    },
    Migration {
        version: 19,
        name: "meta sources",
        sql: include_str!("../migrations/postgres/0019_meta_sources.sql"),
    },
    Migration {
        version: 20,
        name: "inbox replies",
        sql: include_str!("../migrations/postgres/0020_inbox_replies.sql"),
    },
    Migration {
        version: 22,
        name: "nudge_trust",
        sql: include_str!("../migrations/postgres/0022_nudge_trust.sql"),
    },
    Migration {
        version: 23,
        name: "reply idempotency",
        sql: include_str!("../migrations/postgres/0023_reply_idempotency.sql"),
    },
    Migration {
        version: 25,
        name: "agents",
        sql: include_str!("../migrations/postgres/0025_agents.sql"),
    },
    Migration {
        version: 26,
        name: "agent_hooks",
        sql: include_str!("../migrations/postgres/0026_agent_hooks.sql"),
    },
    Migration {
        version: 27,
        name: "agent stream",
        sql: include_str!("../migrations/postgres/0027_agent_stream.sql"),
    },
];

/// FNV-1a: a stable fingerprint of a migration's text, no dependency needed.
pub(crate) fn checksum(s: &str) -> i64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h as i64
}

pub(crate) const CREATE_TABLE: &str = "create table if not exists bos_migrations (
    version bigint primary key,
    name text not null,
    checksum bigint not null,
    applied_at bigint not null
)";

/// Which migration list belongs to a connection's engine.
pub(crate) trait MigrationsFor {
    const LIST: &'static [Migration];
}
impl MigrationsFor for sqlx::SqliteConnection {
    const LIST: &'static [Migration] = SQLITE;
}
impl MigrationsFor for sqlx::PgConnection {
    const LIST: &'static [Migration] = POSTGRES;
}
pub(crate) fn list_for<C: MigrationsFor>(_: &C) -> &'static [Migration] {
    C::LIST
}

pub(crate) fn changed(m: &Migration) -> StoreError {
    StoreError::Other(format!(
        "migration {} ({}) was changed after it was applied; restore it and add a new migration instead",
        m.version, m.name
    ))
}

/// Splits a migration script into statements at `;` line ends. (`raw_sql`
/// would do it for us, but its future is not `Send` for every lifetime,
/// which the SQLite writer needs.) Migration files therefore keep one
/// statement per `;`-terminated line and no `;` inside literals.
pub(crate) fn statements(sql: &'static str) -> impl Iterator<Item = &'static str> {
    sql.split(";\n").map(str::trim).filter(|s| {
        s.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with("--")
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_scripts() {
        let v: Vec<_> =
            super::statements("-- c\ncreate table a (x int);\n\ncreate index i on a(x);\n")
                .collect();
        assert_eq!(v.len(), 2);
        assert!(v[1].starts_with("create index"));
    }
}
