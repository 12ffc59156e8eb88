//! `inviteMember` and `revokeInvitation` (ADMIN only), and `acceptInvitation` (the
//! invitee, with a verified email).

use async_graphql::{Context, ID, InputObject, Object};
use chrono::Utc;
use entity::{AuditAction, InvitationStatus, invitation, membership, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QuerySelect, RelationTrait,
    sea_query::{Expr, ExprTrait, Func, Query},
};
use serde_json::json;
use uuid::Uuid;

use super::membership::lock_and_recheck;
use crate::{
    authz::{AccessReason, Action, Role, policy},
    db::Change,
    domain::{audit::Event, invitations},
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup,
        types::{invitation::Invitation, membership::Membership, parse_id},
        visibility,
    },
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

/// Refuses a second invitation of `normalized` to `org` (CONFLICT): an active member has
/// it already, and so has a pending invitation. An expired one no longer blocks a new one;
/// it is written as expired now.
async fn refuse_duplicate(db: &impl ConnectionTrait, org: Uuid, normalized: &str) -> AppResult<()> {
    let already = membership::Entity::find()
        .join(JoinType::InnerJoin, membership::Relation::User.def())
        .filter(membership::Column::OrganizationId.eq(org))
        .filter(membership::Column::IsActive.eq(true))
        .filter(Expr::expr(Func::lower(Expr::col((user::Entity, user::Column::Email)))).eq(normalized))
        .count(db)
        .await?;
    if already > 0 {
        return Err(AppError::conflict("this address already belongs to an active member", Some("input.email")));
    }
    let now = Utc::now();
    let retire = Query::update()
        .table(invitation::Entity)
        .value(invitation::Column::Status, InvitationStatus::Expired.stored())
        .value(invitation::Column::UpdatedAt, now)
        .and_where(Expr::col(invitation::Column::OrganizationId).eq(org))
        .and_where(Expr::col(invitation::Column::EmailNormalized).eq(normalized))
        .and_where(Expr::col(invitation::Column::Status).eq(InvitationStatus::Pending.stored()))
        .and_where(Expr::col(invitation::Column::ExpiresAt).lte(now))
        .to_owned();
    db.execute(&retire).await?;
    let pending = invitation::Entity::find()
        .filter(invitation::Column::OrganizationId.eq(org))
        .filter(invitation::Column::EmailNormalized.eq(normalized))
        .filter(invitation::Column::Status.eq(InvitationStatus::Pending))
        .count(db)
        .await?;
    if pending > 0 {
        return Err(duplicate());
    }
    Ok(())
}

fn duplicate() -> AppError {
    AppError::conflict("this address already has a pending invitation here", Some("input.email"))
}

