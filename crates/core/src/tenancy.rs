//! Tenancy vocabulary: organization names and slugs, e-mail addresses as
//! login names, member roles and API-key scopes, each parsed once at the edge
//! so that an invalid value cannot exist past it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err(msg: impl Into<String>) -> ValueError {
    ValueError(msg.into())
}

/// A member's role inside one organization. Ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Role, ValueError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(err(format!(
                "unknown role '{other}': use one of owner, admin, member"
            ))),
        }
    }

    /// Admins and owners manage members and API keys.
    pub fn can_administer(self) -> bool {
        self >= Role::Admin
    }

    /// Whether `self` may give `target` role to someone, or change/remove
    /// someone who currently holds `target`. Only owners touch owners.
    pub fn may_assign(self, target: Role) -> bool {
        self.can_administer() && (target != Role::Owner || self == Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API key may do. A key never acts as a user: `admin` lets scripts
/// manage members and keys, but no scope opens the cookie-session UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Agent,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Agent, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Agent => "agent",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Scope, ValueError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ingest" => Ok(Scope::Ingest),
            "agent" => Ok(Scope::Agent),
            "admin" => Ok(Scope::Admin),
            other => Err(err(format!(
                "unknown scope '{other}': use ingest, agent or admin"
            ))),
        }
    }
}

