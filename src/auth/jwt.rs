//! Bearer-token verification: HS256 with the shared secret, RS/PS/ES/EdDSA from the JWKS.
//!
//! The algorithm is taken from the key, never trusted from the token header: HS256 is
//! only ever checked against the shared secret, asymmetric algorithms only against a
//! JWKS key of exactly that algorithm. `jku`, `x5u` and embedded `jwk` headers are
//! never read. Every refusal carries a stable reason.

use std::{collections::HashSet, sync::Arc};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{
    jwks::{JwksCache, KeyLookup},
    validate::{self, Requirements},
};
use crate::config::AuthConfig;

/// Why a token was refused (`extensions.reason`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthReason {
    TokenMissing,
    TokenMalformed,
    TokenExpired,
    TokenNotYetValid,
    BadSignature,
    UnknownKey,
    AlgorithmNotAllowed,
    BadIssuer,
    BadAudience,
    MissingClaim,
}

impl AuthReason {
    pub const ALL: [AuthReason; 10] = [
        AuthReason::TokenMissing,
        AuthReason::TokenMalformed,
        AuthReason::TokenExpired,
        AuthReason::TokenNotYetValid,
        AuthReason::BadSignature,
        AuthReason::UnknownKey,
        AuthReason::AlgorithmNotAllowed,
        AuthReason::BadIssuer,
        AuthReason::BadAudience,
        AuthReason::MissingClaim,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "TOKEN_MISSING",
            AuthReason::TokenMalformed => "TOKEN_MALFORMED",
            AuthReason::TokenExpired => "TOKEN_EXPIRED",
            AuthReason::TokenNotYetValid => "TOKEN_NOT_YET_VALID",
            AuthReason::BadSignature => "BAD_SIGNATURE",
            AuthReason::UnknownKey => "UNKNOWN_KEY",
            AuthReason::AlgorithmNotAllowed => "ALGORITHM_NOT_ALLOWED",
            AuthReason::BadIssuer => "BAD_ISSUER",
            AuthReason::BadAudience => "BAD_AUDIENCE",
            AuthReason::MissingClaim => "MISSING_CLAIM",
        }
    }

    /// A message for the client. Fixed text: nothing from the token is echoed back.
    pub const fn message(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "authentication required: send Authorization: Bearer <token>",
            AuthReason::TokenMalformed => "the bearer token is not a well-formed JWT",
            AuthReason::TokenExpired => "the bearer token has expired",
            AuthReason::TokenNotYetValid => "the bearer token is not valid yet (nbf or iat is in the future)",
            AuthReason::BadSignature => "the bearer token's signature does not verify",
            AuthReason::UnknownKey => "the bearer token is signed with a key this server does not know",
            AuthReason::AlgorithmNotAllowed => "the bearer token's algorithm is not allowed for its key",
            AuthReason::BadIssuer => "the bearer token's issuer is not accepted",
            AuthReason::BadAudience => "the bearer token's audience is not accepted",
            AuthReason::MissingClaim => "the bearer token lacks a required claim (exp, sub, or the configured iss/aud)",
        }
    }
}

/// A refused token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct AuthError {
    pub reason: AuthReason,
    /// What exactly is wrong, and how to fix it, when there is more to say than the
    /// reason's fixed message (never anything from the token).
    pub detail: Option<String>,
}

impl AuthError {
    /// The message for the client.
    pub fn message(&self) -> &str {
        self.detail.as_deref().unwrap_or(self.reason.message())
    }

    pub fn with_detail(reason: AuthReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: Some(detail.into()) }
    }
}

impl From<AuthReason> for AuthError {
    fn from(reason: AuthReason) -> Self {
        Self { reason, detail: None }
    }
}

/// Verifies bearer tokens. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Verifier {
    hs_key: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<JwksCache>>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs_key.is_some())
            .field("jwks", &self.jwks.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Verifier {
    pub fn new(cfg: &AuthConfig) -> Result<Self, String> {
        let jwks = match &cfg.jwks_url {
            Some(url) => Some(Arc::new(JwksCache::with_timings(url, cfg.jwks_timings)?)),
            None => None,
        };
        Ok(Self {
            hs_key: cfg.jwt_secret.as_ref().map(|s| Arc::new(DecodingKey::from_secret(s.expose().as_bytes()))),
            jwks,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway_secs,
        })
    }

    /// The JWKS cache, when one is configured (for metrics and warm-up).
    pub fn jwks(&self) -> Option<&Arc<JwksCache>> {
        self.jwks.as_ref()
    }

    /// Verifies `token` and returns its claims: its header, the key it names, its
    /// signature, then the registered claims' rules ([`super::validate`]) — the first
    /// failure refuses it.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let header = RawHeader::parse(token)?;
        let (alg, key) = self.key_for(&header).await?;
        let claims = Self::signed_claims(token, alg, &key)?;
        let now = jsonwebtoken::get_current_timestamp() as i64;
        match validate::check(&claims, self.requirements(), now).first_failure() {
            Some(e) => Err(e),
            None => Ok(claims),
        }
    }

    /// The claims of `token` when its signature verifies with `key` (no claim is judged
    /// here: [`super::validate`] does, for the server and the doctor alike).
    pub fn signed_claims(token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Map<String, Value>, AuthError> {
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map(|d| d.claims).map_err(|e| map_error(e.kind()))
    }

    /// The key `header` asks for, with the algorithm taken from that key. HS256 is only
    /// ever the shared secret, an asymmetric algorithm only a JWKS key of exactly it.
    pub async fn key_for(&self, header: &RawHeader) -> Result<(Algorithm, Arc<DecodingKey>), AuthError> {
        Ok(match header.alg.as_str() {
            "HS256" => match &self.hs_key {
                Some(k) => (Algorithm::HS256, k.clone()),
                // A JWKS-only server never accepts HMAC: that is the classic
                // "sign with the public key as HMAC secret" confusion.
                None => return Err(AuthReason::AlgorithmNotAllowed.into()),
            },
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "EdDSA" => {
                let Some(jwks) = &self.jwks else {
                    return Err(AuthReason::AlgorithmNotAllowed.into());
                };
                let alg: Algorithm = header.alg.parse().map_err(|_| AuthReason::AlgorithmNotAllowed)?;
                match jwks.key(header.kid.as_deref(), alg).await {
                    KeyLookup::Found(k) => (alg, k),
                    KeyLookup::WrongAlgorithm => return Err(AuthReason::AlgorithmNotAllowed.into()),
                    KeyLookup::Unknown => return Err(AuthReason::UnknownKey.into()),
                }
            }
            // `none`, HS384/512 and anything unknown.
            _ => return Err(AuthReason::AlgorithmNotAllowed.into()),
        })
    }

    /// What the verifier requires of the claims.
    pub fn requirements(&self) -> Requirements<'_> {
        Requirements { issuer: self.issuer.as_deref(), audience: &self.audience, leeway: self.leeway }
    }

    /// Whether an HS256 shared secret, and a JWKS, are configured.
    pub fn key_sources(&self) -> (bool, bool) {
        (self.hs_key.is_some(), self.jwks.is_some())
    }
}

