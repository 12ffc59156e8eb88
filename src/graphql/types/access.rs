//! `AccessDecision`: the policy's answer to `explainAccess`, with its explanation; and
//! `AccessGrant`: one member `whoCan` lists.

use async_graphql::{ID, SimpleObject};

use crate::authz::{AccessReason, Action, Decision, Role, Subject, policy};

use super::membership::Membership;

/// Whether the viewer may perform an action, and why.
#[derive(SimpleObject, Debug, Clone)]
pub struct AccessDecision {
    pub allowed: bool,
    pub reason: AccessReason,
    pub action: Action,
    /// The roles that grant this action (some only with ownership).
    pub required_roles: Vec<Role>,
    /// The viewer's role in the organization concerned (ADMIN for a platform admin).
    pub viewer_role: Option<Role>,
    pub organization_id: Option<ID>,
    /// The name of the policy rule that decided.
    pub policy: String,
    /// The keys of the viewer's roles whose grant allowed it (`token:<permission>` for a
    /// grant the token brought); empty when denied.
    pub granted_by: Vec<String>,
    /// The keys of every role of that organization that would allow it (built-in,
    /// policy-file and its own); empty for NOT_FOUND and NOT_A_MEMBER.
    pub granting_roles: Vec<String>,
}

impl AccessDecision {
    /// The decision `d`, explained for `subject`.
    pub fn new(subject: &impl Subject, d: Decision) -> Self {
        Self {
            granted_by: policy::granted_by(subject, &d),
            granting_roles: policy::granting_roles(subject, &d),
            allowed: d.allowed,
            reason: d.reason,
            action: d.action,
            required_roles: d.required_roles.to_vec(),
            viewer_role: d.viewer_role,
            organization_id: d.organization_id.map(super::id),
            policy: d.policy.to_owned(),
        }
    }
}

/// A member the policy grants an action, and why (`whoCan`).
#[derive(SimpleObject, Debug, Clone)]
pub struct AccessGrant {
    /// The membership (its `user`, `role`) that is granted.
    pub membership: Membership,
    /// GRANTED_BY_ROLE, GRANTED_AS_OWNER or GRANTED_AS_SELF.
    pub reason: AccessReason,
    pub role: Role,
    /// The name of the policy rule that decided.
    pub policy: String,
}
