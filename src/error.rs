//! The one error type, mapped to GraphQL errors (`extensions.code`, …) in one place.
//!
//! Internal details (database errors, bugs) are logged here and never sent to the
//! client: the client gets a fixed message, and the HTTP layer adds the request id.

use async_graphql::ErrorExtensionValues;

use crate::{
    auth::{AuthError, AuthReason},
    authz::{Decision, Role},
};

/// Stable `extensions.code` values.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const CONFLICT: &str = "CONFLICT";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
}

/// Every way a request can fail.
///
/// Deliberately not `Display`: async-graphql converts any `Display` error into a bare
/// message, which would silently drop `extensions.code`. Without it, `?` in a resolver
/// goes through our `From<AppError>` below and keeps the extensions.
#[derive(Debug, Clone)]
pub enum AppError {
    Unauthenticated(AuthError),
    Forbidden(Box<Denial>),
    NotFound {
        what: &'static str,
    },
    BadUserInput {
        field: String,
        message: String,
    },
    Conflict {
        message: String,
        field: Option<String>,
    },
    TooComplex {
        what: &'static str,
        limit: usize,
        actual: usize,
    },
    Internal(String),
    /// The database cannot be reached (down, or the pool exhausted): INTERNAL_SERVER_ERROR
    /// to the client, with `retryable: true`, and HTTP 503 when nothing could be answered.
    Unavailable(String),
}

pub type AppResult<T> = Result<T, AppError>;

/// A refusal: the policy's decision, and the organization's slug to name in the message.
#[derive(Debug, Clone)]
pub struct Denial {
    pub decision: Decision,
    pub organization: Option<String>,
    /// The roles of the organization that would allow it (`extensions.grantingRoles`).
    pub granting_roles: Vec<String>,
}

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput { field: field.into(), message: message.into() }
    }

    pub fn conflict(message: impl Into<String>, field: Option<&str>) -> Self {
        AppError::Conflict { message: message.into(), field: field.map(str::to_owned) }
    }

    pub fn not_found(what: &'static str) -> Self {
        AppError::NotFound { what }
    }

    pub fn forbidden(decision: Decision) -> Self {
        AppError::Forbidden(Box::new(Denial { decision, organization: None, granting_roles: Vec::new() }))
    }

    /// FORBIDDEN naming the organization (by slug) the decision is about, and the roles
    /// there that would allow it.
    pub fn forbidden_in(decision: Decision, organization: Option<String>, granting_roles: Vec<String>) -> Self {
        AppError::Forbidden(Box::new(Denial { decision, organization, granting_roles }))
    }

    pub fn unauthenticated(reason: AuthReason) -> Self {
        AppError::Unauthenticated(AuthError::from(reason))
    }

    /// An unexpected failure: logged with its detail, answered generically.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        tracing::error!(error = %detail, "internal error");
        AppError::Internal(detail)
    }

    /// The client-facing message. Internal errors say nothing about their cause.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(a) => a.message().to_owned(),
            AppError::Forbidden(d) => forbidden_message(d),
            AppError::NotFound { what } => format!("{what} not found"),
            AppError::BadUserInput { message, .. } | AppError::Conflict { message, .. } => message.clone(),
            AppError::TooComplex { what, limit, actual } => {
                format!("query too complex: {what} is {actual}, the limit is {limit}")
            }
            AppError::Internal(_) => "internal server error".to_owned(),
            AppError::Unavailable(_) => "service temporarily unavailable".to_owned(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => code::UNAUTHENTICATED,
            AppError::Forbidden(_) => code::FORBIDDEN,
            AppError::NotFound { .. } => code::NOT_FOUND,
            AppError::BadUserInput { .. } => code::BAD_USER_INPUT,
            AppError::Conflict { .. } => code::CONFLICT,
            AppError::TooComplex { .. } => code::QUERY_TOO_COMPLEX,
            AppError::Internal(_) | AppError::Unavailable(_) => code::INTERNAL_SERVER_ERROR,
        }
    }

    /// Writes this error's extensions.
    pub fn write_extensions(&self, e: &mut ErrorExtensionValues) {
        e.set("code", self.code());
        match self {
            AppError::Unauthenticated(a) => e.set("reason", a.reason.as_str()),
            AppError::Forbidden(denial) => {
                let d = &denial.decision;
                e.set("reason", d.reason.as_str());
                e.set("action", d.action.as_str());
                e.set("requiredRoles", d.required_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>());
                e.set("grantingRoles", denial.granting_roles.clone());
                e.set("viewerRole", d.viewer_role.map(Role::as_str));
                e.set("policy", d.policy);
                if let Some(o) = d.organization_id {
                    e.set("organizationId", o.to_string());
                }
            }
            AppError::BadUserInput { field, .. } => e.set("field", field.as_str()),
            AppError::Conflict { field: Some(f), .. } => e.set("field", f.as_str()),
            AppError::TooComplex { what, limit, actual } => {
                e.set("limit", *limit as u64);
                e.set("actual", *actual as u64);
                e.set("kind", *what);
            }
            AppError::Unavailable(_) => e.set("retryable", true),
            _ => {}
        }
    }
}

fn forbidden_message(denial: &Denial) -> String {
    let d = &denial.decision;
    let roles = d.required_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
    let you = d.viewer_role.map(Role::as_str).unwrap_or("not a member");
    let why = match (d.reason, &denial.organization) {
        (crate::authz::AccessReason::NotOwner, _) => {
            "only the course's instructor (or an ADMIN) may do this".to_owned()
        }
        (crate::authz::AccessReason::NotSelf, _) => {
            "private to the user themself (or an ADMIN of their organization)".to_owned()
        }
        (crate::authz::AccessReason::MembershipInactive, Some(org)) => format!(
            "your membership in `{org}` was removed; an ADMIN of `{org}` brings you back with an invitation \
             (inviteMember), which your next request accepts"
        ),
        (crate::authz::AccessReason::MembershipInactive, None) => {
            "your membership in this organization was removed; an ADMIN of it brings you back with an invitation \
             (inviteMember)"
                .to_owned()
        }
        (crate::authz::AccessReason::NotAMember, _) => "you are not a member of this organization".to_owned(),
        _ => "your role does not allow it".to_owned(),
    };
    format!("not allowed to {}: {why} (needs {roles}; you are {you})", d.action.as_str())
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let mut e = async_graphql::Error::new(err.message());
        let mut ext = ErrorExtensionValues::default();
        err.write_extensions(&mut ext);
        e.extensions = Some(ext);
        e
    }
}

/// PostgreSQL telling a pooled connection it is being shut down or cannot connect now
/// (SQLSTATE class 08, connection exception, and 57P, operator intervention): the
/// database is going away, which is an outage rather than a bug.
fn server_going_away(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Whether a database error means "cannot reach the database" rather than a bug.
pub(crate) fn unreachable_db(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx_down = |r: &RuntimeErr| match r {
        RuntimeErr::SqlxError(s) => {
            matches!(
                s.as_ref(),
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
            ) || server_going_away(s)
        }
        _ => false,
    };
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(r) | DbErr::Exec(r) => sqlx_down(r),
        _ => false,
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        if unreachable_db(&e) {
            tracing::error!(error = %e, "database unavailable");
            return AppError::Unavailable(e.to_string());
        }
        AppError::internal(format!("database: {e}"))
    }
}

impl From<std::sync::Arc<sea_orm::DbErr>> for AppError {
    fn from(e: std::sync::Arc<sea_orm::DbErr>) -> Self {
        AppError::from(e.as_ref().clone())
    }
}
