//! Organization administration, whichever door it comes through (the
//! Settings pages, the API, the CLI): inviting and withdrawing
//! invitations, re-roling and removing members, issuing and revoking API
//! keys. The permission rules live here so they hold for every caller.

use crate::links::Links;
use crate::nudge::Nudger;
use crate::tokens::{random_token, sha256};
use bos_core::{ApiKeyParts, Email, Role, ScopeSet, INVITATION_TTL_MS};
use bos_store::invitations::Invitation;
use bos_store::{ApiKey, Member, Store, StoreError};
use uuid::Uuid;

/// Why an administration request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The actor's role does not allow it; the text says who may.
    #[error("{0}")]
    Forbidden(String),
    /// The organization's current state refuses it (the last owner, a
    /// member already there, an invitation already used).
    #[error("{0}")]
    Conflict(String),
    /// An input is not acceptable; the text says what to send.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, detail: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field,
        detail: detail.into(),
    }
}

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

/// A freshly created key; `secret` exists only in this value.
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

fn may_assign(actor: &Actor, role: Role) -> Result<(), AdminError> {
    if actor.role.may_assign(role) {
        Ok(())
    } else if !actor.role.can_administer() {
        Err(AdminError::Forbidden(
            "Only admins and owners can manage members.".into(),
        ))
    } else {
        Err(AdminError::Forbidden(
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
    store: &Store,
    mailer: &Nudger,
    links: &dyn Links,
    actor: &Actor,
    email: &str,
    role: Role,
    now: i64,
) -> Result<Invited, AdminError> {
    may_assign(actor, role)?;
    let email = Email::parse(email).map_err(|e| invalid("email", e.0))?;
    if store
        .members(actor.org_id)
        .await?
        .iter()
        .any(|m| m.email == email.as_str())
    {
        return Err(AdminError::Conflict(format!(
            "{email} is already a member of this organization."
        )));
    }
    let token = random_token(32);
    let invitation = store
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
    let url = links.invitation(&token);
    let emailed = email_invitation(store, mailer, actor.org_id, &invitation, &url).await;
    Ok(Invited {
        invitation,
        accept_url: url,
        emailed,
    })
}

/// Mails the link through the organization's e-mail channel when it has
/// one (SMTP); the development sink sends nothing. A failure is logged and
/// the admin still has the link to hand over.
async fn email_invitation(
    store: &Store,
    mailer: &Nudger,
    org_id: Uuid,
    inv: &Invitation,
    url: &str,
) -> bool {
    let org = match store.org(org_id).await {
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
    match mailer
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

/// Withdraws a pending invitation: its link stops working at once.
pub async fn revoke_invitation(
    store: &Store,
    actor: &Actor,
    id: Uuid,
    now: i64,
) -> Result<(), AdminError> {
    // Another tenant's invitation is "not found" before any permission question.
    let inv = store.invitation(actor.org_id, id).await?;
    may_assign(actor, inv.role)?;
    match store.revoke_invitation(actor.org_id, id, now).await {
        Err(StoreError::Conflict(_)) => Err(AdminError::Conflict(
            "This invitation was already accepted or withdrawn.".into(),
        )),
        r => r.map_err(AdminError::from),
    }
}

pub async fn change_role(
    store: &Store,
    actor: &Actor,
    user_id: Uuid,
    role: Role,
) -> Result<Member, AdminError> {
    let target = store.member(actor.org_id, user_id).await?;
    may_assign(actor, target.role)?;
    may_assign(actor, role)?;
    match store.set_role(actor.org_id, user_id, role).await {
        Err(StoreError::Conflict(_)) => Err(AdminError::Conflict(
            "An organization needs at least one owner. Make someone else an owner first.".into(),
        )),
        r => r.map_err(AdminError::from),
    }?;
    Ok(store.member(actor.org_id, user_id).await?)
}

pub async fn remove(store: &Store, actor: &Actor, user_id: Uuid) -> Result<(), AdminError> {
    let target = store.member(actor.org_id, user_id).await?;
    may_assign(actor, target.role)?;
    match store.remove_member(actor.org_id, user_id).await {
        Err(StoreError::Conflict(_)) => Err(AdminError::Conflict(
            "This is the organization's last owner. Make someone else an owner first.".into(),
        )),
        r => r.map_err(AdminError::from),
    }
}

/// Stores a new key for `org_id` and hands back its secret, once. No
/// permission check: the CLI and the demo call it as the operator.
pub async fn issue_api_key(
    store: &Store,
    org_id: Uuid,
    name: &str,
    scopes: &ScopeSet,
    created_by: Option<Uuid>,
    now: i64,
) -> Result<IssuedKey, StoreError> {
    let parts = ApiKeyParts::from_encoded_secret(&random_token(30));
    let key = store
        .create_api_key(
            org_id,
            name,
            &parts.display_prefix,
            &sha256(&parts.full),
            scopes,
            created_by,
            now,
        )
        .await?;
    Ok(IssuedKey {
        key,
        secret: parts.full,
    })
}

pub async fn create_key(
    store: &Store,
    actor: &Actor,
    name: &str,
    scopes: &[String],
    now: i64,
) -> Result<IssuedKey, AdminError> {
    if !actor.role.can_administer() {
        return Err(AdminError::Forbidden(
            "Only admins and owners can create API keys.".into(),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid(
            "name",
            "give the key a name of 1 to 100 characters, e.g. 'Shopify sync'",
        ));
    }
    let scopes = ScopeSet::parse(&scopes.join(",")).map_err(|e| invalid("scopes", e.0))?;
    Ok(issue_api_key(store, actor.org_id, name, &scopes, actor.user_id, now).await?)
}

pub async fn revoke_key(
    store: &Store,
    actor: &Actor,
    key_id: Uuid,
    now: i64,
) -> Result<(), AdminError> {
    // Another tenant's key is "not found" before any permission question.
    store.api_key(actor.org_id, key_id).await?;
    if !actor.role.can_administer() {
        return Err(AdminError::Forbidden(
            "Only admins and owners can revoke API keys.".into(),
        ));
    }
    Ok(store.revoke_api_key(actor.org_id, key_id, now).await?)
}
