//! `createRole`, `updateRole`, `deleteRole`, `assignRole` and `unassignRole`: an
//! organization's own roles and who holds them (MANAGE_ROLES, ADMIN only). Built-in and
//! policy-file roles are the policy's, never changed here (FORBIDDEN BUILT_IN_ROLE).

use async_graphql::{Context, ID, Object};
use chrono::Utc;
use entity::{AuditAction, membership, role};
use sea_orm::EntityTrait;
use serde_json::json;

use super::membership::lock_and_recheck;
use crate::{
    auth::Viewer,
    authz::{
        AccessReason, Action, Decision, Role,
        grants::{GrantScope, RoleSet},
        roles::{Policy, RoleDef, RoleKind, built_in_id, is_valid_key},
    },
    db::Change,
    domain::{audit::Event, membership as memberships, roles, write::UnitOfWork},
    error::{AppError, AppResult},
    graphql::{
        context::ContextExt,
        lookup,
        types::{
            membership::Membership,
            parse_id,
            role::{CreateRoleInput, RoleNode, UpdateRoleInput, grants_in},
        },
        validate, visibility,
    },
};

/// A role id as the API names it: an organization's own (its row), or one of the policy's.
enum Named {
    Custom(role::Model),
    Policy(RoleDef),
}

/// The role `id` names: an organization's own the viewer's organizations hold, or a
/// built-in or policy-file role; NOT_FOUND otherwise (another organization's included).
async fn named(ctx: &Context<'_>, viewer: &Viewer, field: &str, id: &ID) -> AppResult<Named> {
    let id = parse_id(field, id)?;
    if let Some(r) = viewer.policy.role_by_id(id) {
        return Ok(Named::Policy(r));
    }
    let row = role::Entity::find_by_id(id).one(ctx.db()?).await?.ok_or(AppError::not_found("role"))?;
    // Another organization's role is missing to this viewer.
    lookup::organization(ctx, row.organization_id, Action::ReadOrganization).await.map_err(|e| match e {
        AppError::Forbidden(_) => AppError::not_found("role"),
        e => e,
    })?;
    Ok(Named::Custom(row))
}

/// FORBIDDEN BUILT_IN_ROLE: the API does not change or delete the policy's roles.
fn built_in_refused(ctx: &Context<'_>, viewer: &Viewer, r: &RoleDef) -> AppError {
    let organization_id = viewer.active_organization;
    let d = Decision {
        allowed: false,
        reason: AccessReason::BuiltInRole,
        action: Action::ManageRoles,
        required_roles: RoleSet::EMPTY.with(Role::Admin),
        viewer_role: organization_id.and_then(|o| crate::authz::Subject::effective_role(viewer, o)),
        organization_id,
        policy: Action::ManageRoles.rule_name(),
        scope: GrantScope::Organization,
    };
    tracing::debug!(role = %r.key, "built-in or policy-file role refused");
    ctx.refuse(d)
}

/// The memberships among `held` whose stored grants no longer include UPDATE_COURSE after
/// the change: their instructorships end in the same unit of work.
async fn end_lost_instructorships(work: &mut UnitOfWork, policy: &Policy, held: &[membership::Model]) -> AppResult<()> {
    for m in held {
        if !crate::authz::policy::may_teach(roles::stored_grants(&*work, policy, m).await?) {
            let events = memberships::end_instructorships(&*work, m.user_id, m.organization_id).await?;
            work.live(events);
        }
    }
    Ok(())
}

/// Checks a new role key (BAD_USER_INPUT, or CONFLICT with a built-in or policy-file key).
fn checked_key(policy: &Policy, key: &str) -> AppResult<String> {
    let key = key.trim();
    if !is_valid_key(key) {
        return Err(AppError::bad_input("input.key", "a role key matches ^[a-z][a-z0-9_]{0,62}$"));
    }
    if policy.reserved(key) {
        return Err(AppError::conflict(format!("`{key}` is a built-in or policy-file role's key"), Some("input.key")));
    }
    Ok(key.to_owned())
}

#[derive(Default)]
pub struct RoleMutation;

