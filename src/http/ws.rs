//! GraphQL over WebSocket on `GET /graphql` with the `graphql-transport-ws` subprotocol
//! (the `graphql-ws` library's protocol, which Apollo Client's `GraphQLWsLink` and
//! GraphiQL speak).
//!
//! The connection authenticates once, from `connection_init`'s `Authorization` (else the
//! upgrade request's header), exactly as HTTP does; a refused token closes the socket
//! with 4403 and the UNAUTHENTICATED reason, and so does the token's expiry later. Every
//! `subscribe` gets its own operation task and context; the connection task owns the
//! socket, forwards what the tasks produce, and re-reads the viewer whenever one of their
//! memberships changes (so subscriptions judge each event with the viewer as they are).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_graphql::{Request as GqlRequest, Response as GqlResponse, ServerError, parser::types::OperationType};
use futures_util::{SinkExt as _, StreamExt as _};
use poem::{
    FromRequest, IntoResponse, Request, RequestBody, Response,
    http::{StatusCode, header},
    web::websocket::{CloseCode, Message, WebSocket, WebSocketStream},
};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, watch},
    task::AbortHandle,
    time::Instant,
};
use tracing::Instrument as _;

use super::exec::{self, ComplexityProbe};
use crate::{
    app::AppState,
    auth::{AuthReason, Viewer, cache::Signal},
    error::AppError,
    graphql::context::ViewerCell,
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
    let (Some(cors), Some(origin)) = (&state.config.cors, req.headers().get(header::ORIGIN)) else { return true };
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
        tracing::info!(origin = ?req.headers().get(header::ORIGIN), "websocket upgrade refused: origin not allowed");
        return Response::builder().status(StatusCode::FORBIDDEN).body("origin not allowed (COURSEGRAPH_CORS_ORIGINS)");
    }
    let ws = match WebSocket::from_request(req, &mut RequestBody::default()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let offered = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == PROTOCOL));
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let upgrade_auth = header("authorization");
    let upgrade_org = header("x-organization-id");
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| async move {
            let conn = Connection { state, request_id, upgrade_auth, upgrade_org };
            conn.serve(socket, offered).await;
        })
        .into_response()
}

struct Connection {
    state: Arc<AppState>,
    request_id: String,
    upgrade_auth: Option<String>,
    upgrade_org: Option<String>,
}

type Sink = futures_util::stream::SplitSink<WebSocketStream, Message>;
type Source = futures_util::stream::SplitStream<WebSocketStream>;

/// What an operation task hands the connection.
enum Out {
    Text(String),
    /// The operation is over (after `complete` or `error`): forget it.
    Done(String, String),
}

async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let _ = sink.send(Message::close_with(CloseCode::from(code), reason.to_owned())).await;
    let _ = sink.close().await;
}

/// A message of the protocol, or `None` for one that is not.
fn parse(msg: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(msg).ok()?;
    v.get("type").and_then(Value::as_str)?;
    Some(v)
}

