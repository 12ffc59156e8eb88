//! `Membership`: a user's role in an organization.

use std::sync::Arc;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    organization::Organization,
    role::{PermissionGrant, RoleNode, grants_out},
    user::User,
};
use crate::{
    auth::viewer::MembershipRecord,
    authz::{
        Action, Resource, Role,
        roles::{RoleDef, RoleGrants},
    },
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

    /// The custom (and policy-file) roles assigned to it. READ_MEMBERS, or the
    /// membership's own user.
    async fn roles(&self, ctx: &Context<'_>) -> Option<Vec<RoleNode>> {
        let r = async {
            let (viewer, keys, custom) = self.assigned(ctx).await?;
            let policy = &viewer.policy;
            let found = keys.iter().filter_map(|k| {
                custom.iter().find(|r| *r.key == **k).cloned().or_else(|| policy.file_role(k).cloned())
            });
            Ok(Some(found.map(RoleNode).collect()))
        };
        ctx.or_null(r.await)
    }

    /// What it holds as stored: its built-in role's grants and its assigned roles' (a
    /// token's permissions are never stored). READ_MEMBERS, or the membership's own user.
    async fn grants(&self, ctx: &Context<'_>) -> Option<Vec<PermissionGrant>> {
        let r = async {
            let (viewer, keys, custom) = self.assigned(ctx).await?;
            let catalogue: Vec<_> =
                custom.iter().map(|r| RoleGrants { key: r.key.clone(), grants: r.grants }).collect();
            let grants = viewer.policy.stored_grants(self.role, keys.iter().map(String::as_str), &catalogue);
            Ok(Some(grants_out(grants)))
        };
        ctx.or_null(r.await)
    }
}

impl Membership {
    /// The keys assigned to this membership and its organization's own roles, once the
    /// viewer may see them (READ_MEMBERS there, or their own membership).
    async fn assigned(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<(Arc<crate::auth::Viewer>, Arc<Vec<String>>, Arc<Vec<RoleDef>>)> {
        let viewer = ctx.viewer()?;
        if viewer.user.id != self.user_id {
            ctx.require_as(&viewer, Action::ReadMembers, &Resource::Organization { id: self.organization_id })?;
        }
        let loaders = ctx.loaders()?;
        let keys = loaders.assigned_roles.load_one(self.id).await?.unwrap_or_default();
        let custom = if keys.is_empty() {
            Default::default()
        } else {
            loaders.organization_roles.load_one(self.organization_id).await?.unwrap_or_default()
        };
        Ok((viewer, keys, custom))
    }
}
