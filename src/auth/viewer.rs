//! The viewer a request runs as: the provisioned user, their memberships, the active
//! organization, and whether they are a platform admin.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::authz::{
    Action, Resource, Role, Subject,
    grants::GrantSet,
    policy::{self, Held, Standing},
    roles::{Policy, RoleGrants},
};

/// The viewer's user row (what the API may show of it).
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: Option<String>,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub email_verified: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One of the viewer's memberships, with enough of its organization to pick the active one.
#[derive(Clone, Debug, PartialEq)]
pub struct MembershipRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub organization_slug: String,
    pub organization_external_id: Option<String>,
    pub role: Role,
    pub is_active: bool,
    pub joined_at: DateTime<Utc>,
    /// The custom (or policy-file) roles assigned to the membership, by key.
    pub roles: Vec<Arc<str>>,
    /// What the membership holds as stored: its built-in role's grants and its assigned
    /// roles'. Token permissions come on top, per request (`Viewer::token_grants`).
    pub grants: GrantSet,
    /// The organization's own roles, read with the viewer: what `grantingRoles` lists
    /// besides the built-in and policy-file roles.
    pub organization_roles: Arc<[RoleGrants]>,
    /// The organization's row as read with the viewer. Reads of an organization the viewer
    /// actively belongs to are answered from it: it is as fresh as the viewer's memberships
    /// (the context cache drops the viewer on `Change::Organization`, and a request that
    /// changes the organization re-reads the viewer).
    pub organization: Arc<entity::organization::Model>,
}

/// What a membership row says of itself.
#[derive(Clone, Debug, PartialEq)]
pub struct MembershipRow {
    pub id: Uuid,
    pub role: Role,
    pub is_active: bool,
    pub joined_at: DateTime<Utc>,
}

impl From<entity::membership::Model> for MembershipRow {
    fn from(m: entity::membership::Model) -> Self {
        Self { id: m.id, role: m.role, is_active: m.is_active, joined_at: m.joined_at }
    }
}

impl MembershipRecord {
    /// Membership `m` of `organization` with the roles `roles` assigned, its stored grants
    /// resolved under `policy` against the organization's own roles.
    pub fn new(
        m: MembershipRow,
        organization: entity::organization::Model,
        roles: Vec<Arc<str>>,
        organization_roles: Vec<RoleGrants>,
        policy: &Policy,
    ) -> Self {
        let grants = policy.stored_grants(m.role, roles.iter().map(|k| &**k), &organization_roles);
        Self {
            id: m.id,
            organization_id: organization.id,
            organization_slug: organization.slug.clone(),
            organization_external_id: organization.external_id.clone(),
            role: m.role,
            is_active: m.is_active,
            joined_at: m.joined_at,
            roles,
            grants,
            organization_roles: organization_roles.into(),
            organization: Arc::new(organization),
        }
    }
}

/// The email the request's token carries (not the stored one): what invitations are
/// matched against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailClaim {
    /// Trimmed and lower-cased.
    pub address: String,
    pub verified: bool,
}

impl EmailClaim {
    pub fn from_identity(email: Option<&str>, verified: bool) -> Option<Self> {
        let address = email.map(str::trim).filter(|e| !e.is_empty())?.to_lowercase();
        Some(Self { address, verified })
    }
}

/// The signed-in user as the policy sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Viewer {
    pub user: UserRecord,
    /// Every membership, active or not (an inactive one explains MEMBERSHIP_INACTIVE).
    pub memberships: Vec<MembershipRecord>,
    pub active_organization: Option<Uuid>,
    /// No active organization because the token names this one, where the viewer's
    /// membership was removed: what falls back on the active organization is refused
    /// (MEMBERSHIP_INACTIVE) instead of answering for none.
    pub removed_from: Option<Uuid>,
    pub platform_admin: bool,
    /// The token's email, if it has one.
    pub email: Option<EmailClaim>,
    /// The effective policy the viewer's grants were computed with.
    pub policy: Arc<Policy>,
    /// Grants the token brings (COURSEGRAPH_ROLE_SOURCE=token): its permissions and
    /// custom role keys, in the token's organization only, never stored.
    pub token_grants: Option<TokenGrants>,
}

/// What a token adds to an active membership in its organization, per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrants {
    pub organization_id: Uuid,
    /// Each source as `grantedBy` names it (`token:<permission>`), with its grants.
    pub held: Vec<Held>,
}

