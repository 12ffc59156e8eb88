//! A connection's operations: subscriptions joined to the group of viewers the policy
//! cannot tell apart (`multiplex`), queries and mutations each in a task of its own, and
//! what happens to them when the viewer changes (a subscription of an organization they
//! left ends; one whose viewer class changed moves group).

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Request as GqlRequest, parser::types::OperationType};
use tokio::{sync::mpsc, task::AbortHandle};

use super::{Connection, complete_message, error_message, next_frame};
use crate::{
    auth::{AuthReason, Viewer},
    authz::{Action, Resource, guard},
    graphql::context::ViewerCell,
    http::{
        exec,
        multiplex::{GroupKey, Membership, Out, Subscriber},
        state::AppState,
    },
    live::share::{self, ViewerClass},
};

impl Connection {
    /// Starts `subscribe` `id`: a subscription joins its group, anything else runs as its
    /// own task. Returns the frame to send at once when the document is refused.
    pub(super) fn start(
        &self,
        subs: &mut Subs,
        cell: &ViewerCell,
        out: &mpsc::Sender<Out>,
        id: Arc<str>,
        mut request: GqlRequest,
    ) -> Option<String> {
        let token = subs.token();
        let op_type = match self.state.preflight.check(&mut request) {
            Ok(t) => t,
            Err(e) => return Some(error_message(&id, &[e])),
        };
        self.state.metrics.subscriptions(1);
        if op_type == Some(OperationType::Subscription) {
            let operation = request.operation_name.clone();
            let shared = match request.parsed_query() {
                Ok(doc) => share::role_determined(doc, operation.as_deref()),
                Err(_) => false,
            };
            let spec = Spec { query: request.query, operation, variables: request.variables };
            let sub = self.join(cell, out, id.clone(), spec, shared)?;
            subs.entries.insert(id, Sub::Live(sub));
        } else {
            let op = Operation {
                state: self.state.clone(),
                request_id: self.request_id.clone(),
                viewer: cell.get(),
                out: out.clone(),
                id: id.clone(),
                token,
            };
            subs.entries.insert(id, Sub::Op { token, task: tokio::spawn(op.run(request)).abort_handle() });
        }
        None
    }

    /// Joins the group of this viewer's class for the subscription `spec`.
    fn join(
        &self,
        cell: &ViewerCell,
        out: &mpsc::Sender<Out>,
        id: Arc<str>,
        spec: Spec,
        shared: bool,
    ) -> Option<LiveSub> {
        let viewer = cell.get()?;
        let key =
            GroupKey::new(&spec.query, spec.operation.as_deref(), &spec.variables, ViewerClass::of(&viewer, shared));
        let mut request = spec.request();
        // Parsed before (and cached): this only attaches the document.
        let _ = self.state.preflight.check(&mut request);
        let subscriber = Subscriber { id, out: out.clone() };
        let membership = self.state.hub.join(&self.state, key, request, viewer, &self.request_id, subscriber);
        Some(LiveSub { membership, spec, shared })
    }

    pub(super) fn drop_sub(&self, subs: &mut Subs, id: &str) {
        match subs.entries.remove(id) {
            Some(Sub::Op { task, .. }) => task.abort(),
            Some(Sub::Live(l)) => self.state.hub.leave(&l.membership),
            None => return,
        }
        self.state.metrics.subscriptions(-1);
    }

