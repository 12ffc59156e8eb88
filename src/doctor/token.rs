//! The token's checks — format, algorithm, key, signature, expiry, issuer, audience,
//! subject — each verdict from the step the verifier itself takes (`RawHeader::parse`,
//! `Verifier::key_for`, `Verifier::signed_claims`, `auth::validate::check`); the doctor
//! only words them. Past a failure it goes on wherever it can, on the unverified claims.

use base64::Engine as _;
use chrono::{TimeZone as _, Utc};
use serde_json::{Map, Value};

use super::{Check, Doctor, IdentityReport, OrganizationReport};
use crate::{
    auth::{
        AuthError, AuthReason, Identity, Verifier,
        claims::Mapper,
        jwt::RawHeader,
        validate::{self, ClaimVerdicts},
    },
    config::{ClaimsPreset, SecretSource, dev_secret},
};

/// What could be read of the token.
pub(super) struct TokenRead {
    pub claims: Map<String, Value>,
    pub identity: Identity,
    /// Why the server refuses it (none: accepted).
    pub refusal: Option<AuthReason>,
}

/// The payload's claims, read without any verification (for showing, never trusting).
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let p = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
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

impl Doctor<'_> {
    /// format … subject. Returns what could be read of the token.
    pub(super) async fn token_checks(&self, token: &str, checks: &mut Vec<Check>) -> Option<TokenRead> {
        let (header, claims) = match format(token) {
            Ok(read) => read,
            Err(fail) => {
                checks.push(fail);
                return None;
            }
        };
        let verdicts = validate::check(&claims, self.verifier.requirements(), Utc::now().timestamp());
        checks.push(match &verdicts.text {
            Ok(()) => Check::pass(
                "format",
                format!(
                    "a JWT with header alg `{}`{}",
                    header.alg,
                    header.kid.as_ref().map(|k| format!(", kid `{k}`")).unwrap_or_default()
                ),
            ),
            Err(e) => Check::fail(
                "format",
                e.reason.as_str(),
                "a claim holds a NUL character (U+0000), which no text column can store",
                "have the identity provider send claims without U+0000",
            ),
        });
        let mut refusal = None;
        let key = self.verifier.key_for(&header).await;
        self.key_checks(&header, key.as_ref().err(), checks);
        match &key {
            Err(e) => {
                refusal = Some(e.reason);
                checks.push(Check::skip("signature", "no key to check it with"));
            }
            Ok((alg, k)) => match Verifier::signed_claims(token, *alg, k) {
                Ok(_) => checks.push(Check::pass("signature", "the signature verifies")),
                Err(e) => {
                    refusal = Some(e.reason);
                    checks.push(self.signature_failed(token, &e, *alg == jsonwebtoken::Algorithm::HS256));
                }
            },
        }
        checks.extend(self.claim_checks(&claims, &verdicts));
        refusal = refusal.or(verdicts.first_failure().map(|e| e.reason));
        let identity = Mapper::new(&self.config.auth).identity(&claims);
        Some(TokenRead { claims, identity, refusal })
    }

    /// algorithm and key, from the verifier's own key choice.
    fn key_checks(&self, header: &RawHeader, refused: Option<&AuthError>, checks: &mut Vec<Check>) {
        let (hs, jwks) = self.verifier.key_sources();
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
        let asymmetric = header.alg.parse::<jsonwebtoken::Algorithm>().is_ok_and(|a| {
            !matches!(
                a,
                jsonwebtoken::Algorithm::HS256 | jsonwebtoken::Algorithm::HS384 | jsonwebtoken::Algorithm::HS512
            )
        });
        match refused.map(|e| e.reason) {
            Some(AuthReason::AlgorithmNotAllowed) if !(asymmetric && jwks) => {
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
                checks.push(Check::skip("key", "no key for a refused algorithm"));
            }
            refused => {
                checks.push(Check::pass(
                    "algorithm",
                    format!("{} is accepted: this server takes {accepted}", header.alg),
                ));
                checks.push(match refused {
                    None if header.alg == "HS256" => {
                        Check::pass("key", "verified with the shared secret (COURSEGRAPH_JWT_SECRET)")
                    }
                    None => Check::pass(
                        "key",
                        format!("verified with the JWKS key `{}`", header.kid.as_deref().unwrap_or("(the only one)")),
                    ),
                    Some(AuthReason::UnknownKey) => Check::fail(
                        "key",
                        AuthReason::UnknownKey.as_str(),
                        match &header.kid {
                            Some(k) => format!("no key with kid `{k}` for {} in the JWKS", header.alg),
                            None => "the token has no kid and the JWKS has more than one key".to_owned(),
                        },
                        "check that COURSEGRAPH_JWKS_URL is the JWKS of the issuer that signed the token; \
                         after a key rotation the server refetches at most once per COURSEGRAPH_JWKS_REFETCH_COOLDOWN",
                    ),
                    Some(r) => Check::fail(
                        "key",
                        r.as_str(),
                        format!("the JWKS key `{}` is not a {} key", header.kid.as_deref().unwrap_or(""), header.alg),
                        "the key's `alg` or type does not match the token's header: check the IdP's signing algorithm",
                    ),
                });
            }
        }
    }

    /// A signature that does not verify, with what fixes it — in development, the secret
    /// file the server reads and, if the token verifies with another one of this checkout,
    /// that one.
    fn signature_failed(&self, token: &str, e: &AuthError, hs256: bool) -> Check {
        let detail =
            "the signature does not verify with this key: the token was changed, or signed with another secret or key";
        let hint = match (&self.config.auth.secret_source, hs256) {
            (SecretSource::DevFile { path, .. }, true) => {
                let mut h = format!(
                    "this server verifies with the development secret in {}: mint a token with `coursegraph token` \
                     (`cargo run -- token …`) anywhere in this checkout",
                    path.display()
                );
                if let Some(other) = signed_with_another_dev_secret(token, path) {
                    h.push_str(&format!(
                        "; this token was signed with {}, another development secret (an older `coursegraph token` \
                         made it there): delete it and mint the token again",
                        other.display()
                    ));
                }
                h
            }
            (_, true) => "COURSEGRAPH_JWT_SECRET must be the exact secret the token was signed with".to_owned(),
            (_, false) => "COURSEGRAPH_JWKS_URL must serve the public key of the signing key".to_owned(),
        };
        Check::fail("signature", e.reason.as_str(), detail, hint)
    }

    /// expiry, issuer, audience, subject: each rule's verdict, worded.
    fn claim_checks(&self, claims: &Map<String, Value>, v: &ClaimVerdicts) -> [Check; 4] {
        let req = self.verifier.requirements();
        [
            expiry_check(claims, &v.expiry, req.leeway as i64),
            issuer_check(claims, &v.issuer, req.issuer),
            audience_check(claims, &v.audience, req.audience),
            subject_check(claims, &v.subject),
        ]
    }
}

