//! The context cache: a verified identity's user and memberships, kept for a short TTL so
//! a warm request needs no database round trip for identity.
//!
//! Staleness is bounded three ways: entries expire after `COURSEGRAPH_CONTEXT_CACHE_TTL`;
//! every membership, role and organization change made through this server invalidates
//! the affected entries at once; and on PostgreSQL those changes are also published with
//! `pg_notify` and applied by every replica's listener — while a replica's listener is
//! not connected, its cache is bypassed (it may have missed a notification).
//!
//! The same changes are signalled to the live connections of this process
//! ([`ContextCache::signals`]), which re-read their viewer when it is concerned: on SQLite
//! as they happen here, on PostgreSQL as the listener hears them (from every process,
//! this one included), so each is signalled once.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::broadcast;

use uuid::Uuid;

use super::viewer::{MembershipRecord, UserRecord};

pub use crate::db::CHANGES_CHANNEL as CHANNEL;

/// The most entries kept; beyond it, the cache starts over (it only ever saves reads).
const CAPACITY: usize = 100_000;

/// A user and their memberships, as identity resolution loads them.
#[derive(Clone, Debug)]
pub struct Found {
    pub user: UserRecord,
    pub memberships: Vec<MembershipRecord>,
    /// Invitations to the identity's verified email wait to be accepted (provisioning
    /// accepts them, so the warm path must not serve this entry as is).
    pub pending_invitations: bool,
}

pub use crate::db::{Change, change_payload as payload};

/// A change as heard on [`CHANNEL`].
pub fn parse(payload: &str) -> Option<Change> {
    let (kind, id) = payload.split_once(':')?;
    let id = Uuid::parse_str(id).ok()?;
    match kind {
        "user" => Some(Change::User(id)),
        "org" => Some(Change::Organization(id)),
        _ => None,
    }
}

struct Entry {
    found: Arc<Found>,
    at: Instant,
}

/// What live connections hear about viewers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Changed(Change),
    /// Changes may have been missed (the listener reconnected): re-read every viewer.
    Resync,
}

pub struct ContextCache {
    ttl: Duration,
    /// Off while a PostgreSQL replica's listener is disconnected.
    live: AtomicBool,
    map: Mutex<HashMap<(String, String), Entry>>,
    signals: broadcast::Sender<Signal>,
    /// Whether local changes are signalled as they happen (SQLite) or when the listener
    /// hears them (PostgreSQL).
    signal_local: bool,
}

impl ContextCache {
    /// `ttl` zero disables the cache. `single_process` (SQLite) means the cache may serve
    /// right away and changes are signalled as they happen here; on PostgreSQL replicas
    /// start dark until their listener is up, and the listener signals.
    pub fn new(ttl: Duration, single_process: bool) -> Self {
        Self {
            ttl,
            live: AtomicBool::new(single_process),
            map: Mutex::new(HashMap::new()),
            signals: broadcast::channel(4096).0,
            signal_local: single_process,
        }
    }

    /// Context changes, for live connections.
    pub fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// A change another process (or this one, on PostgreSQL) committed, as the listener heard it.
    pub fn heard(&self, change: Change) {
        self.drop_entries(change);
        let _ = self.signals.send(Signal::Changed(change));
    }

    /// The listener (re)connected: whatever was missed, start over.
    pub fn resync(&self) {
        self.clear();
        self.set_live(true);
        let _ = self.signals.send(Signal::Resync);
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, issuer: &str, subject: &str) -> Option<Arc<Found>> {
        if !self.enabled() || !self.live.load(Ordering::Acquire) {
            return None;
        }
        let key = (issuer.to_owned(), subject.to_owned());
        let map = self.map();
        map.get(&key).filter(|e| e.at.elapsed() < self.ttl).map(|e| e.found.clone())
    }

    pub fn put(&self, issuer: &str, subject: &str, found: Arc<Found>) {
        if !self.enabled() {
            return;
        }
        let mut map = self.map();
        if map.len() >= CAPACITY {
            let ttl = self.ttl;
            map.retain(|_, e| e.at.elapsed() < ttl);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert((issuer.to_owned(), subject.to_owned()), Entry { found, at: Instant::now() });
    }

    /// Drops every entry `change` (made by this process) could make wrong.
    pub fn invalidate(&self, change: Change) {
        self.drop_entries(change);
        if self.signal_local {
            let _ = self.signals.send(Signal::Changed(change));
        }
    }

    fn drop_entries(&self, change: Change) {
        if !self.enabled() {
            return;
        }
        self.map().retain(|_, e| match change {
            Change::User(id) => e.found.user.id != id,
            Change::Organization(id) => !e.found.memberships.iter().any(|m| m.organization_id == id),
        });
    }

    pub fn clear(&self) {
        self.map().clear();
    }

    /// Whether this process hears every change: always on SQLite; on PostgreSQL while its
    /// listener is connected (and so receiving live events too).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub fn set_live(&self, live: bool) {
        if !live {
            self.clear();
        }
        self.live.store(live, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn found(user: Uuid, orgs: &[Uuid]) -> Arc<Found> {
        Arc::new(Found {
            user: UserRecord {
                id: user,
                email: None,
                name: None,
                avatar_url: None,
                email_verified: false,
                last_login_at: None,
                created_at: Utc::now(),
            },
            memberships: orgs
                .iter()
                .map(|o| {
                    MembershipRecord::new(
                        crate::auth::viewer::MembershipRow {
                            id: Uuid::now_v7(),
                            role: crate::authz::Role::Member,
                            is_active: true,
                            joined_at: Utc::now(),
                        },
                        entity::organization::Model {
                            id: *o,
                            external_id: None,
                            name: "S".into(),
                            slug: "s".into(),
                            storage_bucket: "org-s".into(),
                            created_at: Utc::now(),
                            updated_at: Utc::now(),
                        },
                        Vec::new(),
                        Vec::new(),
                        &crate::authz::roles::Policy::default(),
                    )
                })
                .collect(),
            pending_invitations: false,
        })
    }

    #[test]
    fn hits_expire_and_invalidate() {
        let (u1, u2, o) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let c = ContextCache::new(Duration::from_secs(60), true);
        c.put("i", "a", found(u1, &[o]));
        c.put("i", "b", found(u2, &[]));
        assert!(c.get("i", "a").is_some());
        c.invalidate(Change::Organization(o));
        assert!(c.get("i", "a").is_none(), "a member of the changed organization");
        assert!(c.get("i", "b").is_some());
        c.invalidate(Change::User(u2));
        assert!(c.get("i", "b").is_none());

        let short = ContextCache::new(Duration::from_millis(1), true);
        short.put("i", "a", found(u1, &[]));
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get("i", "a").is_none(), "expired");

        let dark = ContextCache::new(Duration::from_secs(60), false);
        dark.put("i", "a", found(u1, &[]));
        assert!(dark.get("i", "a").is_none(), "not live");
        let off = ContextCache::new(Duration::ZERO, true);
        off.put("i", "a", found(u1, &[]));
        assert!(off.get("i", "a").is_none());
    }

    #[test]
    fn payloads_round_trip() {
        let id = Uuid::now_v7();
        for c in [Change::User(id), Change::Organization(id)] {
            assert_eq!(parse(&payload(c)), Some(c));
        }
        assert_eq!(parse("nonsense"), None);
    }
}
