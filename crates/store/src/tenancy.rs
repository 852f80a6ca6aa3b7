//! Organizations, users and memberships. Users are global (one login may
//! belong to several organizations); memberships carry the tenant key.

use crate::engine::{read, write};
use crate::{new_id, StoreError};
use bos_core::{Email, OrgName, Role, Slug};
use serde::Serialize;
use sqlx::Connection;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub created_at: i64,
    pub password_changed_at: i64,
}

/// One organization a user belongs to, with the role held there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgMembership {
    pub org: Org,
    pub role: Role,
}

/// A member of one organization as the members page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub must_change_password: bool,
    pub joined_at: i64,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: Uuid,
    email: String,
    display_name: String,
    role: String,
    must_change_password: bool,
    joined_at: i64,
}

#[derive(sqlx::FromRow)]
struct OrgRoleRow {
    id: Uuid,
    slug: String,
    name: String,
    created_at: i64,
    role: String,
}

fn role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).map_err(|e| StoreError::Other(format!("corrupt role in database: {e}")))
}

const USER_COLS: &str =
    "id, email, display_name, password_hash, must_change_password, created_at, password_changed_at";

impl crate::Store {
    pub async fn create_org(
        &self,
        name: &OrgName,
        slug: &Slug,
        now: i64,
    ) -> Result<Org, StoreError> {
        let org = Org {
            id: new_id(),
            slug: slug.as_str().to_string(),
            name: name.as_str().to_string(),
            created_at: now,
        };
        let o = org.clone();
        write!(self, |c| {
            sqlx::query(
                "insert into organizations (id, slug, name, created_at) values ($1, $2, $3, $4)",
            )
            .bind(o.id)
            .bind(&o.slug)
            .bind(&o.name)
            .bind(o.created_at)
            .execute(&mut *c)
            .await?;
            Ok(())
        })?;
        Ok(org)
    }

    pub async fn org(&self, id: Uuid) -> Result<Org, StoreError> {
        read!(self, |c| {
            Ok(
                sqlx::query_as(
                    "select id, slug, name, created_at from organizations where id = $1",
                )
                .bind(id)
                .fetch_one(&mut *c)
                .await?,
            )
        })
    }

    pub async fn org_by_slug(&self, slug: &str) -> Result<Option<Org>, StoreError> {
        let slug = slug.trim().to_ascii_lowercase();
        read!(self, |c| {
            Ok(sqlx::query_as(
                "select id, slug, name, created_at from organizations where slug = $1",
            )
            .bind(&slug)
            .fetch_optional(&mut *c)
            .await?)
        })
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        read!(self, |c| {
            Ok(
                sqlx::query_as(
                    "select id, slug, name, created_at from organizations order by name",
                )
                .fetch_all(&mut *c)
                .await?,
            )
        })
    }

