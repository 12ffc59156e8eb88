//! `Organization` (a tenant) and `OrganizationPermissions`.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{audit_event, invitation};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::{
    audit::{AuditAction, AuditEvent, AuditEventConnection},
    connection::{self, CourseConnection, CourseFilter, MembershipConnection, NewestFirst},
    invitation::{Invitation, InvitationConnection, InvitationStatus},
    role::RoleNode,
};
use crate::{
    authz::{Action, Resource, Role, Subject as _, policy, scope},
    error::AppResult,
    graphql::{context::ContextExt, visibility},
};

#[derive(Clone, Debug)]
pub struct Organization(pub Arc<entity::organization::Model>);

impl Organization {
    pub fn resource(&self) -> Resource {
        Resource::Organization { id: self.0.id }
    }
}

/// What the viewer may do with an organization (answered by the same policy as the guards).
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct OrganizationPermissions {
    pub update: bool,
    pub read_settings: bool,
    pub read_members: bool,
    pub manage_members: bool,
    pub create_course: bool,
    pub read_audit_log: bool,
    pub manage_roles: bool,
}

#[Object]
impl Organization {
    async fn id(&self) -> ID {
        super::id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn slug(&self) -> &str {
        &self.0.slug
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The viewer's role here (ADMIN for a platform admin).
    async fn viewer_role(&self, ctx: &Context<'_>) -> AppResult<Option<Role>> {
        Ok(ctx.viewer()?.effective_role(self.0.id))
    }

    /// Where this organization's files live. ADMIN only.
    #[graphql(visible = "visibility::organization_storage_bucket")]
    async fn storage_bucket(&self, ctx: &Context<'_>) -> Option<String> {
        let r = ctx.viewer().and_then(|v| {
            ctx.require_as(&v, Action::ReadOrganizationSettings, &self.resource())?;
            Ok(Some(self.0.storage_bucket.clone()))
        });
        ctx.or_null(r)
    }

    /// The members, by join date. ADMIN and INSTRUCTOR only.
    #[graphql(
        visible = "visibility::organization_members",
        complexity = "(first.unwrap_or(20).clamp(1, 100) as usize) * child_complexity"
    )]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
        #[graphql(default_with = "Some(false)")] include_inactive: Option<bool>,
    ) -> Option<MembershipConnection> {
        let r = async {
            ctx.require(Action::ReadMembers, &self.resource())?;
            connection::member_page(
                ctx,
                self.0.id,
                first.unwrap_or(20),
                after.as_deref(),
                include_inactive.unwrap_or(false),
            )
            .await
            .map(Some)
        }
        .await;
        ctx.or_null(r)
    }

    /// The organization's courses, by title (drafts only for roles that may read them).
    #[graphql(complexity = "(first.unwrap_or(20).clamp(1, 100) as usize) * child_complexity")]
    async fn courses(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
        filter: Option<CourseFilter>,
    ) -> AppResult<CourseConnection> {
        ctx.require(Action::ReadCourse, &self.resource())?;
        let org = Condition::all().add(entity::course::Column::OrganizationId.eq(self.0.id));
        connection::course_page(ctx, org, first.unwrap_or(20), after.as_deref(), filter.as_ref()).await
    }

    /// The invitations sent, newest first (`status` filters). ADMIN only.
    #[graphql(
        visible = "visibility::organization_invitations",
        complexity = "(first.unwrap_or(20).clamp(1, 100) as usize) * child_complexity"
    )]
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
        status: Option<InvitationStatus>,
    ) -> Option<InvitationConnection> {
        let r = async {
            let viewer = ctx.viewer()?;
            ctx.require_as(&viewer, Action::ManageMembers, &self.resource())?;
            let now = chrono::Utc::now();
            let pending = entity::InvitationStatus::Pending;
            let mut base = invitation::Entity::find()
                .filter(invitation::Column::OrganizationId.eq(self.0.id))
                .filter(scope::invitations(viewer.as_ref()));
            base = match status {
                None => base,
                Some(InvitationStatus::Pending) => {
                    base.filter(invitation::Column::Status.eq(pending)).filter(invitation::Column::ExpiresAt.gt(now))
                }
                Some(InvitationStatus::Expired) => base.filter(
                    Condition::any().add(invitation::Column::Status.eq(entity::InvitationStatus::Expired)).add(
                        Condition::all()
                            .add(invitation::Column::Status.eq(pending))
                            .add(invitation::Column::ExpiresAt.lte(now)),
                    ),
                ),
                Some(InvitationStatus::Accepted) => {
                    base.filter(invitation::Column::Status.eq(entity::InvitationStatus::Accepted))
                }
                Some(InvitationStatus::Revoked) => {
                    base.filter(invitation::Column::Status.eq(entity::InvitationStatus::Revoked))
                }
            };
            let page = NewestFirst::load(
                ctx,
                base,
                invitation::Column::CreatedAt,
                invitation::Column::Id,
                "invitation",
                |i| (i.created_at, i.id),
                first.unwrap_or(20),
                after.as_deref(),
            )
            .await?;
            Ok(Some(InvitationConnection { page, make: Invitation::new }))
        }
        .await;
        ctx.or_null(r)
    }

    /// The audit log, newest first (`action` filters). ADMIN only.
    #[graphql(
        visible = "visibility::organization_audit_log",
        complexity = "(first.unwrap_or(20).clamp(1, 100) as usize) * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
        action: Option<AuditAction>,
    ) -> Option<AuditEventConnection> {
        let r = async {
            let viewer = ctx.viewer()?;
            ctx.require_as(&viewer, Action::ReadAuditLog, &self.resource())?;
            let mut base = audit_event::Entity::find()
                .filter(audit_event::Column::OrganizationId.eq(self.0.id))
                .filter(scope::audit_events(viewer.as_ref()));
            if let Some(a) = action {
                base = base.filter(audit_event::Column::Action.eq(a));
            }
            let page = NewestFirst::load(
                ctx,
                base,
                audit_event::Column::At,
                audit_event::Column::Id,
                "audit",
                |e| (e.at, e.id),
                first.unwrap_or(20),
                after.as_deref(),
            )
            .await?;
            Ok(Some(AuditEventConnection { page, make: |e| AuditEvent(e.clone()) }))
        }
        .await;
        ctx.or_null(r)
    }

    async fn viewer_can(&self, ctx: &Context<'_>) -> AppResult<OrganizationPermissions> {
        let v = ctx.viewer()?;
        let v = v.as_ref();
        let r = self.resource();
        Ok(OrganizationPermissions {
            update: policy::allows(v, Action::UpdateOrganization, &r),
            read_settings: policy::allows(v, Action::ReadOrganizationSettings, &r),
            read_members: policy::allows(v, Action::ReadMembers, &r),
            manage_members: policy::allows(v, Action::ManageMembers, &r),
            create_course: policy::allows(v, Action::CreateCourse, &r),
            read_audit_log: policy::allows(v, Action::ReadAuditLog, &r),
            manage_roles: policy::allows(v, Action::ManageRoles, &r),
        })
    }

    /// The roles members here can hold: the built-in four, the policy file's and this
    /// organization's own. READ_MEMBERS.
    #[graphql(visible = "visibility::organization_roles")]
    async fn roles(&self, ctx: &Context<'_>) -> Option<Vec<RoleNode>> {
        let r = async {
            let viewer = ctx.viewer()?;
            ctx.require_as(&viewer, Action::ReadMembers, &self.resource())?;
            let own = crate::domain::roles::organization_roles(ctx.db()?, self.0.id).await?;
            let policy = &viewer.policy;
            let all = policy.built_in_roles().chain(policy.file_roles().iter().cloned()).chain(own);
            Ok(Some(all.map(RoleNode).collect()))
        }
        .await;
        ctx.or_null(r)
    }
}
