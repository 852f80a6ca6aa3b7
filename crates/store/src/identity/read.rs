//! Reads of the identity store: a profile and its cluster, identity links,
//! merges, the journey timeline, the customer list with its search, counts,
//! possible duplicates and the export.

use super::*;
use crate::engine::read;
use crate::StoreError;
use bos_core::identity::phone_search::{looks_like_phone, prefix_upper_bound};
use bos_core::identity::{phone_search, PhoneSearch};
use uuid::Uuid;

impl crate::Store {
    /// A profile by id; an absorbed profile's id resolves to its current root.
    pub async fn profile(&self, org: Uuid, id: Uuid) -> Result<Profile, StoreError> {
        let sql = format!(
            "select {} from profiles r join profiles p on p.org_id = r.org_id and p.root_id = r.id \
             where p.org_id = $1 and p.id = $2",
            profile_cols("r")
        );
        self.profiles_where(sql, org, id)
            .await?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound)
    }

    /// The profile row itself, merged or not.
    pub async fn profile_row(&self, org: Uuid, id: Uuid) -> Result<Profile, StoreError> {
        let sql = format!("select {PROFILE_COLS} from profiles where org_id = $1 and id = $2");
        self.profiles_where(sql, org, id)
            .await?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound)
    }

    /// Every identity linked to the cluster rooted at `root`.
    pub async fn profile_identities(
        &self,
        org: Uuid,
        root: Uuid,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select kind, value, profile_id, root_id, first_seen_at, last_seen_at, source from identity_links
                 where org_id = $1 and root_id = $2",
            )
            .bind(org)
            .bind(root)
            .fetch_all(&mut *c)
            .await?)
        })
        .map(|mut v: Vec<IdentityLink>| {
            // Sorted here: an ORDER BY kind tempts SQLite's planner (without
            // statistics) into walking the primary key over every link of the org.
            v.sort_by(|a, b| (a.kind.as_str(), a.first_seen_at).cmp(&(b.kind.as_str(), b.first_seen_at)));
            v
        })
    }

    /// The profiles in a cluster (the root and everything merged into it).
    pub async fn cluster_members(&self, org: Uuid, root: Uuid) -> Result<Vec<Profile>, StoreError> {
        let sql = format!("select {PROFILE_COLS} from profiles where org_id = $1 and root_id = $2");
        let mut v = self.profiles_where(sql, org, root).await?;
        v.sort_by_key(|p| (p.created_at, p.id));
        Ok(v)
    }

    /// Merges that involve the cluster: live ones explain why its members
    /// are one person; undone ones are history.
    pub async fn profile_merges(
        &self,
        org: Uuid,
        root: Uuid,
    ) -> Result<Vec<MergeRecord>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select m.id, m.survivor_id, m.absorbed_id, m.via_kind, m.via_value, m.event_key, m.reason, m.actor,
                        m.created_at, m.undone_at, m.undone_by
                 from merges m where m.org_id = $1 and m.survivor_id in (select id from profiles where org_id = $1 and root_id = $2)
                 union
                 select m.id, m.survivor_id, m.absorbed_id, m.via_kind, m.via_value, m.event_key, m.reason, m.actor,
                        m.created_at, m.undone_at, m.undone_by
                 from merges m where m.org_id = $1 and m.absorbed_id in (select id from profiles where org_id = $1 and root_id = $2)",
            )
            .bind(org)
            .bind(root)
            .fetch_all(&mut *c)
            .await?)
        })
        .map(|mut v: Vec<MergeRecord>| {
            // Newest first; two indexed lookups joined by UNION, sorted here.
            v.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));
            v
        })
    }

    pub async fn merge_record(&self, org: Uuid, id: Uuid) -> Result<MergeRecord, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select id, survivor_id, absorbed_id, via_kind, via_value, event_key, reason, actor, created_at, undone_at, undone_by
                 from merges where org_id = $1 and id = $2",
            )
            .bind(org)
            .bind(id)
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// The journey timeline of a cluster, newest first, by keyset pages.
    pub async fn timeline(
        &self,
        org: Uuid,
        root: Uuid,
        q: &TimelineQuery,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut sql = String::from(
            "select id, profile_id, root_id, occurred_at, kind, source, summary, data from timeline where org_id = $1 and root_id = $2",
        );
        let mut n = 2;
        let mut next = || {
            n += 1;
            n
        };
        let kinds_at: Vec<usize> = q.kinds.iter().map(|_| next()).collect();
        if !kinds_at.is_empty() {
            let ph: Vec<String> = kinds_at.iter().map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" and kind in ({})", ph.join(", ")));
        }
        let from_at = q.from.map(|_| next());
        if let Some(i) = from_at {
            sql.push_str(&format!(" and occurred_at >= ${i}"));
        }
        let to_at = q.to.map(|_| next());
        if let Some(i) = to_at {
            sql.push_str(&format!(" and occurred_at < ${i}"));
        }
        let before_at = q.before.map(|_| (next(), next()));
        if let Some((t, i)) = before_at {
            sql.push_str(&format!(
                " and (occurred_at < ${t} or (occurred_at = ${t} and id < ${i}))"
            ));
        }
        sql.push_str(&format!(
            " order by occurred_at desc, id desc limit {}",
            q.limit.clamp(1, 500)
        ));
        let q = q.clone();
        read!(self, |c| {
            let mut query = sqlx::query_as(&sql).bind(org).bind(root);
            for k in &q.kinds {
                query = query.bind(k);
            }
            if let Some(f) = q.from {
                query = query.bind(f);
            }
            if let Some(t) = q.to {
                query = query.bind(t);
            }
            if let Some((t, i)) = q.before {
                query = query.bind(t).bind(i);
            }
            Ok(query.fetch_all(&mut *c).await?)
        })
    }

    /// The customers list: current profiles, searched and sorted by an
    /// allowlisted order, paged by keyset.
    pub async fn list_profiles(
        &self,
        org: Uuid,
        q: &ProfileQuery,
    ) -> Result<Vec<Profile>, StoreError> {
        let sort = q.sort.unwrap_or(ProfileSort::LastActive);
        let (col, dir) = match sort {
            ProfileSort::LastActive => ("last_active_at", "desc"),
            ProfileSort::Ltv => ("ltv_cents", "desc"),
            ProfileSort::Created => ("created_at", "desc"),
            ProfileSort::Name => ("name_lc", "asc"),
        };
        let cols = profile_cols("p");
        let term = q.q.trim().to_lowercase();
        let mut binds: Vec<String> = Vec::new();
        // A search by e-mail or phone reads ranges of the identity links'
        // primary key and drives the query from the roots it finds (each
        // looked up by the profiles' primary key), rather than walking every
        // profile of the organization to test it against the links.
        let mut roots: Option<String> = None;
        let mut filter = String::new();
        if !term.is_empty() {
            if term.contains('@') {
                roots = Some(
                    "select distinct l.root_id from identity_links l where l.org_id = $1 and l.kind = 'email' \
                     and l.value >= $2 and l.value < $3"
                        .into(),
                );
                binds.push(term.clone());
                binds.push(format!("{term}\u{10ffff}"));
            } else if looks_like_phone(&term) {
                let region = self.identity_rules(org).await?.default_region;
                let search = phone_search(&term, &region).unwrap_or(PhoneSearch {
                    prefixes: Vec::new(),
                    suffix: None,
                });
                match self.phone_roots(org, &search, &mut binds).await? {
                    Some(r) => roots = Some(r),
                    None => filter.push_str(" and 1 = 0"),
                }
            } else {
                filter.push_str(" and p.name_lc >= $2 and p.name_lc < $3");
                binds.push(term.clone());
                binds.push(format!("{term}\u{10ffff}"));
            }
        }
        let mut sql = match roots {
            // `cross join` makes SQLite's planner keep the roots as the
            // outer loop; PostgreSQL plans it as the plain join it is.
            Some(r) => format!(
                "select {cols} from ({r}) m cross join profiles p \
                 where p.org_id = $1 and p.id = m.root_id and p.merged_into is null{filter}"
            ),
            None => format!(
                "select {cols} from profiles p where p.org_id = $1 and p.merged_into is null{filter}"
            ),
        };
        let after = q.after.clone();
        if after.is_some() {
            let (a, b) = (binds.len() + 2, binds.len() + 3);
            let cmp = if dir == "desc" { "<" } else { ">" };
            let value = if sort == ProfileSort::Name {
                format!("${a}")
            } else {
                format!("cast(${a} as bigint)")
            };
            sql.push_str(&format!(
                " and (p.{col} {cmp} {value} or (p.{col} = {value} and p.id {cmp} ${b}))"
            ));
        }
        sql.push_str(&format!(
            " order by p.{col} {dir}, p.id {dir} limit {}",
            q.limit.clamp(1, 200)
        ));
        read!(self, |c| {
            let mut query = sqlx::query_as(&sql).bind(org);
            for b in &binds {
                query = query.bind(b);
            }
            if let Some((num, text, id)) = &after {
                query = if sort == ProfileSort::Name {
                    query.bind(text.clone())
                } else {
                    query.bind(*num)
                };
                query = query.bind(*id);
            }
            Ok(query.fetch_all(&mut *c).await?)
        })
    }

    /// The roots a phone search finds, as a subquery: the phones in the
    /// search's E.164 prefix ranges, each a range of the links' primary key
    /// (org_id, kind, value) — a few index seeks however many phones the
    /// organization has. Only when no phone starts with the typed digits,
    /// and they could be the end of a number, does it fall back to matching
    /// the end of every phone (a scan). Binds are pushed to `binds`
    /// (numbered from $2). `None` when nothing can match.
    async fn phone_roots(
        &self,
        org: Uuid,
        search: &PhoneSearch,
        binds: &mut Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        let ranges: Vec<(String, Option<String>)> = search
            .prefixes
            .iter()
            .map(|p| (p.clone(), prefix_upper_bound(p)))
            .collect();
        let range_sql = |lo: usize, hi: Option<usize>| {
            let upper = hi
                .map(|h| format!(" and l.value < ${h}"))
                .unwrap_or_default();
            format!(
                "select l.root_id from identity_links l where l.org_id = $1 and l.kind = 'phone' and l.value >= ${lo}{upper}"
            )
        };
        let mut use_ranges = !ranges.is_empty();
        if let (Some(_), true) = (&search.suffix, use_ranges) {
            // Whether anything starts with the digits decides for every
            // page alike (a cursor must not flip the meaning midway).
            let mut any = false;
            for (lo, hi) in &ranges {
                let sql = format!("{} limit 1", range_sql(2, hi.as_ref().map(|_| 3)));
                let (lo, hi) = (lo.clone(), hi.clone());
                let found: Option<Uuid> = read!(self, |c| {
                    let mut q = sqlx::query_scalar(&sql).bind(org).bind(&lo);
                    if let Some(h) = &hi {
                        q = q.bind(h);
                    }
                    Ok(q.fetch_optional(&mut *c).await?)
                })?;
                if found.is_some() {
                    any = true;
                    break;
                }
            }
            use_ranges = any;
        }
        if use_ranges {
            let mut parts = Vec::new();
            for (lo, hi) in ranges {
                let lo_n = binds.len() + 2;
                binds.push(lo);
                let hi_n = hi.map(|h| {
                    binds.push(h);
                    binds.len() + 1
                });
                parts.push(range_sql(lo_n, hi_n));
            }
            // `union` (not `all`): a customer with two phones in range is one row.
            return Ok(Some(parts.join(" union ")));
        }
        Ok(search.suffix.as_ref().map(|digits| {
            binds.push(format!("%{digits}"));
            format!(
                "select distinct l.root_id from identity_links l where l.org_id = $1 and l.kind = 'phone' \
                 and l.value like ${}",
                binds.len() + 1
            )
        }))
    }

    /// How many current profiles, counted up to `cap` (a list header needs
    /// "100,000+", not a full scan of a million rows). Returns (count, capped).
    pub async fn count_profiles_capped(
        &self,
        org: Uuid,
        cap: i64,
    ) -> Result<(i64, bool), StoreError> {
        let n: i64 = read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select count(*) from (select 1 from profiles where org_id = $1 and merged_into is null limit $2) t",
            )
            .bind(org)
            .bind(cap + 1)
            .fetch_one(&mut *c)
            .await?)
        })?;
        Ok((n.min(cap), n > cap))
    }

    /// How many current profiles the organization has.
    pub async fn count_profiles(&self, org: Uuid) -> Result<i64, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select count(*) from profiles where org_id = $1 and merged_into is null",
            )
            .bind(org)
            .fetch_one(&mut *c)
            .await?)
        })
    }

    /// Possible duplicates: other current profiles with the same
    /// normalized name and company. They share no identifier (else they
    /// would be one profile already) and are never merged automatically.
    pub async fn possible_duplicates(
        &self,
        org: Uuid,
        root: Uuid,
    ) -> Result<Vec<Profile>, StoreError> {
        let sql = format!(
            "select {} from profiles p \
             where p.org_id = $1 and p.merged_into is null and p.id <> $2 \
             and p.name_key = (select name_key from profiles where org_id = $1 and id = $2 and name_key <> '') \
             limit 50",
            profile_cols("p")
        );
        self.profiles_where(sql, org, root).await
    }

    /// The profiles a statement over `($1 = org, $2 = id)` selects.
    async fn profiles_where(
        &self,
        sql: String,
        org: Uuid,
        id: Uuid,
    ) -> Result<Vec<Profile>, StoreError> {
        read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org)
                .bind(id)
                .fetch_all(&mut *c)
                .await?)
        })
    }

    /// Everything stored about one customer (the export).
    pub async fn export_profile(&self, org: Uuid, id: Uuid) -> Result<ProfileExport, StoreError> {
        let profile = self.profile(org, id).await?;
        let root = profile.id;
        let mut timeline = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .timeline(
                    org,
                    root,
                    &TimelineQuery {
                        before,
                        limit: 500,
                        ..Default::default()
                    },
                )
                .await?;
            let done = page.len() < 500;
            before = page.last().map(|e| (e.occurred_at, e.id));
            timeline.extend(page);
            if done {
                break;
            }
        }
        Ok(ProfileExport {
            members: self.cluster_members(org, root).await?,
            identities: self.profile_identities(org, root).await?,
            merges: self.profile_merges(org, root).await?,
            timeline,
            profile,
        })
    }
}
