//! The WebSocket transport under the protocol: the RFC 6455 handshake on `GET /graphql`,
//! and the one refusal the transport itself makes — a message over the size limit, which
//! is closed with 1009 (message too big) and a reason, then read out, so the connection
//! ends with a close rather than a TCP reset.
//!
//! Done here rather than with poem's `WebSocket` extractor because the refusal needs the
//! raw connection back after tungstenite has refused the frame: what the client is still
//! sending must be read before the socket closes, or the kernel answers the unread bytes
//! with a reset and the client never sees the close frame.

use std::time::Duration;

use futures_util::SinkExt as _;
use poem::{
    Body, Request, Response, Upgraded,
    http::{HeaderValue, Method, StatusCode, header},
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        error::{CapacityError, Error as WsError},
        handshake::derive_accept_key,
        protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode},
    },
};

/// The socket a connection speaks the protocol over.
pub type Socket = WebSocketStream<Upgraded>;
pub type Sink = futures_util::stream::SplitSink<Socket, Message>;
pub type Source = futures_util::stream::SplitStream<Socket>;

/// At most this much of a refused message is read out, for at most this long, before
/// the connection is dropped regardless.
const DRAIN_BYTES: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);
/// The client has stopped sending when nothing arrives for this long.
const DRAIN_IDLE: Duration = Duration::from_millis(300);

/// Answers the upgrade of `req` (101, selecting `protocol` when the client offered it) and
/// runs `serve` on the socket with whether the protocol was offered; a request that is not
/// a valid WebSocket handshake is 400.
pub fn accept<F, Fut>(req: &Request, protocol: &'static str, config: WebSocketConfig, serve: F) -> Response
where
    F: FnOnce(Socket, bool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let headers = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let valid = req.method() == Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let (Some(key), true) = (key, valid) else {
        return Response::builder().status(StatusCode::BAD_REQUEST).body("not a WebSocket handshake");
    };
    let Ok(on_upgrade) = req.take_upgrade() else {
        return Response::builder().status(StatusCode::BAD_REQUEST).body("this connection cannot be upgraded");
    };
    let offered = has(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    let accept = derive_accept_key(key.as_bytes());
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if offered {
        resp = resp.header(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let socket = WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config)).await;
        serve(socket, offered).await;
    });
    resp.body(Body::empty())
}

/// Whether a read error is a message (or frame) over the configured size.
pub fn too_big(e: &WsError) -> bool {
    matches!(e, WsError::Capacity(CapacityError::MessageTooLong { .. }))
}

/// Closes with 1009 and `reason`, then reads and discards what the client is still sending
/// (up to [`DRAIN_BYTES`] or [`DRAIN_TIME`]) before shutting the connection down.
pub async fn refuse_too_big(mut sink: Sink, source: Source, reason: String) {
    let frame = CloseFrame { code: CloseCode::Size, reason: reason.into() };
    if sink.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let Ok(mut socket) = sink.reunite(source) else { return };
    let io = socket.get_mut();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut read, deadline) = (0usize, tokio::time::Instant::now() + DRAIN_TIME);
    while read < DRAIN_BYTES && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(DRAIN_IDLE, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => read += n,
            _ => break,
        }
    }
    let _ = io.shutdown().await;
}

/// Sends a close frame with `code` and `reason`, then closes the sink.
pub async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}
