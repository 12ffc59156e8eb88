//! Thin adapters between a request and the policy: ask, log, and turn a refusal into the
//! FORBIDDEN error that explains it.
//!
//! Every decision someone must hear of — a refusal, a use of platform-admin powers — is
//! noted, typed, in the operation's [`DecisionLog`]; the error's extensions, the audit log
//! and the metrics are each rendered from that [`Decision`], never parsed back from text.

use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::{
    auth::Viewer,
    authz::{AccessReason, Action, Decision, Resource, policy},
    error::{AppError, AppResult},
};

/// A decision the operation's caller must account for.
#[derive(Clone, Debug, PartialEq)]
pub struct Noted {
    pub decision: Decision,
    /// The user it was made for.
    pub user_id: Uuid,
    /// The root field being resolved when it was made (a denial there refuses that field
    /// of the operation: what the audit log records for mutations).
    pub root_field: Option<String>,
}

impl Noted {
    pub fn denied(&self) -> bool {
        !self.decision.allowed
    }
}

/// One operation's noted decisions (shared by its resolvers).
#[derive(Clone, Default)]
pub struct DecisionLog(Arc<Mutex<Vec<Noted>>>);

impl DecisionLog {
    /// What was noted since the last call.
    pub fn take(&self) -> Vec<Noted> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn note(&self, n: Noted) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A platform admin's power is noted once per action and organization.
        let seen = n.decision.allowed
            && v.iter().any(|o| {
                o.decision.allowed
                    && o.decision.action == n.decision.action
                    && o.decision.organization_id == n.decision.organization_id
            });
        if !seen {
            v.push(n);
        }
    }
}

/// Where a decision is made: the log to note it in and the root field being resolved.
#[derive(Clone, Copy, Default)]
pub struct At<'a> {
    pub log: Option<&'a DecisionLog>,
    pub root_field: Option<&'a str>,
}

/// Requires `action` on `resource`; a refusal is FORBIDDEN with the decision attached.
pub fn require(subject: &Viewer, action: Action, resource: &Resource, at: At<'_>) -> AppResult<Decision> {
    let d = policy::check(subject, action, resource);
    if d.allowed {
        if d.reason == AccessReason::GrantedAsPlatformAdmin {
            tracing::info!(target: "audit", event = "platform_admin.granted", user_id = %subject.user.id,
                action = d.action.as_str(), organization_id = d.organization_id.map(tracing::field::display),
                policy = d.policy);
            note(subject, &d, at);
        }
        Ok(d)
    } else {
        Err(refuse(subject, d, at))
    }
}

/// The FORBIDDEN error for a refusal decided elsewhere (a rule besides an action's own),
/// logged and noted like any other.
pub fn refuse(subject: &Viewer, d: Decision, at: At<'_>) -> AppError {
    tracing::info!(target: "audit", event = "access.denied", user_id = %subject.user.id,
        action = d.action.as_str(), reason = d.reason.as_str(), policy = d.policy,
        organization_id = d.organization_id.map(tracing::field::display),
        viewer_role = d.viewer_role.map(|r| r.as_str()));
    note(subject, &d, at);
    let org = d.organization_id.and_then(|o| subject.membership(o)).map(|m| m.organization_slug.clone());
    let granting = policy::granting_roles(subject, &d);
    AppError::forbidden_in(d, org, granting)
}

fn note(subject: &Viewer, d: &Decision, at: At<'_>) {
    if let Some(log) = at.log {
        log.note(Noted { decision: d.clone(), user_id: subject.user.id, root_field: at.root_field.map(str::to_owned) });
    }
}
