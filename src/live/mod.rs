//! Live updates: the changes subscriptions hear about, and how they travel.
//!
//! A mutation describes what it changed as [`LiveEvent`]s. On PostgreSQL it announces
//! them with `pg_notify` inside its own transaction — so nothing is announced unless it
//! commits, and notifications arrive in commit order — and every server process's
//! listener ([`listen`]) hands them to its [`Bus`]. On SQLite (one process) they go
//! straight to the bus after the commit. The bus fans each event out to the subscribers
//! of its organization; each subscriber decides, with the viewer's role at delivery time,
//! what (if anything) the event means to them (`graphql::subscription`).

pub mod listen;
pub mod share;
mod wire;

use wire::encode;
pub use wire::{Decoded, decode};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use entity::{course, track};
use sea_orm::DbBackend;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The PostgreSQL channel live events travel on.
pub const CHANNEL: &str = "coursegraph_live";

/// PostgreSQL refuses notification payloads of 8000 bytes or more: a larger event travels
/// without its row, which each process's listener then reads once.
const MAX_PAYLOAD: usize = 7900;

/// Events a subscriber may fall behind by before it misses some (at-most-once delivery).
const TOPIC_CAPACITY: usize = 1024;

/// What a running subscription watches, once its resolver has checked it may.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LiveTarget {
    pub organization_id: Uuid,
    /// For `trackChanges`: the course.
    pub course_id: Option<Uuid>,
}

/// What happened to a row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "c")]
    Created,
    #[serde(rename = "u")]
    Updated,
    #[serde(rename = "d")]
    Deleted,
}

/// What decides whether a course is readable, as it was before a change.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseState {
    #[serde(rename = "p")]
    pub is_published: bool,
    #[serde(rename = "i")]
    pub instructor_id: Option<Uuid>,
}

impl CourseState {
    pub fn of(c: &course::Model) -> Self {
        Self { is_published: c.is_published, instructor_id: c.instructor_id }
    }
}

/// One committed change, as subscribers hear of it.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveEvent {
    Course {
        op: Op,
        organization_id: Uuid,
        course_id: Uuid,
        /// The course before the change (none when it was created).
        before: Option<CourseState>,
        /// The course after the change (none when it was deleted).
        after: Option<Arc<course::Model>>,
    },
    Track {
        op: Op,
        organization_id: Uuid,
        course_id: Uuid,
        track_id: Uuid,
        /// The track after the change (none when it was deleted).
        after: Option<Arc<track::Model>>,
    },
}

impl LiveEvent {
    pub fn organization_id(&self) -> Uuid {
        match self {
            LiveEvent::Course { organization_id, .. } | LiveEvent::Track { organization_id, .. } => *organization_id,
        }
    }

    pub fn course_created(c: &course::Model) -> Self {
        LiveEvent::Course {
            op: Op::Created,
            organization_id: c.organization_id,
            course_id: c.id,
            before: None,
            after: Some(Arc::new(c.clone())),
        }
    }

    pub fn course_updated(before: &course::Model, after: &course::Model) -> Self {
        LiveEvent::Course {
            op: Op::Updated,
            organization_id: after.organization_id,
            course_id: after.id,
            before: Some(CourseState::of(before)),
            after: Some(Arc::new(after.clone())),
        }
    }

    pub fn course_deleted(before: &course::Model) -> Self {
        LiveEvent::Course {
            op: Op::Deleted,
            organization_id: before.organization_id,
            course_id: before.id,
            before: Some(CourseState::of(before)),
            after: None,
        }
    }

    pub fn track(op: Op, t: &track::Model) -> Self {
        LiveEvent::Track {
            op,
            organization_id: t.organization_id,
            course_id: t.course_id,
            track_id: t.id,
            after: (op != Op::Deleted).then(|| Arc::new(t.clone())),
        }
    }
}

/// How `events` are announced on PostgreSQL, inside the writing transaction: listeners
/// hear of them only if it commits ([`crate::db::notes::send`]). SQLite's bus delivers
/// them itself (see [`Bus::committed`]).
pub fn notes(events: &[LiveEvent]) -> Vec<crate::db::notes::Note> {
    events.iter().map(|e| (CHANNEL, encode(e))).collect()
}

