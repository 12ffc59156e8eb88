//! `Membership`: a user's role in an organization.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{organization::Organization, user::User};
use crate::{
    auth::viewer::MembershipRecord,
    authz::Role,
    error::{AppError, AppResult},
    graphql::context::ContextExt,
};

#[derive(Clone, Debug)]
pub struct Membership {
    pub id: Uuid,
    pub user_id: Uuid,
    pub organization_id: Uuid,
    pub role: Role,
    pub is_active: bool,
    pub joined_at: DateTime<Utc>,
}

impl Membership {
    pub fn from_record(user_id: Uuid, m: &MembershipRecord) -> Self {
        Self {
            id: m.id,
            user_id,
            organization_id: m.organization_id,
            role: m.role,
            is_active: m.is_active,
            joined_at: m.joined_at,
        }
    }
}

impl From<&entity::membership::Model> for Membership {
    fn from(m: &entity::membership::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            organization_id: m.organization_id,
            role: m.role,
            is_active: m.is_active,
            joined_at: m.joined_at,
        }
    }
}

#[Object]
impl Membership {
    async fn id(&self) -> ID {
        super::id(self.id)
    }

    async fn user(&self, ctx: &Context<'_>) -> AppResult<User> {
        let u = ctx.loaders()?.users.load_one(self.user_id).await?;
        u.map(|u| User::from(u.as_ref())).ok_or(AppError::not_found("user"))
    }

    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        let o = ctx.loaders()?.organizations.load_one(self.organization_id).await?;
        o.map(Organization).ok_or(AppError::not_found("organization"))
    }

    async fn role(&self) -> Role {
        self.role
    }

    async fn is_active(&self) -> bool {
        self.is_active
    }

    async fn joined_at(&self) -> DateTime<Utc> {
        self.joined_at
    }
}
