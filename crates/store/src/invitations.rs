//! Invitations to join an organization. Adding a member stores one (the
//! link's token only as its SHA-256); the invited person becomes a member
//! only by accepting it, as an existing account that signed in or as a new
//! account made in the same transaction. Nothing here reads or returns
//! another tenant's users: an invitation knows the address it was sent to,
//! never whether that address has an account.

use crate::engine::{read, write};
use crate::{new_id, Org, StoreError, User};
use bos_core::{Email, InvitationState, Role};
use sqlx::Connection;
use uuid::Uuid;

/// One invitation as its organization's admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub org_id: Uuid,
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Invitation {
    pub fn state(&self, now: i64) -> InvitationState {
        InvitationState::of(now, self.expires_at, self.accepted_at, self.revoked_at)
    }
}

/// Who accepts: an account that proved it is theirs by signing in, or a new
/// account for the invitation's address.
#[derive(Debug, Clone)]
pub enum Acceptor {
    Existing(Uuid),
    New {
        display_name: String,
        password_hash: String,
    },
}

/// Why an accept did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptError {
    /// No invitation has this token.
    Unknown,
    /// The invitation is used, withdrawn or expired.
    NotPending(InvitationState),
    /// The signed-in account's address is not the invited one.
    WrongAccount,
    /// A new account was asked for, but the address has one: sign in.
    AccountExists,
}