#[Object]
impl RoleMutation {
    /// Creates a custom role in an organization (the active one unless `organizationId`
    /// says). ADMIN only; a custom role may not hold MANAGE_MEMBERS, MANAGE_ROLES or
    /// UPDATE_ORGANIZATION.
    #[graphql(visible = "visibility::mutation_create_role")]
    async fn create_role(&self, ctx: &Context<'_>, input: CreateRoleInput) -> AppResult<RoleNode> {
        let viewer = ctx.viewer()?;
        let field = "input.organizationId";
        let org = lookup::target_organization(ctx, field, input.organization_id.as_ref(), Action::ManageRoles).await?;
        let key = checked_key(&viewer.policy, &input.key)?;
        let name = validate::name("input.name", &input.name)?;
        let description = validate::optional("input.description", input.description.as_deref(), 10_000)?;
        let grants = grants_in(&input.grants)?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        lock_and_recheck(ctx, &work, &viewer, org.id, Action::ManageRoles).await?;
        let new = roles::NewRole {
            organization_id: org.id,
            key: &key,
            name: &name,
            description: description.as_deref(),
            grants,
            now: Utc::now(),
        };
        let row = roles::insert(&work, &new)
            .await?
            .ok_or_else(|| AppError::conflict(format!("this organization has a role `{key}`"), Some("input.key")))?;
        work.audit(
            Event::new(AuditAction::RoleCreated, Some(org.id), Some(viewer.user.id))
                .target("role", row.id)
                .details(json!({ "key": key, "grants": roles::encode_grants(grants) })),
        );
        // Explanations (`grantingRoles`) list the organization's roles.
        work.changed(Change::Organization(org.id));
        request.commit(work).await?;
        Ok(RoleNode(roles::role_def(&row)))
    }

    /// Changes a custom role; every member holding it is judged by the new grants from
    /// their next request, on every server process. ADMIN only.
    #[graphql(visible = "visibility::mutation_update_role")]
    async fn update_role(&self, ctx: &Context<'_>, id: ID, input: UpdateRoleInput) -> AppResult<RoleNode> {
        let viewer = ctx.viewer()?;
        let row = match named(ctx, &viewer, "id", &id).await? {
            Named::Custom(row) => row,
            Named::Policy(r) => return Err(built_in_refused(ctx, &viewer, &r)),
        };
        lookup::organization(ctx, row.organization_id, Action::ManageRoles).await?;
        let mut changed = row.clone();
        if let Some(n) = &input.name {
            changed.name = validate::name("input.name", n)?;
        }
        if input.description.is_some() {
            changed.description = validate::optional("input.description", input.description.as_deref(), 10_000)?;
        }
        if let Some(g) = &input.grants {
            changed.grants = roles::encode_grants(grants_in(g)?);
        }
        changed.updated_at = Utc::now();
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        lock_and_recheck(ctx, &work, &viewer, row.organization_id, Action::ManageRoles).await?;
        roles::update(&work, &changed).await?;
        let held = roles::holders(&work, row.organization_id, &row.key).await?;
        end_lost_instructorships(&mut work, &viewer.policy, &held).await?;
        work.audit(
            Event::new(AuditAction::RoleUpdated, Some(row.organization_id), Some(viewer.user.id))
                .target("role", row.id)
                .details(json!({ "key": row.key, "from": row.grants, "to": changed.grants, "name": changed.name })),
        );
        work.changed(Change::Organization(row.organization_id));
        request.commit(work).await?;
        Ok(RoleNode(roles::role_def(&changed)))
    }

    /// Deletes a custom role, unassigning it from every membership first. ADMIN only.
    #[graphql(visible = "visibility::mutation_delete_role")]
    async fn delete_role(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        let viewer = ctx.viewer()?;
        let row = match named(ctx, &viewer, "id", &id).await? {
            Named::Custom(row) => row,
            Named::Policy(r) => return Err(built_in_refused(ctx, &viewer, &r)),
        };
        lookup::organization(ctx, row.organization_id, Action::ManageRoles).await?;
        let request = ctx.request()?;
        let mut work = request.begin().await?;
        lock_and_recheck(ctx, &work, &viewer, row.organization_id, Action::ManageRoles).await?;
        let held = roles::delete(&work, &row).await?;
        for m in &held {
            work.audit(
                Event::new(AuditAction::RoleUnassigned, Some(row.organization_id), Some(viewer.user.id))
                    .target("membership", m.id)
                    .details(json!({ "userId": m.user_id, "role": row.key, "reason": "role deleted" })),
            );
        }
        end_lost_instructorships(&mut work, &viewer.policy, &held).await?;
        work.audit(
            Event::new(AuditAction::RoleDeleted, Some(row.organization_id), Some(viewer.user.id))
                .target("role", row.id)
                .details(json!({ "key": row.key, "grants": row.grants, "unassigned": held.len() })),
        );
        work.changed(Change::Organization(row.organization_id));
        request.commit(work).await?;
        Ok(crate::graphql::types::id(row.id))
    }

