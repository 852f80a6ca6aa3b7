//! Organization administration shared by the UI and the API: inviting
//! (and withdrawing invitations), re-roling and removing members, creating and revoking API keys. Both
//! front doors call these, so the rules hold whichever door is used.

use crate::auth::keys::{issue_api_key, IssuedKey};
use crate::auth::{random_token, sha256};
use crate::error::AppError;
use crate::AppState;
use bos_core::{Email, Role, ScopeSet, INVITATION_TTL_MS};
use bos_store::invitations::Invitation;
use bos_store::{Member, StoreError};
use uuid::Uuid;

/// Who is acting, with what power in the organization.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub org_id: Uuid,
    pub role: Role,
    pub user_id: Option<Uuid>,
}

/// A stored invitation and its link, which exists only here: the database
/// keeps its hash, so the link is shown once to the admin who invited.
pub struct Invited {
    pub invitation: Invitation,
    pub accept_url: String,
    /// Whether the link was also e-mailed to the address (the organization
    /// sends e-mail through SMTP and the server accepted the message).
    pub emailed: bool,
}

fn may_assign(actor: &Actor, role: Role) -> Result<(), AppError> {
    if actor.role.may_assign(role) {
        Ok(())
    } else if !actor.role.can_administer() {
        Err(AppError::Forbidden(
            "Only admins and owners can manage members.".into(),
        ))
    } else {
        Err(AppError::Forbidden(
            "Only an owner can make someone an owner or change an owner.".into(),
        ))
    }
}

/// Invites `email` to the organization with `role`. Whether the address
/// has an account (here or in any other organization) changes nothing in
/// the answer and nothing in any account: the person becomes a member only
/// by accepting through the link. Only a current member of this same
/// organization is refused, which tells the admin nothing they cannot see
/// on their own members page.
pub async fn invite(
    state: &AppState,
    actor: &Actor,
    email: &str,
    role: Role,
) -> Result<Invited, AppError> {
    may_assign(actor, role)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e.0))?;
    if state
        .store
        .members(actor.org_id)
        .await?
        .iter()
        .any(|m| m.email == email.as_str())
    {
        return Err(AppError::Conflict(format!(
            "{email} is already a member of this organization."
        )));
    }
    let token = random_token(32);
    let now = state.now();
    let invitation = state
        .store
        .create_invitation(
            actor.org_id,
            &email,
            role,
            &sha256(&token),
            actor.user_id,
            now,
            now + INVITATION_TTL_MS,
        )
        .await?;
    let url = accept_url(state, &token);
    let emailed = email_invitation(state, actor.org_id, &invitation, &url).await;
    Ok(Invited {
        invitation,
        accept_url: url,
        emailed,
    })
}

/// Mails the link through the organization's e-mail channel when it has
/// one (SMTP); the development sink sends nothing. A failure is logged and
/// the admin still has the link to hand over.
async fn email_invitation(state: &AppState, org_id: Uuid, inv: &Invitation, url: &str) -> bool {
    let org = match state.store.org(org_id).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(org = %org_id, "invitation e-mail not sent: {e}");
            return false;
        }
    };
    let subject = format!("You are invited to join {} on BOS", org.name);
    let text = format!(
        "You are invited to join {} on BOS as {}.\n\n\
         Open this link to accept; it works once, for 7 days:\n{url}\n\n\
         If you already have a BOS account with this address, sign in to accept. \
         Otherwise you choose your name and password there.\n\n\
         If you did not expect this invitation, ignore this e-mail.\n",
        org.name,
        inv.role.as_str()
    );
    match state
        .nudger
        .send_service_email(org_id, &inv.email, &subject, &text)
        .await
    {
        Ok(sent) => sent,
        Err(why) => {
            tracing::warn!(org = %org_id, invitation = %inv.id, "invitation e-mail not sent: {why}");
            false
        }
    }
}

/// The page where an invitation is accepted.
pub fn accept_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/invitations/{token}",
        state.config.public_url.trim_end_matches('/')
    )
}

/// Withdraws a pending invitation: its link stops working at once.
pub async fn revoke_invitation(state: &AppState, actor: &Actor, id: Uuid) -> Result<(), AppError> {
    // Another tenant's invitation is "not found" before any permission question.
    let inv = state.store.invitation(actor.org_id, id).await?;
    may_assign(actor, inv.role)?;
    match state
        .store
        .revoke_invitation(actor.org_id, id, state.now())
        .await
    {
        Err(StoreError::Conflict(_)) => Err(AppError::Conflict(
            "This invitation was already accepted or withdrawn.".into(),
        )),
        r => r.map_err(AppError::from),
    }
}

pub async fn change_role(
    state: &AppState,
    actor: &Actor,
    user_id: Uuid,
    role: Role,
) -> Result<Member, AppError> {
    let target = state.store.member(actor.org_id, user_id).await?;
    may_assign(actor, target.role)?;
    may_assign(actor, role)?;
    match state.store.set_role(actor.org_id, user_id, role).await {
        Err(StoreError::Conflict(_)) => Err(AppError::Conflict(
            "An organization needs at least one owner. Make someone else an owner first.".into(),
        )),
        r => r.map_err(AppError::from),
    }?;
    Ok(state.store.member(actor.org_id, user_id).await?)
}

pub async fn remove(state: &AppState, actor: &Actor, user_id: Uuid) -> Result<(), AppError> {
    let target = state.store.member(actor.org_id, user_id).await?;
    may_assign(actor, target.role)?;
    match state.store.remove_member(actor.org_id, user_id).await {
        Err(StoreError::Conflict(_)) => Err(AppError::Conflict(
            "This is the organization's last owner. Make someone else an owner first.".into(),
        )),
        r => r.map_err(AppError::from),
    }
}

pub async fn create_key(
    state: &AppState,
    actor: &Actor,
    name: &str,
    scopes: &[String],
) -> Result<IssuedKey, AppError> {
    if !actor.role.can_administer() {
        return Err(AppError::Forbidden(
            "Only admins and owners can create API keys.".into(),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid(
            "name",
            "give the key a name of 1 to 100 characters, e.g. 'Shopify sync'",
        ));
    }
    let scopes =
        ScopeSet::parse(&scopes.join(",")).map_err(|e| AppError::invalid("scopes", e.0))?;
    Ok(issue_api_key(
        &state.store,
        actor.org_id,
        name,
        &scopes,
        actor.user_id,
        state.now(),
    )
    .await?)
}

pub async fn revoke_key(state: &AppState, actor: &Actor, key_id: Uuid) -> Result<(), AppError> {
    // Another tenant's key is "not found" before any permission question.
    state.store.api_key(actor.org_id, key_id).await?;
    if !actor.role.can_administer() {
        return Err(AppError::Forbidden(
            "Only admins and owners can revoke API keys.".into(),
        ));
    }
    Ok(state
        .store
        .revoke_api_key(actor.org_id, key_id, state.now())
        .await?)
}
