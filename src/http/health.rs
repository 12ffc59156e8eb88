//! `/healthz` (the process is up), `/readyz` (the database answers), `/metrics` (Prometheus).

use std::sync::Arc;

use poem::{Response, handler, http::StatusCode, web::Data};

use crate::http::state::AppState;

#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

#[handler]
pub async fn readyz(Data(state): Data<&Arc<AppState>>) -> Response {
    let ready =
        tokio::time::timeout(std::time::Duration::from_secs(2), crate::db::ping(&state.conn)).await.unwrap_or(false);
    if ready {
        Response::builder().content_type("text/plain").body("ready")
    } else {
        Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain")
            .body("database unavailable")
    }
}

#[handler]
pub fn metrics(Data(state): Data<&Arc<AppState>>) -> Response {
    state.sample_gauges();
    Response::builder().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
