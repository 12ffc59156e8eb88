//! Signing a request in — the one way HTTP, the WebSocket and the access doctor all do it:
//! the `Authorization` value → its bearer token → the verified claims → the identity they
//! map to → the provisioned viewer.
//!
//! A refused token is UNAUTHENTICATED with its reason and a message that says what is
//! actually wrong (an empty token, a missing `Bearer` scheme) and, in development with an
//! HS256 key, how to mint a token that works. Each refusal is counted and logged here, once.

use std::{path::PathBuf, sync::Arc};

use serde_json::{Map, Value};

use super::{AuthError, AuthReason, Identity, Verifier, Viewer, claims::Mapper, provision::Provisioner};
use crate::{
    config::{Config, SecretSource},
    error::AppError,
    metrics::Metrics,
};

/// How to mint a token in development.
const MINT: &str = "cargo run -- token --sub alice --org acme --role admin";

/// A signed-in viewer and when their token stops being accepted.
pub struct SignedIn {
    pub viewer: Arc<Viewer>,
    /// The token's `exp` plus the allowed leeway, in seconds since the epoch.
    pub valid_until: Option<u64>,
}

/// What an `Authorization` value holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    Token(&'a str),
    /// `Bearer` and nothing after it (GraphiQL's pre-filled header): no token, as if the
    /// header were not sent — introspection works, everything else asks for a token.
    Empty,
}

/// The sign-in path, configured once.
#[derive(Clone)]
pub struct SignIn {
    pub verifier: Verifier,
    pub mapper: Mapper,
    pub provisioner: Provisioner,
    metrics: Metrics,
    /// Outside production with an HS256 key: `coursegraph token` mints tokens it accepts.
    mints: bool,
    /// The development secret file, when tokens are verified with one.
    dev_secret: Option<PathBuf>,
    leeway: u64,
}

impl SignIn {
    pub fn new(config: &Config, verifier: Verifier, provisioner: Provisioner, metrics: Metrics) -> Self {
        let dev_secret = match &config.auth.secret_source {
            SecretSource::DevFile { path, .. } => Some(path.clone()),
            _ => None,
        };
        Self {
            verifier,
            mapper: Mapper::new(&config.auth),
            provisioner,
            metrics,
            mints: !config.is_production() && config.auth.jwt_secret.is_some(),
            dev_secret,
            leeway: config.auth.leeway_secs,
        }
    }

    /// The bearer token of an `Authorization` value, or why there is none to verify.
    pub fn bearer(authorization: &str) -> Result<Bearer<'_>, AuthError> {
        let value = authorization.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            return Ok(if token.is_empty() { Bearer::Empty } else { Bearer::Token(token) });
        }
        let detail = if value.is_empty() {
            "the Authorization header is empty: send `Authorization: Bearer <token>`".to_owned()
        } else if value.split('.').count() == 3 && !value.contains(char::is_whitespace) {
            "the Authorization header holds a token without the `Bearer` scheme: send `Authorization: Bearer <token>`"
                .to_owned()
        } else {
            format!(
                "the Authorization header's scheme is `{}`, not `Bearer`: send `Authorization: Bearer <token>`",
                scheme.chars().filter(char::is_ascii_alphanumeric).take(16).collect::<String>()
            )
        };
        Err(AuthError::with_detail(AuthReason::TokenMalformed, detail))
    }

    /// Verifies `token` (counting and logging a refusal).
    pub async fn verify(&self, token: &str) -> Result<(Map<String, Value>, Identity), AuthError> {
        match self.verifier.verify(token).await {
            Ok(claims) => {
                let identity = self.mapper.identity(&claims);
                Ok((claims, identity))
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    /// `authorization` (an `Authorization` value) signed in, with `active_header`
    /// (X-Organization-Id) choosing the active organization; `None` for an empty bearer.
    pub async fn sign_in(
        &self,
        authorization: &str,
        active_header: Option<&str>,
    ) -> Result<Option<SignedIn>, AppError> {
        let token = match Self::bearer(authorization) {
            Ok(Bearer::Token(t)) => t,
            Ok(Bearer::Empty) => return Ok(None),
            Err(e) => return Err(AppError::Unauthenticated(self.refused(e))),
        };
        let (claims, identity) = self.verify(token).await.map_err(AppError::Unauthenticated)?;
        let viewer = self.provisioner.viewer(&identity, active_header).await?;
        let valid_until = claims.get("exp").and_then(Value::as_f64).map(|e| e.max(0.0) as u64 + self.leeway);
        Ok(Some(SignedIn { viewer: Arc::new(viewer), valid_until }))
    }

    /// Counts and logs a refused token; returns it with what fixes it.
    pub fn refused(&self, e: AuthError) -> AuthError {
        self.metrics.unauthenticated(e.reason.as_str());
        tracing::info!(target: "audit", event = "auth.refused", reason = e.reason.as_str(), "token refused");
        self.explained(e)
    }

    /// What an anonymous request hears when an operation needs a viewer (`empty_bearer`:
    /// the header was `Bearer` with nothing after it).
    pub fn missing(&self, empty_bearer: bool) -> AuthError {
        let e = if empty_bearer {
            AuthError::with_detail(
                AuthReason::TokenMissing,
                "the Authorization header's bearer token is empty: put a token after `Bearer `",
            )
        } else {
            AuthReason::TokenMissing.into()
        };
        self.explained(e)
    }

    /// `e` with, in development, how to get a token this server accepts.
    fn explained(&self, e: AuthError) -> AuthError {
        if !self.mints {
            return e;
        }
        let base = e.message().trim_end_matches('.').to_owned();
        let how = match (e.reason, &self.dev_secret) {
            (AuthReason::BadSignature, Some(file)) => format!(
                "this server verifies with the development secret in {}: mint a token with `{MINT}` \
                 (run anywhere in this checkout, it signs with the same file)",
                file.display()
            ),
            (AuthReason::BadSignature, None) => {
                format!("mint a token signed with COURSEGRAPH_JWT_SECRET with `{MINT}`")
            }
            (AuthReason::TokenMissing | AuthReason::TokenMalformed | AuthReason::TokenExpired, _) => {
                format!("in development, mint one with `{MINT}`")
            }
            _ => return e,
        };
        AuthError::with_detail(e.reason, format!("{base}; {how}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_of_an_authorization_value() {
        assert_eq!(SignIn::bearer("Bearer abc.def.ghi"), Ok(Bearer::Token("abc.def.ghi")));
        assert_eq!(SignIn::bearer("bearer   abc.def.ghi  "), Ok(Bearer::Token("abc.def.ghi")));
        assert_eq!(SignIn::bearer("Bearer "), Ok(Bearer::Empty));
        assert_eq!(SignIn::bearer("Bearer"), Ok(Bearer::Empty));
        let no_scheme = SignIn::bearer("abc.def.ghi").unwrap_err();
        assert_eq!(no_scheme.reason, AuthReason::TokenMalformed);
        assert!(no_scheme.message().contains("without the `Bearer` scheme"), "{}", no_scheme.message());
        let basic = SignIn::bearer("Basic dXNlcjpwdw==").unwrap_err();
        assert!(basic.message().contains("`Basic`"), "{}", basic.message());
        assert!(!basic.message().contains("dXNlcjpwdw"), "the credentials are never echoed");
    }
}
