//! A due step decided: the enrollment's next move (wait for quiet hours,
//! skip a blocked channel, finish, or send), and for a send the message
//! composed and its execution committed as `sending` (or `delivered` for
//! the development sink) in the same transaction, many steps to one
//! transaction under load.

use super::enroll::{empty_campaign, write_enrollment};
use super::{
    build, channel_str, load_channel, load_person_of, load_settings, opt_outs_of, preferred,
    record_skip, save_enrollment, send_token, set_step_timer, stop_facts_of, timeline,
    CampaignStatus, ChannelConfig, Claimed, ExecutionStatus, NudgeSettings, Person, StepOutcome,
    StepRequest, ENROLLMENT_ACTIVE, MESSAGE_ID_DOMAIN,
};
use crate::engine::write_db;
use crate::secrets::Keyring;
use crate::sql::{q, Db};
use crate::{new_id, StoreError};
use bos_core::inbox::{nudges_held_until, AuthorKind, HumanActivity, Status as InboxStatus};
use bos_core::nudge::cap::CAP_WINDOW_MS;
use bos_core::nudge::{
    self, Campaign, Channel, Composed, Decision, Enrollment, Event, MessageLinks, Reach, Recent,
    SkipReason,
};
use bos_core::Millis;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// When quiet hours end for this person: in their own time zone (a
/// `timezone` trait) when it is a real one, else the tenant's, else UTC.
fn quiet_until(
    p: &Person,
    settings: &NudgeSettings,
    now: Millis,
    quiet: &nudge::QuietHours,
) -> Millis {
    let own = ["timezone", "time_zone", "tz"]
        .iter()
        .find_map(|k| p.traits.get(*k).and_then(Value::as_str));
    own.into_iter()
        .chain([settings.timezone.as_str(), "UTC"])
        .find_map(|tz| nudge::next_allowed(now, tz, quiet).ok())
        .unwrap_or(now)
}

/// Until when a human conversation in progress holds the customer's
/// nudges (see [`bos_core::inbox::nudges_held_until`]), from their
/// conversation's status, assignee and latest member reply.
async fn human_conversation_hold<D: Db>(
    db: &mut D,
    org: Uuid,
    root: Uuid,
    now: Millis,
) -> Result<Option<Millis>, StoreError> {
    let r = db
        .opt(
            q("select c.status, c.assignee_id, (select max(m.created_at) from messages m \
               where m.org_id = c.org_id and m.conversation_id = c.id and m.author_kind = $3) \
               as last_member_reply_at from conversations c where c.org_id = $1 and c.profile_id = $2")
            .bind(org)
            .bind(root)
            .bind(AuthorKind::Member.as_str()),
        )
        .await?;
    let Some(r) = r else {
        return Ok(None);
    };
    let activity = HumanActivity {
        status: r.parsed("status", InboxStatus::parse)?,
        assigned_to_member: r.opt_uuid("assignee_id")?.is_some(),
        last_member_reply_at: r.opt_i64("last_member_reply_at")?,
    };
    Ok(nudges_held_until(Some(&activity), now))
}

/// What the steps of one batch share: campaign definitions (parsed once,
/// and again only if the stored text differs), channel and nudge settings
/// (no write in the batch changes them).
struct StepCache {
    campaigns: HashMap<Uuid, (String, Arc<Campaign>)>,
    channels: HashMap<(Uuid, Channel), (ChannelConfig, Option<String>)>,
    settings: HashMap<Uuid, Arc<NudgeSettings>>,
    keys: Arc<Keyring>,
}

impl StepCache {
    async fn settings<D: Db>(
        &mut self,
        db: &mut D,
        org: Uuid,
    ) -> Result<Arc<NudgeSettings>, StoreError> {
        if let Some(s) = self.settings.get(&org) {
            return Ok(s.clone());
        }
        let s = Arc::new(load_settings(db, org).await?);
        self.settings.insert(org, s.clone());
        Ok(s)
    }

    fn campaign(&mut self, id: Uuid, def: String) -> Result<Arc<Campaign>, StoreError> {
        if let Some((text, c)) = self.campaigns.get(&id) {
            if *text == def {
                return Ok(c.clone());
            }
        }
        let c: Arc<Campaign> = Arc::new(
            serde_json::from_str(&def)
                .map_err(|e| StoreError::Invalid(format!("campaign definition: {e}")))?,
        );
        self.campaigns.insert(id, (def, c.clone()));
        Ok(c)
    }
}

