//! Thin adapters between resolvers and the policy: ask, audit, and turn a refusal
//! into the FORBIDDEN error that explains it.
//!
//! Grants of platform-admin power are also noted for the request's audit record: the
//! HTTP layer runs each operation inside [`noting_grants`], and [`require`] adds to it —
//! a task-local rather than a parameter, so the many call sites stay `require(viewer, …)`.

use std::cell::RefCell;

use uuid::Uuid;

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
                action = d.action.as_str(), organization_id = d.organization_id.map(tracing::field::display), policy = d.policy);
            let _ = GRANTS.try_with(|g| {
                let mut g = g.borrow_mut();
                if !g.contains(&(d.action, d.organization_id)) {
                    g.push((d.action, d.organization_id));
                }
            });
        }
        Ok(d)
    } else {
        tracing::info!(target: "audit", event = "access.denied", user_id = %viewer.user.id,
            action = d.action.as_str(), reason = d.reason.as_str(), policy = d.policy,
            organization_id = d.organization_id.map(tracing::field::display),
            viewer_role = d.viewer_role.map(|r| r.as_str()));
        Err(AppError::forbidden(d))
    }
}

tokio::task_local! {
    static GRANTS: RefCell<Vec<(Action, Option<Uuid>)>>;
}

/// Runs `f`, returning what it answered and the distinct (action, organization) pairs
/// granted to a platform admin while it ran.
pub async fn noting_grants<F: std::future::Future>(f: F) -> (F::Output, Vec<(Action, Option<Uuid>)>) {
    GRANTS
        .scope(RefCell::new(Vec::new()), async move {
            let out = f.await;
            (out, GRANTS.with(|g| std::mem::take(&mut *g.borrow_mut())))
        })
        .await
}