/// A non-empty set of scopes, stored as a comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn new(mut scopes: Vec<Scope>) -> Result<ScopeSet, ValueError> {
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(err("choose at least one scope: ingest, agent or admin"));
        }
        Ok(ScopeSet(scopes))
    }

    /// Parses `"ingest,admin"` (spaces and case ignored).
    pub fn parse(s: &str) -> Result<ScopeSet, ValueError> {
        let scopes = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        ScopeSet::new(scopes)
    }

    pub fn contains(&self, s: Scope) -> bool {
        self.0.contains(&s)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An e-mail address used as a login name: trimmed and lowercased, with a
/// plausible shape. Deliverability is not our business here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, ValueError> {
        let v = raw.trim().to_lowercase();
        check_email(&v)?;
        Ok(Email(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The shape checks of [`Email::parse`] on a value already trimmed and
/// lowercased; shared with identifier normalization, which lowercases ASCII
/// addresses into its own buffer instead of allocating one `Email` each.
/// Characters an e-mail address may not contain besides whitespace and
/// control characters.
const SPECIAL: &str = "<>()[],;:\\\"";
/// For ASCII the same set as a table: whitespace and control characters
/// are exactly 0..=32 and 127. Imports check millions of addresses.
pub(crate) const BAD: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i <= 32 {
        t[i] = true;
        i += 1;
    }
    t[127] = true;
    let s = SPECIAL.as_bytes();
    let mut j = 0;
    while j < s.len() {
        t[s[j] as usize] = true;
        j += 1;
    }
    t
};

pub(crate) fn check_email(v: &str) -> Result<(), ValueError> {
    if v.is_empty() {
        return Err(err("enter an e-mail address"));
    }
    if v.len() > 254 {
        return Err(err("that e-mail address is longer than 254 characters"));
    }
    let Some((local, domain)) = v.rsplit_once('@') else {
        return Err(err(format!(
            "'{v}' is not an e-mail address: it has no '@'"
        )));
    };
    let any_bad = if v.is_ascii() {
        v.bytes().any(|b| BAD[b as usize])
    } else {
        v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || SPECIAL.contains(c))
    };
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || local.contains('@')
        || any_bad
    {
        return Err(err(format!(
            "'{v}' is not an e-mail address: expected name@example.com"
        )));
    }
    Ok(())
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organization's URL-safe handle: lowercase letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, ValueError> {
        let v = raw.trim().to_ascii_lowercase();
        if v.len() < 2 || v.len() > 48 {
            return Err(err("a slug has 2 to 48 characters"));
        }
        if !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || v.starts_with('-')
            || v.ends_with('-')
        {
            return Err(err(format!(
                "'{v}' is not a valid slug: use lowercase letters, digits and inner dashes"
            )));
        }
        Ok(Slug(v))
    }

    /// Derives a slug from a display name ("Acme & Co." → "acme-co").
    pub fn from_name(name: &str) -> Result<Slug, ValueError> {
        let mut out = String::new();
        for c in name.trim().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        let out = out
            .trim_end_matches('-')
            .chars()
            .take(48)
            .collect::<String>();
        let out = out.trim_end_matches('-').to_string();
        Slug::parse(&out).map_err(|_| {
            err(format!(
                "cannot derive a slug from '{name}': give one with --slug (lowercase letters, digits, dashes)"
            ))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(raw: &str) -> Result<OrgName, ValueError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(err("enter the organization's name"));
        }
        if v.chars().count() > 100 {
            return Err(err("an organization name has at most 100 characters"));
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(err(
                "an organization name cannot contain control characters",
            ));
        }
        Ok(OrgName(v.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long an invitation's link works: a week, long enough for someone
/// who reads mail once a week, short enough that a forgotten link dies.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// Where an invitation stands. Only a pending one can be accepted or
/// revoked; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationState {
    /// Accepted and revoked are final whatever the time; otherwise the
    /// link works until (not at) `expires_at`.
    pub fn of(
        now: i64,
        expires_at: i64,
        accepted_at: Option<i64>,
        revoked_at: Option<i64>,
    ) -> InvitationState {
        if accepted_at.is_some() {
            InvitationState::Accepted
        } else if revoked_at.is_some() {
            InvitationState::Revoked
        } else if now >= expires_at {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::Pending => "pending",
            InvitationState::Accepted => "accepted",
            InvitationState::Revoked => "revoked",
            InvitationState::Expired => "expired",
        }
    }

    /// Why a link in this state cannot be used, for the person holding it.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            InvitationState::Pending => None,
            InvitationState::Accepted => {
                Some("This invitation was used already. Sign in to reach the organization.")
            }
            InvitationState::Revoked => {
                Some("This invitation was withdrawn. Ask the organization's admin for a new one.")
            }
            InvitationState::Expired => {
                Some("This invitation has expired. Ask the organization's admin for a new one.")
            }
        }
    }
}

/// A person's display name: trimmed, 1 to 100 characters, no control
/// characters (it is shown in every page's header).
pub fn display_name(raw: &str) -> Result<String, ValueError> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(err("enter your name"));
    }
    if n.chars().count() > 100 {
        return Err(err("a name has at most 100 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(err("a name cannot contain control characters"));
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invitation_states() {
        use InvitationState::*;
        assert_eq!(InvitationState::of(0, 10, None, None), Pending);
        assert_eq!(InvitationState::of(9, 10, None, None), Pending);
        assert_eq!(InvitationState::of(10, 10, None, None), Expired);
        // Final states win over the clock.
        assert_eq!(InvitationState::of(20, 10, Some(5), None), Accepted);
        assert_eq!(InvitationState::of(0, 10, None, Some(1)), Revoked);
        assert_eq!(InvitationState::of(0, 10, Some(2), Some(1)), Accepted);
        assert!(Pending.refusal().is_none());
        for s in [Accepted, Revoked, Expired] {
            assert!(s.refusal().is_some());
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("  Ann Lee ").unwrap(), "Ann Lee");
        assert!(display_name("  ").is_err());
        assert!(display_name(&"x".repeat(101)).is_err());
        assert!(display_name(&"é".repeat(100)).is_ok());
        assert!(display_name("a\u{0}b").is_err());
    }

    #[test]
    fn emails_normalize_and_reject() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a b@x.com",
            "ann@localhost",
            "a@b@c.com",
            "a@x.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn roles_and_assignment() {
        assert!(Role::Owner.may_assign(Role::Owner));
        assert!(Role::Admin.may_assign(Role::Member));
        assert!(Role::Admin.may_assign(Role::Admin));
        assert!(!Role::Admin.may_assign(Role::Owner));
        assert!(!Role::Member.may_assign(Role::Member));
        assert_eq!(Role::parse(" Admin ").unwrap(), Role::Admin);
        assert!(Role::parse("root")
            .unwrap_err()
            .0
            .contains("owner, admin, member"));
    }

    #[test]
    fn scopes() {
        let s = ScopeSet::parse("admin, ingest,admin").unwrap();
        assert_eq!(s.to_db(), "ingest,admin");
        assert!(s.contains(Scope::Admin) && !s.contains(Scope::Agent));
        assert!(ScopeSet::parse("").is_err());
        assert!(ScopeSet::parse("ingest,everything").is_err());
    }

    #[test]
    fn slugs() {
        assert_eq!(Slug::from_name("Acme & Co.").unwrap().as_str(), "acme-co");
        assert!(Slug::parse("-x").is_err());
        assert!(Slug::parse("UPPER").is_ok());
        assert!(Slug::from_name("!!!").is_err());
    }

    proptest! {
        #[test]
        fn email_parse_is_idempotent(s in "[ -~]{0,40}") {
            if let Ok(e) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
            }
        }

        #[test]
        fn derived_slugs_are_valid(s in "\\PC{0,80}") {
            if let Ok(slug) = Slug::from_name(&s) {
                prop_assert!(Slug::parse(slug.as_str()).is_ok());
            }
        }

        #[test]
        fn scope_sets_roundtrip(v in proptest::collection::vec(0usize..3, 1..6)) {
            let set = ScopeSet::new(v.iter().map(|i| Scope::ALL[*i]).collect()).unwrap();
            prop_assert_eq!(ScopeSet::parse(&set.to_db()).unwrap(), set);
        }
    }
}
