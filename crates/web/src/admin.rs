//! Organization administration shared by the UI and the API: inviting,
//! re-roling and removing members, creating and revoking API keys. Both
//! front doors call these, so the rules hold whichever door is used.

use crate::auth::keys::{issue_api_key, IssuedKey};
use crate::auth::random_token;
use crate::error::AppError;
use crate::AppState;
use bos_core::{Email, Role, ScopeSet};
use bos_store::{Member, StoreError};
use uuid::Uuid;

/// Who is acting, with what power in the organization.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub org_id: Uuid,
    pub role: Role,
    pub user_id: Option<Uuid>,
}

pub struct Invited {
    pub member: Member,
    /// Set when a new account was created: shown once, must be changed at first login.
    pub one_time_password: Option<String>,
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

pub async fn invite(
    state: &AppState,
    actor: &Actor,
    email: &str,
    name: &str,
    role: Role,
) -> Result<Invited, AppError> {
    may_assign(actor, role)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e.0))?;
    let name = name.trim();
    if name.chars().count() > 100 {
        return Err(AppError::invalid(
            "display_name",
            "a name has at most 100 characters",
        ));
    }
    let now = state.now();
    let (user, otp) = match state.store.user_by_email(&email).await? {
        Some(u) => (u, None),
        None => {
            let otp = random_token(12);
            let hash = state
                .passwords
                .hash(otp.clone())
                .await
                .map_err(AppError::Internal)?;
            let display = if name.is_empty() {
                email.as_str().split('@').next().unwrap_or("")
            } else {
                name
            };
            match state
                .store
                .create_user(&email, display, &hash, true, now)
                .await
            {
                Ok(u) => (u, Some(otp)),
                // Created concurrently by someone else: use that account.
                Err(StoreError::Conflict(_)) => (
                    state
                        .store
                        .user_by_email(&email)
                        .await?
                        .ok_or(AppError::NotFound)?,
                    None,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if state
        .store
        .membership(actor.org_id, user.id)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "{} is already a member of this organization.",
            email
        )));
    }
    state
        .store
        .upsert_membership(actor.org_id, user.id, role, now)
        .await?;
    let member = state.store.member(actor.org_id, user.id).await?;
    Ok(Invited {
        member,
        one_time_password: otp,
    })
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
