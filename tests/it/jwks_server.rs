//! A JWKS endpoint on 127.0.0.1 for the tests: serves a document that can be swapped
//! (key rotation), counts fetches, and can fail or hang (an identity-provider outage).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use poem::{
    EndpointExt, Route, Server, get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Serve,
    Fail,
    Hang,
}

struct State {
    doc: Mutex<String>,
    mode: Mutex<Mode>,
    fetches: AtomicUsize,
}

pub struct JwksServer {
    pub url: String,
    state: Arc<State>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[handler]
async fn jwks(Data(state): Data<&Arc<State>>) -> poem::Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Serve => {
            let doc = state.doc.lock().unwrap().clone();
            poem::Response::builder().content_type("application/json").body(doc)
        }
        Mode::Fail => poem::Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).finish(),
        Mode::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            poem::Response::builder().finish()
        }
    }
}

impl JwksServer {
    pub async fn start(doc: String) -> Self {
        let state =
            Arc::new(State { doc: Mutex::new(doc), mode: Mutex::new(Mode::Serve), fetches: AtomicUsize::new(0) });
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Route::new().at("/.well-known/jwks.json", get(jwks)).data(state.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            app,
            async move {
                let _ = rx.await;
            },
            Some(std::time::Duration::from_millis(10)),
        ));
        Self { url: format!("http://{addr}/.well-known/jwks.json"), state, _stop: tx }
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub fn set_doc(&self, doc: String) {
        *self.state.doc.lock().unwrap() = doc;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }
}
