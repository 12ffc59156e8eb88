//! `POST/GET /graphql`: GraphQL over HTTP with the checks async-graphql-poem leaves to us
//! (content type, method, body and batch size), authentication, and the request context.
//!
//! The path is straight: read and check the request → verify the bearer token →
//! provision and build the viewer → execute with a per-request context and time limit →
//! map errors to statuses (401 with `WWW-Authenticate`, 400 for request errors under
//! `application/graphql-response+json`) and stamp the request id.

use crate::http::state::AppState;
use std::{sync::Arc, time::Instant};

use async_graphql::{BatchRequest, BatchResponse, ErrorExtensionValues, Request as GqlRequest, ServerError};
use poem::{
    Body, Request, Response, handler,
    http::{HeaderValue, Method, StatusCode, header},
    web::Data,
};
use tracing::Instrument as _;

use crate::{
    auth::{AuthError, AuthReason},
    config::Limits,
    error::{AppError, code},
};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

#[handler]
pub async fn graphql(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let started = Instant::now();
    let request_id = request_id(req);
    if req.method() == Method::GET && super::ws::is_upgrade(req) {
        return super::ws::upgrade(req, state.clone(), request_id).await;
    }
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        user_id = tracing::field::Empty,
        organization_id = tracing::field::Empty,
        operation = tracing::field::Empty,
    );
    let mut resp = handle(req, body, state, &request_id).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let elapsed = started.elapsed();
    state.metrics.observe_http("/graphql", resp.status().as_u16(), elapsed);
    span.in_scope(|| {
        tracing::info!(status = resp.status().as_u16(), duration_ms = elapsed.as_secs_f64() * 1e3, "request finished")
    });
    resp
}

/// A client-supplied `X-Request-Id` when it is short and plain, else a fresh one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Which media type the client wants back.
fn wants_graphql_response_json(req: &Request) -> bool {
    req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains(GRAPHQL_RESPONSE_JSON))
}

async fn handle(req: &Request, body: Body, state: &Arc<AppState>, request_id: &str) -> Response {
    let gql_json = wants_graphql_response_json(req);
    let media = if gql_json { GRAPHQL_RESPONSE_JSON } else { APPLICATION_JSON };
    // 1. Read the operation(s).
    let batch = match read_request(req, body, state).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if let Some(refused) = refuse_batch(&batch, &state.config.limits, media) {
        return refused;
    }
    // 2. Who is asking.
    let caller = match authenticate(req, state, media, request_id).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if let Some(v) = &caller.viewer {
        let span = tracing::Span::current();
        span.record("user_id", tracing::field::display(v.user.id));
        if let Some(o) = v.active_organization {
            span.record("organization_id", tracing::field::display(o));
        }
    }
    // 3. Execute, each operation with its own context (loaders are per operation).
    let name = |r: &GqlRequest| r.operation_name.clone().or_else(|| operation_name(&r.query).map(str::to_owned));
    let names: Vec<Option<String>> = match &batch {
        BatchRequest::Single(r) => vec![name(r)],
        BatchRequest::Batch(rs) => rs.iter().map(name).collect(),
    };
    let joined = names.iter().map(|n| n.as_deref().unwrap_or("anonymous")).collect::<Vec<_>>().join(",");
    tracing::Span::current().record("operation", joined.as_str());
    let mut resp = match execute(state, request_id, &caller, batch).await {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, media, vec![e]),
    };
    // 4. Errors: request ids on internal ones, metrics, and the HTTP status.
    let mut flags = super::exec::ErrorFlags::default();
    for (i, r) in responses_mut(&mut resp).into_iter().enumerate() {
        let op_outcome = if r.errors.is_empty() { "ok" } else { "error" };
        state.metrics.observe_operation(names.get(i).cloned().flatten().as_deref(), op_outcome);
        flags.merge(super::exec::settle_errors(request_id, r));
    }
    respond(resp, flags, caller.viewer.is_none(), gql_json, media)
}

/// The refusal of a batch the limits do not allow (batching off, or more than
/// COURSEGRAPH_MAX_BATCH operations).
fn refuse_batch(batch: &BatchRequest, limits: &Limits, media: &str) -> Option<Response> {
    let BatchRequest::Batch(v) = batch else { return None };
    let e = if limits.max_batch == 0 {
        AppError::bad_input("batch", "batched requests are turned off on this server")
    } else if v.len() > limits.max_batch || v.is_empty() {
        AppError::TooComplex { what: "batch", limit: limits.max_batch, actual: v.len() }
    } else {
        return None;
    };
    Some(error_response(StatusCode::BAD_REQUEST, media, vec![app_error(e)]))
}

