//! `Viewer`: the signed-in user, their memberships and the active organization.

use std::sync::Arc;

use async_graphql::{Context, Object};

use entity::{InvitationStatus, invitation};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::role::{PermissionGrant, grants_out};
use super::{invitation::Invitation, membership::Membership, organization::Organization, user::User};
use crate::{
    auth::Viewer,
    authz::{Role, grants::GrantSet},
    error::AppResult,
    graphql::context::ContextExt,
};

/// Resolved from the request's viewer cell, so it shows the viewer as they are now.
pub struct ViewerNode(pub Arc<Viewer>);

impl ViewerNode {
    /// The active organization, or the refusal of the one the viewer was removed from.
    fn active(&self, ctx: &Context<'_>) -> AppResult<Option<uuid::Uuid>> {
        self.0.fallback_organization().map_err(|d| ctx.refuse(d))
    }
}

#[Object(name = "Viewer")]
impl ViewerNode {
    async fn user(&self) -> User {
        User::from(&self.0.user)
    }

    /// The viewer's active memberships.
    async fn memberships(&self) -> Vec<Membership> {
        self.0.active_memberships().map(|m| Membership::from_record(self.0.user.id, m)).collect()
    }

    /// The organization requests without one act in. Null with FORBIDDEN
    /// (MEMBERSHIP_INACTIVE) when the token names one the viewer was removed from.
    async fn active_organization(&self, ctx: &Context<'_>) -> Option<Organization> {
        let r = async {
            let Some(id) = self.active(ctx)? else { return Ok(None) };
            Ok(ctx.loaders()?.organizations.load_one(id).await?.map(Organization))
        };
        ctx.or_null(r.await)
    }

    /// The viewer's role there (the same refusal as `activeOrganization` when removed).
    async fn active_role(&self, ctx: &Context<'_>) -> Option<Role> {
        let r = self.active(ctx).map(|_| self.0.active_role());
        ctx.or_null(r)
    }

    async fn is_platform_admin(&self) -> bool {
        self.0.platform_admin
    }

    /// The effective grants in the active organization: the built-in role's, the assigned
    /// roles' and, with COURSEGRAPH_ROLE_SOURCE=token, the token's permissions' (every
    /// grant for a platform admin). The same refusal as `activeOrganization` when removed.
    async fn grants(&self, ctx: &Context<'_>) -> Option<Vec<PermissionGrant>> {
        let r = self.active(ctx).map(|active| {
            let g = match active {
                _ if self.0.platform_admin => GrantSet::all(),
                Some(o) => self.0.grants_in(o),
                None => GrantSet::EMPTY,
            };
            Some(grants_out(g))
        });
        ctx.or_null(r)
    }

    /// Pending invitations addressed to the token's verified email, newest first (empty
    /// when the token's email is missing or unverified).
    async fn invitations(&self, ctx: &Context<'_>) -> AppResult<Vec<Invitation>> {
        let Some(email) = self.0.verified_email() else { return Ok(Vec::new()) };
        let rows = invitation::Entity::find()
            .find_also_related(entity::organization::Entity)
            .filter(invitation::Column::EmailNormalized.eq(email))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending))
            .filter(invitation::Column::ExpiresAt.gt(chrono::Utc::now()))
            .order_by_desc(invitation::Column::CreatedAt)
            .order_by_desc(invitation::Column::Id)
            .all(ctx.db()?)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(i, o)| Some(Invitation { row: Arc::new(i), organization: Some(Arc::new(o?)) }))
            .collect())
    }
}
