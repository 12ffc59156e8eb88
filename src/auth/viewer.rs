//! The viewer a request runs as: the provisioned user, their memberships, the active
//! organization, and whether they are a platform admin.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::authz::{Resource, Role, Subject, policy::Standing};

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
    /// The organization's row as read with the viewer. Reads of an organization the viewer
    /// actively belongs to are answered from it: it is as fresh as the viewer's memberships
    /// (the context cache drops the viewer on `Change::Organization`, and a request that
    /// changes the organization re-reads the viewer).
    pub organization: Arc<entity::organization::Model>,
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
}

impl Viewer {
    pub fn membership(&self, org: Uuid) -> Option<&MembershipRecord> {
        self.memberships.iter().find(|m| m.organization_id == org)
    }

    pub fn active_memberships(&self) -> impl Iterator<Item = &MembershipRecord> {
        self.memberships.iter().filter(|m| m.is_active)
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
        self.membership(org).map(|m| if m.is_active { Standing::Active(m.role) } else { Standing::Inactive(m.role) })
    }

    fn active_roles(&self) -> Vec<(Uuid, Role)> {
        self.active_memberships().map(|m| (m.organization_id, m.role)).collect()
    }
}
