//! The access doctor: why is this token refused, this operation denied? It runs the
//! server's own sign-in steps, in a read-only mode, and renders their answers.
//!
//! Every link of the chain becomes one ordered check with the reason the server would
//! answer and a hint naming what fixes it: the token's format, algorithm and key, its
//! signature and registered claims (the verifier's own steps, [`token`]); the organization
//! and role claims (the server's claim mapping); the user, organization, membership and
//! active organization (what provisioning reads and its plan, and the one active
//! organization rule, [`viewer`]). A document given with `--query` is validated against
//! the schema, then each guarded field is decided by the policy ([`query`]). Under a
//! refused token everything past it is marked hypothetical. Nothing is written, and
//! nothing secret is ever part of a report.

mod claims;
mod query;
pub mod text;
mod token;
mod viewer;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{
    auth::{
        AuthReason, Verifier,
        provision::plan::{Plan, PlanSettings},
        sign_in::{Bearer, SignIn},
    },
    authz::Role,
    config::Config,
};

/// What to diagnose.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The token, or a whole `Authorization` value (`Bearer …`).
    pub token: String,
    /// As `X-Organization-Id` would send it: an organization id or slug.
    pub organization: Option<String>,
    /// A GraphQL document: one decision per guarded field.
    pub query: Option<String>,
    pub variables: Option<Map<String, Value>>,
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Skip,
}

/// One link of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// The `extensions.reason` the server answers for this failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, status: Status::Pass, reason: None, detail: detail.into(), hint: None }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, status: Status::Skip, reason: None, detail: detail.into(), hint: None }
    }
    fn fail(name: &'static str, reason: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { name, status: Status::Fail, reason: Some(reason), detail: detail.into(), hint: Some(hint.into()) }
    }
    fn warn(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { name, status: Status::Warn, reason: None, detail: detail.into(), hint: Some(hint.into()) }
    }
    fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// The check names, in report order.
pub const CHECKS: [&str; 14] = [
    "format",
    "algorithm",
    "key",
    "signature",
    "expiry",
    "issuer",
    "audience",
    "subject",
    "organization_claim",
    "roles_claim",
    "user",
    "organization",
    "membership",
    "active_organization",
];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationReport {
    pub external_id: String,
    pub name: Option<String>,
}

/// Who the token says the caller is, mapped as the server maps it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityReport {
    /// False when the token would be refused: these are its claims, unverified.
    pub verified: bool,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub organization: Option<OrganizationReport>,
    pub idp_roles: Vec<String>,
    pub mapped_role: Option<Role>,
    pub platform_admin: bool,
    pub preset: &'static str,
}

/// The viewer the server would build (after provisioning, which the doctor does not do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewerReport {
    /// True when the token would be refused: what provisioning *would* do.
    pub hypothetical: bool,
    pub user_id: Option<Uuid>,
    /// The rows provisioning's plan creates (`user`, `organization`, `membership`).
    pub would_create: Vec<&'static str>,
    /// Pending invitations provisioning would accept.
    pub would_accept_invitations: Vec<Uuid>,
    /// Provisioning's plan itself.
    pub plan: Plan,
    pub active_organization_id: Option<Uuid>,
    /// The role in the active organization.
    pub role: Option<Role>,
    /// The effective grants in the active organization (`Viewer.grants`).
    pub grants: Vec<String>,
    /// What the token adds there (`token:<permission>` → grants), with
    /// COURSEGRAPH_ROLE_SOURCE=token; in database mode its permissions are ignored.
    pub token_grants: Vec<TokenGrantReport>,
    pub memberships: Vec<MembershipReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrantReport {
    pub source: String,
    pub grants: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipReport {
    /// None for an organization provisioning would create.
    pub organization_id: Option<Uuid>,
    pub organization_slug: Option<String>,
    pub role: Role,
    /// The custom or policy-file roles assigned, by key.
    pub roles: Vec<String>,
    /// What the membership holds as stored (`Membership.grants`).
    pub grants: Vec<String>,
    pub active: bool,
    /// `existing`, `provisioning` or `invitation`.
    pub source: &'static str,
}

/// The policy's answer for one guarded field of `--query`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionReport {
    pub path: String,
    pub action: &'static str,
    pub allowed: bool,
    /// The token is refused: the decision it would get if it were accepted.
    pub hypothetical: bool,
    pub reason: &'static str,
    pub required_roles: Vec<Role>,
    /// The viewer's roles whose grant allows it (`token:<permission>` from the token).
    pub granted_by: Vec<String>,
    /// Every role of the organization that would allow it.
    pub granting_roles: Vec<String>,
    pub viewer_role: Option<Role>,
    pub policy: &'static str,
    pub organization_id: Option<Uuid>,
}