    pub async fn create_user(
        &self,
        email: &Email,
        display_name: &str,
        password_hash: &str,
        must_change_password: bool,
        now: i64,
    ) -> Result<User, StoreError> {
        let user = User {
            id: new_id(),
            email: email.as_str().to_string(),
            display_name: display_name.trim().to_string(),
            password_hash: password_hash.to_string(),
            must_change_password,
            created_at: now,
            password_changed_at: now,
        };
        let u = user.clone();
        write!(self, |c| {
            sqlx::query(
                "insert into users (id, email, display_name, password_hash, must_change_password, created_at, password_changed_at)
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(u.id)
            .bind(&u.email)
            .bind(&u.display_name)
            .bind(&u.password_hash)
            .bind(u.must_change_password)
            .bind(u.created_at)
            .bind(u.password_changed_at)
            .execute(&mut *c)
            .await?;
            Ok(())
        })?;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let sql = format!("select {USER_COLS} from users where email = $1");
        let email = email.as_str();
        read!(self, |c| {
            Ok(sqlx::query_as(&sql)
                .bind(email)
                .fetch_optional(&mut *c)
                .await?)
        })
    }

    pub async fn user(&self, id: Uuid) -> Result<User, StoreError> {
        let sql = format!("select {USER_COLS} from users where id = $1");
        read!(self, |c| {
            Ok(sqlx::query_as(&sql).bind(id).fetch_one(&mut *c).await?)
        })
    }

    /// Sets a new password hash and ends every session of the user (ASVS:
    /// sessions must not outlive a password change).
    pub async fn set_password(
        &self,
        user_id: Uuid,
        hash: &str,
        must_change: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let hash = hash.to_string();
        write!(self, |c| {
            let mut tx = c.begin().await?;
            let n = sqlx::query(
                "update users set password_hash = $2, must_change_password = $3, password_changed_at = $4 where id = $1",
            )
            .bind(user_id)
            .bind(&hash)
            .bind(must_change)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("delete from sessions where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Adds the user to the organization, or changes their role if already in.
    pub async fn upsert_membership(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: i64,
    ) -> Result<(), StoreError> {
        write!(self, |c| {
            sqlx::query(
                "insert into memberships (org_id, user_id, role, created_at) values ($1, $2, $3, $4)
                 on conflict (org_id, user_id) do update set role = excluded.role",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok(())
        })
    }

    pub async fn membership(
        &self,
        org_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<Role>, StoreError> {
        let r: Option<String> = read!(self, |c| {
            Ok(sqlx::query_scalar(
                "select role from memberships where org_id = $1 and user_id = $2",
            )
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *c)
            .await?)
        })?;
        r.as_deref().map(role).transpose()
    }

    pub async fn user_orgs(&self, user_id: Uuid) -> Result<Vec<OrgMembership>, StoreError> {
        let rows: Vec<OrgRoleRow> = read!(self, |c| {
            Ok(sqlx::query_as(
                "select o.id, o.slug, o.name, o.created_at, m.role from memberships m
                 join organizations o on o.id = m.org_id where m.user_id = $1 order by o.name",
            )
            .bind(user_id)
            .fetch_all(&mut *c)
            .await?)
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(OrgMembership {
                    role: role(&r.role)?,
                    org: Org {
                        id: r.id,
                        slug: r.slug,
                        name: r.name,
                        created_at: r.created_at,
                    },
                })
            })
            .collect()
    }

    pub async fn members(&self, org_id: Uuid) -> Result<Vec<Member>, StoreError> {
        let rows: Vec<MemberRow> = read!(self, |c| {
            Ok(sqlx::query_as(
                "select u.id as user_id, u.email, u.display_name, m.role, u.must_change_password, m.created_at as joined_at
                 from memberships m join users u on u.id = m.user_id where m.org_id = $1 order by u.email",
            )
            .bind(org_id)
            .fetch_all(&mut *c)
            .await?)
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.user_id,
                    email: r.email,
                    display_name: r.display_name,
                    role: role(&r.role)?,
                    must_change_password: r.must_change_password,
                    joined_at: r.joined_at,
                })
            })
            .collect()
    }

    pub async fn member(&self, org_id: Uuid, user_id: Uuid) -> Result<Member, StoreError> {
        self.members(org_id)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id)
            .ok_or(StoreError::NotFound)
    }

    /// Changes a member's role. Refuses (Conflict) to leave an organization
    /// without an owner. NotFound when the user is not a member of `org_id`.
    pub async fn set_role(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        new_role: Role,
    ) -> Result<(), StoreError> {
        write!(self, |c| {
            let mut tx = c.begin().await?;
            let was_owner = sqlx::query_scalar::<_, String>(
                "select role from memberships where org_id = $1 and user_id = $2",
            )
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .as_deref()
                == Some("owner");
            let n =
                sqlx::query("update memberships set role = $3 where org_id = $1 and user_id = $2")
                    .bind(org_id)
                    .bind(user_id)
                    .bind(new_role.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let owners: i64 = sqlx::query_scalar(
                "select count(*) from memberships where org_id = $1 and role = 'owner'",
            )
            .bind(org_id)
            .fetch_one(&mut *tx)
            .await?;
            if was_owner && owners == 0 {
                return Err(StoreError::Conflict("last_owner".into()));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes a member and their sessions' hold on this organization.
    /// Refuses (Conflict) to remove the last owner.
    pub async fn remove_member(&self, org_id: Uuid, user_id: Uuid) -> Result<(), StoreError> {
        write!(self, |c| {
            let mut tx = c.begin().await?;
            let was_owner = sqlx::query_scalar::<_, String>(
                "select role from memberships where org_id = $1 and user_id = $2",
            )
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .as_deref()
                == Some("owner");
            let n = sqlx::query("delete from memberships where org_id = $1 and user_id = $2")
                .bind(org_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let owners: i64 = sqlx::query_scalar(
                "select count(*) from memberships where org_id = $1 and role = 'owner'",
            )
            .bind(org_id)
            .fetch_one(&mut *tx)
            .await?;
            if was_owner && owners == 0 {
                return Err(StoreError::Conflict("last_owner".into()));
            }
            sqlx::query("update sessions set org_id = null where user_id = $1 and org_id = $2")
                .bind(user_id)
                .bind(org_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}