fn map_error(kind: &ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthReason::BadSignature,
        ErrorKind::ExpiredSignature => AuthReason::TokenExpired,
        ErrorKind::ImmatureSignature => AuthReason::TokenNotYetValid,
        ErrorKind::InvalidIssuer => AuthReason::BadIssuer,
        ErrorKind::InvalidAudience => AuthReason::BadAudience,
        ErrorKind::MissingRequiredClaim(_) => AuthReason::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthReason::AlgorithmNotAllowed
        }
        _ => AuthReason::TokenMalformed,
    };
    reason.into()
}

/// The two header fields we read, parsed by hand so that `alg: none` and unknown
/// algorithms get their own reason instead of a generic parse error.
pub struct RawHeader {
    pub alg: String,
    pub kid: Option<String>,
}

impl RawHeader {
    pub fn parse(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AuthReason::TokenMalformed.into());
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h.trim_end_matches('='))
            .map_err(|_| AuthReason::TokenMalformed)?;
        let v: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| AuthReason::TokenMalformed)?;
        let alg = v.get("alg").and_then(Value::as_str).ok_or(AuthReason::TokenMalformed)?;
        let kid = match v.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(AuthReason::TokenMalformed.into()),
        };
        Ok(Self { alg: alg.to_owned(), kid })
    }
}

/// Allowed asymmetric algorithms, for the JWKS module.
pub(crate) fn asymmetric_algorithms() -> HashSet<Algorithm> {
    [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    //! The token parser against arbitrary input: it never panics and never accepts.
    use super::*;
    use crate::config::Config;
    use proptest::prelude::*;

    const SECRET: &str = "unit-test-secret-that-is-long-enough-0123";

    fn verifier() -> Verifier {
        Verifier::new(&Config::for_tests("sqlite::memory:", SECRET).auth).unwrap()
    }

    fn run(v: &Verifier, token: &str) -> Result<Map<String, Value>, AuthError> {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(v.verify(token))
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn valid_token() -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({ "sub": "alice", "iat": now, "exp": now + 600, "org_id": "acme" });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn the_valid_token_verifies() {
        assert!(run(&verifier(), &valid_token()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_is_refused(s in "\\PC{0,400}") {
            prop_assert!(run(&verifier(), &s).is_err());
        }

        #[test]
        fn arbitrary_segments_are_refused(h in proptest::collection::vec(any::<u8>(), 0..200),
                                          p in proptest::collection::vec(any::<u8>(), 0..400),
                                          sig in proptest::collection::vec(any::<u8>(), 0..80)) {
            let t = format!("{}.{}.{}", b64(&h), b64(&p), b64(&sig));
            prop_assert!(run(&verifier(), &t).is_err());
        }

        #[test]
        fn any_header_with_a_forged_signature_is_refused(
            alg in prop_oneof![Just("none".to_owned()), Just("HS256".to_owned()), Just("RS256".to_owned()),
                               Just("ES256".to_owned()), Just("EdDSA".to_owned()), "[A-Za-z0-9]{0,8}"],
            kid in proptest::option::of("[a-z0-9-]{0,12}"),
            sig in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let header = serde_json::json!({ "alg": alg, "kid": kid, "typ": "JWT" });
            let now = jsonwebtoken::get_current_timestamp();
            let claims = serde_json::json!({ "sub": "mallory", "exp": now + 600, "roles": ["admin"] });
            let t = format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(&sig));
            prop_assert!(run(&verifier(), &t).is_err());
        }

        #[test]
        fn any_single_character_change_to_a_valid_token_is_refused(pos in 0usize..1000, c in "[A-Za-z0-9_.=-]") {
            let good = valid_token();
            let pos = pos % good.len();
            let mut bad = good.clone();
            bad.replace_range(pos..pos + 1, &c);
            if bad != good {
                prop_assert!(run(&verifier(), &bad).is_err(), "accepted a modified token: {bad}");
            }
        }
    }
}