/// What the server would answer to this token, in one line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The whole diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
    pub identity: Option<IdentityReport>,
    pub viewer: Option<ViewerReport>,
    pub decisions: Vec<DecisionReport>,
    /// What the server answers to a request with this token (and organization).
    pub answer: Answer,
}

/// Input the doctor cannot read: a usage error (exit 2, HTTP 400). A document that does
/// not validate against the schema carries the validation errors as the server words them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct UsageError {
    pub field: &'static str,
    pub message: String,
}

/// What the doctor reads: the server's verifier, configuration and database.
pub struct Doctor<'a> {
    pub verifier: &'a Verifier,
    pub config: &'a Config,
    /// None when the database could not be opened: the `user` check says so.
    pub conn: Option<&'a DatabaseConnection>,
}

impl Doctor<'_> {
    fn plan_settings(&self) -> PlanSettings {
        let auth = &self.config.auth;
        PlanSettings {
            role_source: auth.role_source,
            default_role: auth.default_role,
            auto_accept: self.config.invitations.auto_accept,
        }
    }

    /// Diagnoses `input`. Reads the database; writes nothing.
    pub async fn run(&self, input: &Input) -> Result<Report, UsageError> {
        let document = match input.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) => Some(query::validated(q, input.variables.as_ref()).await?),
            None => None,
        };
        let token = bearer_of(&input.token);
        let mut checks = Vec::with_capacity(CHECKS.len());
        let read = self.token_checks(token, &mut checks).await;
        let token_ok = read.as_ref().is_some_and(|r| r.refusal.is_none());
        let mut answer = match (token, read.as_ref().and_then(|r| r.refusal.as_ref())) {
            (_, None) if read.is_some() => Answer { status: 200, code: None, reason: None },
            ("", _) => {
                Answer { status: 401, code: Some("UNAUTHENTICATED"), reason: Some(AuthReason::TokenMissing.as_str()) }
            }
            (_, Some(r)) => Answer { status: 401, code: Some("UNAUTHENTICATED"), reason: Some(r.as_str()) },
            (_, None) => Answer { status: 401, code: Some("UNAUTHENTICATED"), reason: Some("TOKEN_MALFORMED") },
        };
        let Some(read) = read else {
            for name in &CHECKS[checks.len()..] {
                checks.push(Check::skip(name, "the token's claims cannot be read"));
            }
            return Ok(Report { ok: false, checks, identity: None, viewer: None, decisions: Vec::new(), answer });
        };
        checks.push(self.organization_claim(&read.claims, &read.identity));
        checks.push(self.roles_claim(&read.claims, &read.identity));
        let seen = self.viewer_checks(&read.identity, input.organization.as_deref(), token_ok, &mut checks).await;
        if token_ok && let Some(c) = checks.iter().find(|c| c.name == "active_organization" && c.status == Status::Fail)
        {
            answer = Answer { status: 200, code: Some("FORBIDDEN"), reason: c.reason };
        }
        // A database the doctor cannot read is one the server cannot provision from either:
        // it answers 503 with INTERNAL_SERVER_ERROR (retryable), not "accepted".
        if token_ok && checks.iter().any(|c| c.reason == Some("DATABASE_UNAVAILABLE")) {
            answer = Answer { status: 503, code: Some("INTERNAL_SERVER_ERROR"), reason: Some("DATABASE_UNAVAILABLE") };
        }
        let decisions = match (&document, &seen.viewer, self.conn) {
            (Some(doc), Some(v), Some(conn)) => {
                query::decisions(conn, doc, input.variables.as_ref(), v, !token_ok).await
            }
            _ => Vec::new(),
        };
        let ok = token_ok
            && checks.iter().all(|c| c.status != Status::Fail)
            && decisions.iter().all(|d| d.allowed)
            && (document.is_none() || seen.viewer.is_some());
        let identity = token::identity_report(&read.identity, token_ok, self.config.auth.claims.preset);
        Ok(Report { ok, checks, identity: Some(identity), viewer: seen.report, decisions, answer })
    }
}

