//! Automatic Persisted Queries (Apollo's protocol): a client may send only the SHA-256
//! of a query it sent before. Unknown hashes answer PERSISTED_QUERY_NOT_FOUND, and the
//! client retries with the full text. A bounded LRU keeps the texts.

use std::{num::NonZeroUsize, sync::Mutex};

use async_graphql::{ErrorExtensionValues, Request, ServerError, Value};
use lru::LruCache;
use sha2::{Digest, Sha256};

pub struct ApqStore {
    cache: Option<Mutex<LruCache<String, String>>>,
}

fn err(message: &str, code: &str) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    e
}

impl ApqStore {
    /// `capacity` 0 turns APQ off.
    pub fn new(capacity: usize) -> Self {
        Self { cache: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))) }
    }

    /// Fills in `req.query` from the store, or remembers it. Requests without a
    /// `persistedQuery` extension pass through untouched.
    pub fn resolve(&self, req: &mut Request) -> Result<(), ServerError> {
        let Some(pq) = req.extensions.get("persistedQuery") else { return Ok(()) };
        let Some(cache) = &self.cache else {
            return Err(err("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED"));
        };
        let Value::Object(pq) = pq else {
            return Err(err("persistedQuery must be an object", "BAD_USER_INPUT"));
        };
        match pq.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            _ => return Err(err("Unsupported persisted query version", "BAD_USER_INPUT")),
        }
        let Some(Value::String(hash)) = pq.get("sha256Hash") else {
            return Err(err("persistedQuery.sha256Hash is missing", "BAD_USER_INPUT"));
        };
        let hash = hash.to_ascii_lowercase();
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if req.query.is_empty() {
            match cache.get(&hash) {
                Some(q) => req.query = q.clone(),
                None => return Err(err("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
            }
        } else {
            let actual = hex(&Sha256::digest(req.query.as_bytes()));
            if actual != hash {
                return Err(err("provided sha does not match query", "BAD_USER_INPUT"));
            }
            cache.put(hash, req.query.clone());
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut r = Request::new(query);
        let pq = serde_json::json!({ "version": 1, "sha256Hash": hash });
        r.extensions.insert("persistedQuery".into(), Value::from_json(pq).unwrap());
        r
    }

    #[test]
    fn register_then_use_by_hash() {
        let store = ApqStore::new(2);
        let q = "{ __typename }";
        let h = hex(&Sha256::digest(q.as_bytes()));
        let e = store.resolve(&mut with_hash("", &h)).unwrap_err();
        assert_eq!(e.message, "PersistedQueryNotFound");
        store.resolve(&mut with_hash(q, &h)).unwrap();
        let mut r = with_hash("", &h);
        store.resolve(&mut r).unwrap();
        assert_eq!(r.query, q);
        assert!(store.resolve(&mut with_hash(q, &"0".repeat(64))).is_err(), "hash mismatch");
        assert!(ApqStore::new(0).resolve(&mut with_hash(q, &h)).is_err(), "disabled");
        let mut plain = Request::new(q);
        ApqStore::new(0).resolve(&mut plain).unwrap();
    }
}
