//! Running one GraphQL operation for a viewer, the same way over HTTP and WebSocket: its
//! own context and database handle, the preflight limits, execution, the complexity
//! explanation, the request's transaction, the audit of its decisions, and the error
//! codes clients rely on.

use crate::http::state::AppState;
use std::sync::Arc;

use async_graphql::{ErrorExtensionValues, Request as GqlRequest, Response, ServerError, parser::types::OperationType};

use crate::{
    auth::{AuthError, AuthReason, Viewer},
    authz::guard::Noted,
    db::RequestDb,
    error::{AppError, code},
    graphql::{
        RequestContext,
        context::ViewerCell,
        limits::{self, TOO_COMPLEX_MESSAGE},
    },
};

/// The database handle of one operation: under the viewer's tenancy when row-level
/// security is enforced.
pub fn request_db(state: &AppState, viewer: Option<&Viewer>) -> RequestDb {
    match &state.db_role {
        Some(role) => RequestDb::with_rls(state.conn.clone(), role.clone(), crate::auth::viewer::tenancy(viewer)),
        None => RequestDb::new(state.conn.clone(), state.write_lock.clone()),
    }
}

/// The read replica a query of `viewer` may read from: the replica is up and within
/// COURSEGRAPH_READ_MAX_LAG, and it has replayed the viewer's last write (made on any
/// server process). `None`: read from the primary.
async fn read_replica_for(state: &AppState, viewer: Option<&Viewer>) -> Option<Arc<crate::db::replica::Replica>> {
    use crate::db::replica::{Route, Why};
    let replica = state.replica.as_ref()?;
    let mut route = replica.route(None);
    if route == Route::Replica
        && let Some(v) = viewer
    {
        route = match crate::db::replica::written_at(&state.conn, v.user.id).await {
            Ok(written) => replica.route(written),
            Err(e) => {
                tracing::warn!(error = %e, "read replica: could not read the viewer's write position");
                Route::Primary(Why::PositionUnknown)
            }
        };
    }
    match route {
        Route::Replica => {
            state.metrics.read_routed("replica", "caught_up");
            Some(replica.clone())
        }
        Route::Primary(why) => {
            state.metrics.read_routed("primary", why.as_str());
            None
        }
    }
}

/// Who runs an operation: the viewer, or what an anonymous request hears when an
/// operation needs one (TOKEN_MISSING, saying why).
#[derive(Clone)]
pub struct Caller {
    pub viewer: Option<Arc<Viewer>>,
    pub unauthenticated: AuthError,
}

impl Caller {
    pub fn signed(viewer: Arc<Viewer>) -> Self {
        Self { viewer: Some(viewer), unauthenticated: AuthReason::TokenMissing.into() }
    }
}

/// A fresh context (loaders, database handle) around `viewer`.
pub fn context(state: &AppState, request_id: &str, viewer: ViewerCell, db: RequestDb) -> RequestContext {
    RequestContext::new(
        request_id.to_owned(),
        viewer,
        AuthReason::TokenMissing.into(),
        db,
        state.sign_in.provisioner.cache().clone(),
        state.bus.clone(),
        state.config.limits.max_page_size,
    )
}

/// Runs a query or mutation to its response.
pub async fn operation(state: &AppState, request_id: &str, caller: Caller, mut r: GqlRequest) -> Response {
    let Caller { viewer, unauthenticated } = caller;
    let op_type = match state.preflight.check(&mut r) {
        Ok(t) => t,
        Err(e) => return Response::from_errors(vec![e]),
    };
    let mut db = request_db(state, viewer.as_deref());
    if op_type == Some(OperationType::Query)
        && let Some(replica) = read_replica_for(state, viewer.as_deref()).await
    {
        db = db.reading_from(replica);
    }
    let on_replica = db.on_replica();
    let mut ctx = context(state, request_id, ViewerCell::new(viewer.clone()), db.clone());
    ctx.unauthenticated = unauthenticated;
    let decisions = ctx.decisions.clone();
    if op_type == Some(OperationType::Subscription) {
        return Response::from_errors(vec![app_error(AppError::bad_input(
            "query",
            "subscriptions need a WebSocket: connect to this URL with the graphql-transport-ws protocol",
        ))]);
    }
    // Kept for the rare refusal on complexity, whose actual value is measured apart.
    let probe = ComplexityProbe::of(&r);
    let mut resp = state.schema.execute(r.data(ctx)).await;
    probe.explain(state, &mut resp.errors).await;
    // The request's transaction (row-level security): if it cannot commit, nothing
    // this operation wrote is there, so its answer must not claim otherwise.
    match db.finish().await {
        Ok(committed) => committed.into_iter().for_each(|c| state.sign_in.provisioner.cache().invalidate(c)),
        Err(e) => return Response::from_errors(vec![app_error(AppError::from(e))]),
    }
    if on_replica && !db.on_replica() && !db.wrote() {
        state.metrics.read_routed("primary", crate::db::replica::Why::ReplicaFailed.as_str());
    }
    // Read your writes: until the replica has replayed this far, this viewer's queries
    // (on any server process) read from the primary. The writes themselves are committed,
    // so failing here does not fail the answer: the viewer may then read data up to
    // COURSEGRAPH_READ_MAX_LAG old.
    if state.replica.is_some()
        && db.wrote()
        && let Some(v) = &viewer
        && let Err(e) = crate::db::replica::record_write(&state.conn, v.user.id).await
    {
        tracing::warn!(error = %e, "read replica: could not record the viewer's write position");
    }
    account(state, &decisions.take(), op_type == Some(OperationType::Mutation)).await;
    resp
}

