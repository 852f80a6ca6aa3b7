//! What customers do with a message: open it (the pixel), follow its
//! link, unsubscribe through it; and opt-outs, which hold per address and
//! channel for the whole tenant and end the sequences that stop on them.
//! Tracking and unsubscribe tokens are unguessable and name one message,
//! so those routes need no sign-in and act only on that message's tenant.

use super::{address_kind, channel_str, parse_channel, stop_tx};
use crate::engine::write_db;
use crate::sql::{q, Db};
use crate::StoreError;
use bos_core::nudge::{Channel, Event};
use bos_core::Millis;
use uuid::Uuid;

impl crate::Store {
    /// The open pixel was fetched. Returns whether the token is known.
    pub async fn track_open(&self, token: String, now: Millis) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let n = db
                .exec(
                    q("update nudge_executions set opened_at = coalesce(opened_at, $2), updated_at = $2 where token = $1")
                        .bind(token.as_str())
                        .bind(now),
                )
                .await?;
            Ok(n > 0)
        })
    }

    /// A tracked link was followed: records the click (and an open, since
    /// a click proves one) and returns where to send the browser.
    pub async fn track_click(
        &self,
        token: String,
        now: Millis,
    ) -> Result<Option<String>, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select link_url from nudge_executions where token = $1")
                        .bind(token.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(None) };
            db.exec(
                q("update nudge_executions set clicked_at = coalesce(clicked_at, $2), opened_at = coalesce(opened_at, $2), \
                   updated_at = $2 where token = $1")
                .bind(token.as_str())
                .bind(now),
            )
            .await?;
            r.opt_text("link_url")
        })
    }

    /// Whom an unsubscribe token names: (organization, its name, channel,
    /// address, already opted out).
    pub async fn unsubscribe_target(
        &self,
        token: String,
    ) -> Result<Option<(Uuid, String, Channel, String, bool)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select x.org_id, o.name, x.channel, x.to_addr, \
               (select count(*) from opt_outs u where u.org_id = x.org_id and u.channel = x.channel and u.address = x.to_addr) as opted \
               from nudge_executions x join organizations o on o.id = x.org_id where x.token = $1")
            .bind(token.as_str()),
        )
        .await?;
        rows.first()
            .map(|r| {
                Ok((
                    r.uuid("org_id")?,
                    r.text("name")?,
                    parse_channel(&r.text("channel")?)?,
                    r.text("to_addr")?,
                    r.i64("opted")? > 0,
                ))
            })
            .transpose()
    }

    /// The unsubscribe link (page button or RFC 8058 one-click POST): opts
    /// the address out of the message's channel. Returns false for an
    /// unknown token.
    pub async fn unsubscribe(&self, token: String, now: Millis) -> Result<bool, StoreError> {
        write_db!(self, |db| async move {
            let r = db
                .opt(
                    q("select org_id, channel, to_addr, profile_id from nudge_executions where token = $1")
                        .bind(token.as_str()),
                )
                .await?;
            let Some(r) = r else { return Ok(false) };
            let (org, channel, addr, profile) = (
                r.uuid("org_id")?,
                parse_channel(&r.text("channel")?)?,
                r.text("to_addr")?,
                r.uuid("profile_id")?,
            );
            opt_out_tx(
                db,
                org,
                channel,
                &addr,
                Some(profile),
                "unsubscribe link",
                true,
                now,
            )
            .await?;
            Ok(true)
        })
    }

    /// A person opts an address in or out from the UI or API.
    pub async fn set_opt_out(
        &self,
        org: Uuid,
        channel: Channel,
        address: String,
        opted_out: bool,
        source: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_db!(self, |db| async move {
            let profile = db
                .opt(
                    q("select root_id from identity_links where org_id = $1 and kind = $2 and value = $3")
                        .bind(org)
                        .bind(address_kind(channel))
                        .bind(address.as_str()),
                )
                .await?
                .map(|r| r.uuid("root_id"))
                .transpose()?;
            opt_out_tx(db, org, channel, &address, profile, &source, opted_out, now).await
        })
    }
}

/// Opts an address out of (or back into) a channel for the whole tenant,
/// and ends the sequences of everyone on that address whose campaigns stop
/// on opt-out; the others keep going on their other channel.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn opt_out_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    channel: Channel,
    address: &str,
    profile: Option<Uuid>,
    source: &str,
    out: bool,
    now: Millis,
) -> Result<(), StoreError> {
    if !out {
        db.exec(
            q("delete from opt_outs where org_id = $1 and channel = $2 and address = $3")
                .bind(org)
                .bind(channel_str(channel))
                .bind(address),
        )
        .await?;
        return Ok(());
    }
    db.exec(
        q("insert into opt_outs (org_id, channel, address, profile_id, source, at) values ($1, $2, $3, $4, $5, $6) \
           on conflict do nothing")
        .bind(org)
        .bind(channel_str(channel))
        .bind(address)
        .bind(profile)
        .bind(source)
        .bind(now),
    )
    .await?;
    let roots = db
        .rows(
            q("select distinct root_id from identity_links where org_id = $1 and kind = $2 and value = $3")
                .bind(org)
                .bind(address_kind(channel))
                .bind(address),
        )
        .await?;
    let mut seen = Vec::new();
    for r in roots {
        seen.push(r.uuid("root_id")?);
    }
    if let Some(p) = profile {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    for root in seen {
        stop_tx(db, org, root, Event::OptedOut(channel), None, now).await?;
        // Retries waiting on that channel to that address must not go out.
        db.exec(
            q("update nudge_executions set status = 'failed', error = 'the customer opted out', updated_at = $4 \
               where org_id = $1 and channel = $2 and to_addr = $3 and status = 'retrying'")
            .bind(org)
            .bind(channel_str(channel))
            .bind(address)
            .bind(now),
        )
        .await?;
    }
    Ok(())
}
