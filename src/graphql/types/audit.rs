//! `AuditEvent`, `AuditAction`, and the organization's audit log.

use async_graphql::{Context, ID, Json, Object};
use chrono::{DateTime, Utc};

use super::{connection::newest_first_connection, user::User};
use crate::{error::AppResult, graphql::context::ContextExt};

/// What an audit event records (the stored enum itself).
pub use entity::AuditAction;

/// One entry of an organization's audit log. Read-only: nothing in the API edits it.
pub struct AuditEvent(pub entity::audit_event::Model);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        super::id(self.0.id)
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    async fn action(&self) -> AuditAction {
        self.0.action
    }

    /// Who did it (null for a user that is gone or not visible to the reader).
    async fn actor(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let Some(id) = self.0.actor_id else { return Ok(None) };
        Ok(ctx.loaders()?.users.load_one(id).await?.map(|u| User::from(u.as_ref())))
    }

    /// What it was done to: `membership`, `invitation`, `organization`, `course`, `user`.
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }

    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.map(super::id)
    }

    /// Roles, reasons and ids that explain the event (never a token or secret).
    async fn details(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.clone().map(Json)
    }
}

newest_first_connection!(
    AuditEventConnection,
    AuditEventEdge,
    entity::audit_event::Entity,
    AuditEvent,
    "A page of an organization's audit log, newest first."
);