impl Connection {
    async fn serve(self, socket: WebSocketStream, offered: bool) {
        let (mut sink, mut source) = socket.split();
        if !offered {
            return close(&mut sink, 4406, "Subprotocol not acceptable").await;
        }
        let init = match tokio::time::timeout(INIT_TIMEOUT, wait_for_init(&mut sink, &mut source)).await {
            Ok(Some(payload)) => payload,
            Ok(None) => return,
            Err(_) => return close(&mut sink, 4408, "Connection initialisation timeout").await,
        };
        let field =
            |names: [&str; 2]| names.iter().find_map(|n| init.get(*n).and_then(Value::as_str)).map(str::to_owned);
        let auth = field(["Authorization", "authorization"]).or_else(|| self.upgrade_auth.clone());
        let org = field(["X-Organization-Id", "x-organization-id"]).or_else(|| self.upgrade_org.clone());
        let Some(auth) = auth else {
            super::graphql::refused(&self.state, AuthReason::TokenMissing);
            return close(&mut sink, 4403, AuthReason::TokenMissing.as_str()).await;
        };
        if auth.len() > self.state.config.limits.max_auth_header_bytes {
            super::graphql::refused(&self.state, AuthReason::TokenMalformed);
            return close(&mut sink, 4403, AuthReason::TokenMalformed.as_str()).await;
        }
        let signed = match super::graphql::sign_in(&self.state, &auth, org.as_deref()).await {
            Ok(s) => s,
            Err(AppError::Unauthenticated(e)) => return close(&mut sink, 4403, e.reason.as_str()).await,
            Err(AppError::Forbidden(d)) => return close(&mut sink, 4403, d.reason.as_str()).await,
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

    async fn run(&self, mut sink: Sink, mut source: Source, viewer: Arc<Viewer>, valid_until: Option<u64>) {
        let user = viewer.user.id;
        let cell = ViewerCell::new(Some(viewer));
        let (version_tx, version_rx) = watch::channel(0u64);
        let mut signals = self.state.provisioner.cache().signals();
        let (out_tx, mut out_rx) = mpsc::channel::<Out>(256);
        let mut ops: HashMap<String, AbortHandle> = HashMap::new();
        let expiry = expiry_instant(valid_until);
        let expired = tokio::time::sleep_until(expiry);
        tokio::pin!(expired);
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        let limit = self.state.config.max_subscriptions_per_connection;
        loop {
            tokio::select! {
                msg = source.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => break close(&mut sink, 4400, "Binary messages are not part of the protocol").await,
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
                            if let Some(op) = msg["id"].as_str().and_then(|id| ops.remove(id)) {
                                op.abort();
                                self.state.metrics.subscriptions(-1);
                            }
                        }
                        "subscribe" => {
                            let (Some(id), Ok(request)) = (
                                msg["id"].as_str().filter(|id| !id.is_empty()).map(str::to_owned),
                                serde_json::from_value::<GqlRequest>(msg["payload"].clone()),
                            ) else {
                                break close(&mut sink, 4400, "Invalid message received").await;
                            };
                            if ops.contains_key(&id) {
                                break close(&mut sink, 4409, &format!("Subscriber for {id} already exists")).await;
                            }
                            if ops.len() >= limit {
                                let e = exec::app_error(AppError::TooComplex { what: "subscriptions", limit, actual: ops.len() + 1 });
                                if sink.send(Message::text(error_message(&id, &[e]))).await.is_err() { break }
                                continue;
                            }
                            let op = Operation {
                                state: self.state.clone(),
                                request_id: self.request_id.clone(),
                                viewer: cell.clone(),
                                version: version_rx.clone(),
                                out: out_tx.clone(),
                                id: id.clone(),
                            };
                            ops.insert(id, tokio::spawn(op.run(request)).abort_handle());
                            self.state.metrics.subscriptions(1);
                        }
                        _ => break close(&mut sink, 4400, "Invalid message received").await,
                    }
                }
                Some(out) = out_rx.recv() => {
                    let text = match out {
                        Out::Text(t) => t,
                        Out::Done(id, t) => {
                            if ops.remove(&id).is_some() {
                                self.state.metrics.subscriptions(-1);
                            }
                            t
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
                    if concerned {
                        self.refresh(&cell, &version_tx).await;
                    }
                }
                _ = &mut expired => {
                    tracing::info!("websocket closed: the token expired");
                    break close(&mut sink, 4403, AuthReason::TokenExpired.as_str()).await;
                }
                _ = keepalive.tick() => {
                    if sink.send(Message::ping(Vec::new())).await.is_err() { break }
                }
            }
        }
        for (_, op) in ops.drain() {
            op.abort();
            self.state.metrics.subscriptions(-1);
        }
    }

    /// Re-reads the viewer (a membership, role or organization of theirs changed) and
    /// tells the subscriptions, which re-evaluate what they may deliver.
    async fn refresh(&self, cell: &ViewerCell, version: &watch::Sender<u64>) {
        let Some(v) = cell.get() else { return };
        let db = exec::request_db(&self.state, Some(&v));
        let reloaded = crate::auth::provision::reload_viewer(&db, &v).await;
        let _ = db.finish().await;
        match reloaded {
            Ok(next) => {
                cell.set(Arc::new(next));
                version.send_modify(|n| *n += 1);
            }
            Err(e) => tracing::warn!(error = e.message(), "websocket: could not re-read the viewer"),
        }
    }
}

/// Waits for `connection_init` (answering pings meanwhile); `None` if the socket closed
/// or the client broke the protocol (the socket is then closed with its code).
async fn wait_for_init(sink: &mut Sink, source: &mut Source) -> Option<Value> {
    loop {
        let text = match source.next().await? {
            Ok(Message::Text(t)) => t,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(_) | Err(_) => return None,
        };
        let Some(msg) = parse(&text) else {
            close(sink, 4400, "Invalid message received").await;
            return None;
        };
        match msg["type"].as_str().unwrap_or_default() {
            "connection_init" => {
                return Some(msg.get("payload").cloned().filter(Value::is_object).unwrap_or(json!({})));
            }
            "ping" => {
                sink.send(Message::text(r#"{"type":"pong"}"#)).await.ok()?;
            }
            "pong" => {}
            "subscribe" => {
                close(sink, 4401, "Unauthorized").await;
                return None;
            }
            _ => {
                close(sink, 4400, "Invalid message received").await;
                return None;
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

fn error_message(id: &str, errors: &[ServerError]) -> String {
    json!({ "id": id, "type": "error", "payload": errors }).to_string()
}

fn next_message(id: &str, resp: &GqlResponse) -> String {
    json!({ "id": id, "type": "next", "payload": resp }).to_string()
}

fn complete_message(id: &str) -> String {
    json!({ "id": id, "type": "complete" }).to_string()
}

/// One `subscribe`: a subscription's stream of events, or a query or mutation's answer.
struct Operation {
    state: Arc<AppState>,
    request_id: String,
    viewer: ViewerCell,
    version: watch::Receiver<u64>,
    out: mpsc::Sender<Out>,
    id: String,
}

impl Operation {
    async fn run(self, mut request: GqlRequest) {
        let state = &self.state;
        let op_type = match state.preflight.check(&mut request) {
            Ok(t) => t,
            Err(e) => return self.fail(vec![e]).await,
        };
        if op_type != Some(OperationType::Subscription) {
            let mut resp = exec::operation(state, &self.request_id, self.viewer.get(), request).await;
            let flags = exec::settle_errors(state, &self.request_id, &mut resp);
            if flags.request_error || (resp.data == async_graphql::Value::Null && !resp.errors.is_empty()) {
                return self.fail(resp.errors).await;
            }
            let _ = self.out.send(Out::Text(next_message(&self.id, &resp))).await;
            let _ = self.out.send(Out::Done(self.id.clone(), complete_message(&self.id))).await;
            return;
        }
        let db = exec::request_db(state, self.viewer.get().as_deref());
        let mut ctx = exec::context(state, &self.request_id, self.viewer.clone(), db.clone());
        ctx.viewer_version = Some(self.version.clone());
        let mut probe = Some(ComplexityProbe::of(&request));
        let mut stream = state.schema.execute_stream(request.data(ctx));
        while let Some(mut resp) = stream.next().await {
            if let Some(p) = probe.take() {
                p.explain(state, &mut resp.errors).await;
            }
            exec::settle_errors(state, &self.request_id, &mut resp);
            // Refused before it started, or ended by an error (NOT_FOUND, FORBIDDEN …): the
            // protocol's `error`, after which nothing more comes for this id.
            if resp.data == async_graphql::Value::Null && !resp.errors.is_empty() {
                let _ = db.finish().await;
                return self.fail(resp.errors).await;
            }
            if self.out.send(Out::Text(next_message(&self.id, &resp))).await.is_err() {
                return;
            }
        }
        let _ = db.finish().await;
        let _ = self.out.send(Out::Done(self.id.clone(), complete_message(&self.id))).await;
    }

    async fn fail(&self, errors: Vec<ServerError>) {
        let _ = self.out.send(Out::Done(self.id.clone(), error_message(&self.id, &errors))).await;
    }
}