    /// Assigns a custom role (this organization's, or the policy file's) to a membership.
    /// A built-in role is BAD_USER_INPUT: it changes with `updateMemberRole`. ADMIN only.
    #[graphql(visible = "visibility::mutation_assign_role")]
    async fn assign_role(&self, ctx: &Context<'_>, membership_id: ID, role_id: ID) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let (mut work, m, key) = locked_assignment(ctx, &viewer, &membership_id, &role_id).await?;
        if !m.is_active {
            return Err(AppError::conflict("the membership was removed: an invitation brings the member back", None));
        }
        if roles::assign(&work, &m, &key, Utc::now()).await? {
            work.audit(
                Event::new(AuditAction::RoleAssigned, Some(m.organization_id), Some(viewer.user.id))
                    .target("membership", m.id)
                    .details(json!({ "userId": m.user_id, "role": key })),
            );
        }
        work.changed(Change::User(m.user_id));
        ctx.request()?.commit(work).await?;
        Ok(Membership::from(&m))
    }

    /// Unassigns a custom role from a membership; if the member no longer holds
    /// UPDATE_COURSE, their instructorships end. ADMIN only.
    #[graphql(visible = "visibility::mutation_unassign_role")]
    async fn unassign_role(&self, ctx: &Context<'_>, membership_id: ID, role_id: ID) -> AppResult<Membership> {
        let viewer = ctx.viewer()?;
        let (mut work, m, key) = locked_assignment(ctx, &viewer, &membership_id, &role_id).await?;
        if roles::unassign(&work, m.id, &key).await? {
            work.audit(
                Event::new(AuditAction::RoleUnassigned, Some(m.organization_id), Some(viewer.user.id))
                    .target("membership", m.id)
                    .details(json!({ "userId": m.user_id, "role": key })),
            );
            end_lost_instructorships(&mut work, &viewer.policy, std::slice::from_ref(&m)).await?;
        }
        work.changed(Change::User(m.user_id));
        ctx.request()?.commit(work).await?;
        Ok(Membership::from(&m))
    }
}

/// The membership and the key of the custom role an assignment names, in a unit of work
/// holding the organization: the membership NOT_FOUND outside the viewer's organizations,
/// the role NOT_FOUND unless it is the membership's organization's own or the policy
/// file's, a built-in role BAD_USER_INPUT.
async fn locked_assignment(
    ctx: &Context<'_>,
    viewer: &Viewer,
    membership_id: &ID,
    role_id: &ID,
) -> AppResult<(UnitOfWork, membership::Model, String)> {
    let id = parse_id("membershipId", membership_id)?;
    let found = lookup::membership(ctx, id, Action::ManageRoles).await?;
    let key = match named(ctx, viewer, "roleId", role_id).await? {
        Named::Custom(r) if r.organization_id == found.organization_id => r.key,
        Named::Custom(_) => return Err(AppError::not_found("role")),
        Named::Policy(r) => match r.kind {
            RoleKind::File => r.key.to_string(),
            _ => {
                let hint = if Role::ALL.iter().any(|b| built_in_id(*b) == r.id) { "built-in" } else { "policy" };
                return Err(AppError::bad_input(
                    "roleId",
                    format!("{} is a {hint} role: a member's built-in role changes with updateMemberRole", r.key),
                ));
            }
        },
    };
    let work = ctx.request()?.begin().await?;
    lock_and_recheck(ctx, &work, viewer, found.organization_id, Action::ManageRoles).await?;
    let m = membership::Entity::find_by_id(id).one(&work).await?.ok_or(AppError::not_found("membership"))?;
    Ok((work, m, key))
}