#[derive(sqlx::FromRow)]
struct Row {
    org_id: Uuid,
    id: Uuid,
    email: String,
    role: String,
    invited_by: Option<Uuid>,
    created_at: i64,
    expires_at: i64,
    accepted_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<Row> for Invitation {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Invitation, StoreError> {
        Ok(Invitation {
            org_id: r.org_id,
            id: r.id,
            email: r.email,
            role: Role::parse(&r.role)
                .map_err(|e| StoreError::Other(format!("corrupt role in database: {e}")))?,
            invited_by: r.invited_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            accepted_at: r.accepted_at,
            revoked_at: r.revoked_at,
        })
    }
}

const COLS: &str =
    "org_id, id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at";

impl crate::Store {
    /// Stores a new invitation. A pending invitation of the same address
    /// to the same organization is withdrawn: only the newest link works.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_invitation(
        &self,
        org_id: Uuid,
        email: &Email,
        role: Role,
        token_hash: &[u8],
        invited_by: Option<Uuid>,
        now: i64,
        expires_at: i64,
    ) -> Result<Invitation, StoreError> {
        let inv = Invitation {
            org_id,
            id: new_id(),
            email: email.as_str().to_string(),
            role,
            invited_by,
            created_at: now,
            expires_at,
            accepted_at: None,
            revoked_at: None,
        };
        let (i, hash) = (inv.clone(), token_hash.to_vec());
        write!(self, |c| {
            let mut tx = c.begin().await?;
            sqlx::query(
                "update invitations set revoked_at = $3 where org_id = $1 and email = $2 \
                 and accepted_at is null and revoked_at is null",
            )
            .bind(i.org_id)
            .bind(&i.email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "insert into invitations (org_id, id, email, role, token_hash, invited_by, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(i.org_id)
            .bind(i.id)
            .bind(&i.email)
            .bind(i.role.as_str())
            .bind(&hash)
            .bind(i.invited_by)
            .bind(i.created_at)
            .bind(i.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })?;
        Ok(inv)
    }

    /// The organization's invitations that are neither accepted nor
    /// withdrawn (expired ones included, so an admin sees why a link
    /// failed), newest first.
    pub async fn open_invitations(&self, org_id: Uuid) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!(
            "select {COLS} from invitations where org_id = $1 and accepted_at is null \
             and revoked_at is null order by created_at desc, id desc"
        );
        let rows: Vec<Row> = read!(self, |c| {
            Ok(sqlx::query_as(&sql).bind(org_id).fetch_all(&mut *c).await?)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// One invitation of `org_id`; NotFound for another organization's id.
    pub async fn invitation(&self, org_id: Uuid, id: Uuid) -> Result<Invitation, StoreError> {
        let sql = format!("select {COLS} from invitations where org_id = $1 and id = $2");
        let row: Row = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(org_id)
                .bind(id)
                .fetch_one(&mut *c)
                .await?)
        })?;
        row.try_into()
    }

    /// A system lookup for the accept page: the invitation behind a link's
    /// token and its organization, whatever the organization.
    pub async fn invitation_by_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(Invitation, Org)>, StoreError> {
        let sql = format!("select {COLS} from invitations where token_hash = $1");
        let hash = token_hash.to_vec();
        let row: Option<Row> = read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(&hash)
                .fetch_optional(&mut *c)
                .await?)
        })?;
        let Some(row) = row else { return Ok(None) };
        let inv: Invitation = row.try_into()?;
        let org = self.org(inv.org_id).await?;
        Ok(Some((inv, org)))
    }

    /// Withdraws a pending invitation of `org_id`: its link stops working.
    /// NotFound for another organization's id; Conflict when it is no
    /// longer pending (accepted or withdrawn already).
    pub async fn revoke_invitation(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: i64,
    ) -> Result<(), StoreError> {
        write!(self, |c| {
            let n = sqlx::query(
                "update invitations set revoked_at = $3 where org_id = $1 and id = $2 \
                 and accepted_at is null and revoked_at is null",
            )
            .bind(org_id)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 1 {
                return Ok(());
            }
            let exists: i64 = sqlx::query_scalar(
                "select count(*) from invitations where org_id = $1 and id = $2",
            )
            .bind(org_id)
            .bind(id)
            .fetch_one(&mut *c)
            .await?;
            Err(if exists > 0 {
                StoreError::Conflict("the invitation is no longer pending".into())
            } else {
                StoreError::NotFound
            })
        })
    }

    /// Accepts the invitation behind `token_hash`: in one transaction it is
    /// checked to be pending, the account is found (and must have the
    /// invited address) or made, the membership added (an existing one is
    /// left as it is) and the invitation marked used, so a link works once.
    /// Returns the invitation and the member's account.
    pub async fn accept_invitation(
        &self,
        token_hash: &[u8],
        who: Acceptor,
        now: i64,
    ) -> Result<Result<(Invitation, User), AcceptError>, StoreError> {
        let hash = token_hash.to_vec();
        let sql = format!("select {COLS} from invitations where token_hash = $1");
        let user_sql = "select id, email, display_name, password_hash, must_change_password, \
                        created_at, password_changed_at from users";
        write!(self, |c| {
            let mut tx = c.begin().await?;
            let row: Option<Row> = sqlx::query_as(&sql)
                .bind(&hash)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(Err(AcceptError::Unknown));
            };
            let inv: Invitation = row.try_into()?;
            let state = inv.state(now);
            if state != InvitationState::Pending {
                return Ok(Err(AcceptError::NotPending(state)));
            }
            let user: User = match &who {
                Acceptor::Existing(id) => {
                    let u: Option<User> = sqlx::query_as(&format!("{user_sql} where id = $1"))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match u {
                        Some(u) if u.email == inv.email => u,
                        _ => return Ok(Err(AcceptError::WrongAccount)),
                    }
                }
                Acceptor::New {
                    display_name,
                    password_hash,
                } => {
                    let taken: i64 =
                        sqlx::query_scalar("select count(*) from users where email = $1")
                            .bind(&inv.email)
                            .fetch_one(&mut *tx)
                            .await?;
                    if taken > 0 {
                        return Ok(Err(AcceptError::AccountExists));
                    }
                    let u = User {
                        id: new_id(),
                        email: inv.email.clone(),
                        display_name: display_name.trim().to_string(),
                        password_hash: password_hash.clone(),
                        must_change_password: false,
                        created_at: now,
                        password_changed_at: now,
                    };
                    sqlx::query(
                        "insert into users (id, email, display_name, password_hash, must_change_password, created_at, password_changed_at) \
                         values ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(u.id)
                    .bind(&u.email)
                    .bind(&u.display_name)
                    .bind(&u.password_hash)
                    .bind(u.must_change_password)
                    .bind(u.created_at)
                    .bind(u.password_changed_at)
                    .execute(&mut *tx)
                    .await?;
                    u
                }
            };
            sqlx::query(
                "insert into memberships (org_id, user_id, role, created_at) values ($1, $2, $3, $4) \
                 on conflict (org_id, user_id) do nothing",
            )
            .bind(inv.org_id)
            .bind(user.id)
            .bind(inv.role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // Guarded by the same conditions: of two concurrent accepts of
            // one link, exactly one marks it.
            let n = sqlx::query(
                "update invitations set accepted_at = $2, accepted_by = $3 where token_hash = $1 \
                 and accepted_at is null and revoked_at is null",
            )
            .bind(&hash)
            .bind(now)
            .bind(user.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(Err(AcceptError::NotPending(InvitationState::Accepted)));
            }
            tx.commit().await?;
            let mut inv = inv;
            inv.accepted_at = Some(now);
            Ok(Ok((inv, user)))
        })
    }
}
