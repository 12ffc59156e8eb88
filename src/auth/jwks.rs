//! JWKS key cache: keys live ~10 minutes; an unknown `kid` refetches at most once per
//! cooldown (~30 s) so random kids cannot hammer the identity provider; fetches time out
//! (~5 s); when the provider is down, cached keys keep working.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use tokio::sync::{Mutex, RwLock};

pub use crate::config::JwksTimings;

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: Arc<DecodingKey>,
}

#[derive(Default)]
struct State {
    keys: Vec<Key>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The result of a key lookup.
pub enum KeyLookup {
    Found(Arc<DecodingKey>),
    /// The kid is known but its key is for another algorithm.
    WrongAlgorithm,
    Unknown,
}

enum Source {
    Http { url: String, client: reqwest::Client },
    File(std::path::PathBuf),
}

/// A cached JWKS.
pub struct JwksCache {
    source: Source,
    timings: JwksTimings,
    state: RwLock<State>,
    /// Single-flight: one fetch at a time; waiters re-check the cache after it.
    fetching: Mutex<()>,
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
}

impl JwksCache {
    pub fn with_timings(url: &str, timings: JwksTimings) -> Result<Self, String> {
        let source = if let Some(path) = url.strip_prefix("file://") {
            Source::File(path.into())
        } else {
            let client = reqwest::Client::builder()
                .timeout(timings.timeout)
                .connect_timeout(timings.timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .map_err(|e| format!("COURSEGRAPH_JWKS_URL: cannot build HTTP client: {e}"))?;
            Source::Http { url: url.to_owned(), client }
        };
        Ok(Self {
            source,
            timings,
            state: RwLock::new(State::default()),
            fetching: Mutex::new(()),
            fetches: AtomicU64::new(0),
            fetch_failures: AtomicU64::new(0),
        })
    }

    /// How many fetches were attempted, and how many failed.
    pub fn fetch_counts(&self) -> (u64, u64) {
        (self.fetches.load(Ordering::Relaxed), self.fetch_failures.load(Ordering::Relaxed))
    }

    /// Finds the key for (`kid`, `alg`), fetching when the cache cannot answer.
    pub async fn key(self: &Arc<Self>, kid: Option<&str>, alg: Algorithm) -> KeyLookup {
        let (found, stale) = {
            let s = self.state.read().await;
            (lookup(&s.keys, kid, alg), self.is_stale(&s))
        };
        match found {
            KeyLookup::Unknown => {}
            hit => {
                if stale {
                    // Serve the cached key now; refresh in the background.
                    let me = self.clone();
                    tokio::spawn(async move { me.refresh(false).await });
                }
                return hit;
            }
        }
        // Unknown kid: refetch unless we did so within the cooldown.
        self.refresh(true).await;
        let s = self.state.read().await;
        lookup(&s.keys, kid, alg)
    }

    /// Fetches now (used at start so the first request does not pay for it).
    pub async fn prefetch(&self) {
        self.refresh(true).await;
    }

    fn is_stale(&self, s: &State) -> bool {
        s.fetched_at.is_none_or(|t| t.elapsed() >= self.timings.ttl)
    }

    async fn refresh(&self, unknown_kid: bool) {
        let _guard = self.fetching.lock().await;
        {
            let s = self.state.read().await;
            if let Some(last) = s.last_attempt
                && last.elapsed() < self.timings.cooldown
            {
                // A fetch happened (or failed) moments ago: don't hammer the IdP.
                return;
            }
            if !unknown_kid && !self.is_stale(&s) {
                return;
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch().await;
        let mut s = self.state.write().await;
        s.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS fetched");
                s.keys = keys;
                s.fetched_at = Some(Instant::now());
            }
            Err(e) => {
                self.fetch_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, cached_keys = s.keys.len(), "JWKS fetch failed; keeping cached keys");
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let body = match &self.source {
            Source::File(p) => tokio::fs::read(p).await.map_err(|e| format!("read {}: {e}", p.display()))?,
            Source::Http { url, client } => {
                let resp = client.get(url).send().await.map_err(|e| format!("GET JWKS: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("GET JWKS: HTTP {}", resp.status()));
                }
                resp.bytes().await.map_err(|e| format!("GET JWKS body: {e}"))?.to_vec()
            }
        };
        parse_jwks(&body)
    }
}

/// The signature algorithm a JWK's `alg` names; encryption algorithms map to none.
fn signature_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        _ => return None,
    })
}

fn lookup(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> KeyLookup {
    match kid {
        Some(kid) => match keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
            Some(k) if k.alg == alg => KeyLookup::Found(k.key.clone()),
            Some(_) => KeyLookup::WrongAlgorithm,
            None => KeyLookup::Unknown,
        },
        // No kid: only unambiguous when exactly one key has this algorithm.
        None => {
            let mut it = keys.iter().filter(|k| k.alg == alg);
            match (it.next(), it.next()) {
                (Some(k), None) => KeyLookup::Found(k.key.clone()),
                _ => KeyLookup::Unknown,
            }
        }
    }
}

/// Parses a JWKS document, keeping the usable signature keys and skipping the rest
/// (symmetric `oct` keys, encryption keys, unsupported curves) one by one.
fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    let list = doc.get("keys").and_then(|k| k.as_array()).ok_or("JWKS has no `keys` array")?;
    let allowed = super::jwt::asymmetric_algorithms();
    let mut keys = Vec::new();
    for raw in list {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else { continue };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            // An `alg` that is not a signature algorithm (RSA-OAEP, …) marks a key we never verify with.
            Some(a) => match signature_algorithm(a) {
                Some(alg) => alg,
                None => continue,
            },
            None => match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
                _ => continue,
            },
        };
        if !allowed.contains(&alg) {
            continue;
        }
        // The key's parameters must fit its algorithm's family.
        let fits = matches!(
            (&jwk.algorithm, alg),
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
                | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
        );
        if !fits {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
        keys.push(Key { kid: jwk.common.key_id.clone(), alg, key: Arc::new(key) });
    }
    Ok(keys)
}
