//! Thin adapters between resolvers and the policy: ask, audit, and turn a refusal
//! into the FORBIDDEN error that explains it.

use crate::{
    auth::Viewer,
    authz::{AccessReason, Action, Decision, Resource, policy},
    error::{AppError, AppResult},
};

/// Requires `action` on `resource`; a refusal is FORBIDDEN with the decision attached.
/// Every refusal, and every use of platform-admin powers, is an audit event.
pub fn require(viewer: &Viewer, action: Action, resource: &Resource) -> AppResult<Decision> {
    let d = policy::check(viewer, action, resource);
    if d.allowed {
        if d.reason == AccessReason::GrantedAsPlatformAdmin {
            tracing::info!(target: "audit", event = "platform_admin.granted", user_id = %viewer.user.id,
                action = d.action.as_str(), organization_id = ?d.organization_id, policy = d.policy);
        }
        Ok(d)
    } else {
        tracing::info!(target: "audit", event = "access.denied", user_id = %viewer.user.id,
            action = d.action.as_str(), reason = d.reason.as_str(), policy = d.policy,
            organization_id = ?d.organization_id, viewer_role = ?d.viewer_role.map(|r| r.as_str()));
        Err(AppError::forbidden(d))
    }
}
