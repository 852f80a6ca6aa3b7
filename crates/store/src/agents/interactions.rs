//! The interactions agents report, stored once per external id (and
//! completed in place when a later report of the same one knows more), and
//! the sums and counts a period of them adds up to, in one indexed query.

use bos_core::agents::{Interaction, Outcome, Period, Totals};
use bos_core::Millis;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::write_db;
use crate::sql::{q, read_rows, Db, Row, Q};
use crate::{new_id, Store, StoreError};

/// One line of an interaction's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub role: String,
    pub text: String,
}

/// An interaction to store, checked by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInteraction {
    pub agent_id: Uuid,
    pub profile_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub outcome: Outcome,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    pub first_response_ms: Option<Millis>,
    pub cost_micros: i64,
    pub tokens: i64,
    pub csat: Option<u8>,
    /// 0–10.
    pub sentiment: Option<f64>,
    pub human_intervened: bool,
    pub summary: Option<String>,
    pub transcript: Vec<TranscriptLine>,
    pub external_id: Option<String>,
}

/// An interaction as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInteraction {
    pub id: Uuid,
    pub created_at: Millis,
    pub new: NewInteraction,
}

impl StoredInteraction {
    /// What it contributes to the metrics.
    pub fn metric(&self) -> Interaction {
        let n = &self.new;
        Interaction {
            outcome: n.outcome,
            started_at: n.started_at,
            first_response_ms: n.first_response_ms,
            cost_micros: n.cost_micros,
            tokens: n.tokens,
            csat: n.csat,
            human_intervened: n.human_intervened,
        }
    }
}

/// What a later report of a stored interaction knows (a voice platform's
/// analysis after the call's end): each field given replaces the stored
/// one, the others stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InteractionUpdate {
    pub outcome: Option<Outcome>,
    pub ended_at: Option<Millis>,
    pub cost_micros: Option<i64>,
    /// 0–10.
    pub sentiment: Option<f64>,
    pub summary: Option<String>,
    /// Kept only when none was stored: a transcript is not rewritten.
    pub transcript: Option<Vec<TranscriptLine>>,
}

/// What storing an interaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InteractionRecorded {
    pub id: Uuid,
    /// False when its external id was already stored for the agent (a retry).
    pub created: bool,
}

pub(super) const COLS: &str =
    "id, agent_id, profile_id, conversation_id, outcome, started_at, ended_at, \
    first_response_ms, cost_micros, tokens, csat, sentiment_tenths, human_intervened, summary, \
    transcript, external_id, created_at";

pub(super) fn interaction_row(r: &Row) -> Result<StoredInteraction, StoreError> {
    let transcript = r.text("transcript")?;
    Ok(StoredInteraction {
        id: r.uuid("id")?,
        created_at: r.i64("created_at")?,
        new: NewInteraction {
            agent_id: r.uuid("agent_id")?,
            profile_id: r.opt_uuid("profile_id")?,
            conversation_id: r.opt_uuid("conversation_id")?,
            outcome: r.parsed("outcome", |s| Outcome::parse(s).ok())?,
            started_at: r.i64("started_at")?,
            ended_at: r.opt_i64("ended_at")?,
            first_response_ms: r.opt_i64("first_response_ms")?,
            cost_micros: r.i64("cost_micros")?,
            tokens: r.i64("tokens")?,
            csat: r.opt_i64("csat")?.map(|c| c.clamp(0, 10) as u8),
            sentiment: r.opt_i64("sentiment_tenths")?.map(|t| t as f64 / 10.0),
            human_intervened: r.i64("human_intervened")? != 0,
            summary: r.opt_text("summary")?,
            transcript: serde_json::from_str(&transcript).unwrap_or_default(),
            external_id: r.opt_text("external_id")?,
        },
    })
}

/// The sums and counts of [`Totals`] over the interactions a `where`
/// clause picks. Handed-off interactions count as intervened, as
/// `Totals::add` counts them. PostgreSQL's `sum` of a bigint is numeric,
/// hence the casts.
const TOTALS: &str = "select count(*) as n, \
    cast(coalesce(sum(case when outcome = 'success' then 1 else 0 end), 0) as bigint) as successes, \
    cast(coalesce(sum(case when human_intervened <> 0 or outcome = 'handed_off' then 1 else 0 end), 0) as bigint) as intervened, \
    cast(coalesce(sum(first_response_ms), 0) as bigint) as response_sum, \
    count(first_response_ms) as response_n, \
    cast(coalesce(sum(cost_micros), 0) as bigint) as cost, \
    cast(coalesce(sum(tokens), 0) as bigint) as tokens, \
    cast(coalesce(sum(csat), 0) as bigint) as csat_sum, \
    count(csat) as csat_n";

