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

mod subs;
mod upgrade;

use crate::http::state::AppState;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_graphql::{Request as GqlRequest, ServerError};
use futures_util::{SinkExt as _, StreamExt as _};
use poem::{
    Request, Response,
    http::{StatusCode, header},
};
use serde_json::{Value, json};
use subs::Subs;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};
use tracing::Instrument as _;
use upgrade::{Sink, Socket, Source, close};

use super::{exec, multiplex::Out};
use crate::{
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

/// What the connection does next.
enum Step {
    Continue,
    Send(Vec<Message>),
    /// Close with this code and reason.
    Close(u16, String),
    End(Ended),
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
        let expired = tokio::time::sleep_until(expiry_instant(valid_until));
        tokio::pin!(expired);
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        let ended = loop {
            let step = tokio::select! {
                msg = source.next() => self.on_message(msg, &mut subs, &cell, &out_tx),
                Some(out) = out_rx.recv() => self.on_out(&mut subs, out),
                signal = signals.recv() => self.on_signal(signal, user, &mut subs, &cell, &out_tx).await,
                _ = &mut expired => {
                    tracing::info!("websocket closed: the token expired");
                    Step::Close(4403, AuthReason::TokenExpired.as_str().to_owned())
                }
                _ = keepalive.tick() => Step::Send(vec![Message::Ping(Default::default())]),
            };
            match step {
                Step::Continue => {}
                Step::Send(frames) => {
                    let mut gone = false;
                    for f in frames {
                        gone = gone || sink.send(f).await.is_err();
                    }
                    if gone {
                        break Ended::Closed;
                    }
                }
                Step::Close(code, reason) => {
                    close(&mut sink, code, &reason).await;
                    break Ended::Closed;
                }
                Step::End(e) => break e,
            }
        };
        let ids: Vec<Arc<str>> = subs.entries.keys().cloned().collect();
        for id in ids {
            self.drop_sub(&mut subs, &id);
        }
        if let Ended::TooBig = ended {
            self.refuse_too_big(sink, source).await;
        }
    }

    /// What a message from the client asks for.
    fn on_message(
        &self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        subs: &mut Subs,
        cell: &ViewerCell,
        out: &mpsc::Sender<Out>,
    ) -> Step {
        let invalid = || Step::Close(4400, "Invalid message received".to_owned());
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Step::Continue,
            Some(Ok(Message::Binary(_))) => {
                return Step::Close(4400, "Binary messages are not part of the protocol".to_owned());
            }
            Some(Err(e)) if upgrade::too_big(&e) => return Step::End(Ended::TooBig),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Step::End(Ended::Closed),
        };
        let Some(msg) = parse(&text) else { return invalid() };
        match msg["type"].as_str().unwrap_or_default() {
            "ping" => Step::Send(vec![Message::text(r#"{"type":"pong"}"#)]),
            "pong" => Step::Continue,
            "connection_init" => Step::Close(4429, "Too many initialisation requests".to_owned()),
            "complete" => {
                if let Some(id) = msg["id"].as_str() {
                    self.drop_sub(subs, id);
                }
                Step::Continue
            }
            "subscribe" => {
                let (Some(id), Ok(request)) = (
                    msg["id"].as_str().filter(|id| !id.is_empty()).map(Arc::<str>::from),
                    serde_json::from_value::<GqlRequest>(msg["payload"].clone()),
                ) else {
                    return invalid();
                };
                if subs.entries.contains_key(&id) {
                    return Step::Close(4409, format!("Subscriber for {id} already exists"));
                }
                let limit = self.state.config.server.max_subscriptions_per_connection;
                if subs.entries.len() >= limit {
                    let actual = subs.entries.len() + 1;
                    let e = exec::app_error(AppError::TooComplex { what: "subscriptions", limit, actual });
                    return Step::Send(vec![Message::text(error_message(&id, &[e]))]);
                }
                match self.start(subs, cell, out, id.clone(), request) {
                    Some(refusal) => Step::Send(vec![Message::text(refusal)]),
                    None => Step::Continue,
                }
            }
            _ => invalid(),
        }
    }

    /// A frame an operation or group produced: sent unless its subscription moved on.
    fn on_out(&self, subs: &mut Subs, out: Out) -> Step {
        let text = match out {
            Out::Text(t) => t,
            Out::Next { id, token, payload } => {
                if !subs.is_current(&id, token) {
                    return Step::Continue;
                }
                next_frame(&id, &payload)
            }
            Out::Done { id, token, text } => {
                if !subs.is_current(&id, token) {
                    return Step::Continue;
                }
                subs.entries.remove(&id);
                self.state.metrics.subscriptions(-1);
                text
            }
        };
        Step::Send(vec![Message::text(text)])
    }

    /// A context change: when it concerns this viewer, re-read them and regroup.
    async fn on_signal(
        &self,
        signal: Result<Signal, tokio::sync::broadcast::error::RecvError>,
        user: uuid::Uuid,
        subs: &mut Subs,
        cell: &ViewerCell,
        out: &mpsc::Sender<Out>,
    ) -> Step {
        let concerned = match signal {
            Ok(Signal::Changed(crate::auth::cache::Change::User(u))) => u == user,
            Ok(Signal::Changed(crate::auth::cache::Change::Organization(o))) => {
                cell.get().is_some_and(|v| v.membership(o).is_some())
            }
            // Resynchronising, or fell behind on signals: re-read to be sure.
            Ok(Signal::Resync) | Err(_) => true,
        };
        if !(concerned && self.refresh(cell).await) {
            return Step::Continue;
        }
        Step::Send(self.regroup(subs, cell, out).into_iter().map(Message::text).collect())
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
