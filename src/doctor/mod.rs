//! The access doctor (CONTRACT §9): why is this token refused, this operation denied?
//!
//! Every link of the chain — the token's format, algorithm, key, signature, expiry,
//! issuer, audience and subject; the organization and role claims; the user,
//! organization and membership in the database; the active organization — becomes one
//! ordered check with the reason the server would answer and a hint naming what fixes
//! it. It verifies with the server's own [`Verifier`], maps with the server's claim
//! mapping, reads (never writes) what provisioning would find, and asks `authz::policy`
//! for each guarded field of a document. Nothing secret is ever part of a report.

mod query;
pub mod text;

use std::collections::BTreeSet;

use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use sea_orm::{ColumnTrait as _, DatabaseConnection, EntityTrait as _, QueryFilter as _};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{
    auth::{
        AuthReason, Identity, Verifier, Viewer,
        claims::{ClaimMapping, ClaimPath},
        jwt::RawHeader,
        viewer::{EmailClaim, MembershipRecord, UserRecord},
    },
    authz::{AccessReason, Role},
    config::{ClaimsPreset, Config, RoleSource},
};

/// What to diagnose.
#[derive(Debug, Clone, Default)]
pub struct Input {
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
    /// False when the token would be refused: what provisioning *would* do.
    pub hypothetical: bool,
    pub user_id: Option<Uuid>,
    pub would_create: Vec<&'static str>,
    /// Pending invitations provisioning would accept.
    pub would_accept_invitations: Vec<Uuid>,
    pub active_organization_id: Option<Uuid>,
    /// The role in the active organization.
    pub role: Option<Role>,
    pub memberships: Vec<MembershipReport>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipReport {
    /// None for an organization provisioning would create.
    pub organization_id: Option<Uuid>,
    pub organization_slug: Option<String>,
    pub role: Role,
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
    pub reason: &'static str,
    pub required_roles: Vec<Role>,
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

/// A document that cannot be read: a usage error (exit 2, HTTP 400).
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

/// Claim paths where identity providers put an organization, for the "found one where
/// the preset does not look" warning (every preset's, and common custom spellings).
const ORG_LIKE: &[&str] = &[
    "organization_id",
    "org_id",
    "tenantId",
    "tenant_id",
    "app_metadata.organization_id",
    "organization",
    "o.id",
    "organizationId",
    "orgId",
    "org",
    "tenant",
    "https://coursegraph.dev/org_id",
];

/// The same for roles.
const ROLES_LIKE: &[&str] = &[
    "roles",
    "role",
    "https://coursegraph.dev/roles",
    "permissions",
    "app_metadata.roles",
    "app_metadata.role",
    "realm_access.roles",
    "o.rol",
    "org_role",
    "groups",
];

fn preset_name(p: ClaimsPreset) -> &'static str {
    match p {
        ClaimsPreset::Default => "default",
        ClaimsPreset::Auth0 => "auth0",
        ClaimsPreset::Frontegg => "frontegg",
        ClaimsPreset::Supabase => "supabase",
        ClaimsPreset::Keycloak => "keycloak",
        ClaimsPreset::Clerk => "clerk",
    }
}

const PRESETS: [ClaimsPreset; 6] = [
    ClaimsPreset::Default,
    ClaimsPreset::Auth0,
    ClaimsPreset::Frontegg,
    ClaimsPreset::Supabase,
    ClaimsPreset::Keycloak,
    ClaimsPreset::Clerk,
];

fn paths(p: &[ClaimPath]) -> String {
    p.iter().map(|p| format!("`{}`", p.as_str())).collect::<Vec<_>>().join(", ")
}

fn present<'a>(path: &str, claims: &'a Map<String, Value>) -> Option<&'a Value> {
    ClaimPath::new(path).get(claims).filter(|v| !v.is_null())
}

