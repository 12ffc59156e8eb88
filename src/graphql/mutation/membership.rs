//! `addMember`, `updateMemberRole` and `removeMember` (ADMIN only), and the re-check every
//! membership-management write makes inside its transaction.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::Utc;
use entity::{AuditAction, user};
use sea_orm::{
    ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;

use crate::{
    auth::{Viewer, viewer::MembershipRecord},
    authz::{Action, Resource, Role},
    db::Change,
    domain::{audit::Event, membership, roles},
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup,
        types::{membership::Membership, parse_id},
        visibility,
    },
};

#[derive(InputObject)]
pub struct AddMemberInput {
    /// Defaults to the active organization.
    pub organization_id: Option<ID>,
    /// The user to add: by id, or by email (exactly one of the two).
    pub user_id: Option<ID>,
    pub email: Option<String>,
    pub role: Role,
}

/// Serialises membership management within one organization (FOR UPDATE on its row in
/// PostgreSQL; SQLite write transactions are serialised already), then re-checks the
/// actor's own standing inside the transaction: an ADMIN demoted a moment ago by another
/// request cannot still act on a decision made before that commit.
pub(super) async fn lock_and_recheck(
    ctx: &Context<'_>,
    txn: &impl ConnectionTrait,
    viewer: &Viewer,
    org: Uuid,
    action: Action,
) -> AppResult<()> {
    entity::organization::Entity::find_by_id(org)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(AppError::not_found("organization"))?;
    if viewer.platform_admin {
        return Ok(());
    }
    let current = membership::find(txn, viewer.user.id, org).await?;
    let mut now = viewer.clone();
    now.memberships.retain(|m| m.organization_id != org);
    if let (Some(m), Some(old)) = (current, viewer.membership(org)) {
        let keys = old.roles.iter().map(|k| &**k);
        let grants = viewer.policy.stored_grants(m.role, keys, &old.organization_roles);
        now.memberships.push(MembershipRecord { role: m.role, is_active: m.is_active, grants, ..old.clone() });
    }
    ctx.require_as(&now, action, &Resource::Organization { id: org })?;
    Ok(())
}

/// The membership `updateMemberRole` or `removeMember` names, read again inside a new
/// unit of work once [`lock_and_recheck`] holds its organization: the row may have changed
/// since the lookup that found it.
async fn locked_member(
    ctx: &Context<'_>,
    viewer: &Viewer,
    membership_id: &ID,
) -> AppResult<(crate::domain::write::UnitOfWork, entity::membership::Model)> {
    let id = parse_id("membershipId", membership_id)?;
    let found = lookup::membership(ctx, id, Action::ManageMembers).await?;
    let work = ctx.request()?.begin().await?;
    lock_and_recheck(ctx, &work, viewer, found.organization_id, Action::ManageMembers).await?;
    let m = entity::membership::Entity::find_by_id(id).one(&work).await?.ok_or(AppError::not_found("membership"))?;
    Ok((work, m))
}

/// The user `addMember` names, looked up in the directory (outside the viewer's tenancy:
/// they are by definition not yet a member), by exact id or email only.
async fn member_to_add(ctx: &Context<'_>, input: &AddMemberInput) -> AppResult<user::Model> {
    let directory = ctx.db()?.directory();
    match (&input.user_id, input.email.as_deref().map(str::trim)) {
        (Some(id), None) => {
            let id = parse_id("input.userId", id)?;
            user::Entity::find_by_id(id).one(directory).await?.ok_or(AppError::not_found("user"))
        }
        (None, Some(email)) if !email.is_empty() => {
            let mut found = user::Entity::find()
                .filter(Expr::expr(Func::lower(Expr::col(user::Column::Email))).eq(email.to_lowercase()))
                .limit(2)
                .all(directory)
                .await?;
            match found.len() {
                0 => Err(AppError::not_found("user")),
                1 => Ok(found.remove(0)),
                _ => Err(AppError::bad_input(
                    "input.email",
                    "several users have this email (from different identity providers): pass `userId`",
                )),
            }
        }
        _ => Err(AppError::bad_input("input.userId", "pass exactly one of `userId` and `email`")),
    }
}