impl TokenGrants {
    pub fn grants(&self) -> GrantSet {
        self.held.iter().fold(GrantSet::EMPTY, |g, h| g.union(h.grants))
    }
}

impl Viewer {
    pub fn membership(&self, org: Uuid) -> Option<&MembershipRecord> {
        self.memberships.iter().find(|m| m.organization_id == org)
    }

    pub fn active_memberships(&self) -> impl Iterator<Item = &MembershipRecord> {
        self.memberships.iter().filter(|m| m.is_active)
    }

    /// The effective grants in `org`: stored, plus what the token brings there. Empty
    /// without an active membership (a platform admin's powers are the policy's to grant).
    pub fn grants_in(&self, org: Uuid) -> GrantSet {
        let Some(m) = self.membership(org).filter(|m| m.is_active) else { return GrantSet::EMPTY };
        match &self.token_grants {
            Some(t) if t.organization_id == org => m.grants.union(t.grants()),
            _ => m.grants,
        }
    }

    /// The role in the active organization (ADMIN for a platform admin).
    pub fn active_role(&self) -> Option<Role> {
        self.active_organization.and_then(|o| self.effective_role(o))
    }

    /// The organization an operation without one acts in: the active organization, none,
    /// or — when the token names an organization the viewer was removed from — the
    /// decision refusing it (MEMBERSHIP_INACTIVE, naming it).
    pub fn fallback_organization(&self) -> Result<Option<Uuid>, crate::authz::Decision> {
        match (self.active_organization, self.removed_from) {
            (Some(o), _) => Ok(Some(o)),
            (None, Some(o)) => Err(crate::authz::policy::check(
                self,
                crate::authz::Action::ReadOrganization,
                &Resource::Organization { id: o },
            )),
            (None, None) => Ok(None),
        }
    }

    /// The token's email when it is verified: the address invitations are delivered to.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_ref().filter(|e| e.verified).map(|e| e.address.as_str())
    }
}

/// What row-level security needs to know of a viewer (none: an anonymous request).
pub fn tenancy(viewer: Option<&Viewer>) -> crate::db::Tenancy {
    match viewer {
        None => crate::db::Tenancy::default(),
        Some(v) => crate::db::Tenancy {
            user_id: Some(v.user.id),
            org_ids: v.active_memberships().map(|m| m.organization_id).collect(),
            platform_admin: v.platform_admin,
            email: v.email.as_ref().map(|e| e.address.clone()),
            email_verified: v.email.as_ref().is_some_and(|e| e.verified),
            draft_org_ids: match policy::scope(v, Action::ReadDraftCourse) {
                policy::OrgScope::Only(orgs) => orgs,
                policy::OrgScope::All => Vec::new(),
            },
            own_draft_org_ids: policy::own_scope(v, Action::ReadDraftCourse),
        },
    }
}

impl Subject for Viewer {
    fn user_id(&self) -> Uuid {
        self.user.id
    }

    fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }

    fn standing(&self, org: Uuid) -> Option<Standing> {
        self.membership(org).map(|m| {
            if m.is_active {
                Standing::Active { role: m.role, grants: self.grants_in(org) }
            } else {
                Standing::Inactive(m.role)
            }
        })
    }

    fn active_grants(&self) -> Vec<(Uuid, GrantSet)> {
        self.active_memberships().map(|m| (m.organization_id, self.grants_in(m.organization_id))).collect()
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn held(&self, org: Uuid) -> Vec<Held> {
        let Some(m) = self.membership(org).filter(|m| m.is_active) else { return Vec::new() };
        let built_in = Held { key: m.role.as_str().to_owned(), grants: self.policy.built_in(m.role) };
        let assigned = m.roles.iter().filter_map(|k| {
            let grants = self.policy.grants_of(k, &m.organization_roles)?;
            Some(Held { key: k.to_string(), grants })
        });
        let token = self.token_grants.iter().filter(|t| t.organization_id == org).flat_map(|t| t.held.iter().cloned());
        std::iter::once(built_in).chain(assigned).chain(token).collect()
    }

    fn organization_roles(&self, org: Uuid) -> &[RoleGrants] {
        self.membership(org).map(|m| &*m.organization_roles).unwrap_or(&[])
    }
}