/// Subscribers by organization: one broadcast topic per organization with a listener.
pub struct Bus {
    topics: Mutex<HashMap<Uuid, broadcast::Sender<Arc<LiveEvent>>>>,
    /// SQLite: this process is the only writer, events are sent after commit.
    local: bool,
}

impl Bus {
    pub fn new(backend: DbBackend) -> Self {
        Self { topics: Mutex::new(HashMap::new()), local: backend != DbBackend::Postgres }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, broadcast::Sender<Arc<LiveEvent>>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Listens to the events of `organization`.
    pub fn subscribe(&self, organization: Uuid) -> broadcast::Receiver<Arc<LiveEvent>> {
        let mut topics = self.topics();
        // Forget topics nobody listens to any more (their subscriptions ended).
        if topics.len() > 64 {
            topics.retain(|_, t| t.receiver_count() > 0);
        }
        topics.entry(organization).or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0).subscribe()
    }

    /// Delivers an event to this process's subscribers of its organization.
    pub fn deliver(&self, event: LiveEvent) {
        let org = event.organization_id();
        let topics = self.topics();
        if let Some(t) = topics.get(&org) {
            // An error only means nobody is listening right now.
            let _ = t.send(Arc::new(event));
        }
    }

    /// After a commit: on SQLite, delivers `events` here (on PostgreSQL the listener
    /// delivers them, to every process, from the notifications sent in the transaction).
    pub fn committed(&self, events: Vec<LiveEvent>) {
        if self.local {
            events.into_iter().for_each(|e| self.deliver(e));
        }
    }

    /// Subscribers listening in this process (for metrics).
    pub fn subscribers(&self) -> usize {
        self.topics().values().map(|t| t.receiver_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use rust_decimal::Decimal;

    fn course(description: &str) -> course::Model {
        let now = Utc::now();
        course::Model {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            instructor_id: Some(Uuid::now_v7()),
            title: "Rust".into(),
            description: Some(description.into()),
            category: None,
            difficulty_level: entity::Difficulty::Advanced,
            estimated_duration: Some(1.5),
            duration_unit: Some("h".into()),
            price: Decimal::new(4990, 2),
            is_published: true,
            metadata: Some(serde_json::json!({ "k": [1, 2] })),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn events_round_trip_through_notification_payloads() {
        let before = course("old");
        let mut after = before.clone();
        after.is_published = false;
        for e in [
            LiveEvent::course_created(&before),
            LiveEvent::course_updated(&before, &after),
            LiveEvent::course_deleted(&before),
        ] {
            let d = decode(&encode(&e)).unwrap();
            assert!(!d.fetch);
            assert_eq!(d.event, e);
        }
        let t = track::Model {
            id: Uuid::now_v7(),
            organization_id: before.organization_id,
            course_id: before.id,
            name: "One".into(),
            description: None,
            position: 3,
            created_at: before.created_at,
            updated_at: before.updated_at,
        };
        for op in [Op::Created, Op::Updated, Op::Deleted] {
            let e = LiveEvent::track(op, &t);
            assert_eq!(decode(&encode(&e)).unwrap().event, e);
        }
    }

    #[test]
    fn a_row_too_large_for_a_notification_travels_without_it() {
        let big = course(&"x".repeat(10_000));
        let payload = encode(&LiveEvent::course_created(&big));
        assert!(payload.len() < MAX_PAYLOAD, "{}", payload.len());
        let d = decode(&payload).unwrap();
        assert!(d.fetch);
        let LiveEvent::Course { after, course_id, .. } = d.event else { panic!() };
        assert!(after.is_none());
        assert_eq!(course_id, big.id);
    }

    #[test]
    fn the_bus_delivers_to_the_event_s_organization_only() {
        let bus = Bus::new(DbBackend::Sqlite);
        let c = course("d");
        let mut mine = bus.subscribe(c.organization_id);
        let mut other = bus.subscribe(Uuid::now_v7());
        bus.committed(vec![LiveEvent::course_created(&c)]);
        assert!(matches!(mine.try_recv().as_deref(), Ok(LiveEvent::Course { op: Op::Created, .. })));
        assert!(other.try_recv().is_err());
        let pg = Bus::new(DbBackend::Postgres);
        let mut r = pg.subscribe(c.organization_id);
        pg.committed(vec![LiveEvent::course_created(&c)]);
        assert!(r.try_recv().is_err(), "on PostgreSQL only the listener delivers");
    }
}