#[derive(Default)]
pub struct MembershipMutation;

#[Object]
impl MembershipMutation {
    /// Adds a user (by id or email) to an organization, or re-activates a removed member.
    /// ADMIN only.
    #[graphql(visible = "visibility::mutation_add_member")]
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let field = "input.organizationId";
        let org =
            lookup::target_organization(ctx, field, input.organization_id.as_ref(), Action::ManageMembers).await?;
        let target = member_to_add(ctx, &input).await?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        lock_and_recheck(ctx, &work, &viewer, org.id, Action::ManageMembers).await?;
        let now = Utc::now();
        let (m, reactivated) = match membership::insert(&work, target.id, org.id, input.role, now).await? {
            Some(m) => (m, false),
            None => match membership::reactivate(&work, target.id, org.id, input.role, now).await? {
                Some(m) => (m, true),
                None => return Err(AppError::conflict("this user is already a member", Some("input.userId"))),
            },
        };
        work.audit(
            Event::new(AuditAction::MemberAdded, Some(org.id), Some(viewer.user.id))
                .target("membership", m.id)
                .details(
                    serde_json::json!({ "userId": target.id, "role": input.role.as_str(), "reactivated": reactivated }),
                ),
        );
        work.changed(Change::User(target.id));
        request.commit(work).await?;
        Ok(Membership::from(&m))
    }

    /// Changes a member's role. ADMIN only; the last active ADMIN cannot be demoted.
    #[graphql(visible = "visibility::mutation_update_member_role")]
    async fn update_member_role(&self, ctx: &Context<'_>, membership_id: ID, role: Role) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let request = ctx.request()?;
        let (mut work, m) = locked_member(ctx, &viewer, &membership_id).await?;
        if role != Role::Admin {
            membership::keep_an_admin(&work, &m).await?;
        }
        let updated = membership::set_role(&work, m.id, role, Utc::now()).await?;
        work.audit(
            Event::new(AuditAction::MemberRoleChanged, Some(m.organization_id), Some(viewer.user.id))
                .target("membership", m.id)
                .details(serde_json::json!({ "userId": m.user_id, "from": m.role.as_str(), "to": role.as_str() })),
        );
        // A member who no longer holds UPDATE_COURSE (by role or assigned roles) stops teaching.
        if !crate::authz::policy::may_teach(roles::stored_grants(&work, &viewer.policy, &updated).await?) {
            work.live(membership::end_instructorships(&work, m.user_id, m.organization_id).await?);
        }
        work.changed(Change::User(m.user_id));
        request.commit(work).await?;
        Ok(Membership::from(&updated))
    }

    /// Removes a member: the membership is deactivated, nothing is deleted. ADMIN only;
    /// the last active ADMIN cannot be removed.
    #[graphql(visible = "visibility::mutation_remove_member")]
    async fn remove_member(&self, ctx: &Context<'_>, membership_id: ID) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let request = ctx.request()?;
        let (mut work, m) = locked_member(ctx, &viewer, &membership_id).await?;
        membership::keep_an_admin(&work, &m).await?;
        let updated = membership::deactivate(&work, m.id, Utc::now()).await?;
        // Recorded before the rest of the change: if any later step fails, the whole
        // transaction — this event included — rolls back.
        work.audit(
            Event::new(AuditAction::MemberRemoved, Some(m.organization_id), Some(viewer.user.id))
                .target("membership", m.id)
                .details(serde_json::json!({ "userId": m.user_id, "role": m.role.as_str() })),
        );
        // Its custom roles go with it: an invitation brings the member back with the
        // invited role only.
        for key in roles::unassign_all(&work, m.id).await? {
            work.audit(
                Event::new(AuditAction::RoleUnassigned, Some(m.organization_id), Some(viewer.user.id))
                    .target("membership", m.id)
                    .details(serde_json::json!({ "userId": m.user_id, "role": key, "reason": "member removed" })),
            );
        }
        work.live(membership::end_instructorships(&work, m.user_id, m.organization_id).await?);
        work.changed(Change::User(m.user_id));
        request.commit(work).await?;
        Ok(Membership::from(&updated))
    }
}