/// Runs each operation in turn, within the request's time limit.
async fn execute(
    state: &AppState,
    request_id: &str,
    caller: &Caller,
    batch: BatchRequest,
) -> Result<BatchResponse, ServerError> {
    let run_one = |r: GqlRequest| super::exec::operation(state, request_id, caller.clone(), r);
    let exec = async {
        match batch {
            BatchRequest::Single(r) => BatchResponse::Single(run_one(r).await),
            BatchRequest::Batch(rs) => {
                let mut out = Vec::with_capacity(rs.len());
                for r in rs {
                    out.push(run_one(r).await);
                }
                BatchResponse::Batch(out)
            }
        }
    };
    let limit = state.config.limits.request_timeout;
    tokio::time::timeout(limit, exec).await.map_err(|_| {
        tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
        let mut e = ServerError::new("the request took too long and was cancelled", None);
        let mut ext = ErrorExtensionValues::default();
        ext.set("code", code::INTERNAL_SERVER_ERROR);
        ext.set("requestId", request_id);
        e.extensions = Some(ext);
        e
    })
}

/// The HTTP answer: its status from what the errors mean, and no `data` entry for a
/// request that never executed (a parse or validation failure).
fn respond(
    resp: BatchResponse,
    flags: super::exec::ErrorFlags,
    anonymous: bool,
    gql_json: bool,
    media: &str,
) -> Response {
    let super::exec::ErrorFlags { unauthenticated, request_error, unavailable } = flags;
    let status = if unauthenticated && anonymous {
        StatusCode::UNAUTHORIZED
    } else if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else if request_error && gql_json {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut out = if request_error {
        let mut v = serde_json::to_value(&resp).unwrap_or_default();
        let items: Vec<&mut serde_json::Value> = match &mut v {
            serde_json::Value::Array(a) => a.iter_mut().collect(),
            one => vec![one],
        };
        for item in items {
            if let Some(o) = item.as_object_mut()
                && o.get("data").is_some_and(|d| d.is_null())
                && o.get("errors").and_then(|e| e.as_array()).is_some_and(|e| e.iter().all(|x| x.get("path").is_none()))
            {
                o.remove("data");
            }
        }
        json_response(status, media, &v)
    } else {
        json_response(status, media, &resp)
    };
    if status == StatusCode::UNAUTHORIZED {
        out.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    out
}

/// The name of the document's first operation (`query Name …`), for logs and metrics
/// when the request does not send `operationName`.
fn operation_name(query: &str) -> Option<&str> {
    let mut rest = query;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == '\u{feff}');
        match rest.strip_prefix('#') {
            Some(comment) => rest = comment.split_once('\n').map_or("", |(_, r)| r),
            None => break,
        }
    }
    let rest = ["query", "mutation", "subscription"].iter().find_map(|k| rest.strip_prefix(k))?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

fn responses_mut(resp: &mut BatchResponse) -> Vec<&mut async_graphql::Response> {
    match resp {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(v) => v.iter_mut().collect(),
    }
}

/// Parses the body (POST) or the query string (GET), enforcing method, media type and size.
async fn read_request(req: &Request, body: Body, state: &AppState) -> Result<BatchRequest, Response> {
    let media = if wants_graphql_response_json(req) { GRAPHQL_RESPONSE_JSON } else { APPLICATION_JSON };
    if req.method() == Method::GET {
        read_get(req, state, media).map(BatchRequest::Single)
    } else {
        read_post(req, body, state, media).await
    }
}

/// A 400 with `msg` as a BAD_USER_INPUT error.
fn bad_request(media: &'static str, msg: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, media, vec![with_code(ServerError::new(msg, None), code::BAD_USER_INPUT)])
}

/// GET: the query string, queries only.
#[allow(clippy::result_large_err, reason = "the refusal is the handler's response, returned as is")]
fn read_get(req: &Request, state: &AppState, media: &'static str) -> Result<GqlRequest, Response> {
    let q = req.uri().query().unwrap_or("");
    let mut r = async_graphql::http::parse_query_string(q)
        .map_err(|e| bad_request(media, &format!("bad query string: {e}")))?;
    state.apq.resolve(&mut r).map_err(|e| error_response(StatusCode::OK, media, vec![e]))?;
    if r.query.trim().is_empty() {
        return Err(bad_request(media, "missing `query` parameter"));
    }
    if is_mutation(&r) {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            vec![with_code(ServerError::new("mutations must be sent with POST", None), code::BAD_USER_INPUT)],
        );
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(resp);
    }
    Ok(r)
}