fn expiry_check(claims: &Map<String, Value>, verdict: &Result<(), AuthError>, leeway: i64) -> Check {
    let now = Utc::now().timestamp();
    let num = |k: &str| claims.get(k).and_then(Value::as_f64).map(|t| t as i64);
    match verdict {
        Ok(()) => match num("exp") {
            Some(exp) if exp < now => Check::pass(
                "expiry",
                format!("exp was {}, {} ago: accepted only within the leeway ({leeway} s)", when(exp), ago(now - exp)),
            ),
            Some(exp) => Check::pass("expiry", format!("valid until {}, in {}", when(exp), ago(exp - now))),
            None => Check::pass("expiry", "valid"),
        },
        Err(e) => expiry_failed(e, num("exp"), num("nbf").or(num("iat")), leeway, now),
    }
}

fn issuer_check(claims: &Map<String, Value>, verdict: &Result<(), AuthError>, required: Option<&str>) -> Check {
    let iss = claims.get("iss").and_then(Value::as_str);
    match (verdict, required) {
        (Ok(()), None) => Check::pass(
            "issuer",
            format!(
                "any issuer is accepted (COURSEGRAPH_JWT_ISSUER is not set); the token's is `{}`",
                iss.unwrap_or("")
            ),
        ),
        (Ok(()), Some(want)) => Check::pass("issuer", format!("`{want}`")),
        (Err(e), want) if e.reason == AuthReason::MissingClaim => Check::fail(
            "issuer",
            e.reason.as_str(),
            format!("the token has no `iss`; `{}` is required", want.unwrap_or("")),
            "COURSEGRAPH_JWT_ISSUER names the required issuer: unset it or have the IdP set `iss`",
        ),
        (Err(e), want) => Check::fail(
            "issuer",
            e.reason.as_str(),
            format!(
                "the token's issuer is `{}`, this server requires `{}`",
                iss.unwrap_or("(not a string)"),
                want.unwrap_or("")
            ),
            format!("set COURSEGRAPH_JWT_ISSUER={} if that issuer is yours", iss.unwrap_or("…")),
        ),
    }
}

