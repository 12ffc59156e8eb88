//! GraphQL over WebSocket on `GET /graphql` with the `graphql-transport-ws` subprotocol
//! (the `graphql-ws` library's protocol, which Apollo Client's `GraphQLWsLink` and
//! GraphiQL speak).
//!
//! The connection authenticates once, from `connection_init`'s `Authorization` (else the
//! upgrade request's header), exactly as HTTP does; a refused token closes the socket
//! with 4403 and the UNAUTHENTICATED reason, and so does the token's expiry later. Every
//! subscription joins a group of identical subscribers (`multiplex`), every query or
//! mutation gets its own task; the connection task owns the socket, forwards what groups
//! and tasks produce, and re-reads the viewer whenever one of their memberships changes —
//! then each subscription ends or moves to the group of the viewer as they are now.

mod upgrade;

use crate::http::state::AppState;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_graphql::{Request as GqlRequest, ServerError, parser::types::OperationType};
use futures_util::{SinkExt as _, StreamExt as _};
use poem::{
    Request, Response,
    http::{StatusCode, header},
};
use serde_json::{Value, json};
use tokio::{sync::mpsc, task::AbortHandle, time::Instant};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};
use tracing::Instrument as _;
use upgrade::{Sink, Socket, Source, close};

use super::{
    exec,
    multiplex::{GroupKey, Membership, Out, Subscriber},
};
use crate::{
    auth::{AuthReason, Viewer, cache::Signal},
    authz::{Action, Resource, guard},
    error::AppError,
    graphql::context::ViewerCell,
    live::share::{self, ViewerClass},
};

/// The one subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// How long a client may take to send `connection_init` (graphql-ws's close code 4408).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket-level pings keep idle connections alive through proxies.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Whether `req` asks to upgrade to a WebSocket.
pub fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// With COURSEGRAPH_CORS_ORIGINS set, a browser page of another origin may only connect
/// when it is listed (an upgrade is not subject to CORS: this check is the only one).
fn origin_allowed(req: &Request, state: &AppState) -> bool {
    let (Some(cors), Some(origin)) = (&state.config.server.cors, req.headers().get(header::ORIGIN)) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    if cors.origins.is_empty() || cors.origins.iter().any(|o| o == origin) {
        return true;
    }
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// Accepts the upgrade (or refuses it with 403 for a foreign origin).
pub async fn upgrade(req: &Request, state: Arc<AppState>, request_id: String) -> Response {
    if !origin_allowed(req, &state) {
        tracing::info!(
            origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()),
            "websocket upgrade refused: origin not allowed"
        );
        return Response::builder().status(StatusCode::FORBIDDEN).body("origin not allowed (COURSEGRAPH_CORS_ORIGINS)");
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let upgrade_auth = header("authorization");
    let upgrade_org = header("x-organization-id");
    let max = state.config.limits.max_body_bytes;
    // Small buffers (the defaults are 128 KiB each way per connection, which 10,000 idle
    // subscribers would pay for), and messages no larger than an HTTP body may be.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 << 20)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    upgrade::accept(req, PROTOCOL, config, move |socket, offered| async move {
        let conn = Connection { state, request_id, upgrade_auth, upgrade_org };
        conn.serve(socket, offered).await;
    })
}

struct Connection {
    state: Arc<AppState>,
    request_id: String,
    upgrade_auth: Option<String>,
    upgrade_org: Option<String>,
}

/// How a connection's read loop ended.
enum Ended {
    /// Closed (by either side), or the socket is gone.
    Closed,
    /// The client sent a message over the size limit: refuse it with 1009.
    TooBig,
}

/// A message of the protocol, or `None` for one that is not.
fn parse(msg: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(msg).ok()?;
    v.get("type").and_then(Value::as_str)?;
    Some(v)
}

