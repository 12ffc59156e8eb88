//! `Role` (a named set of grants: built-in, from the policy file, or an organization's
//! own), `PermissionGrant`, and the role mutations' inputs.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::organization::Organization;
use crate::{
    authz::{
        Action,
        grants::{Grant, GrantScope, GrantSet},
        roles::{RoleDef, RoleKind},
    },
    error::{AppError, AppResult},
    graphql::context::ContextExt,
};

/// An action at a scope: ORGANIZATION (every resource of the organization) or OWN (only
/// the courses the member teaches, and their tracks).
#[derive(SimpleObject, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermissionGrant {
    pub action: Action,
    pub scope: GrantScope,
}

/// A grant to give a role; the scope defaults to ORGANIZATION.
#[derive(InputObject, Clone, Copy, Debug)]
pub struct PermissionGrantInput {
    pub action: Action,
    #[graphql(default_with = "GrantScope::Organization")]
    pub scope: GrantScope,
}

/// The grants of a set, each at its widest scope.
pub fn grants_out(g: GrantSet) -> Vec<PermissionGrant> {
    g.iter().map(|g| PermissionGrant { action: g.action, scope: g.scope }).collect()
}

/// The grants an input names, each one checked (BAD_USER_INPUT, field `input.grants`): OWN only
/// where there is an owner, ACCEPT_INVITATION never, no administration action (that stays
/// with ADMIN), and each grant's prerequisite ([`GrantSet::missing_prerequisite`]).
pub fn grants_in(input: &[PermissionGrantInput]) -> AppResult<GrantSet> {
    let mut set = GrantSet::EMPTY;
    for g in input {
        let grant = Grant { action: g.action, scope: g.scope }
            .checked()
            .map_err(|e| AppError::bad_input("input.grants", e.to_string()))?;
        if grant.action.is_administration() {
            return Err(AppError::bad_input(
                "input.grants",
                format!(
                    "{} is an administration action: it stays with ADMIN and no other role holds it",
                    grant.action.as_str()
                ),
            ));
        }
        set = set.with(grant);
    }
    match set.missing_prerequisite() {
        Some((_, why)) => Err(AppError::bad_input("input.grants", why)),
        None => Ok(set),
    }
}

/// A role: its key names it in assignments, `grantedBy` and `grantingRoles`.
#[derive(Clone, Debug)]
pub struct RoleNode(pub RoleDef);

#[Object(name = "Role")]
impl RoleNode {
    async fn id(&self) -> ID {
        super::id(self.0.id)
    }

    async fn key(&self) -> &str {
        &self.0.key
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// True for ADMIN, INSTRUCTOR, MEMBER and VIEWER.
    async fn built_in(&self) -> bool {
        self.0.built_in()
    }

    /// The organization that defined it; null for built-in and policy-file roles.
    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Option<Organization>> {
        let RoleKind::Custom { organization_id } = self.0.kind else { return Ok(None) };
        Ok(ctx.loaders()?.organizations.load_one(organization_id).await?.map(Organization))
    }

    async fn grants(&self) -> Vec<PermissionGrant> {
        grants_out(self.0.grants)
    }
}

/// A new custom role of an organization (the active one unless `organizationId` says).
#[derive(InputObject, Debug)]
pub struct CreateRoleInput {
    pub organization_id: Option<ID>,
    /// `^[a-z][a-z0-9_]{0,62}$`, unique in the organization and distinct from every
    /// built-in and policy-file key.
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub grants: Vec<PermissionGrantInput>,
}

/// What to change of a custom role; omitted fields stay.
#[derive(InputObject, Debug)]
pub struct UpdateRoleInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub grants: Option<Vec<PermissionGrantInput>>,
}