fn totals_row(r: &Row) -> Result<Totals, StoreError> {
    Ok(Totals {
        count: r.i64("n")?,
        successes: r.i64("successes")?,
        intervened: r.i64("intervened")?,
        response_sum_ms: r.i64("response_sum")?,
        response_count: r.i64("response_n")?,
        cost_micros: r.i64("cost")?,
        tokens: r.i64("tokens")?,
        csat_sum: r.i64("csat_sum")?,
        csat_count: r.i64("csat_n")?,
    })
}

fn in_period(agent: Option<Uuid>, org: Uuid, p: Period, select: &str, tail: &str) -> Q {
    match agent {
        Some(a) => q(format!(
            "{select} from agent_interactions where org_id = $1 and agent_id = $4 \
             and started_at >= $2 and started_at < $3{tail}"
        ))
        .bind(org)
        .bind(p.from)
        .bind(p.to)
        .bind(a),
        None => q(format!(
            "{select} from agent_interactions where org_id = $1 \
             and started_at >= $2 and started_at < $3{tail}"
        ))
        .bind(org)
        .bind(p.from)
        .bind(p.to),
    }
}

async fn update_tx<D: Db>(
    db: &mut D,
    org: Uuid,
    agent: Uuid,
    ext: String,
    u: InteractionUpdate,
) -> Result<Option<(Uuid, bool)>, StoreError> {
    let row = db
        .opt(
            q(format!(
                "select {COLS} from agent_interactions where org_id = $1 \
                 and agent_id = $2 and external_id = $3{}",
                D::LOCK
            ))
            .bind(org)
            .bind(agent)
            .bind(ext.as_str()),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored = interaction_row(&row)?;
    let mut n = stored.new.clone();
    if let Some(o) = u.outcome {
        n.outcome = o;
        n.human_intervened |= o == Outcome::HandedOff;
    }
    n.ended_at = u.ended_at.or(n.ended_at).map(|e| e.max(n.started_at));
    n.cost_micros = u.cost_micros.map_or(n.cost_micros, |c| c.max(0));
    // Compared as stored: in tenths.
    n.sentiment = u
        .sentiment
        .map(|s| (s.clamp(0.0, 10.0) * 10.0).round() / 10.0)
        .or(n.sentiment);
    n.summary = u.summary.or(n.summary);
    if n.transcript.is_empty() {
        n.transcript = u.transcript.unwrap_or_default();
    }
    if n == stored.new {
        return Ok(Some((stored.id, false)));
    }
    let transcript =
        serde_json::to_string(&n.transcript).map_err(|e| StoreError::Other(e.to_string()))?;
    db.exec(
        q(
            "update agent_interactions set outcome = $3, ended_at = $4, cost_micros = $5, \
           sentiment_tenths = $6, summary = $7, transcript = $8, human_intervened = $9 \
           where org_id = $1 and id = $2",
        )
        .bind(org)
        .bind(stored.id)
        .bind(n.outcome.as_str())
        .bind(n.ended_at)
        .bind(n.cost_micros)
        .bind(n.sentiment.map(|s| (s * 10.0).round() as i64))
        .bind(n.summary.clone())
        .bind(transcript)
        .bind(i64::from(n.human_intervened)),
    )
    .await?;
    Ok(Some((stored.id, true)))
}

impl Store {
    /// Stores an interaction of one of the organization's agents, once per
    /// external id: a retry answers the first one's id with `created: false`.
    /// The agent, and the customer and conversation when named, must be the
    /// organization's (`NotFound` otherwise).
    pub async fn record_agent_interaction(
        &self,
        org: Uuid,
        i: &NewInteraction,
        now: Millis,
    ) -> Result<InteractionRecorded, StoreError> {
        let i = i.clone();
        let id = new_id();
        write_db!(self, |db| async move {
            db.one(
                q("select id from agents where org_id = $1 and id = $2")
                    .bind(org)
                    .bind(i.agent_id),
            )
            .await?;
            if let Some(p) = i.profile_id {
                db.one(
                    q("select id from profiles where org_id = $1 and id = $2")
                        .bind(org)
                        .bind(p),
                )
                .await?;
            }
            let mut i = i;
            if let Some(c) = i.conversation_id {
                let conv = db
                    .one(
                        q("select profile_id from conversations where org_id = $1 and id = $2")
                            .bind(org)
                            .bind(c),
                    )
                    .await?;
                // An interaction in a conversation is with its customer.
                if i.profile_id.is_none() {
                    i.profile_id = Some(conv.uuid("profile_id")?);
                }
            }
            if let Some(ext) = &i.external_id {
                let seen = db
                    .opt(
                        q("select id from agent_interactions where org_id = $1 and agent_id = $2 \
                           and external_id = $3")
                        .bind(org)
                        .bind(i.agent_id)
                        .bind(ext.as_str()),
                    )
                    .await?;
                if let Some(r) = seen {
                    return Ok(InteractionRecorded {
                        id: r.uuid("id")?,
                        created: false,
                    });
                }
            }
            let transcript = serde_json::to_string(&i.transcript)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            db.exec(
                q(format!(
                    "insert into agent_interactions (org_id, {COLS}) values \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                ))
                .bind(org)
                .bind(id)
                .bind(i.agent_id)
                .bind(i.profile_id)
                .bind(i.conversation_id)
                .bind(i.outcome.as_str())
                .bind(i.started_at)
                .bind(i.ended_at)
                .bind(i.first_response_ms.map(|r| r.max(0)))
                .bind(i.cost_micros.max(0))
                .bind(i.tokens.max(0))
                .bind(i.csat.map(|c| i64::from(c.min(10))))
                .bind(
                    i.sentiment
                        .map(|s| (s.clamp(0.0, 10.0) * 10.0).round() as i64),
                )
                .bind(i64::from(i.human_intervened))
                .bind(i.summary.clone())
                .bind(transcript)
                .bind(i.external_id.clone())
                .bind(now),
            )
            .await?;
            Ok(InteractionRecorded { id, created: true })
        })
    }

    /// Completes the interaction an agent stored under `external_id` with
    /// what a later report knows. `None` when there is none; otherwise its
    /// id and whether anything changed (a repeat of the same report changes
    /// nothing).
    pub async fn update_agent_interaction(
        &self,
        org: Uuid,
        agent: Uuid,
        external_id: &str,
        u: &InteractionUpdate,
    ) -> Result<Option<(Uuid, bool)>, StoreError> {
        let (u, ext) = (u.clone(), external_id.to_string());
        write_db!(self, |db| update_tx(db, org, agent, ext, u))
    }

    /// The interaction an agent stored under its own id for it, if any.
    pub async fn agent_interaction_by_external_id(
        &self,
        org: Uuid,
        agent: Uuid,
        external_id: &str,
    ) -> Result<Option<StoredInteraction>, StoreError> {
        let rows = read_rows(
            self,
            q(format!(
                "select {COLS} from agent_interactions where org_id = $1 and agent_id = $2 \
                 and external_id = $3"
            ))
            .bind(org)
            .bind(agent)
            .bind(external_id),
        )
        .await?;
        rows.first().map(interaction_row).transpose()
    }

    /// The interactions that started in `period`, of one agent or all,
    /// oldest first (at most `limit`).
    pub async fn agent_interactions(
        &self,
        org: Uuid,
        agent: Option<Uuid>,
        period: Period,
        limit: u32,
    ) -> Result<Vec<StoredInteraction>, StoreError> {
        let rows = read_rows(
            self,
            in_period(
                agent,
                org,
                period,
                &format!("select {COLS}"),
                &format!(" order by started_at, id limit {}", limit.min(10_000)),
            ),
        )
        .await?;
        rows.iter().map(interaction_row).collect()
    }

    /// What the interactions that started in `period` add up to, for one
    /// agent or the whole organization: one scan of an index on
    /// (org, [agent,] started_at).
    pub async fn agent_totals(
        &self,
        org: Uuid,
        agent: Option<Uuid>,
        period: Period,
    ) -> Result<Totals, StoreError> {
        let rows = read_rows(self, in_period(agent, org, period, TOTALS, "")).await?;
        rows.first()
            .map(totals_row)
            .unwrap_or(Ok(Totals::default()))
    }

    /// [`Store::agent_totals`] for every agent with interactions in the
    /// period, in one query.
    pub async fn agent_totals_by_agent(
        &self,
        org: Uuid,
        period: Period,
    ) -> Result<Vec<(Uuid, Totals)>, StoreError> {
        let rows = read_rows(
            self,
            in_period(
                None,
                org,
                period,
                &format!("{TOTALS}, agent_id"),
                " group by agent_id",
            ),
        )
        .await?;
        rows.iter()
            .map(|r| Ok((r.uuid("agent_id")?, totals_row(r)?)))
            .collect()
    }
}
