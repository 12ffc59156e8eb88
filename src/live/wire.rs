//! How a live event travels between processes: a NOTIFY payload (PostgreSQL refuses
//! 8000 bytes or more, so a larger event travels without its row and each listener reads
//! the row once). The entities are storage types; these rows are the stable encoding.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{course, track};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CourseState, LiveEvent, MAX_PAYLOAD, Op};

/// A course row on the wire (the entity is a storage type; this is its stable encoding).
#[derive(Serialize, Deserialize)]
struct CourseRow {
    id: Uuid,
    org: Uuid,
    instructor: Option<Uuid>,
    title: String,
    description: Option<String>,
    category: Option<String>,
    difficulty: String,
    duration: Option<f64>,
    unit: Option<String>,
    price: String,
    published: bool,
    metadata: Option<serde_json::Value>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl From<&course::Model> for CourseRow {
    fn from(c: &course::Model) -> Self {
        Self {
            id: c.id,
            org: c.organization_id,
            instructor: c.instructor_id,
            title: c.title.clone(),
            description: c.description.clone(),
            category: c.category.clone(),
            difficulty: sea_orm::ActiveEnum::to_value(&c.difficulty_level),
            duration: c.estimated_duration,
            unit: c.duration_unit.clone(),
            price: c.price.to_string(),
            published: c.is_published,
            metadata: c.metadata.clone(),
            created: c.created_at,
            updated: c.updated_at,
        }
    }
}

impl CourseRow {
    fn into_model(self) -> Option<course::Model> {
        Some(course::Model {
            id: self.id,
            organization_id: self.org,
            instructor_id: self.instructor,
            title: self.title,
            description: self.description,
            category: self.category,
            difficulty_level: sea_orm::ActiveEnum::try_from_value(&self.difficulty).ok()?,
            estimated_duration: self.duration,
            duration_unit: self.unit,
            price: self.price.parse::<Decimal>().ok()?,
            is_published: self.published,
            metadata: self.metadata,
            created_at: self.created,
            updated_at: self.updated,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct TrackRow {
    id: Uuid,
    org: Uuid,
    course: Uuid,
    name: String,
    description: Option<String>,
    position: i32,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl From<&track::Model> for TrackRow {
    fn from(t: &track::Model) -> Self {
        Self {
            id: t.id,
            org: t.organization_id,
            course: t.course_id,
            name: t.name.clone(),
            description: t.description.clone(),
            position: t.position,
            created: t.created_at,
            updated: t.updated_at,
        }
    }
}

impl From<TrackRow> for track::Model {
    fn from(t: TrackRow) -> Self {
        Self {
            id: t.id,
            organization_id: t.org,
            course_id: t.course,
            name: t.name,
            description: t.description,
            position: t.position,
            created_at: t.created,
            updated_at: t.updated,
        }
    }
}

/// A notification's payload: the event, with its row unless that would not fit.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum Wire {
    #[serde(rename = "c")]
    Course {
        op: Op,
        org: Uuid,
        id: Uuid,
        before: Option<CourseState>,
        row: Option<CourseRow>,
        /// The row was left out for size: read it.
        #[serde(default)]
        fetch: bool,
    },
    #[serde(rename = "t")]
    Track {
        op: Op,
        org: Uuid,
        course: Uuid,
        id: Uuid,
        row: Option<TrackRow>,
        #[serde(default)]
        fetch: bool,
    },
}

pub(super) fn encode(e: &LiveEvent) -> String {
    let wire = |with_row: bool| match e {
        LiveEvent::Course { op, organization_id, course_id, before, after } => Wire::Course {
            op: *op,
            org: *organization_id,
            id: *course_id,
            before: *before,
            row: after.as_deref().filter(|_| with_row).map(CourseRow::from),
            fetch: !with_row && after.is_some(),
        },
        LiveEvent::Track { op, organization_id, course_id, track_id, after } => Wire::Track {
            op: *op,
            org: *organization_id,
            course: *course_id,
            id: *track_id,
            row: after.as_deref().filter(|_| with_row).map(TrackRow::from),
            fetch: !with_row && after.is_some(),
        },
    };
    let full = serde_json::to_string(&wire(true)).unwrap_or_default();
    if full.len() <= MAX_PAYLOAD { full } else { serde_json::to_string(&wire(false)).unwrap_or_default() }
}

/// A decoded notification: the event, and whether its row must still be read.
pub struct Decoded {
    pub event: LiveEvent,
    pub fetch: bool,
}

pub fn decode(payload: &str) -> Option<Decoded> {
    Some(match serde_json::from_str::<Wire>(payload).ok()? {
        Wire::Course { op, org, id, before, row, fetch } => Decoded {
            event: LiveEvent::Course {
                op,
                organization_id: org,
                course_id: id,
                before,
                after: match row {
                    Some(r) => Some(Arc::new(r.into_model()?)),
                    None => None,
                },
            },
            fetch,
        },
        Wire::Track { op, org, course, id, row, fetch } => Decoded {
            event: LiveEvent::Track {
                op,
                organization_id: org,
                course_id: course,
                track_id: id,
                after: row.map(|r| Arc::new(r.into())),
            },
            fetch,
        },
    })
}