/// The token in what was pasted: a whole `Authorization` value (`Bearer …`), read the way
/// the server reads one, or the token itself.
fn bearer_of(pasted: &str) -> &str {
    let pasted = pasted.trim();
    match SignIn::bearer(pasted) {
        Ok(Bearer::Token(t)) => t,
        Ok(Bearer::Empty) => "",
        Err(_) => pasted,
    }
}

/// `coursegraph doctor`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The token to diagnose (else --token-file, else standard input).
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the token.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// The organization the request would select (X-Organization-Id): an id or slug.
    #[arg(long)]
    pub organization: Option<String>,
    /// A GraphQL document: validated against the schema, then the policy's decision for
    /// each guarded field.
    #[arg(long)]
    pub query: Option<String>,
    /// The document's variables, as a JSON object.
    #[arg(long)]
    pub variables: Option<String>,
    /// `text` (a checklist) or `json`.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The database URL the CLI doctor reads through: read-only, so it cannot write even
/// by mistake (SQLite opened `mode=ro`; PostgreSQL transactions default to read only).
pub fn read_only_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect();
        params.push("mode=ro");
        return format!("{base}?{}", params.join("&"));
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20default_transaction_read_only%3Don")
}

/// The file a `sqlite:` URL names (None for PostgreSQL and in-memory SQLite).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.split('?').next()?.trim_start_matches("//");
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// What `coursegraph doctor` diagnoses: the token from the flags or standard input.
fn cli_input(args: &DoctorArgs) -> Result<Input, String> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read --token-file {}: {e}", p.display()))?
        }
        (None, None) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| format!("cannot read the token from standard input: {e}"))?;
            s
        }
    };
    let variables = match args.variables.as_deref().map(serde_json::from_str::<Map<String, Value>>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return Err(format!("--variables is not a JSON object: {e}")),
    };
    Ok(Input { token, organization: args.organization.clone(), query: args.query.clone(), variables })
}

/// Runs `coursegraph doctor`: 0 when all is well, 1 when something would be refused,
/// 2 for a usage error.
pub async fn cli(config: &Config, args: &DoctorArgs) -> u8 {
    let input = match cli_input(args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let verifier = match Verifier::new(&config.auth) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // Unreachable, the report says so (the `user` check fails): the token checks still run.
    // A SQLite file that does not exist yet is what `serve` starts from (it creates and
    // migrates it): diagnose against an empty in-memory database, so nothing is created.
    let url = match sqlite_file(&config.database.url) {
        Some(path) if !path.exists() => "sqlite::memory:".to_owned(),
        _ => read_only_url(&config.database.url),
    };
    let d = &config.database;
    let conn = match crate::db::connect(&url, 1, d.acquire_timeout, d.prepared_statements, None).await {
        Ok((c, _)) if url == "sqlite::memory:" => crate::db::migrate(&c).await.ok().map(|()| c),
        Ok((c, _)) => Some(c),
        Err(_) => None,
    };
    let report = match (Doctor { verifier: &verifier, config, conn: conn.as_ref() }).run(&input).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --{e}");
            return 2;
        }
    };
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Format::Text => text::render(&report),
    };
    if let Err(e) = crate::cli::emit(&text) {
        eprintln!("error: cannot write to standard output: {e}");
        return 1;
    }
    if report.ok { 0 } else { 1 }
}
