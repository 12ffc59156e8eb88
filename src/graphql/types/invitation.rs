//! `Invitation`, its status, and the organization's list of them.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{connection::newest_first_connection, organization::Organization, user::User};
use crate::{
    authz::Role,
    error::{AppError, AppResult},
    graphql::context::ContextExt,
};

/// Where an invitation stands (the stored enum itself).
pub use entity::InvitationStatus;

/// An offer of a role in an organization to an email address.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub row: Arc<entity::invitation::Model>,
    /// The organization's row when the reader may not load it themself (the invitee,
    /// before they are a member); otherwise it comes from the loader.
    pub organization: Option<Arc<entity::organization::Model>>,
}

impl Invitation {
    pub fn new(row: &entity::invitation::Model) -> Self {
        Self { row: Arc::new(row.clone()), organization: None }
    }
}

#[Object]
impl Invitation {
    async fn id(&self) -> ID {
        super::id(self.row.id)
    }

    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        if let Some(o) = &self.organization {
            return Ok(Organization(o.clone()));
        }
        let o = ctx.loaders()?.organizations.load_one(self.row.organization_id).await?;
        o.map(Organization).ok_or(AppError::not_found("organization"))
    }

    /// The address as the inviting ADMIN wrote it (compared case-insensitively).
    async fn email(&self) -> &str {
        &self.row.email
    }

    async fn role(&self) -> Role {
        self.row.role
    }

    async fn status(&self) -> InvitationStatus {
        self.row.status_at(Utc::now())
    }

    /// The ADMIN who invited (null when that user is gone or not visible to the reader).
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(id) = self.row.invited_by else { return Ok(None) };
        Ok(ctx.loaders()?.users.load_one(id).await?.map(|u| User::from(u.as_ref())))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.row.expires_at
    }

    async fn accepted_at(&self) -> Option<DateTime<Utc>> {
        self.row.accepted_at
    }
}

newest_first_connection!(
    InvitationConnection,
    InvitationEdge,
    entity::invitation::Entity,
    Invitation,
    "A page of an organization's invitations, newest first."
);