fn when(ts: i64) -> String {
    Utc.timestamp_opt(ts, 0).single().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

fn ago(secs: i64) -> String {
    let a = secs.unsigned_abs();
    match a {
        0..120 => format!("{a} s"),
        120..7200 => format!("{} min", a / 60),
        7200..172_800 => format!("{} h", a / 3600),
        _ => format!("{} days", a / 86_400),
    }
}

/// The payload's claims, read without any verification (for showing, never trusting).
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let p = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Doctor<'_> {
    /// Diagnoses `input`. Reads the database; writes nothing.
    pub async fn run(&self, input: &Input) -> Result<Report, UsageError> {
        let document = match input.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) => Some(query::parse(q)?),
            None => None,
        };
        let token = input.token.trim();
        let token = token.strip_prefix("Bearer ").or_else(|| token.strip_prefix("bearer ")).unwrap_or(token).trim();
        let mut checks = Vec::with_capacity(CHECKS.len());
        let claims = self.token_checks(token, &mut checks).await;
        // What the server itself says: the reference every check above is tested against.
        let verified = self.verifier.verify(token).await;
        let token_ok = verified.is_ok();
        let mut answer = match &verified {
            Ok(_) => Answer { status: 200, code: None, reason: None },
            // No token at all: the server answers TOKEN_MISSING (for an operation that needs a
            // user), before any verification.
            Err(_) if token.trim().is_empty() => {
                Answer { status: 401, code: Some("UNAUTHENTICATED"), reason: Some(AuthReason::TokenMissing.as_str()) }
            }
            Err(e) => Answer { status: 401, code: Some("UNAUTHENTICATED"), reason: Some(e.reason.as_str()) },
        };

        let Some(claims) = claims else {
            for name in &CHECKS[checks.len()..] {
                checks.push(Check::skip(name, "the token's claims cannot be read"));
            }
            return Ok(Report { ok: false, checks, identity: None, viewer: None, decisions: Vec::new(), answer });
        };
        let auth = &self.config.auth;
        let identity = crate::auth::claims::Mapper::new(auth).identity(&claims);
        checks.push(self.organization_claim(&claims, &identity));
        checks.push(self.roles_claim(&claims, &identity));
        let (viewer, viewer_report) =
            self.viewer_checks(&identity, input.organization.as_deref(), token_ok, &mut checks).await;
        if token_ok && let Some(c) = checks.iter().find(|c| c.name == "active_organization" && c.status == Status::Fail)
        {
            answer = Answer { status: 200, code: Some("FORBIDDEN"), reason: c.reason };
        }
        // A database the doctor cannot read is one the server cannot provision from either:
        // it answers 503 with INTERNAL_SERVER_ERROR (retryable), not "accepted".
        if token_ok && checks.iter().any(|c| c.reason == Some("DATABASE_UNAVAILABLE")) {
            answer = Answer { status: 503, code: Some("INTERNAL_SERVER_ERROR"), reason: Some("DATABASE_UNAVAILABLE") };
        }

        let decisions = match (&document, &viewer) {
            (Some(doc), Some(v)) => match self.conn {
                Some(conn) => query::decisions(conn, doc, input.variables.as_ref(), v).await,
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let ok = token_ok
            && checks.iter().all(|c| c.status != Status::Fail)
            && decisions.iter().all(|d| d.allowed)
            && (document.is_none() || viewer.is_some());
        let identity = IdentityReport {
            verified: token_ok,
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            organization: identity
                .organization
                .as_ref()
                .map(|o| OrganizationReport { external_id: o.external_id.clone(), name: o.name.clone() }),
            idp_roles: identity.idp_roles.clone(),
            mapped_role: identity.role,
            platform_admin: identity.platform_admin,
            preset: preset_name(auth.claims.preset),
        };
        Ok(Report { ok, checks, identity: Some(identity), viewer: viewer_report, decisions, answer })
    }

    /// format … subject. Returns the claims (verified or not) when they can be read.
    async fn token_checks(&self, token: &str, checks: &mut Vec<Check>) -> Option<Map<String, Value>> {
        // format
        if token.is_empty() {
            checks.push(Check::fail(
                "format",
                AuthReason::TokenMissing.as_str(),
                "no token given",
                "pass --token, --token-file or the token on stdin (HTTP: Authorization: Bearer <token>)",
            ));
            return None;
        }
        let header = match RawHeader::parse(token) {
            Ok(h) => h,
            Err(_) => {
                checks.push(Check::fail(
                    "format",
                    AuthReason::TokenMalformed.as_str(),
                    format!(
                        "not a JWT: expected three base64url segments with a JSON header, got {} segment(s)",
                        token.split('.').count()
                    ),
                    "send the ID or access token itself (header.payload.signature), without quotes",
                ));
                return None;
            }
        };
        let Some(claims) = unverified_claims(token) else {
            checks.push(Check::fail(
                "format",
                AuthReason::TokenMalformed.as_str(),
                "the payload segment is not base64url-encoded JSON",
                "send the token exactly as the identity provider issued it",
            ));
            return None;
        };
        checks.push(Check::pass(
            "format",
            format!(
                "a JWT with header alg `{}`{}",
                header.alg,
                header.kid.as_ref().map(|k| format!(", kid `{k}`")).unwrap_or_default()
            ),
        ));

        // algorithm, key
        let (hs, jwks) = self.verifier.key_sources();
        let asymmetric = matches!(
            header.alg.as_str(),
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "EdDSA"
        );
        let accepted = match (hs, jwks) {
            (true, true) => {
                "HS256 (COURSEGRAPH_JWT_SECRET) and the JWKS's asymmetric algorithms (COURSEGRAPH_JWKS_URL)"
            }
            (true, false) => "HS256 only (COURSEGRAPH_JWT_SECRET; no COURSEGRAPH_JWKS_URL is set)",
            (false, true) => {
                "the JWKS's asymmetric algorithms only (COURSEGRAPH_JWKS_URL; no COURSEGRAPH_JWT_SECRET is set)"
            }
            (false, false) => "nothing",
        };
        let alg_ok = (header.alg == "HS256" && hs) || (asymmetric && jwks);
        if alg_ok {
            checks.push(Check::pass("algorithm", format!("{} is accepted: this server takes {accepted}", header.alg)));
        } else {
            let hint = if header.alg == "HS256" {
                "HS256 needs the shared secret: set COURSEGRAPH_JWT_SECRET (the IdP's signing secret)"
            } else if asymmetric {
                "set COURSEGRAPH_JWKS_URL to the identity provider's JWKS endpoint"
            } else {
                "configure the identity provider to sign with HS256, RS256, PS256, ES256 or EdDSA (never `none`)"
            };
            checks.push(Check::fail(
                "algorithm",
                AuthReason::AlgorithmNotAllowed.as_str(),
                format!("`{}` is not accepted: this server takes {accepted}", header.alg),
                hint,
            ));
        }
        let key = if !alg_ok {
            checks.push(Check::skip("key", "no key for a refused algorithm"));
            None
        } else {
            match self.verifier.key_for(&header).await {
                Ok(k) => {
                    let from = if header.alg == "HS256" {
                        "the shared secret (COURSEGRAPH_JWT_SECRET)".to_owned()
                    } else {
                        format!("the JWKS key `{}`", header.kid.as_deref().unwrap_or("(the only one)"))
                    };
                    checks.push(Check::pass("key", format!("verified with {from}")));
                    Some(k)
                }
                Err(e) => {
                    let (detail, hint) = match e.reason {
                        AuthReason::UnknownKey => (
                            match &header.kid {
                                Some(k) => format!("no key with kid `{k}` for {} in the JWKS", header.alg),
                                None => "the token has no kid and the JWKS has more than one key".to_owned(),
                            },
                            "check that COURSEGRAPH_JWKS_URL is the JWKS of the issuer that signed the token; \
                             after a key rotation the server refetches at most once per COURSEGRAPH_JWKS_REFETCH_COOLDOWN",
                        ),
                        _ => (
                            format!(
                                "the JWKS key `{}` is not a {} key",
                                header.kid.as_deref().unwrap_or(""),
                                header.alg
                            ),
                            "the key's `alg` or type does not match the token's header: check the IdP's signing algorithm",
                        ),
                    };
                    checks.push(Check::fail("key", e.reason.as_str(), detail, hint));
                    None
                }
            }
        };

        // signature
        match &key {
            None => checks.push(Check::skip("signature", "no key to check it with")),
            Some((alg, k)) => match Verifier::signature_verifies(token, *alg, k) {
                Ok(()) => checks.push(Check::pass("signature", "the signature verifies")),
                Err(e) => checks.push(Check::fail(
                    "signature",
                    e.reason.as_str(),
                    "the signature does not verify with this key: the token was changed, or signed with another secret or key",
                    if *alg == jsonwebtoken::Algorithm::HS256 {
                        "COURSEGRAPH_JWT_SECRET must be the exact secret the token was signed with"
                    } else {
                        "COURSEGRAPH_JWKS_URL must serve the public key of the signing key"
                    },
                )),
            },
        }

        let (issuer, audience, leeway) = self.verifier.requirements();
        let leeway = leeway as i64;
        let now = Utc::now().timestamp();

        // expiry: exp (required), nbf, iat
        let num = |k: &str| claims.get(k).filter(|v| !v.is_null()).map(|v| v.as_f64());
        let expiry = match num("exp") {
            None => Check::fail(
                "expiry",
                AuthReason::MissingClaim.as_str(),
                "the token has no `exp`: this server refuses tokens that never expire",
                "have the identity provider set an expiry",
            ),
            Some(None) => Check::fail(
                "expiry",
                AuthReason::TokenMalformed.as_str(),
                "`exp` is not a number of seconds",
                "`exp` must be a NumericDate (seconds since 1970)",
            ),
            Some(Some(exp)) if (exp as i64) < now - leeway => Check::fail(
                "expiry",
                AuthReason::TokenExpired.as_str(),
                format!("exp was {}, {} ago (leeway {leeway} s)", when(exp as i64), ago(now - exp as i64)),
                "mint a fresh token; COURSEGRAPH_JWT_LEEWAY_SECS sets the allowed skew",
            ),
            Some(Some(exp)) => {
                let too_early = |k: &'static str| match num(k) {
                    Some(Some(t)) if (t as i64) > now + leeway => Some((k, t as i64)),
                    _ => None,
                };
                match too_early("nbf").or_else(|| too_early("iat")) {
                    Some((k, t)) => Check::fail(
                        "expiry",
                        AuthReason::TokenNotYetValid.as_str(),
                        format!("`{k}` is {}, {} in the future (leeway {leeway} s)", when(t), ago(t - now)),
                        "check the clocks of this server and the identity provider; COURSEGRAPH_JWT_LEEWAY_SECS sets the allowed skew",
                    ),
                    None if matches!(num("iat"), Some(None)) || matches!(num("nbf"), Some(None)) => Check::fail(
                        "expiry",
                        AuthReason::TokenMalformed.as_str(),
                        "`iat` or `nbf` is not a number of seconds",
                        "`iat` and `nbf` must be NumericDates (seconds since 1970)",
                    ),
                    // Past `exp` but inside the leeway is accepted by the server; say so
                    // rather than "valid until", since it will fail within seconds.
                    None if (exp as i64) < now => Check::pass(
                        "expiry",
                        format!(
                            "exp was {}, {} ago: accepted only within the leeway ({leeway} s)",
                            when(exp as i64),
                            ago(now - exp as i64)
                        ),
                    ),
                    None => {
                        Check::pass("expiry", format!("valid until {}, in {}", when(exp as i64), ago(exp as i64 - now)))
                    }
                }
            }
        };
        checks.push(expiry);

        // issuer
        let iss = claims.get("iss").and_then(Value::as_str);
        checks.push(match (issuer, claims.get("iss").filter(|v| !v.is_null())) {
            (None, _) => Check::pass(
                "issuer",
                format!(
                    "any issuer is accepted (COURSEGRAPH_JWT_ISSUER is not set); the token's is `{}`",
                    iss.unwrap_or("")
                ),
            ),
            (Some(want), None) => Check::fail(
                "issuer",
                AuthReason::MissingClaim.as_str(),
                format!("the token has no `iss`; `{want}` is required"),
                "COURSEGRAPH_JWT_ISSUER names the required issuer: unset it or have the IdP set `iss`",
            ),
            (Some(want), Some(_)) if iss == Some(want) => Check::pass("issuer", format!("`{want}`")),
            (Some(want), Some(_)) => Check::fail(
                "issuer",
                AuthReason::BadIssuer.as_str(),
                format!("the token's issuer is `{}`, this server requires `{want}`", iss.unwrap_or("(not a string)")),
                format!("set COURSEGRAPH_JWT_ISSUER={} if that issuer is yours", iss.unwrap_or("…")),
            ),
        });

        // audience
        let aud: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let has_aud = claims.get("aud").is_some_and(|v| !v.is_null());
        checks.push(if audience.is_empty() {
            Check::pass("audience", "any audience is accepted (COURSEGRAPH_JWT_AUDIENCE is not set)")
        } else if !has_aud {
            Check::fail(
                "audience",
                AuthReason::MissingClaim.as_str(),
                format!("the token has no `aud`; one of {audience:?} is required"),
                "COURSEGRAPH_JWT_AUDIENCE lists the accepted audiences: request the token for that API (audience)",
            )
        } else if aud.iter().any(|a| audience.iter().any(|w| w == a)) {
            Check::pass("audience", format!("{aud:?}"))
        } else {
            Check::fail(
                "audience",
                AuthReason::BadAudience.as_str(),
                format!("the token is for {aud:?}; this server accepts {audience:?}"),
                format!(
                    "add the audience to COURSEGRAPH_JWT_AUDIENCE (e.g. COURSEGRAPH_JWT_AUDIENCE={}) or request the token for {:?}",
                    aud.first().copied().unwrap_or("…"),
                    audience[0]
                ),
            )
        });

        // subject
        checks.push(match claims.get("sub") {
            Some(Value::String(s)) if !s.trim().is_empty() => Check::pass("subject", format!("`{s}`")),
            _ => Check::fail(
                "subject",
                AuthReason::MissingClaim.as_str(),
                "the token has no non-empty string `sub`: it names the user",
                "have the identity provider include `sub`",
            ),
        });
        Some(claims)
    }

    fn organization_claim(&self, claims: &Map<String, Value>, identity: &Identity) -> Check {
        let mapping = &ClaimMapping::from_config(&self.config.auth.claims);
        let preset = preset_name(mapping.preset);
        if let Some(org) = &identity.organization {
            let at =
                mapping.org.iter().find(|p| present(p.as_str(), claims).is_some()).map(ClaimPath::as_str).unwrap_or("");
            return Check::pass(
                "organization_claim",
                format!(
                    "`{at}` names organization `{}`{} (preset {preset})",
                    org.external_id,
                    org.name.as_ref().map(|n| format!(" (\"{n}\")")).unwrap_or_default()
                ),
            );
        }
        if let Some(at) = mapping.org.iter().find(|p| present(p.as_str(), claims).is_some()) {
            return Check::warn(
                "organization_claim",
                format!("`{}` is there but is not an organization id (a non-empty string)", at.as_str()),
                "COURSEGRAPH_CLAIM_ORG names the path of the organization's id",
            );
        }
        let own: BTreeSet<&str> = mapping.org.iter().map(ClaimPath::as_str).collect();
        let mut found: Vec<String> = ORG_LIKE
            .iter()
            .filter(|p| !own.contains(*p) && present(p, claims).is_some())
            .map(|p| (*p).to_owned())
            .collect();
        for k in claims.keys() {
            let l = k.to_ascii_lowercase();
            if (l.contains("org") || l.contains("tenant")) && !own.contains(k.as_str()) && !found.contains(k) {
                found.push(k.clone());
            }
        }
        match found.first() {
            Some(p) => {
                let by_preset = PRESETS
                    .iter()
                    .find(|pr| ClaimMapping::new(**pr, None, None, None).org.iter().any(|x| x.as_str() == p))
                    .map(|pr| format!(" (or COURSEGRAPH_CLAIMS={}, whose preset reads it)", preset_name(*pr)))
                    .unwrap_or_default();
                Check::warn(
                    "organization_claim",
                    format!(
                        "no organization at {} (preset {preset}), but the token has an organization-like claim at `{p}`",
                        paths(&mapping.org)
                    ),
                    format!("set COURSEGRAPH_CLAIM_ORG={p}{by_preset}"),
                )
            }
            None => Check::warn(
                "organization_claim",
                format!(
                    "the token names no organization (looked at {}, preset {preset}): the viewer has only the memberships \
                     already in the database",
                    paths(&mapping.org)
                ),
                "if the identity provider sends the organization, point COURSEGRAPH_CLAIM_ORG (or COURSEGRAPH_CLAIMS) at it",
            ),
        }
    }

    fn roles_claim(&self, claims: &Map<String, Value>, identity: &Identity) -> Check {
        let auth = &self.config.auth;
        let mapping = &ClaimMapping::from_config(&auth.claims);
        let default = auth.default_role.as_str();
        if !identity.idp_roles.is_empty() {
            let at = mapping
                .roles
                .iter()
                .find(|p| present(p.as_str(), claims).is_some())
                .map(ClaimPath::as_str)
                .unwrap_or("");
            return match identity.role {
                Some(r) => Check::pass("roles_claim", format!("`{at}` = {:?} → {}", identity.idp_roles, r.as_str())),
                None => Check::warn(
                    "roles_claim",
                    format!(
                        "`{at}` = {:?}, but none of them maps to a role: a new membership gets {default} \
                         (COURSEGRAPH_DEFAULT_ROLE)",
                        identity.idp_roles
                    ),
                    format!(
                        "map them with COURSEGRAPH_ROLE_MAP, e.g. COURSEGRAPH_ROLE_MAP={}=INSTRUCTOR",
                        identity.idp_roles[0]
                    ),
                ),
            };
        }
        let own: BTreeSet<&str> = mapping.roles.iter().map(ClaimPath::as_str).collect();
        match ROLES_LIKE.iter().find(|p| !own.contains(*p) && present(p, claims).is_some()) {
            Some(p) => Check::warn(
                "roles_claim",
                format!(
                    "no roles at {}, but the token has a roles-like claim at `{p}`: a new membership gets {default}",
                    paths(&mapping.roles)
                ),
                format!("set COURSEGRAPH_CLAIM_ROLES={p}"),
            ),
            None => Check::pass(
                "roles_claim",
                format!(
                    "no roles at {}: a new membership gets {default} (COURSEGRAPH_DEFAULT_ROLE)",
                    paths(&mapping.roles)
                ),
            ),
        }
    }

    /// user, organization, membership, active_organization — and the viewer they make.
    async fn viewer_checks(
        &self,
        identity: &Identity,
        header: Option<&str>,
        token_ok: bool,
        checks: &mut Vec<Check>,
    ) -> (Option<Viewer>, Option<ViewerReport>) {
        let auth = &self.config.auth;
        let would = if token_ok { "" } else { "(were the token accepted) " };
        let mut would_create = Vec::new();
        let now = Utc::now();

        // user
        let read = match self.conn {
            Some(conn) => {
                crate::auth::provision::existing(conn, identity).await.map(|f| (conn, f)).map_err(|e| format!("{e:?}"))
            }
            None => Err("the database cannot be opened".to_owned()),
        };
        let (conn, found) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "access doctor: the database cannot be read");
                checks.push(Check::fail(
                    "user",
                    "DATABASE_UNAVAILABLE",
                    "the database cannot be read",
                    "check COURSEGRAPH_DATABASE_URL, and that `coursegraph migrate` has run",
                ));
                for name in ["organization", "membership", "active_organization"] {
                    checks.push(Check::skip(name, "the database cannot be read"));
                }
                return (None, None);
            }
        };
        let (user, mut memberships, sources) = match found {
            Some((u, ms)) => {
                checks.push(Check::pass(
                    "user",
                    format!(
                        "user {} (issuer `{}`, subject `{}`), last sign-in {}",
                        u.id,
                        identity.issuer,
                        identity.subject,
                        u.last_login_at
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            .unwrap_or("never".into())
                    ),
                ));
                let n = ms.len();
                (Some(u), ms, vec!["existing"; n])
            }
            None => {
                would_create.push("user");
                checks.push(Check::pass(
                    "user",
                    format!(
                        "{would}not in the database yet: the first request creates it (issuer `{}`, subject `{}`)",
                        identity.issuer, identity.subject
                    ),
                ));
                (None, Vec::new(), Vec::new())
            }
        };
        let mut sources = sources;

        // Invitations provisioning would accept (they come first: their role wins).
        let mut accepted = Vec::new();
        let invited = (self.config.invitations.auto_accept && identity.email_verified)
            .then(|| EmailClaim::from_identity(identity.email.as_deref(), true).map(|e| e.address))
            .flatten();
        if let Some(email) = &invited
            && let Ok(pending) = crate::domain::invitations::pending_for(conn, email, now).await
        {
            for inv in pending {
                let role = crate::domain::invitations::role(&inv);
                match memberships.iter_mut().position(|m| m.organization_id == inv.organization_id) {
                    Some(i) if memberships[i].is_active => continue,
                    Some(i) => {
                        memberships[i].is_active = true;
                        memberships[i].role = role;
                        sources[i] = "invitation";
                    }
                    None => {
                        let Ok(Some(org)) =
                            entity::organization::Entity::find_by_id(inv.organization_id).one(conn).await
                        else {
                            continue;
                        };
                        memberships.push(record(org, role, true, now));
                        sources.push("invitation");
                    }
                }
                accepted.push(inv.id);
            }
        }

        // organization, membership
        match &identity.organization {
            None => {
                checks.push(Check::skip("organization", "the token names no organization"));
                let active = memberships.iter().filter(|m| m.is_active).count();
                checks.push(if active > 0 {
                    Check::pass("membership", format!("{active} active membership(s) in the database"))
                } else {
                    Check::warn(
                        "membership",
                        "no active membership: every organization's data is NOT_A_MEMBER",
                        "an ADMIN adds them with addMember or inviteMember, or the token names the organization \
                         (COURSEGRAPH_CLAIM_ORG)",
                    )
                    .with_reason(AccessReason::NotAMember.as_str())
                });
            }
            Some(claim) => {
                let org = entity::organization::Entity::find()
                    .filter(entity::organization::Column::ExternalId.eq(claim.external_id.as_str()))
                    .one(conn)
                    .await
                    .ok()
                    .flatten();
                let token_role = identity.role.unwrap_or(auth.default_role);
                match &org {
                    Some(o) => checks.push(Check::pass(
                        "organization",
                        format!("organization {} (slug `{}`, external id `{}`)", o.id, o.slug, claim.external_id),
                    )),
                    None => {
                        would_create.push("organization");
                        checks.push(Check::pass(
                            "organization",
                            format!(
                                "{would}external id `{}` is not in the database yet: the first request creates it",
                                claim.external_id
                            ),
                        ));
                    }
                }
                let existing = org.as_ref().and_then(|o| memberships.iter().position(|m| m.organization_id == o.id));
                match existing {
                    Some(i) if memberships[i].is_active => {
                        let m = &mut memberships[i];
                        let note = if sources[i] == "invitation" {
                            format!("{would}re-activated as {} by a pending invitation", m.role.as_str())
                        } else if auth.role_source == RoleSource::Token && identity.role.is_some_and(|r| r != m.role) {
                            let from = m.role;
                            m.role = token_role;
                            format!(
                                "active; the role follows the token (COURSEGRAPH_ROLE_SOURCE=token): {} → {}",
                                from.as_str(),
                                token_role.as_str()
                            )
                        } else if identity.role.is_some_and(|r| r != m.role) {
                            format!(
                                "active as {} — the database's role; the token's {} only seeds new memberships \
                                 (COURSEGRAPH_ROLE_SOURCE=database)",
                                m.role.as_str(),
                                token_role.as_str()
                            )
                        } else {
                            format!("active as {} since {}", m.role.as_str(), m.joined_at.format("%Y-%m-%d"))
                        };
                        checks.push(Check::pass("membership", note));
                    }
                    Some(i) => {
                        let m = &memberships[i];
                        checks.push(Check::fail(
                            "membership",
                            AccessReason::MembershipInactive.as_str(),
                            format!(
                                "the membership in `{}` was removed (role {}); a token never re-activates it",
                                m.organization_slug,
                                m.role.as_str()
                            ),
                            "an ADMIN of the organization brings them back with inviteMember (accepted on their next \
                             request) or addMember",
                        ));
                    }
                    None => {
                        would_create.push("membership");
                        checks.push(Check::pass(
                            "membership",
                            format!("{would}none yet: the first request creates one as {}", token_role.as_str()),
                        ));
                        let model = org.clone().unwrap_or_else(|| entity::organization::Model {
                            id: Uuid::nil(),
                            external_id: Some(claim.external_id.clone()),
                            name: claim.name.clone().unwrap_or_else(|| claim.external_id.clone()),
                            slug: crate::auth::provision::slugify(claim.name.as_deref().unwrap_or(&claim.external_id)),
                            storage_bucket: String::new(),
                            created_at: now,
                            updated_at: now,
                        });
                        memberships.push(record(model, token_role, true, now));
                        sources.push("provisioning");
                    }
                }
            }
        }

        // active_organization (CONTRACT §3: the header, else the token's, else the only active one)
        let mut viewer = Viewer {
            user: user.clone().unwrap_or(UserRecord {
                id: Uuid::nil(),
                email: identity.email.clone(),
                name: identity.name.clone(),
                avatar_url: identity.picture.clone(),
                email_verified: identity.email_verified,
                last_login_at: None,
                created_at: now,
            }),
            memberships,
            active_organization: None,
            platform_admin: identity.platform_admin,
            email: EmailClaim::from_identity(identity.email.as_deref(), identity.email_verified),
        };
        let mut refused = false;
        let active = match header.map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => {
                let by_id = Uuid::parse_str(h).ok();
                let found =
                    viewer.memberships.iter().find(|m| Some(m.organization_id) == by_id || m.organization_slug == h);
                match found {
                    Some(m) if m.is_active => {
                        checks.push(Check::pass(
                            "active_organization",
                            format!("`{h}` (X-Organization-Id): {}", m.organization_id),
                        ));
                        Some(m.organization_id)
                    }
                    Some(m) => {
                        refused = true;
                        checks.push(Check::fail(
                            "active_organization",
                            AccessReason::MembershipInactive.as_str(),
                            format!("X-Organization-Id `{h}`: the membership there was removed; every request with it is FORBIDDEN"),
                            "an ADMIN of the organization brings them back with inviteMember or addMember; or send another \
                             X-Organization-Id",
                        ));
                        let _ = m;
                        None
                    }
                    None if viewer.platform_admin => {
                        let org = match by_id {
                            Some(id) => entity::organization::Entity::find_by_id(id).one(conn).await,
                            None => {
                                entity::organization::Entity::find()
                                    .filter(entity::organization::Column::Slug.eq(h))
                                    .one(conn)
                                    .await
                            }
                        }
                        .ok()
                        .flatten();
                        match org {
                            Some(o) => {
                                checks.push(Check::pass(
                                    "active_organization",
                                    format!("`{h}`: {} as platform admin (every use is audited)", o.id),
                                ));
                                Some(o.id)
                            }
                            None => {
                                refused = true;
                                checks.push(not_a_member(h));
                                None
                            }
                        }
                    }
                    None => {
                        refused = true;
                        checks.push(not_a_member(h));
                        None
                    }
                }
            }
            None => {
                let from_token = identity.organization.as_ref().and_then(|o| {
                    viewer
                        .memberships
                        .iter()
                        .find(|m| m.is_active && m.organization_external_id.as_deref() == Some(&o.external_id))
                });
                let mut act = viewer.active_memberships();
                match (from_token, act.next(), act.next()) {
                    (Some(m), _, _) => {
                        checks.push(Check::pass(
                            "active_organization",
                            format!("the token's organization `{}`", m.organization_slug),
                        ));
                        Some(m.organization_id)
                    }
                    (None, Some(m), None) => {
                        checks.push(Check::pass(
                            "active_organization",
                            format!("`{}`, the only active membership", m.organization_slug),
                        ));
                        Some(m.organization_id)
                    }
                    (None, Some(_), Some(_)) => {
                        let n = viewer.active_memberships().count();
                        checks.push(Check::warn(
                            "active_organization",
                            format!("none: {n} active memberships and no X-Organization-Id; operations without an organization argument have none to act in"),
                            "send X-Organization-Id (an id or slug; --organization here) or pass organizationId",
                        ));
                        None
                    }
                    (None, None, _) => {
                        checks.push(
                            Check::warn(
                                "active_organization",
                                "none: no active membership",
                                "an ADMIN adds them with addMember or inviteMember",
                            )
                            .with_reason(AccessReason::NotAMember.as_str()),
                        );
                        None
                    }
                }
            }
        };
        viewer.active_organization = active;
        let report = ViewerReport {
            hypothetical: !token_ok,
            user_id: user.map(|u| u.id),
            would_create,
            would_accept_invitations: accepted,
            active_organization_id: active.filter(|id| !id.is_nil()),
            role: active
                .and_then(|o| viewer.membership(o))
                .map(|m| m.role)
                .or(if viewer.platform_admin && active.is_some() { Some(Role::Admin) } else { None }),
            memberships: viewer
                .memberships
                .iter()
                .zip(sources)
                .map(|(m, source)| MembershipReport {
                    organization_id: Some(m.organization_id).filter(|id| !id.is_nil()),
                    organization_slug: Some(m.organization_slug.clone()),
                    role: m.role,
                    active: m.is_active,
                    source,
                })
                .collect(),
        };
        // A request refused at the header has no viewer to evaluate fields for.
        (if refused { None } else { Some(viewer) }, Some(report))
    }
}

