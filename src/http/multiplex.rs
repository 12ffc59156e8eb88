//! Multiplexed subscriptions: subscribers of one document, with the same variables and a
//! viewer of the same class (`live::share`), share one execution. Each event is judged
//! and rendered once per group; every member's connection gets the same payload bytes
//! under its own subscription id.
//!
//! A group runs its subscription with a snapshot of its first member's viewer — any
//! member would do: the class is everything the policy looks at. What can differ between
//! members over time is handled per member by their connection: when a viewer is re-read
//! (a membership or role changed), each of their subscriptions either ends (FORBIDDEN,
//! MEMBERSHIP_INACTIVE: removed from the organization) or moves to the group of the
//! viewer's new class, whose own checks then run (e.g. NOT_FOUND for a course a demoted
//! member may no longer read).

use crate::http::state::AppState;
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::Request as GqlRequest;
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch};

use super::exec::{self, ComplexityProbe};
use crate::{
    auth::Viewer,
    graphql::context::ViewerCell,
    live::{LiveTarget, share::ViewerClass},
};

/// What identifies a group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    query: String,
    operation: Option<String>,
    variables: String,
    class: ViewerClass,
}

impl GroupKey {
    pub fn class(&self) -> &ViewerClass {
        &self.class
    }

    pub fn new(query: &str, operation: Option<&str>, variables: &async_graphql::Variables, class: ViewerClass) -> Self {
        Self {
            query: query.to_owned(),
            operation: operation.map(str::to_owned),
            variables: serde_json::to_string(variables).unwrap_or_default(),
            class,
        }
    }
}

/// What a group (or any operation) hands a connection.
pub enum Out {
    /// A text frame for the connection (a query's answer).
    Text(String),
    /// An event of the subscription `id`: `payload` is shared by the whole group.
    Next { id: Arc<str>, token: u64, payload: Arc<str> },
    /// The operation `id` is over, with this last frame (`complete` or `error`); a
    /// connection ignores it when `token` is not its current subscription under that id.
    Done { id: Arc<str>, token: u64, text: String },
}

/// Who a group delivers to: a connection's subscription id and its outbox.
pub struct Subscriber {
    pub id: Arc<str>,
    pub out: mpsc::Sender<Out>,
}

struct Member {
    token: u64,
    id: Arc<str>,
    out: mpsc::Sender<Out>,
}

pub struct Group {
    key: GroupKey,
    /// By token: leaving is O(1), however large the group.
    members: Mutex<HashMap<u64, Member>>,
    /// Set by the subscription's resolver once its checks passed and it listens.
    target: Arc<OnceLock<LiveTarget>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Group {
    pub fn target(&self) -> Option<LiveTarget> {
        self.target.get().copied()
    }

    pub fn key(&self) -> &GroupKey {
        &self.key
    }
}

/// This process's groups.
#[derive(Default)]
pub struct Hub {
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
    tokens: AtomicU64,
}

/// A connection's place in a group.
pub struct Membership {
    pub group: Arc<Group>,
    pub token: u64,
}

impl Hub {
    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<GroupKey, Arc<Group>>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection's subscription to the group of `key`, starting the group (with
    /// `viewer` as its snapshot, `request` as its document) when there is none.
    pub fn join(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        key: GroupKey,
        request: GqlRequest,
        viewer: Arc<Viewer>,
        request_id: &str,
        subscriber: Subscriber,
    ) -> Membership {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let member = Member { token, id: subscriber.id, out: subscriber.out };
        let mut groups = self.groups();
        if let Some(g) = groups.get(&key) {
            g.members.lock().unwrap_or_else(|e| e.into_inner()).insert(token, member);
            return Membership { group: g.clone(), token };
        }
        let group = Arc::new(Group {
            key: key.clone(),
            members: Mutex::new(HashMap::from([(token, member)])),
            target: Arc::new(OnceLock::new()),
            task: Mutex::new(None),
        });
        groups.insert(key, group.clone());
        drop(groups);
        let task =
            tokio::spawn(run(state.clone(), self.clone(), group.clone(), request, viewer, request_id.to_owned()));
        *group.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        Membership { group, token }
    }

    /// Takes a subscription out of its group; the last one out stops the group.
    pub fn leave(&self, m: &Membership) {
        let empty = {
            let mut members = m.group.members.lock().unwrap_or_else(|e| e.into_inner());
            members.remove(&m.token);
            members.is_empty()
        };
        if empty {
            self.end(&m.group);
        }
    }

    fn end(&self, group: &Arc<Group>) {
        let mut groups = self.groups();
        if groups.get(&group.key).is_some_and(|g| Arc::ptr_eq(g, group)) {
            groups.remove(&group.key);
        }
        drop(groups);
        if let Some(t) = group.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }

    /// (groups, subscriptions whose group is listening): for /metrics.
    pub fn counts(&self) -> (usize, usize) {
        let groups = self.groups();
        let listening = groups
            .values()
            .filter(|g| g.target.get().is_some())
            .map(|g| g.members.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum();
        (groups.len(), listening)
    }
}

/// A group's subscription: one execution, its events to every member.
async fn run(
    state: Arc<AppState>,
    hub: Arc<Hub>,
    group: Arc<Group>,
    request: GqlRequest,
    viewer: Arc<Viewer>,
    request_id: String,
) {
    let db = exec::request_db(&state, Some(&viewer));
    let mut ctx = exec::context(&state, &request_id, ViewerCell::new(Some(viewer)), db.clone());
    // The snapshot never changes: members' own changes are their connections' business.
    let (_still, version) = watch::channel(0u64);
    ctx.viewer_version = Some(version);
    ctx.live_target = Some(group.target.clone());
    let decisions = ctx.decisions.clone();
    let mut probe = Some(ComplexityProbe::of(&request));
    let mut stream = state.schema.execute_stream(request.data(ctx));
    let last = loop {
        let Some(mut resp) = stream.next().await else { break None };
        if let Some(p) = probe.take() {
            p.explain(&state, &mut resp.errors).await;
        }
        exec::settle_errors(&request_id, &mut resp);
        exec::account(&state, &decisions.take(), false).await;
        // Refused at the start or ended by an error (NOT_FOUND, …): the protocol's `error`.
        if resp.data == async_graphql::Value::Null && !resp.errors.is_empty() {
            break Some(resp.errors);
        }
        let payload: Arc<str> = Arc::from(serde_json::to_string(&resp).unwrap_or_default());
        let members = group.members.lock().unwrap_or_else(|e| e.into_inner());
        for m in members.values() {
            let next = Out::Next { id: m.id.clone(), token: m.token, payload: payload.clone() };
            // At-most-once: a connection this far behind misses the event.
            if m.out.try_send(next).is_err() {
                tracing::warn!(subscription = %m.id, "a connection fell behind; an event was dropped for it");
            }
        }
    };
    let _ = db.finish().await;
    // Whoever joins from now on starts a new group.
    {
        let mut groups = hub.groups();
        if groups.get(&group.key).is_some_and(|g| Arc::ptr_eq(g, &group)) {
            groups.remove(&group.key);
        }
    }
    let members = std::mem::take(&mut *group.members.lock().unwrap_or_else(|e| e.into_inner()));
    for m in members.into_values() {
        let text = match &last {
            Some(errors) => super::ws::error_message(&m.id, errors),
            None => super::ws::complete_message(&m.id),
        };
        let _ = m.out.send(Out::Done { id: m.id, token: m.token, text }).await;
    }
}