/// What a refused document needs to be measured again: async-graphql only says "too
/// complex", the client is told how complex.
pub struct ComplexityProbe {
    query: String,
    variables: async_graphql::Variables,
    operation: Option<String>,
}

impl ComplexityProbe {
    pub fn of(r: &GqlRequest) -> Self {
        Self { query: r.query.clone(), variables: r.variables.clone(), operation: r.operation_name.clone() }
    }

    /// Replaces async-graphql's bare complexity refusal with QUERY_TOO_COMPLEX, `limit` and `actual`.
    pub async fn explain(self, state: &AppState, errors: &mut Vec<ServerError>) {
        if !errors.iter().any(|e| e.message == TOO_COMPLEX_MESSAGE) {
            return;
        }
        let mut probe = GqlRequest::new(self.query).variables(self.variables);
        if let Some(op) = self.operation {
            probe = probe.operation_name(op);
        }
        let actual = limits::measure_complexity(&state.probe, probe).await.unwrap_or_default();
        *errors = vec![limits::too_complex("complexity", state.config.limits.max_complexity, actual)];
    }
}

/// What a response's errors mean for the transport.
#[derive(Default, Debug, Clone, Copy)]
pub struct ErrorFlags {
    pub unauthenticated: bool,
    /// The operation never ran (parse or validation failure).
    pub request_error: bool,
    /// The database could not be reached and nothing could be answered.
    pub unavailable: bool,
}

impl ErrorFlags {
    pub fn merge(&mut self, o: ErrorFlags) {
        self.unauthenticated |= o.unauthenticated;
        self.request_error |= o.request_error;
        self.unavailable |= o.unavailable;
    }
}

/// Gives every error its `extensions.code` (Apollo's codes for parse, validation and
/// variable errors) and the request id on internal ones.
pub fn settle_errors(request_id: &str, r: &mut Response) -> ErrorFlags {
    let mut flags = ErrorFlags::default();
    if r.data == async_graphql::Value::Null && !r.errors.is_empty() && r.errors.iter().all(|e| e.path.is_empty()) {
        flags.request_error = true;
    }
    for e in &mut r.errors {
        let ext = e.extensions.get_or_insert_with(ErrorExtensionValues::default);
        match ext.get("code") {
            Some(async_graphql::Value::String(c)) if c == code::INTERNAL_SERVER_ERROR => {
                if r.data == async_graphql::Value::Null
                    && ext.get("retryable") == Some(&async_graphql::Value::Boolean(true))
                {
                    flags.unavailable = true;
                }
                ext.set("requestId", request_id);
            }
            Some(async_graphql::Value::String(c)) if c == code::UNAUTHENTICATED => flags.unauthenticated = true,
            // A variable whose value does not fit its type is bad input, as in Apollo.
            None if e.path.is_empty()
                && (e.message.starts_with("Invalid value for argument") || e.message.contains("variable")) =>
            {
                ext.set("code", code::BAD_USER_INPUT)
            }
            None if e.path.is_empty() => ext.set("code", "GRAPHQL_VALIDATION_FAILED"),
            // An argument that did not coerce at execution time (our own errors all carry codes).
            None => ext.set("code", code::BAD_USER_INPUT),
            _ => {}
        }
    }
    flags
}

/// An [`AppError`] as a GraphQL error with its extensions.
pub fn app_error(e: AppError) -> ServerError {
    let mut err = ServerError::new(e.message(), None);
    let mut ext = ErrorExtensionValues::default();
    e.write_extensions(&mut ext);
    err.extensions = Some(ext);
    err
}

/// Accounts for an operation's noted decisions: every refusal in the denial metrics; on a
/// mutation (`audit`), each refusal of a root field is an ACCESS_DENIED event and each use of
/// platform-admin powers a PLATFORM_ADMIN_ACCESS one, each at most once per minute per
/// viewer and key (queries audit platform-admin powers only).
pub async fn account(state: &AppState, noted: &[Noted], mutation: bool) {
    use crate::domain::audit::Event;
    use entity::AuditAction;
    for n in noted {
        let d = &n.decision;
        if n.denied() {
            state.metrics.denied(d.reason.as_str(), d.action.as_str());
            let Some(field) = n.root_field.as_deref().filter(|_| mutation) else { continue };
            let event =
                Event::new(AuditAction::AccessDenied, d.organization_id, Some(n.user_id)).details(serde_json::json!({
                    "action": d.action.as_str(), "reason": d.reason.as_str(),
                    "viewerRole": d.viewer_role.map(|r| r.as_str()), "policy": d.policy, "field": field,
                }));
            state.audit.record(format!("access_denied:{}:{}", d.action.as_str(), d.reason.as_str()), event).await;
        } else {
            let event = Event::new(AuditAction::PlatformAdminAccess, d.organization_id, Some(n.user_id))
                .details(serde_json::json!({ "action": d.action.as_str(), "mutation": mutation }));
            let org = d.organization_id.map(|o| o.to_string()).unwrap_or_default();
            state.audit.record(format!("platform_admin:{}:{org}", d.action.as_str()), event).await;
        }
    }
}