fn not_a_member(h: &str) -> Check {
    Check::fail(
        "active_organization",
        AccessReason::NotAMember.as_str(),
        format!("X-Organization-Id `{h}`: not a member (or no such organization: the server answers the same)"),
        "an ADMIN of that organization adds them with addMember or inviteMember; or send another X-Organization-Id",
    )
}

fn record(org: entity::organization::Model, role: Role, active: bool, now: DateTime<Utc>) -> MembershipRecord {
    MembershipRecord {
        id: Uuid::nil(),
        organization_id: org.id,
        organization_slug: org.slug.clone(),
        organization_external_id: org.external_id.clone(),
        role,
        is_active: active,
        joined_at: now,
        organization: std::sync::Arc::new(org),
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
    /// A GraphQL document: the policy's decision for each guarded field.
    #[arg(long)]
    pub query: Option<String>,
    /// The document's variables, as a JSON object.
    #[arg(long)]
    pub variables: Option<String>,
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

/// Runs `coursegraph doctor`: 0 when all is well, 1 when something would be refused,
/// 2 for a usage error.
pub async fn cli(config: &Config, args: &DoctorArgs) -> u8 {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read --token-file {}: {e}", p.display());
                return 2;
            }
        },
        (None, None) => {
            let mut s = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                eprintln!("error: cannot read the token from standard input: {e}");
                return 2;
            }
            s
        }
    };
    let variables = match args.variables.as_deref().map(serde_json::from_str::<Map<String, Value>>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            eprintln!("error: --variables is not a JSON object: {e}");
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
    let conn =
        match crate::db::connect(&url, 1, config.database.acquire_timeout, config.database.prepared_statements, None)
            .await
        {
            Ok((c, _)) if url == "sqlite::memory:" => crate::db::migrate(&c).await.ok().map(|()| c),
            Ok((c, _)) => Some(c),
            Err(_) => None,
        };
    let input = Input { token, organization: args.organization.clone(), query: args.query.clone(), variables };
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