/// One due step inside the caller's transaction (see `Store::nudge_steps`).
async fn step_one<D: Db>(
    db: &mut D,
    cache: &mut StepCache,
    step: StepRequest,
    now: Millis,
    links: &dyn MessageLinks,
    timers: &mut Vec<Millis>,
) -> Result<StepOutcome, StoreError> {
    let StepRequest {
        org,
        enrollment,
        random,
    } = step;
    // One read gives the step everything it decides on: the enrollment,
    // its campaign, what stopped the customer (their lead and latest
    // reply) and, for the daily cap, their messages in the last day and
    // the higher-priority steps due for them now.
    let r = db
        .opt(
            q("select e.state, e.status as enrollment_status, e.profile_id, e.context, e.started_at, \
               c.definition, c.name as campaign_name, c.status as campaign_status, c.id as campaign_id, \
               l.state as lead_state, l.state_at as lead_state_at, l.last_converted_at, \
               (select max(x.replied_at) from nudge_executions x where x.org_id = e.org_id \
                and x.profile_id = e.profile_id) as replied_at, \
               (select count(*) from nudge_executions x where x.org_id = e.org_id and x.profile_id = e.profile_id \
                and x.created_at > $3 and x.channel = 'email' and x.status <> 'failed') as email_sent, \
               (select count(*) from nudge_executions x where x.org_id = e.org_id and x.profile_id = e.profile_id \
                and x.created_at > $3 and x.channel = 'sms' and x.status <> 'failed') as sms_sent, \
               (select count(*) from enrollments o join campaigns oc on oc.org_id = o.org_id and oc.id = o.campaign_id \
                where o.org_id = e.org_id and o.profile_id = e.profile_id and o.status = 'active' and o.id <> e.id \
                and o.next_due <= $4 and oc.status = 'active' and oc.priority > c.priority) as ahead \
               from enrollments e \
               left join campaigns c on c.org_id = e.org_id and c.id = e.campaign_id \
               left join leads l on l.org_id = e.org_id and l.profile_id = e.profile_id \
               where e.org_id = $1 and e.id = $2")
            .bind(org)
            .bind(enrollment)
            .bind(now - CAP_WINDOW_MS)
            .bind(now),
        )
        .await?;
    let Some(r) = r else {
        return Ok(StepOutcome::Nothing("enrollment not found".into()));
    };
    if r.text("enrollment_status")? != ENROLLMENT_ACTIVE {
        return Ok(StepOutcome::Nothing("enrollment ended".into()));
    }
    let mut e: Enrollment = serde_json::from_str(&r.text("state")?)
        .map_err(|e| StoreError::Invalid(format!("enrollment state: {e}")))?;
    let profile = r.uuid("profile_id")?;
    let ctx: Value = serde_json::from_str(&r.text("context")?).unwrap_or_default();
    let (Some(def), Some(cstatus), Some(cid)) = (
        r.opt_text("definition")?,
        r.opt_text("campaign_status")?,
        r.opt_uuid("campaign_id")?,
    ) else {
        e.on_event(&empty_campaign(), Event::Removed);
        save_enrollment(db, org, enrollment, &e, now).await?;
        return Ok(StepOutcome::Nothing("campaign deleted".into()));
    };
    let campaign = cache.campaign(cid, def)?;
    let campaign = &*campaign;
    let name = r.opt_text("campaign_name")?.unwrap_or_default();
    match CampaignStatus::stored(&cstatus)? {
        CampaignStatus::Active => {}
        CampaignStatus::Archived => {
            e.on_event(campaign, Event::Removed);
            save_enrollment(db, org, enrollment, &e, now).await?;
            return Ok(StepOutcome::Nothing("campaign archived".into()));
        }
        // Resuming sets the timers of waiting enrollments again.
        CampaignStatus::Draft | CampaignStatus::Paused => {
            return Ok(StepOutcome::Nothing("campaign paused".into()))
        }
    }
    let Some(due) = e.next_due else {
        return Ok(StepOutcome::Nothing("nothing due".into()));
    };
    // Never early: a timer that fired before its time, or a
    // clock that went back, waits for the step's time.
    if now < due {
        set_step_timer(db, org, enrollment, due, now, timers).await?;
        return Ok(StepOutcome::Wait(due));
    }
    let uses = |c: Channel| {
        campaign
            .steps
            .iter()
            .any(|s| s.channel == c || s.channel == Channel::Preferred)
    };
    let need = (uses(Channel::Email), uses(Channel::Sms));
    let (root, person) = load_person_of(db, org, profile, need).await?;
    let opt_outs = opt_outs_of(db, org, &person).await?;
    let step_no = e.step_index + 1;
    // The stop rules hold at send time too: whatever stopped the customer
    // since the enrollment began ends it here, if the stop did not.
    let mut facts = stop_facts_of(&r)?;
    facts.opted_out = opt_outs.clone();
    if let Some(stop) = nudge::stop_before_sending(campaign, &facts, r.i64("started_at")?) {
        let at = e.step_index;
        e.on_event(campaign, nudge::stop_event(stop));
        save_enrollment(db, org, enrollment, &e, now).await?;
        let summary = format!(
            "Step {step_no} of \u{201c}{name}\u{201d} not sent: {}",
            stop.label()
        );
        let why = SkipReason::Stopped;
        record_skip(
            db,
            org,
            cid,
            root,
            Some(enrollment),
            Some(at),
            why,
            &summary,
            now,
        )
        .await?;
        return Ok(StepOutcome::Nothing(summary));
    }
    let settings = cache.settings(db, org).await?;
    if let Some(quiet) = &campaign.quiet_hours {
        let allowed = quiet_until(&person, &settings, now, quiet);
        if allowed > now {
            set_step_timer(db, org, enrollment, allowed, now, timers).await?;
            let summary = format!("Step {step_no} of \u{201c}{name}\u{201d} moved by quiet hours");
            let (at, why) = (Some(e.step_index), SkipReason::QuietHours);
            record_skip(db, org, cid, root, Some(enrollment), at, why, &summary, now).await?;
            return Ok(StepOutcome::Wait(allowed));
        }
    }
    // A person at the business is talking with this customer: the step
    // waits (and looks again) rather than cut into the conversation.
    if let Some(until) = human_conversation_hold(db, org, root, now).await? {
        set_step_timer(db, org, enrollment, until, now, timers).await?;
        return Ok(StepOutcome::Wait(until));
    }
    // Opt-outs and missing addresses block channels for this
    // decision; only real opt-outs are kept in the state.
    for (c, _) in &opt_outs {
        if !e.opted_out.contains(c) {
            e.opted_out.push(*c);
        }
    }
    let reach = Reach {
        has_email: person.email.is_some(),
        has_phone: person.phone.is_some(),
        opted_out: e.opted_out.clone(),
    };
    let kept = e.opted_out.clone();
    for c in reach.blocked() {
        if !e.opted_out.contains(&c) {
            e.opted_out.push(c);
        }
    }
    let first = e.step_index;
    let decision = e.on_step_due(campaign, now, random, preferred(&person));
    e.opted_out = kept;
    // Every step passed over without a send is counted with its reason.
    let passed = match &decision {
        Decision::Send { step, .. } => *step,
        _ => e.step_index.min(campaign.steps.len()),
    };
    for i in first..passed {
        if let Some(why) = reach.step_block(campaign.steps[i].channel) {
            let summary = format!(
                "Step {} of \u{201c}{name}\u{201d} skipped: {}",
                i + 1,
                why.label()
            );
            record_skip(
                db,
                org,
                cid,
                root,
                Some(enrollment),
                Some(i),
                why,
                &summary,
                now,
            )
            .await?;
        }
    }
    let Decision::Send {
        step,
        variant,
        channel,
        key,
    } = decision
    else {
        save_enrollment(db, org, enrollment, &e, now).await?;
        if let Some(next) = e.next_due {
            set_step_timer(db, org, enrollment, next, now, timers).await?;
        }
        return Ok(StepOutcome::Nothing("no step to send".into()));
    };
    // The daily cap across campaigns: a step over it is held (same key,
    // later time), never dropped.
    let sent = match channel.medium() {
        Channel::Sms => r.i64("sms_sent")?,
        _ => r.i64("email_sent")?,
    };
    let limit = settings.cap.limit(channel);
    let mut recent = Recent {
        sent: u32::try_from(sent).unwrap_or(u32::MAX),
        oldest_at: None,
        ahead: u32::try_from(r.i64("ahead")?).unwrap_or(u32::MAX),
    };
    // When the cap is full, the oldest counted message says when it frees
    // up: read then only, so the common step pays nothing for it.
    if recent.sent >= limit {
        let o = db
            .one(
                q("select min(created_at) as oldest from nudge_executions where org_id = $1 and profile_id = $2 \
                   and created_at > $3 and channel = $4 and status <> 'failed'")
                .bind(org)
                .bind(profile)
                .bind(now - CAP_WINDOW_MS)
                .bind(channel_str(channel)),
            )
            .await?;
        recent.oldest_at = o.opt_i64("oldest")?;
    }
    if let Some(until) = nudge::cap_wait(limit, recent, now) {
        e.hold_last_send(until);
        write_enrollment(db, org, enrollment, &e, now, false).await?;
        set_step_timer(db, org, enrollment, until, now, timers).await?;
        let summary = format!(
            "Step {} of \u{201c}{name}\u{201d} held back by the daily cap",
            step + 1
        );
        let (at, why) = (Some(step), SkipReason::Cap);
        record_skip(db, org, cid, root, Some(enrollment), at, why, &summary, now).await?;
        return Ok(StepOutcome::Wait(until));
    }
    write_enrollment(db, org, enrollment, &e, now, false).await?;
    if let Some(next) = e.next_due {
        set_step_timer(db, org, enrollment, next, now, timers).await?;
    }
    let v = &campaign.steps[step].variants[variant];
    let to = match channel {
        Channel::Sms => person.phone.clone(),
        _ => person.email.clone(),
    }
    .unwrap_or_default();
    let (config, hook) = match cache.channels.get(&(org, channel)) {
        Some(c) => c.clone(),
        None => {
            let c = load_channel(db, &cache.keys, org, channel).await?;
            cache.channels.insert((org, channel), c.clone());
            c
        }
    };
    let tok = send_token(now);
    let exec_id = new_id();
    let message_id = format!("{exec_id}{MESSAGE_ID_DOMAIN}");
    // The development sink has no provider to call: the message is
    // delivered by this commit (nothing can be sent twice), saving a
    // second write per nudge.
    let dev = config == ChannelConfig::Dev;
    let built = build(v, channel, &person, &ctx, links, &tok, !dev);
    let (status, error, built) = match built {
        Ok(b) if dev => (ExecutionStatus::Delivered, None, b),
        Ok(b) => (ExecutionStatus::Sending, None, b),
        Err(err) => (
            ExecutionStatus::Failed,
            Some(err.to_string()),
            Composed {
                subject: v.subject.clone(),
                text: v.body.clone(),
                html: None,
                link: None,
            },
        ),
    };
    let inserted = db
        .exec(
            q("insert into nudge_executions (org_id, id, enrollment_id, campaign_id, profile_id, step, variant, \
               variant_name, channel, idem_key, status, attempts, provider, error, to_addr, from_addr, subject, body, \
               message_id, token, link_url, provider_id, sent_at, delivered_at, created_at, updated_at) values ($1, $2, $3, \
               $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23, $24, $24) \
               on conflict do nothing")
            .bind(org)
            .bind(exec_id)
            .bind(enrollment)
            .bind(cid)
            .bind(root)
            .bind(step as i64)
            .bind(variant as i64)
            .bind(v.name.as_str())
            .bind(channel_str(channel))
            .bind(key.as_str())
            .bind(status.as_str())
            .bind(i64::from(status != ExecutionStatus::Failed))
            .bind(config.provider())
            .bind(error.clone())
            .bind(to.as_str())
            .bind(config.sender_addr(channel))
            .bind(built.subject.clone())
            .bind(built.text.as_str())
            .bind(message_id.as_str())
            .bind(tok.as_str())
            .bind(built.link.clone())
            .bind(None::<String>)
            .bind((status == ExecutionStatus::Delivered).then_some(now))
            .bind(now),
        )
        .await?;
    if inserted == 0 {
        // The key exists: this step was claimed before.
        return Ok(StepOutcome::Nothing("step already sent".into()));
    }
    let what = match channel {
        Channel::Sms => "SMS",
        _ => "Email",
    };
    let title = built
        .subject
        .clone()
        .unwrap_or_else(|| built.text.chars().take(60).collect());
    timeline(
        db,
        org,
        root,
        now,
        "nudge",
        &format!("{what} nudge, step {}: {title}", step + 1),
        json!({ "campaign_id": cid, "execution_id": exec_id, "channel": channel_str(channel), "status": status.as_str() }),
        &format!("nudge:{exec_id}"),
    )
    .await?;
    if let Some(err) = error {
        return Ok(StepOutcome::Failed(err));
    }
    db.exec(
        q("update leads set nudges_sent = nudges_sent + 1 where org_id = $1 and profile_id = $2")
            .bind(org)
            .bind(root),
    )
    .await?;
    if dev {
        // Delivered in this commit, and shown in the customer's
        // conversation in it too (or, when the inbox refuses it, the timer
        // that shows it later: `inbox::copies`).
        let shown_in = match crate::inbox::show_nudge_tx(db, org, exec_id, now).await? {
            crate::inbox::NudgeCopy::Shown(conversation) => conversation,
            crate::inbox::NudgeCopy::Later(due) => {
                timers.push(due);
                None
            }
        };
        return Ok(StepOutcome::Delivered {
            execution: exec_id,
            shown_in,
        });
    }
    let unsubscribe_url = (channel != Channel::Sms).then(|| links.unsubscribe(&tok));
    Ok(StepOutcome::Send(Box::new(Claimed {
        org_id: org,
        execution_id: exec_id,
        campaign_id: cid,
        profile_id: root,
        channel,
        to,
        from: config.sender_addr(channel),
        subject: built.subject,
        text: built.text,
        html: built.html,
        message_id,
        idem_key: key,
        unsubscribe_url,
        status_callback: hook.map(|h| links.delivery_status(&h)),
        attempt: 1,
        max_attempts: campaign.max_attempts.max(1),
        config,
    })))
}

