//! `POST /doctor` (the access doctor's JSON report) and `GET /doctor` (a page for
//! pasting a token), outside production or with COURSEGRAPH_DOCTOR=true; 404 otherwise.

use crate::http::state::AppState;
use std::sync::Arc;

use poem::{
    Body, IntoResponse, Response, handler,
    http::{HeaderMap, StatusCode, header},
    web::{Data, Path},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::doctor::{Doctor, Input};

const PAGE: &str = include_str!("../../assets/doctor/index.html");
const SCRIPT: &str = include_str!("../../assets/doctor/doctor.js");
/// A token, an organization and a document: far less than this.
const MAX_BODY: usize = 256 * 1024;
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; frame-ancestors 'none'";

#[derive(Deserialize)]
struct DoctorRequest {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
}

fn bad_input(field: &str, message: &str) -> Response {
    let body =
        json!({ "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT", "field": field } }] });
    Response::builder().status(StatusCode::BAD_REQUEST).content_type("application/json").body(body.to_string())
}

#[handler]
pub async fn report(Data(state): Data<&Arc<AppState>>, headers: &HeaderMap, body: Body) -> Response {
    if !state.config.server.doctor {
        return StatusCode::NOT_FOUND.into_response();
    }
    let bytes = match body.into_bytes_limit(MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return bad_input("body", "the body is too large or unreadable"),
    };
    let req: DoctorRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(_) => {
            return bad_input(
                "body",
                "expected a JSON object: {\"token\": \"…\", \"organization\": \"…\", \"query\": \"…\"}",
            );
        }
    };
    // The token in the body, else the request's own Authorization header.
    let token = req
        .token
        .filter(|t| !t.trim().is_empty())
        .or_else(|| headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).map(str::to_owned));
    let input = Input {
        token: token.unwrap_or_default(),
        organization: req.organization,
        query: req.query,
        variables: req.variables,
    };
    let doctor = Doctor { verifier: &state.sign_in.verifier, config: &state.config, conn: Some(&state.conn) };
    match doctor.run(&input).await {
        Ok(r) => Response::builder()
            .content_type("application/json")
            // A report about a person's access: never stored by a cache.
            .header(header::CACHE_CONTROL, "no-store")
            .body(serde_json::to_string(&r).unwrap_or_default()),
        Err(e) => bad_input(e.field, &e.message),
    }
}

#[handler]
pub fn page(Data(state): Data<&Arc<AppState>>) -> Response {
    if !state.config.server.doctor {
        return StatusCode::NOT_FOUND.into_response();
    }
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(PAGE)
}

#[handler]
pub fn asset(Data(state): Data<&Arc<AppState>>, Path(file): Path<String>) -> Response {
    if !state.config.server.doctor || file != "doctor.js" {
        return StatusCode::NOT_FOUND.into_response();
    }
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(SCRIPT)
}
