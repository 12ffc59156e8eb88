//! Roles as data: the built-in four with their grants (the permission matrix, unless the
//! policy file changes them), the policy file's roles offered in every organization, an
//! organization's own (custom) roles, and the identity provider's permissions mapped to
//! grants. [`Policy`] is the effective configuration every decision reads.

use std::{path::PathBuf, sync::Arc};

use uuid::Uuid;

use super::{
    Action, Role,
    grants::{GrantSet, RoleSet, default_grants},
};

/// Where a role comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleKind {
    BuiltIn(Role),
    /// The policy file's: offered in every organization, changed only in the file.
    File,
    /// An organization's own, managed with the role mutations.
    Custom {
        organization_id: Uuid,
    },
}

/// A named set of grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleDef {
    pub id: Uuid,
    pub key: Arc<str>,
    pub name: String,
    pub description: Option<String>,
    pub grants: GrantSet,
    pub kind: RoleKind,
}

impl RoleDef {
    pub fn built_in(&self) -> bool {
        matches!(self.kind, RoleKind::BuiltIn(_))
    }

    /// Built-in and policy-file roles: not changed or deleted through the API.
    pub fn fixed(&self) -> bool {
        !matches!(self.kind, RoleKind::Custom { .. })
    }
}

/// The namespace of the stable ids of built-in and policy-file roles (UUIDv5 of the key):
/// the same on every process, whatever the file's order.
const ROLE_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_5b7d_4e0a_9c3f_1d2b_8a6e_4c71);

pub fn built_in_id(role: Role) -> Uuid {
    Uuid::new_v5(&ROLE_NAMESPACE, format!("builtin:{}", role.as_str()).as_bytes())
}

pub fn file_role_id(key: &str) -> Uuid {
    Uuid::new_v5(&ROLE_NAMESPACE, format!("policy:{key}").as_bytes())
}

/// Whether `key` is a valid role key: `^[a-z][a-z0-9_]{0,62}$`.
pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The effective policy: built-in grants, the file's roles and permission map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Indexed by [`Role::ALL`] position (ADMIN first).
    built_in: [GrantSet; 4],
    file_roles: Vec<RoleDef>,
    /// Token permission → grants (COURSEGRAPH_ROLE_SOURCE=token).
    permissions: Vec<(String, GrantSet)>,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
}

impl Default for Policy {
    fn default() -> Self {
        Self { built_in: Role::ALL.map(default_grants), file_roles: Vec::new(), permissions: Vec::new(), source: None }
    }
}

fn index(role: Role) -> usize {
    Role::ALL.iter().position(|r| *r == role).unwrap_or(0)
}

impl Policy {
    /// The policy with `built_in` grants replaced where given (ADMIN always holds every
    /// grant), and the file's roles and permissions. Validation is the policy file's job.
    pub fn new(
        built_in: &[(Role, GrantSet)],
        file_roles: Vec<RoleDef>,
        permissions: Vec<(String, GrantSet)>,
        source: Option<PathBuf>,
    ) -> Self {
        let mut p = Self { file_roles, permissions, source, ..Self::default() };
        for (role, grants) in built_in {
            if *role != Role::Admin {
                p.built_in[index(*role)] = *grants;
            }
        }
        p
    }

    /// What the built-in `role` holds.
    pub fn built_in(&self, role: Role) -> GrantSet {
        self.built_in[index(role)]
    }

    /// The four built-in roles as roles.
    pub fn built_in_roles(&self) -> impl Iterator<Item = RoleDef> + '_ {
        Role::ALL.into_iter().map(|r| RoleDef {
            id: built_in_id(r),
            key: r.as_str().into(),
            name: r.as_str().to_owned(),
            description: None,
            grants: self.built_in(r),
            kind: RoleKind::BuiltIn(r),
        })
    }

    /// A built-in or policy-file role by its stable id.
    pub fn role_by_id(&self, id: Uuid) -> Option<RoleDef> {
        self.built_in_roles().chain(self.file_roles.iter().cloned()).find(|r| r.id == id)
    }

    pub fn file_roles(&self) -> &[RoleDef] {
        &self.file_roles
    }

    pub fn file_role(&self, key: &str) -> Option<&RoleDef> {
        self.file_roles.iter().find(|r| &*r.key == key)
    }

    /// The grants a token permission maps to.
    pub fn permission(&self, permission: &str) -> Option<GrantSet> {
        self.permissions.iter().find(|(p, _)| p == permission).map(|(_, g)| *g)
    }

    pub fn permissions(&self) -> &[(String, GrantSet)] {
        &self.permissions
    }

    /// The built-in roles holding `action` at some scope: `requiredRoles`.
    pub fn required_roles(&self, action: Action) -> RoleSet {
        Role::ALL.into_iter().filter(|r| self.built_in(*r).has(action)).collect()
    }

    /// Whether `key` is taken by a built-in role (case-insensitively) or a file role.
    pub fn reserved(&self, key: &str) -> bool {
        Role::ALL.iter().any(|r| r.as_str().eq_ignore_ascii_case(key))
            || self.file_roles.iter().any(|r| r.key.eq_ignore_ascii_case(key))
    }

    /// The grants of a membership with built-in `role` and the custom (or file) roles
    /// `assigned`, resolved against the organization's own roles `custom`. A key that has
    /// left the file grants nothing.
    pub fn stored_grants<'a>(
        &self,
        role: Role,
        assigned: impl IntoIterator<Item = &'a str>,
        custom: &[RoleGrants],
    ) -> GrantSet {
        assigned
            .into_iter()
            .fold(self.built_in(role), |g, key| g.union(self.grants_of(key, custom).unwrap_or_default()))
    }

    /// The grants of a custom role of this organization (`custom`) or a file role, by key.
    pub fn grants_of(&self, key: &str, custom: &[RoleGrants]) -> Option<GrantSet> {
        custom.iter().find(|r| &*r.key == key).map(|r| r.grants).or_else(|| self.file_role(key).map(|r| r.grants))
    }
}

/// A role's key and grants: what a viewer carries of its organization's own roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrants {
    pub key: Arc<str>,
    pub grants: GrantSet,
}