fn audience_check(claims: &Map<String, Value>, verdict: &Result<(), AuthError>, wanted: &[String]) -> Check {
    let aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match verdict {
        Ok(()) if wanted.is_empty() => {
            Check::pass("audience", "any audience is accepted (COURSEGRAPH_JWT_AUDIENCE is not set)")
        }
        Ok(()) => Check::pass("audience", format!("{aud:?}")),
        Err(e) if e.reason == AuthReason::MissingClaim => Check::fail(
            "audience",
            e.reason.as_str(),
            format!("the token has no `aud`; one of {wanted:?} is required"),
            "COURSEGRAPH_JWT_AUDIENCE lists the accepted audiences: request the token for that API (audience)",
        ),
        Err(e) => Check::fail(
            "audience",
            e.reason.as_str(),
            format!("the token is for {aud:?}; this server accepts {wanted:?}"),
            format!(
                "add the audience to COURSEGRAPH_JWT_AUDIENCE (e.g. COURSEGRAPH_JWT_AUDIENCE={}) or request the token for {:?}",
                aud.first().copied().unwrap_or("…"),
                wanted.first().map(String::as_str).unwrap_or("")
            ),
        ),
    }
}

fn subject_check(claims: &Map<String, Value>, verdict: &Result<(), AuthError>) -> Check {
    match (verdict, claims.get("sub").and_then(Value::as_str)) {
        (Ok(()), s) => Check::pass("subject", format!("`{}`", s.unwrap_or(""))),
        (Err(e), _) => Check::fail(
            "subject",
            e.reason.as_str(),
            "the token has no non-empty string `sub`: it names the user",
            "have the identity provider include `sub`",
        ),
    }
}

/// The format check: the header and the (unverified) claims, or the failed check.
fn format(token: &str) -> Result<(RawHeader, Map<String, Value>), Check> {
    if token.is_empty() {
        return Err(Check::fail(
            "format",
            AuthReason::TokenMissing.as_str(),
            "no token given",
            "pass --token, --token-file or the token on stdin (HTTP: Authorization: Bearer <token>)",
        ));
    }
    let header = RawHeader::parse(token).map_err(|e| {
        Check::fail(
            "format",
            e.reason.as_str(),
            format!(
                "not a JWT: expected three base64url segments with a JSON header, got {} segment(s)",
                token.split('.').count()
            ),
            "send the ID or access token itself (header.payload.signature), without quotes",
        )
    })?;
    let claims = unverified_claims(token).ok_or_else(|| {
        Check::fail(
            "format",
            AuthReason::TokenMalformed.as_str(),
            "the payload segment is not base64url-encoded JSON",
            "send the token exactly as the identity provider issued it",
        )
    })?;
    Ok((header, claims))
}

fn expiry_failed(e: &AuthError, exp: Option<i64>, early: Option<i64>, leeway: i64, now: i64) -> Check {
    let r = e.reason.as_str();
    match e.reason {
        AuthReason::MissingClaim => Check::fail(
            "expiry",
            r,
            "the token has no `exp`: this server refuses tokens that never expire",
            "have the identity provider set an expiry",
        ),
        AuthReason::TokenExpired => Check::fail(
            "expiry",
            r,
            format!("exp was {}, {} ago (leeway {leeway} s)", when(exp.unwrap_or(0)), ago(now - exp.unwrap_or(0))),
            "mint a fresh token; COURSEGRAPH_JWT_LEEWAY_SECS sets the allowed skew",
        ),
        AuthReason::TokenNotYetValid => Check::fail(
            "expiry",
            r,
            format!(
                "`nbf`/`iat` is {}, {} in the future (leeway {leeway} s)",
                when(early.unwrap_or(0)),
                ago(early.unwrap_or(0) - now)
            ),
            "check the clocks of this server and the identity provider; COURSEGRAPH_JWT_LEEWAY_SECS sets the allowed skew",
        ),
        _ => Check::fail(
            "expiry",
            r,
            "`exp`, `nbf` or `iat` is not a number of seconds",
            "`exp`, `iat` and `nbf` must be NumericDates (seconds since 1970)",
        ),
    }
}

/// Another development secret of this checkout that verifies `token`, if any.
fn signed_with_another_dev_secret(token: &str, served: &std::path::Path) -> Option<std::path::PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    dev_secret::candidates(&cwd, served).into_iter().find(|p| {
        std::fs::read_to_string(p).ok().is_some_and(|s| {
            let key = jsonwebtoken::DecodingKey::from_secret(s.trim().as_bytes());
            Verifier::signed_claims(token, jsonwebtoken::Algorithm::HS256, &key).is_ok()
        })
    })
}

/// Who the token says the caller is, as the server maps it.
pub(super) fn identity_report(identity: &Identity, verified: bool, preset: ClaimsPreset) -> IdentityReport {
    IdentityReport {
        verified,
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
        preset: preset.name(),
    }
}