impl crate::Store {
    /// A step's timer fired for `enrollment`: decides, and claims the send
    /// when there is one (the execution is `sending` when this returns).
    /// `random` picks the A/B variant. Returns the outcome and the timers
    /// it set (to wake the runner).
    pub async fn nudge_step(
        &self,
        org: Uuid,
        enrollment: Uuid,
        now: Millis,
        random: u32,
        links: Arc<dyn MessageLinks>,
    ) -> Result<(StepOutcome, Vec<Millis>), StoreError> {
        let mut out = self
            .nudge_steps(
                vec![StepRequest {
                    org,
                    enrollment,
                    random,
                }],
                now,
                links,
            )
            .await?;
        out.pop()
            .ok_or_else(|| StoreError::Other("a step without an outcome".into()))
    }

    /// Many due steps in one transaction, in order: the outcome of each and
    /// the timers it set. Under load the sender hands its due steps here in
    /// groups: one commit, and one savepoint on SQLite, instead of one per
    /// step, which is what bounds how many nudges a second one writer
    /// sends. All or nothing: an error rolls back every step of the group
    /// (the caller runs them one by one then, so one bad step cannot hold
    /// up the others). The message's public URLs come from `links` (the
    /// web layer's routes).
    pub async fn nudge_steps(
        &self,
        steps: Vec<StepRequest>,
        now: Millis,
        links: Arc<dyn MessageLinks>,
    ) -> Result<Vec<(StepOutcome, Vec<Millis>)>, StoreError> {
        let keys = self.keyring();
        write_db!(self, |db| async move {
            let mut out = Vec::with_capacity(steps.len());
            let mut cache = StepCache {
                campaigns: HashMap::new(),
                channels: HashMap::new(),
                settings: HashMap::new(),
                keys,
            };
            for r in &steps {
                let mut timers = Vec::new();
                let o = step_one(db, &mut cache, *r, now, &*links, &mut timers).await?;
                out.push((o, timers));
            }
            Ok(out)
        })
    }
}
