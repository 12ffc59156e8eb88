//! A minimal graphql-transport-ws client for the tests (the Node suites use the real
//! `graphql-ws` library and Apollo Client; this one lets a test look at every frame).

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Msg(Value),
    Closed(u16, String),
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// Opens a socket to `addr` (`host:port`) with `headers`, offering `protocol`.
pub async fn open(addr: &str, protocol: &str, headers: &[(&str, &str)]) -> Ws {
    let mut req = format!("ws://{addr}/graphql").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, HeaderValue::from_str(v).unwrap());
    }
    let (stream, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket upgrade");
    if protocol == "graphql-transport-ws" {
        assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "graphql-transport-ws");
    }
    Ws { stream }
}

/// Opens a socket and sends `connection_init` with `payload`.
pub async fn init(addr: &str, payload: Value) -> Ws {
    let mut ws = open(addr, "graphql-transport-ws", &[]).await;
    ws.send(json!({ "type": "connection_init", "payload": payload })).await;
    ws
}

/// `init` with `Authorization: Bearer <token>`, expecting the ack.
pub async fn connect(addr: &str, token: &str) -> Ws {
    let mut ws = init(addr, json!({ "Authorization": format!("Bearer {token}") })).await;
    assert_eq!(ws.recv().await, Frame::Msg(json!({ "type": "connection_ack" })));
    ws
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.stream.send(Message::text(v.to_string())).await.expect("send");
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next frame within 5 s.
    pub async fn recv(&mut self) -> Frame {
        self.recv_within(Duration::from_secs(5)).await.expect("a frame within 5 s")
    }

    /// The next frame within `d`, if any.
    pub async fn recv_within(&mut self, d: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Frame::Closed(1006, String::new())),
                Ok(Some(Err(_))) => return Some(Frame::Closed(1006, String::new())),
                Ok(Some(Ok(m))) => m,
            };
            return Some(match msg {
                Message::Text(t) => Frame::Msg(serde_json::from_str(t.as_str()).expect("JSON frame")),
                Message::Close(Some(c)) => Frame::Closed(c.code.into(), c.reason.to_string()),
                Message::Close(None) => Frame::Closed(1005, String::new()),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Binary(_) => panic!("binary frame"),
            });
        }
    }

    /// Sends `text` as it is (any size), without waiting for an answer.
    pub async fn send_raw(&mut self, text: String) -> Result<(), String> {
        self.stream.send(Message::text(text)).await.map_err(|e| e.to_string())
    }

    /// After a close frame: how the connection ends, `Ok` when the server closed it (the
    /// stream ends), `Err` with the error when it was reset or broke.
    pub async fn end(&mut self) -> Result<(), String> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.stream.next()).await {
                Err(_) => return Err("still open after 10 s".into()),
                Ok(None) => return Ok(()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))) => return Ok(()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
            }
        }
    }

    /// The next `next` payload for `id`, failing on anything else.
    pub async fn next_payload(&mut self, id: &str) -> Value {
        match self.recv().await {
            Frame::Msg(m) if m["type"] == "next" && m["id"] == id => m["payload"].clone(),
            other => panic!("expected next for {id}, got {other:?}"),
        }
    }

    /// Nothing arrives within `d`.
    pub async fn quiet_for(&mut self, d: Duration) {
        if let Some(f) = self.recv_within(d).await {
            panic!("expected silence, got {f:?}");
        }
    }
}