    /// After the viewer was re-read: a subscription of an organization they no longer
    /// actively belong to ends (FORBIDDEN, MEMBERSHIP_INACTIVE); one whose viewer class
    /// changed moves to the group of the new class. Returns the frames to send.
    pub(super) fn regroup(&self, subs: &mut Subs, cell: &ViewerCell, out: &mpsc::Sender<Out>) -> Vec<String> {
        let Some(v) = cell.get() else { return Vec::new() };
        let mut frames = Vec::new();
        let live: Vec<Arc<str>> =
            subs.entries.iter().filter(|(_, s)| matches!(s, Sub::Live(_))).map(|(id, _)| id.clone()).collect();
        for id in live {
            let Some(Sub::Live(l)) = subs.entries.get(&id) else { continue };
            if let Some(t) = l.membership.group.target()
                && let Err(e) = guard::require(
                    &v,
                    Action::ReadCourse,
                    &Resource::Organization { id: t.organization_id },
                    Default::default(),
                )
            {
                frames.push(error_message(&id, &[exec::app_error(e)]));
                self.drop_sub(subs, &id);
                continue;
            }
            if ViewerClass::of(&v, l.shared) == *l.membership.group.key().class() {
                continue;
            }
            let Some(Sub::Live(old)) = subs.entries.remove(&id) else { continue };
            self.state.hub.leave(&old.membership);
            match self.join(cell, out, id.clone(), old.spec, old.shared) {
                Some(new) => {
                    subs.entries.insert(id, Sub::Live(new));
                }
                None => self.state.metrics.subscriptions(-1),
            }
        }
        frames
    }

    /// Re-reads the viewer (a membership, role or organization of theirs changed).
    /// Returns whether it could.
    pub(super) async fn refresh(&self, cell: &ViewerCell) -> bool {
        let Some(v) = cell.get() else { return false };
        let db = exec::request_db(&self.state, Some(&v));
        let reloaded = crate::auth::provision::reload_viewer(&db, &v).await;
        let _ = db.finish().await;
        match reloaded {
            Ok(next) => {
                cell.set(Arc::new(next));
                true
            }
            Err(e) => {
                tracing::warn!(error = e.message(), "websocket: could not re-read the viewer");
                false
            }
        }
    }
}

/// A connection's operations, by subscription id.
pub(super) struct Subs {
    pub(super) entries: HashMap<Arc<str>, Sub>,
    pub(super) next_token: u64,
}

impl Subs {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Whether `token` is the current operation under `id` (a frame of an operation that
    /// ended or moved is stale).
    pub(super) fn is_current(&self, id: &str, token: u64) -> bool {
        match self.entries.get(id) {
            Some(Sub::Op { token: t, .. }) => *t == token,
            Some(Sub::Live(l)) => l.membership.token == token,
            None => false,
        }
    }
}

pub(super) enum Sub {
    /// A query or mutation, running.
    Op {
        token: u64,
        task: AbortHandle,
    },
    Live(LiveSub),
}

pub(super) struct LiveSub {
    membership: Membership,
    /// Kept to join another group when the viewer's class changes.
    spec: Spec,
    shared: bool,
}

/// A subscription's document and variables.
struct Spec {
    query: String,
    operation: Option<String>,
    variables: async_graphql::Variables,
}

impl Spec {
    fn request(&self) -> GqlRequest {
        let mut r = GqlRequest::new(self.query.clone()).variables(self.variables.clone());
        if let Some(op) = &self.operation {
            r = r.operation_name(op.clone());
        }
        r
    }
}

/// A query or mutation sent over the socket: its answer, then `complete`.
pub(super) struct Operation {
    state: Arc<AppState>,
    request_id: String,
    viewer: Option<Arc<Viewer>>,
    out: mpsc::Sender<Out>,
    id: Arc<str>,
    token: u64,
}

impl Operation {
    async fn run(self, request: GqlRequest) {
        let state = &self.state;
        let caller = exec::Caller { viewer: self.viewer.clone(), unauthenticated: AuthReason::TokenMissing.into() };
        let mut resp = exec::operation(state, &self.request_id, caller, request).await;
        let flags = exec::settle_errors(&self.request_id, &mut resp);
        let done = |text| Out::Done { id: self.id.clone(), token: self.token, text };
        if flags.request_error || (resp.data == async_graphql::Value::Null && !resp.errors.is_empty()) {
            let _ = self.out.send(done(error_message(&self.id, &resp.errors))).await;
            return;
        }
        let payload = serde_json::to_string(&resp).unwrap_or_default();
        let _ = self.out.send(Out::Text(next_frame(&self.id, &payload))).await;
        let _ = self.out.send(done(complete_message(&self.id))).await;
    }
}
