//! Test keys (tests/keys/*.pem), their JWKS form, and token signing with any header.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Map, Value, json};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).expect("test key")
}

/// A signing key with its kid and algorithm.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub file: &'static str,
}

impl TestKey {
    pub fn rsa1() -> Self {
        Self { kid: "rsa-1".into(), alg: Algorithm::RS256, file: "rsa1" }
    }
    pub fn rsa2() -> Self {
        Self { kid: "rsa-2".into(), alg: Algorithm::RS256, file: "rsa2" }
    }
    pub fn ec1() -> Self {
        Self { kid: "ec-1".into(), alg: Algorithm::ES256, file: "ec1" }
    }
    pub fn ed1() -> Self {
        Self { kid: "ed-1".into(), alg: Algorithm::EdDSA, file: "ed1" }
    }

    pub fn encoding_key(&self) -> EncodingKey {
        let pem = read(&format!("{}.pem", self.file));
        match self.alg {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .expect("parse test key")
    }

    pub fn public_pem(&self) -> Vec<u8> {
        read(&format!("{}.pub.pem", self.file))
    }

    /// The public JWK of this key.
    pub fn jwk(&self) -> Value {
        let mut v = if self.alg == Algorithm::EdDSA {
            // jsonwebtoken cannot export Ed25519 JWKs: the raw key is the SPKI's last 32 bytes.
            let pem = String::from_utf8(self.public_pem()).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
            json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA" })
        } else {
            serde_json::to_value(Jwk::from_encoding_key(&self.encoding_key(), self.alg).unwrap()).unwrap()
        };
        v["kid"] = json!(self.kid);
        v["use"] = json!("sig");
        v
    }

    /// Signs `claims` with this key under its own kid and algorithm.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.encoding_key()).unwrap()
    }

    /// Signs with this key but a different kid in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&h, claims, &self.encoding_key()).unwrap()
    }
}

/// A JWKS document holding `keys`.
pub fn jwks(keys: &[TestKey]) -> String {
    json!({ "keys": keys.iter().map(TestKey::jwk).collect::<Vec<_>>() }).to_string()
}

pub fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with a hand-made header and signature (for `alg: none` and friends).
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(signature))
}

/// HS256 over `key` (any bytes — e.g. a public key, for algorithm confusion).
pub fn hs256(key: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(key)).unwrap()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Standard claims valid for an hour.
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({ "sub": sub, "iat": now(), "exp": now() + 3600 });
    if let (Some(m), Value::Object(e)) = (c.as_object_mut(), extra) {
        let e: Map<String, Value> = e;
        m.extend(e);
    }
    c
}