impl Connection {
    async fn serve(self, socket: Socket, offered: bool) {
        let (mut sink, mut source) = socket.split();
        if !offered {
            return close(&mut sink, 4406, "Subprotocol not acceptable").await;
        }
        let init = match tokio::time::timeout(INIT_TIMEOUT, wait_for_init(&mut sink, &mut source)).await {
            Ok(Ok(Some(payload))) => payload,
            Ok(Ok(None)) => return,
            Ok(Err(Ended::TooBig)) => return self.refuse_too_big(sink, source).await,
            Ok(Err(Ended::Closed)) => return,
            Err(_) => return close(&mut sink, 4408, "Connection initialisation timeout").await,
        };
        let field =
            |names: [&str; 2]| names.iter().find_map(|n| init.get(*n).and_then(Value::as_str)).map(str::to_owned);
        let auth = field(["Authorization", "authorization"]).or_else(|| self.upgrade_auth.clone());
        let org = field(["X-Organization-Id", "x-organization-id"]).or_else(|| self.upgrade_org.clone());
        let sign_in = &self.state.sign_in;
        let missing = || sign_in.refused(AuthReason::TokenMissing.into());
        let Some(auth) = auth else {
            return close(&mut sink, 4403, missing().reason.as_str()).await;
        };
        if auth.len() > self.state.config.limits.max_auth_header_bytes {
            let e = sign_in.refused(AuthReason::TokenMalformed.into());
            return close(&mut sink, 4403, e.reason.as_str()).await;
        }
        let signed = match sign_in.sign_in(&auth, org.as_deref()).await {
            Ok(Some(s)) => s,
            // `Bearer` and nothing else: no token.
            Ok(None) => return close(&mut sink, 4403, missing().reason.as_str()).await,
            Err(AppError::Unauthenticated(e)) => return close(&mut sink, 4403, e.reason.as_str()).await,
            Err(AppError::Forbidden(d)) => return close(&mut sink, 4403, d.decision.reason.as_str()).await,
            Err(e) => {
                tracing::warn!(error = e.message(), "websocket: could not sign the viewer in");
                return close(&mut sink, 4500, "INTERNAL_SERVER_ERROR").await;
            }
        };
        if sink.send(Message::text(r#"{"type":"connection_ack"}"#)).await.is_err() {
            return;
        }
        let span = tracing::info_span!("websocket", request_id = %self.request_id, user_id = %signed.viewer.user.id);
        span.in_scope(|| tracing::info!("websocket connection ready"));
        self.state.metrics.ws_connections(1);
        self.run(sink, source, signed.viewer, signed.valid_until).instrument(span).await;
        self.state.metrics.ws_connections(-1);
    }

    /// Closes with 1009 and what the limit is, and reads out the rest of the message.
    async fn refuse_too_big(&self, sink: Sink, source: Source) {
        let limit = self.state.config.limits.max_body_bytes;
        tracing::info!(limit, "websocket closed: a message over the size limit");
        let reason = format!("message too big: at most {limit} bytes (COURSEGRAPH_MAX_BODY_BYTES)");
        upgrade::refuse_too_big(sink, source, reason).await;
    }

    async fn run(&self, mut sink: Sink, mut source: Source, viewer: Arc<Viewer>, valid_until: Option<u64>) {
        let user = viewer.user.id;
        let cell = ViewerCell::new(Some(viewer));
        let mut signals = self.state.sign_in.provisioner.cache().signals();
        // Room for a burst of events on every subscription a connection may hold.
        let (out_tx, mut out_rx) =
            mpsc::channel::<Out>(4 * self.state.config.server.max_subscriptions_per_connection + 16);
        let mut subs = Subs { entries: HashMap::new(), next_token: 0 };
        let expiry = expiry_instant(valid_until);
        let expired = tokio::time::sleep_until(expiry);
        tokio::pin!(expired);
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        let limit = self.state.config.server.max_subscriptions_per_connection;
        let mut ended = Ended::Closed;
        loop {
            tokio::select! {
                msg = source.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Binary(_))) => break close(&mut sink, 4400, "Binary messages are not part of the protocol").await,
                        Some(Err(e)) if upgrade::too_big(&e) => {
                            ended = Ended::TooBig;
                            break;
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    };
                    let Some(msg) = parse(&text) else { break close(&mut sink, 4400, "Invalid message received").await };
                    match msg["type"].as_str().unwrap_or_default() {
                        "ping" => {
                            if sink.send(Message::text(r#"{"type":"pong"}"#)).await.is_err() { break }
                        }
                        "pong" => {}
                        "connection_init" => break close(&mut sink, 4429, "Too many initialisation requests").await,
                        "complete" => {
                            if let Some(id) = msg["id"].as_str() {
                                self.drop_sub(&mut subs, id);
                            }
                        }
                        "subscribe" => {
                            let (Some(id), Ok(request)) = (
                                msg["id"].as_str().filter(|id| !id.is_empty()).map(Arc::<str>::from),
                                serde_json::from_value::<GqlRequest>(msg["payload"].clone()),
                            ) else {
                                break close(&mut sink, 4400, "Invalid message received").await;
                            };
                            if subs.entries.contains_key(&id) {
                                break close(&mut sink, 4409, &format!("Subscriber for {id} already exists")).await;
                            }
                            if subs.entries.len() >= limit {
                                let e = exec::app_error(AppError::TooComplex { what: "subscriptions", limit, actual: subs.entries.len() + 1 });
                                if sink.send(Message::text(error_message(&id, &[e]))).await.is_err() { break }
                                continue;
                            }
                            if let Some(refusal) = self.start(&mut subs, &cell, &out_tx, id.clone(), request)
                                && sink.send(Message::text(refusal)).await.is_err()
                            {
                                break;
                            }
                        }
                        _ => break close(&mut sink, 4400, "Invalid message received").await,
                    }
                }
                Some(out) = out_rx.recv() => {
                    let text = match out {
                        Out::Text(t) => t,
                        Out::Next { id, token, payload } => {
                            if !subs.is_current(&id, token) { continue }
                            next_frame(&id, &payload)
                        }
                        Out::Done { id, token, text } => {
                            if !subs.is_current(&id, token) { continue }
                            subs.entries.remove(&id);
                            self.state.metrics.subscriptions(-1);
                            text
                        }
                    };
                    if sink.send(Message::text(text)).await.is_err() { break }
                }
                signal = signals.recv() => {
                    let concerned = match signal {
                        Ok(Signal::Changed(crate::auth::cache::Change::User(u))) => u == user,
                        Ok(Signal::Changed(crate::auth::cache::Change::Organization(o))) => {
                            cell.get().is_some_and(|v| v.membership(o).is_some())
                        }
                        // Resynchronising, or fell behind on signals: re-read to be sure.
                        Ok(Signal::Resync) | Err(_) => true,
                    };
                    if concerned && self.refresh(&cell).await {
                        for frame in self.regroup(&mut subs, &cell, &out_tx) {
                            if sink.send(Message::text(frame)).await.is_err() { break }
                        }
                    }
                }
                _ = &mut expired => {
                    tracing::info!("websocket closed: the token expired");
                    break close(&mut sink, 4403, AuthReason::TokenExpired.as_str()).await;
                }
                _ = keepalive.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() { break }
                }
            }
        }
        let ids: Vec<Arc<str>> = subs.entries.keys().cloned().collect();
        for id in ids {
            self.drop_sub(&mut subs, &id);
        }
        if let Ended::TooBig = ended {
            self.refuse_too_big(sink, source).await;
        }
    }

    /// Starts `subscribe` `id`: a subscription joins its group, anything else runs as its
    /// own task. Returns the frame to send at once when the document is refused.
    fn start(
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

    fn drop_sub(&self, subs: &mut Subs, id: &str) {
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
    fn regroup(&self, subs: &mut Subs, cell: &ViewerCell, out: &mpsc::Sender<Out>) -> Vec<String> {
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
    async fn refresh(&self, cell: &ViewerCell) -> bool {
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
struct Subs {
    entries: HashMap<Arc<str>, Sub>,
    next_token: u64,
}

impl Subs {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Whether `token` is the current operation under `id` (a frame of an operation that
    /// ended or moved is stale).
    fn is_current(&self, id: &str, token: u64) -> bool {
        match self.entries.get(id) {
            Some(Sub::Op { token: t, .. }) => *t == token,
            Some(Sub::Live(l)) => l.membership.token == token,
            None => false,
        }
    }
}

enum Sub {
    /// A query or mutation, running.
    Op {
        token: u64,
        task: AbortHandle,
    },
    Live(LiveSub),
}

struct LiveSub {
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

/// Waits for `connection_init` (answering pings meanwhile): its payload, or `None` if the
/// client broke the protocol (the socket is then closed with its code).
async fn wait_for_init(sink: &mut Sink, source: &mut Source) -> Result<Option<Value>, Ended> {
    loop {
        let text = match source.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Err(e)) if upgrade::too_big(&e) => return Err(Ended::TooBig),
            Some(Ok(_) | Err(_)) | None => return Err(Ended::Closed),
        };
        let Some(msg) = parse(&text) else {
            close(sink, 4400, "Invalid message received").await;
            return Ok(None);
        };
        match msg["type"].as_str().unwrap_or_default() {
            "connection_init" => {
                return Ok(Some(msg.get("payload").cloned().filter(Value::is_object).unwrap_or(json!({}))));
            }
            "ping" => {
                if sink.send(Message::text(r#"{"type":"pong"}"#)).await.is_err() {
                    return Err(Ended::Closed);
                }
            }
            "pong" => {}
            "subscribe" => {
                close(sink, 4401, "Unauthorized").await;
                return Ok(None);
            }
            _ => {
                close(sink, 4400, "Invalid message received").await;
                return Ok(None);
            }
        }
    }
}

/// When a token valid until `valid_until` (seconds since the epoch) stops being accepted.
fn expiry_instant(valid_until: Option<u64>) -> Instant {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    match valid_until {
        Some(t) => Instant::now() + Duration::from_secs(t).saturating_sub(now),
        // No `exp` cannot be (the verifier requires it); never is a year away.
        None => Instant::now() + Duration::from_secs(365 * 86_400),
    }
}

pub fn error_message(id: &str, errors: &[ServerError]) -> String {
    json!({ "id": id, "type": "error", "payload": errors }).to_string()
}

/// A `next` frame around an already serialized payload (one group's payload is shared by
/// all its members: only the id differs).
fn next_frame(id: &str, payload: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_default();
    let mut s = String::with_capacity(payload.len() + id.len() + 36);
    s.push_str(r#"{"id":"#);
    s.push_str(&id);
    s.push_str(r#","type":"next","payload":"#);
    s.push_str(payload);
    s.push('}');
    s
}

pub fn complete_message(id: &str) -> String {
    json!({ "id": id, "type": "complete" }).to_string()
}

/// A query or mutation sent over the socket: its answer, then `complete`.
struct Operation {
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