/// POST: JSON only, so a cross-site "simple" request (text/plain, form, multipart) can
/// never run a mutation; the body within COURSEGRAPH_MAX_BODY_BYTES.
async fn read_post(req: &Request, body: Body, state: &AppState, media: &'static str) -> Result<BatchRequest, Response> {
    let limits = &state.config.limits;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if ct != APPLICATION_JSON && ct != GRAPHQL_RESPONSE_JSON {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            vec![with_code(
                ServerError::new("POST bodies must be application/json (or application/graphql-response+json)", None),
                code::BAD_USER_INPUT,
            )],
        ));
    }
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            vec![with_code(
                ServerError::new(format!("request body exceeds {} bytes", limits.max_body_bytes), None),
                code::QUERY_TOO_COMPLEX,
            )],
        )
    };
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limits.max_body_bytes)
    {
        return Err(too_large());
    }
    let bytes = match body.into_bytes_limit(limits.max_body_bytes).await {
        Ok(b) => b,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return Err(too_large()),
        Err(_) => return Err(bad_request(media, "could not read the request body")),
    };
    let mut batch = serde_json::from_slice::<BatchRequest>(&bytes)
        .map_err(|e| bad_request(media, &format!("malformed JSON body: {e}")))?;
    let requests = match &mut batch {
        BatchRequest::Single(r) => std::slice::from_mut(r),
        BatchRequest::Batch(v) => v.as_mut_slice(),
    };
    for r in requests {
        state.apq.resolve(r).map_err(|e| error_response(StatusCode::OK, media, vec![e]))?;
        if r.query.trim().is_empty() {
            return Err(bad_request(media, "missing `query`"));
        }
    }
    Ok(batch)
}

fn is_mutation(r: &GqlRequest) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(doc) = async_graphql::parser::parse_query(&r.query) else { return false };
    let ty = match (&doc.operations, &r.operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name.as_str()).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) => ops.values().next().map(|op| op.node.ty),
    };
    ty == Some(OperationType::Mutation)
}

/// Verifies the bearer token (if any) and provisions the viewer: who is calling.
async fn authenticate(req: &Request, state: &Arc<AppState>, media: &str, request_id: &str) -> Result<Caller, Response> {
    let sign_in = &state.sign_in;
    let Some(h) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(Caller { viewer: None, unauthenticated: sign_in.missing(false) });
    };
    if h.len() > state.config.limits.max_auth_header_bytes {
        // Refused before any parsing: an oversized header is never looked at.
        let e = sign_in.refused(AuthReason::TokenMalformed.into());
        return Err(unauthenticated(media, e, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
    let active_header = req.headers().get("x-organization-id").and_then(|v| v.to_str().ok());
    match sign_in.sign_in(h.to_str().unwrap_or(""), active_header).await {
        Ok(Some(s)) => Ok(Caller::signed(s.viewer)),
        Ok(None) => Ok(Caller { viewer: None, unauthenticated: sign_in.missing(true) }),
        Err(AppError::Unauthenticated(e)) => Err(unauthenticated(media, e, StatusCode::UNAUTHORIZED)),
        Err(e @ (AppError::Internal(_) | AppError::Unavailable(_))) => {
            // The database is down or the pool exhausted: fail fast, and say which request.
            let mut err = app_error(e);
            if let Some(ext) = err.extensions.as_mut() {
                ext.set("requestId", request_id);
            }
            Err(error_response(StatusCode::SERVICE_UNAVAILABLE, media, vec![err]))
        }
        Err(e) => Err(error_response(StatusCode::OK, media, vec![app_error(e)])),
    }
}

fn unauthenticated(media: &str, e: AuthError, status: StatusCode) -> Response {
    let reason = e.reason;
    let mut resp = error_response(status, media, vec![app_error(AppError::Unauthenticated(e))]);
    let challenge = if reason == AuthReason::TokenMissing {
        "Bearer".to_owned()
    } else {
        format!("Bearer error=\"invalid_token\", error_description=\"{}\"", reason.message())
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

use super::exec::{Caller, app_error};

fn with_code(mut e: ServerError, c: &str) -> ServerError {
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", c);
    e.extensions = Some(ext);
    e
}

fn error_response(status: StatusCode, media: &str, errors: Vec<ServerError>) -> Response {
    json_response(status, media, &serde_json::json!({ "errors": errors }))
}

fn json_response(status: StatusCode, media: &str, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder().status(status).content_type(media).body(bytes),
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response");
            Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::operation_name;

    #[test]
    fn operation_names_from_the_document() {
        assert_eq!(operation_name("query AdminMe { me { id } }"), Some("AdminMe"));
        assert_eq!(operation_name("  # hi\n mutation M($a: Int) { x }"), Some("M"));
        assert_eq!(operation_name("{ me { id } }"), None);
        assert_eq!(operation_name("query { me }"), None);
        assert_eq!(operation_name("queryX { me }"), None);
    }
}
