//! What provisioning would write for an identity, as a value: the user, the organization
//! the token names, the membership there, the invitations it accepts. Pure: computed from
//! what was read. The server takes the warm path exactly when the plan writes nothing
//! (its transaction and its one-statement first sight then carry the plan out), and the
//! access doctor shows the plan as what the first request *would* do.

use serde::Serialize;
use uuid::Uuid;

use super::super::{Identity, cache::Found, claims::OrgClaim};
use crate::{authz::Role, config::RoleSource, domain::organization::slugify};

/// The settings a plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct PlanSettings {
    pub role_source: RoleSource,
    pub default_role: Role,
    /// Pending invitations to a verified email are accepted at sign-in.
    pub auto_accept: bool,
}

/// The organization the token names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum OrganizationStep {
    /// The token names none.
    NotNamed,
    Exists {
        id: Uuid,
    },
    Create {
        name: String,
        slug: String,
    },
    /// Not read yet (the server's warm path does not look it up): found or created.
    FindOrCreate,
}

/// The membership in the token's organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum MembershipStep {
    /// The token names no organization.
    NotNamed,
    Create {
        role: Role,
    },
    Keep {
        role: Role,
    },
    /// COURSEGRAPH_ROLE_SOURCE=token: the role follows the token.
    FollowToken {
        from: Role,
        to: Role,
    },
    /// Removed: a token never re-activates it (an invitation does).
    Inactive {
        role: Role,
    },
}

/// What accepting one invitation does to the membership of its organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InvitationEffect {
    Creates,
    Reactivates,
    /// An active member keeps their role.
    Keeps,
}

/// One pending invitation addressed to the token's verified email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationStep {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub role: Role,
    pub effect: InvitationEffect,
}

/// The pending invitations provisioning sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invitations {
    /// Each one (the doctor reads them).
    Known(Vec<(Uuid, Uuid, Role)>),
    /// Only whether any waits (the server's one-statement read).
    Waiting(bool),
}

/// The plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub create_user: bool,
    pub organization: OrganizationStep,
    pub membership: MembershipStep,
    pub invitations: Vec<InvitationStep>,
    /// Invitations wait that the plan does not list one by one.
    pub invitations_waiting: bool,
}

impl Plan {
    /// Whether carrying it out writes a row (else the warm path serves the request).
    pub fn writes(&self) -> bool {
        self.create_user
            || self.invitations_waiting
            || !self.invitations.is_empty()
            || matches!(self.organization, OrganizationStep::Create { .. } | OrganizationStep::FindOrCreate)
            || matches!(self.membership, MembershipStep::Create { .. } | MembershipStep::FollowToken { .. })
    }

    /// The rows it creates, by kind (`user`, `organization`, `membership`), once each.
    pub fn would_create(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.create_user {
            out.push("user");
        }
        if matches!(self.organization, OrganizationStep::Create { .. }) {
            out.push("organization");
        }
        let by_invitation = self.invitations.iter().any(|i| i.effect == InvitationEffect::Creates);
        if matches!(self.membership, MembershipStep::Create { .. }) || by_invitation {
            out.push("membership");
        }
        out
    }
}

/// The name and slug a new organization gets: the token's name, else its external id.
pub fn new_organization(org: &OrgClaim) -> (String, String) {
    let name = org.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(&org.external_id);
    let name: String = name.chars().take(500).collect();
    let slug = slugify(&name);
    (name, slug)
}

/// The plan for `identity`, given the user and memberships `found` (none: a new user),
/// the row of the token's organization when it was looked up (`Some(None)`: it does not
/// exist), and the pending invitations.
pub fn plan(
    identity: &Identity,
    found: Option<&Found>,
    org_row: Option<Option<Uuid>>,
    invitations: &Invitations,
    s: &PlanSettings,
) -> Plan {
    let memberships = found.map(|f| f.memberships.as_slice()).unwrap_or_default();
    let accepting = s.auto_accept && identity.email_verified && identity.email.is_some();
    let (steps, waiting) = match invitations {
        Invitations::Known(list) if accepting => (
            list.iter()
                .map(|(id, org, role)| {
                    let effect = match memberships.iter().find(|m| m.organization_id == *org) {
                        None => InvitationEffect::Creates,
                        Some(m) if m.is_active => InvitationEffect::Keeps,
                        Some(_) => InvitationEffect::Reactivates,
                    };
                    InvitationStep { id: *id, organization_id: *org, role: *role, effect }
                })
                .collect(),
            false,
        ),
        Invitations::Waiting(w) => (Vec::new(), *w && accepting),
        Invitations::Known(_) => (Vec::new(), false),
    };
    let Some(claim) = &identity.organization else {
        let membership = MembershipStep::NotNamed;
        return Plan {
            create_user: found.is_none(),
            organization: OrganizationStep::NotNamed,
            membership,
            invitations: steps,
            invitations_waiting: waiting,
        };
    };
    let existing = memberships.iter().find(|m| m.organization_external_id.as_deref() == Some(&claim.external_id));
    let organization = match (existing, org_row) {
        (Some(m), _) => OrganizationStep::Exists { id: m.organization_id },
        (None, Some(Some(id))) => OrganizationStep::Exists { id },
        (None, Some(None)) => {
            let (name, slug) = new_organization(claim);
            OrganizationStep::Create { name, slug }
        }
        (None, None) => OrganizationStep::FindOrCreate,
    };
    let org_id = match &organization {
        OrganizationStep::Exists { id } => Some(*id),
        _ => None,
    };
    let invited = steps.iter().find(|i| Some(i.organization_id) == org_id);
    let token_role = identity.role.unwrap_or(s.default_role);
    let membership = match (existing, invited) {
        // An invitation to this organization wins over the token's role.
        (_, Some(i)) if i.effect != InvitationEffect::Keeps => MembershipStep::Keep { role: i.role },
        (None, _) => MembershipStep::Create { role: token_role },
        (Some(m), _) if !m.is_active => MembershipStep::Inactive { role: m.role },
        (Some(m), _) => match identity.role {
            Some(r) if s.role_source == RoleSource::Token && r != m.role => {
                MembershipStep::FollowToken { from: m.role, to: r }
            }
            _ => MembershipStep::Keep { role: m.role },
        },
    };
    Plan { create_user: found.is_none(), organization, membership, invitations: steps, invitations_waiting: waiting }
}
