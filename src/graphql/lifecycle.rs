//! The membership lifecycle's mutations (CONTRACT §10): `inviteMember`,
//! `revokeInvitation`, `acceptInvitation`. Each writes its audit event in its own
//! transaction, like the core membership mutations.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::Utc;
use entity::{AuditAction, InvitationStatus, invitation, membership, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QuerySelect, RelationTrait,
    sea_query::{Expr, ExprTrait, Func, Query},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    context::ContextExt,
    lookup,
    mutation::lock_and_recheck,
    types::{invitation::Invitation, membership::Membership, parse_id},
    visibility,
};
use crate::{
    audit,
    auth::cache::{Change, ContextCache},
    authz::{AccessReason, Action, Role, policy},
    error::{AppError, AppResult},
    invitations,
};

#[derive(InputObject)]
pub struct InviteMemberInput {
    /// Defaults to the active organization.
    pub organization_id: Option<ID>,
    /// Compared case-insensitively; the invitee accepts with a token carrying this
    /// email, verified.
    pub email: String,
    pub role: Role,
}

#[derive(Default)]
pub struct LifecycleMutation;

#[Object]
impl LifecycleMutation {
    /// Invites an email address to an organization with a role; it can be accepted until
    /// `expiresAt` (COURSEGRAPH_INVITATION_TTL). ADMIN only. An address that is already an
    /// active member, or already has a pending invitation here, is CONFLICT.
    #[graphql(visible = "visibility::mutation_invite_member")]
    async fn invite_member(&self, ctx: &Context<'_>, input: InviteMemberInput) -> AppResult<Invitation> {
        let viewer = ctx.viewer()?;
        let org = lookup::target_organization(
            ctx,
            "input.organizationId",
            input.organization_id.as_ref(),
            Action::ManageMembers,
        )
        .await?;
        let (email, normalized) = invitations::email("input.email", &input.email)?;
        let ttl = ctx.settings()?.invitations.ttl;
        let db = ctx.db()?;
        // Whoever already signed in with this address will drop their cached context, so
        // their next request finds the invitation (and, with auto-accept, accepts it). They
        // are found in the directory, outside the viewer's tenancy — and before the
        // transaction, which must not wait for a second pooled connection.
        let invitees: Vec<Uuid> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(Expr::expr(Func::lower(Expr::col(user::Column::Email))).eq(normalized.as_str()))
            .into_tuple()
            .all(db.directory())
            .await?;
        let txn = db.begin_write().await?;
        lock_and_recheck(ctx, &txn, &viewer, org.id, Action::ManageMembers).await?;
        let now = Utc::now();
        let already = membership::Entity::find()
            .join(JoinType::InnerJoin, membership::Relation::User.def())
            .filter(membership::Column::OrganizationId.eq(org.id))
            .filter(membership::Column::IsActive.eq(true))
            .filter(Expr::expr(Func::lower(Expr::col((user::Entity, user::Column::Email)))).eq(normalized.as_str()))
            .count(&txn)
            .await?;
        if already > 0 {
            return Err(AppError::conflict("this address already belongs to an active member", Some("input.email")));
        }
        // An expired invitation no longer blocks a new one; it is written as expired now.
        let retire = Query::update()
            .table(invitation::Entity)
            .value(invitation::Column::Status, InvitationStatus::Expired.stored())
            .value(invitation::Column::UpdatedAt, now)
            .and_where(Expr::col(invitation::Column::OrganizationId).eq(org.id))
            .and_where(Expr::col(invitation::Column::EmailNormalized).eq(normalized.as_str()))
            .and_where(Expr::col(invitation::Column::Status).eq(InvitationStatus::Pending.stored()))
            .and_where(Expr::col(invitation::Column::ExpiresAt).lte(now))
            .to_owned();
        txn.execute(&retire).await?;
        let conflict = || AppError::conflict("this address already has a pending invitation here", Some("input.email"));
        let pending = invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(org.id))
            .filter(invitation::Column::EmailNormalized.eq(normalized.as_str()))
            .filter(invitation::Column::Status.eq(InvitationStatus::Pending))
            .count(&txn)
            .await?;
        if pending > 0 {
            return Err(conflict());
        }
        let row = invitation::Model {
            // Random, not time-ordered: an invitation's id is what its link carries.
            id: Uuid::new_v4(),
            organization_id: org.id,
            email,
            email_normalized: normalized.clone(),
            role: input.role,
            status: InvitationStatus::Pending,
            invited_by: Some(viewer.user.id),
            accepted_by: None,
            created_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(7)),
            accepted_at: None,
            revoked_at: None,
            updated_at: now,
        };
        let insert = Query::insert()
            .into_table(invitation::Entity)
            .columns([
                invitation::Column::Id,
                invitation::Column::OrganizationId,
                invitation::Column::Email,
                invitation::Column::EmailNormalized,
                invitation::Column::Role,
                invitation::Column::Status,
                invitation::Column::InvitedBy,
                invitation::Column::CreatedAt,
                invitation::Column::ExpiresAt,
                invitation::Column::UpdatedAt,
            ])
            .values_panic([
                row.id.into(),
                row.organization_id.into(),
                row.email.clone().into(),
                row.email_normalized.clone().into(),
                row.role.stored().into(),
                row.status.stored().into(),
                row.invited_by.into(),
                row.created_at.into(),
                row.expires_at.into(),
                row.updated_at.into(),
            ])
            .to_owned();
        // Two ADMINs inviting the same address at once: the partial unique index admits one.
        match txn.execute(&insert).await {
            Ok(_) => {}
            Err(e) if crate::db::is_unique_violation(&e) => return Err(conflict()),
            Err(e) => return Err(e.into()),
        }
        audit::record(
            &txn,
            audit::Event::new(AuditAction::InvitationCreated, Some(org.id), Some(viewer.user.id))
                .target("invitation", row.id)
                .details(json!({ "email": row.email, "role": input.role.as_str(), "expiresAt": row.expires_at })),
        )
        .await?;
        let changes: Vec<Change> = invitees.into_iter().map(Change::User).collect();
        ContextCache::publish(&txn, &changes).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "invitation.created", invitation_id = %row.id, organization_id = %org.id,
            role = input.role.as_str(), user_id = %viewer.user.id, "invitation created");
        ctx.request()?.after_write(&changes, Vec::new()).await?;
        Ok(Invitation::new(&row))
    }

    /// Withdraws a pending invitation. ADMIN only; any other status is CONFLICT.
    #[graphql(visible = "visibility::mutation_revoke_invitation")]
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Invitation> {
        let viewer = ctx.viewer()?;
        let id = parse_id("id", &id)?;
        let inv = lookup::invitation(ctx, id, Action::ManageMembers).await?;
        let txn = ctx.db()?.begin_write().await?;
        lock_and_recheck(ctx, &txn, &viewer, inv.organization_id, Action::ManageMembers).await?;
        let now = Utc::now();
        let q = Query::update()
            .table(invitation::Entity)
            .value(invitation::Column::Status, InvitationStatus::Revoked.stored())
            .value(invitation::Column::RevokedAt, now)
            .value(invitation::Column::UpdatedAt, now)
            .and_where(Expr::col(invitation::Column::Id).eq(inv.id))
            .and_where(Expr::col(invitation::Column::Status).eq(InvitationStatus::Pending.stored()))
            .and_where(Expr::col(invitation::Column::ExpiresAt).gt(now))
            .to_owned();
        if txn.execute(&q).await?.rows_affected() != 1 {
            let status = inv.status_at(now);
            return Err(AppError::conflict(
                format!("only a pending invitation can be revoked; this one is {}", async_graphql::Value::from(status)),
                Some("id"),
            ));
        }
        audit::record(
            &txn,
            audit::Event::new(AuditAction::InvitationRevoked, Some(inv.organization_id), Some(viewer.user.id))
                .target("invitation", inv.id)
                .details(json!({ "email": inv.email, "role": inv.role.as_str() })),
        )
        .await?;
        let updated =
            invitation::Entity::find_by_id(inv.id).one(&txn).await?.ok_or(AppError::not_found("invitation"))?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "invitation.revoked", invitation_id = %inv.id,
            organization_id = %inv.organization_id, user_id = %viewer.user.id, "invitation revoked");
        ctx.request()?.after_write(&[], Vec::new()).await?;
        Ok(Invitation::new(&updated))
    }

    /// Accepts an invitation addressed to the token's email, which must be verified
    /// (FORBIDDEN with EMAIL_NOT_VERIFIED otherwise); someone else's, an expired or a
    /// revoked invitation is NOT_FOUND. Brings a removed member back with the invited role.
    /// Accepting again what the viewer already accepted answers the same membership.
    async fn accept_invitation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let id = parse_id("id", &id)?;
        let inv = lookup::invitation_for_invitee(ctx, id).await?;
        let d = policy::check(viewer.as_ref(), Action::AcceptInvitation, &lookup::invitation_resource(&viewer, &inv));
        if d.reason == AccessReason::NotFound {
            return Err(AppError::not_found("invitation"));
        }
        ctx.require_as(&viewer, Action::AcceptInvitation, &lookup::invitation_resource(&viewer, &inv))?;
        let now = Utc::now();
        let db = ctx.db()?;
        match inv.status_at(now) {
            InvitationStatus::Pending => {}
            InvitationStatus::Accepted if inv.accepted_by == Some(viewer.user.id) => {
                let m = membership::Entity::find()
                    .filter(membership::Column::UserId.eq(viewer.user.id))
                    .filter(membership::Column::OrganizationId.eq(inv.organization_id))
                    .one(db)
                    .await?
                    .ok_or(AppError::not_found("invitation"))?;
                return Ok(Membership::from(&m));
            }
            _ => return Err(AppError::not_found("invitation")),
        }
        // Row-level security: the membership row belongs to an organization the viewer is
        // only now joining.
        db.admit_organization(inv.organization_id).await?;
        let txn = db.begin_write().await?;
        let accepted = invitations::accept(&txn, &inv, viewer.user.id, now, "acceptInvitation")
            .await?
            .ok_or(AppError::not_found("invitation"))?;
        let changes = [Change::User(viewer.user.id)];
        ContextCache::publish(&txn, &changes).await?;
        txn.commit().await?;
        ctx.request()?.after_write(&changes, Vec::new()).await?;
        Ok(Membership::from(&accepted.membership))
    }
}