/// Inserts `row` (a partial unique index admits one pending invitation per address).
async fn insert(db: &impl ConnectionTrait, row: &invitation::Model) -> AppResult<()> {
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
    // Two ADMINs inviting the same address at once: the index admits one.
    match db.execute(&insert).await {
        Ok(_) => Ok(()),
        Err(e) if crate::db::is_unique_violation(&e) => Err(duplicate()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
pub struct InvitationMutation;

#[Object]
impl InvitationMutation {
    /// Invites an email address to an organization with a role; it can be accepted until
    /// `expiresAt` (COURSEGRAPH_INVITATION_TTL). ADMIN only. An address that is already an
    /// active member, or already has a pending invitation here, is CONFLICT.
    #[graphql(visible = "visibility::mutation_invite_member")]
    async fn invite_member(&self, ctx: &Context<'_>, input: InviteMemberInput) -> AppResult<Invitation> {
        let viewer = ctx.viewer()?;
        let field = "input.organizationId";
        let org =
            lookup::target_organization(ctx, field, input.organization_id.as_ref(), Action::ManageMembers).await?;
        let (email, normalized) = invitations::email("input.email", &input.email)?;
        let ttl = ctx.settings()?.invitations.ttl;
        let request = ctx.request()?;
        // Whoever already signed in with this address will drop their cached context, so
        // their next request finds the invitation (and, with auto-accept, accepts it). They
        // are found in the directory, outside the viewer's tenancy — and before the
        // transaction, which must not wait for a second pooled connection.
        let invitees: Vec<Uuid> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(Expr::expr(Func::lower(Expr::col(user::Column::Email))).eq(normalized.as_str()))
            .into_tuple()
            .all(request.db.directory())
            .await?;
        let mut work = request.begin().await?;
        lock_and_recheck(ctx, &work, &viewer, org.id, Action::ManageMembers).await?;
        refuse_duplicate(&work, org.id, &normalized).await?;
        let now = Utc::now();
        let row = invitation::Model {
            // Random, not time-ordered: an invitation's id is what its link carries.
            id: Uuid::new_v4(),
            organization_id: org.id,
            email,
            email_normalized: normalized,
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
        insert(&work, &row).await?;
        work.audit(
            Event::new(AuditAction::InvitationCreated, Some(org.id), Some(viewer.user.id))
                .target("invitation", row.id)
                .details(json!({ "email": row.email, "role": input.role.as_str(), "expiresAt": row.expires_at })),
        );
        invitees.into_iter().for_each(|u| work.changed(Change::User(u)));
        request.commit(work).await?;
        Ok(Invitation::new(&row))
    }

    /// Withdraws a pending invitation. ADMIN only; any other status is CONFLICT.
    #[graphql(visible = "visibility::mutation_revoke_invitation")]
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Invitation> {
        let viewer = ctx.viewer()?;
        let id = parse_id("id", &id)?;
        let inv = lookup::invitation(ctx, id, Action::ManageMembers).await?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        lock_and_recheck(ctx, &work, &viewer, inv.organization_id, Action::ManageMembers).await?;
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
        if work.execute(&q).await?.rows_affected() != 1 {
            let status = async_graphql::Value::from(inv.status_at(now));
            return Err(AppError::conflict(
                format!("only a pending invitation can be revoked; this one is {status}"),
                Some("id"),
            ));
        }
        work.audit(
            Event::new(AuditAction::InvitationRevoked, Some(inv.organization_id), Some(viewer.user.id))
                .target("invitation", inv.id)
                .details(json!({ "email": inv.email, "role": inv.role.as_str() })),
        );
        let updated =
            invitation::Entity::find_by_id(inv.id).one(&work).await?.ok_or(AppError::not_found("invitation"))?;
        request.commit(work).await?;
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
        let resource = lookup::invitation_resource(&viewer, &inv);
        if policy::check(viewer.as_ref(), Action::AcceptInvitation, &resource).reason == AccessReason::NotFound {
            return Err(AppError::not_found("invitation"));
        }
        ctx.require_as(&viewer, Action::AcceptInvitation, &resource)?;
        let now = Utc::now();
        let request = ctx.request()?;
        match inv.status_at(now) {
            InvitationStatus::Pending => {}
            InvitationStatus::Accepted if inv.accepted_by == Some(viewer.user.id) => {
                let m = crate::domain::membership::find(&request.db, viewer.user.id, inv.organization_id)
                    .await?
                    .ok_or(AppError::not_found("invitation"))?;
                return Ok(Membership::from(&m));
            }
            _ => return Err(AppError::not_found("invitation")),
        }
        // Row-level security: the membership row belongs to an organization the viewer is
        // only now joining.
        request.db.admit_organization(inv.organization_id).await?;
        let mut work = request.begin().await?;
        let accepted = invitations::accept(&work, &inv, viewer.user.id, now, "acceptInvitation")
            .await?
            .ok_or(AppError::not_found("invitation"))?;
        work.changed(Change::User(viewer.user.id));
        request.commit(work).await?;
        Ok(Membership::from(&accepted.membership))
    }
}
