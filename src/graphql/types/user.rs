//! `User`: a public profile for anyone who can reach the row; `email` and
//! `lastLoginAt` only for the user themself or an ADMIN of an organization they share.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use async_graphql::{Context, ID, Object};

use crate::{
    auth::viewer::UserRecord,
    authz::{Action, Resource},
    error::AppResult,
    graphql::context::ContextExt,
};

#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&UserRecord> for User {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            avatar_url: u.avatar_url.clone(),
            last_login_at: u.last_login_at,
            created_at: u.created_at,
        }
    }
}

impl From<&entity::user::Model> for User {
    fn from(u: &entity::user::Model) -> Self {
        Self {
            id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            avatar_url: u.avatar_url.clone(),
            last_login_at: u.last_login_at,
            created_at: u.created_at,
        }
    }
}

impl User {
    /// READ_USER_PRIVATE on this user.
    async fn require_private(&self, ctx: &Context<'_>) -> AppResult<()> {
        let viewer = ctx.viewer()?;
        let organization_ids = if self.id == viewer.user.id {
            Vec::new()
        } else {
            ctx.loaders()?.shared_organizations.load_one(self.id).await?.map(|v| v.as_ref().clone()).unwrap_or_default()
        };
        ctx.require(Action::ReadUserPrivate, &Resource::User { id: self.id, organization_ids })?;
        Ok(())
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        super::id(self.id)
    }

    async fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Private: the user themself, or an ADMIN of an organization they belong to.
    async fn email(&self, ctx: &Context<'_>) -> Option<String> {
        let r = self.require_private(ctx).await.map(|_| self.email.clone());
        ctx.or_null(r)
    }

    async fn avatar_url(&self) -> Option<&str> {
        self.avatar_url.as_deref()
    }

    /// Private: the user themself, or an ADMIN of an organization they belong to.
    async fn last_login_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        let r = self.require_private(ctx).await.map(|_| self.last_login_at);
        ctx.or_null(r)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}
