//! `AuditEvent`, `AuditAction`, and the organization's audit log.

use async_graphql::{Context, Enum, ID, Json, Object};
use chrono::{DateTime, Utc};

use super::{connection::newest_first_connection, user::User};
use crate::{error::AppResult, graphql::context::ContextExt};

/// What an audit event records.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AuditAction {
    MembershipProvisioned,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    InvitationCreated,
    InvitationAccepted,
    InvitationRevoked,
    OrganizationUpdated,
    CourseDeleted,
    AccessDenied,
    PlatformAdminAccess,
}

impl From<entity::AuditAction> for AuditAction {
    fn from(a: entity::AuditAction) -> Self {
        use entity::AuditAction as A;
        match a {
            A::MembershipProvisioned => Self::MembershipProvisioned,
            A::MemberAdded => Self::MemberAdded,
            A::MemberRoleChanged => Self::MemberRoleChanged,
            A::MemberRemoved => Self::MemberRemoved,
            A::InvitationCreated => Self::InvitationCreated,
            A::InvitationAccepted => Self::InvitationAccepted,
            A::InvitationRevoked => Self::InvitationRevoked,
            A::OrganizationUpdated => Self::OrganizationUpdated,
            A::CourseDeleted => Self::CourseDeleted,
            A::AccessDenied => Self::AccessDenied,
            A::PlatformAdminAccess => Self::PlatformAdminAccess,
        }
    }
}

impl From<AuditAction> for entity::AuditAction {
    fn from(a: AuditAction) -> Self {
        use entity::AuditAction as A;
        match a {
            AuditAction::MembershipProvisioned => A::MembershipProvisioned,
            AuditAction::MemberAdded => A::MemberAdded,
            AuditAction::MemberRoleChanged => A::MemberRoleChanged,
            AuditAction::MemberRemoved => A::MemberRemoved,
            AuditAction::InvitationCreated => A::InvitationCreated,
            AuditAction::InvitationAccepted => A::InvitationAccepted,
            AuditAction::InvitationRevoked => A::InvitationRevoked,
            AuditAction::OrganizationUpdated => A::OrganizationUpdated,
            AuditAction::CourseDeleted => A::CourseDeleted,
            AuditAction::AccessDenied => A::AccessDenied,
            AuditAction::PlatformAdminAccess => A::PlatformAdminAccess,
        }
    }
}

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
        self.0.action.into()
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
