//! Nested rows fetched inside their parent's statement: a page of courses with each
//! course's tracks as one JSON array, so the page costs one statement and the driver
//! moves a value per course instead of a row per track (see BENCHMARKS.md).
//!
//! Used on SQLite, whose driver pays per value moved (a copy and a channel hand-off per
//! row), so one JSON value per course beats a row per track. (A length-prefixed packing
//! built with `concat()` instead of JSON measured 2 % more instructions per W1 request:
//! SQLite's `concat` converts and copies each argument twice.) On PostgreSQL both JSON
//! (`json_agg`: its timestamp and uuid formatting) and typed arrays (a LATERAL
//! `array_agg` per column) measured slower than a second, batched statement over the
//! binary protocol, so it uses that instead.
//!
//! Rows are read by position ([`crate::db::rows`]); a small `LIMIT` is a literal on SQLite
//! ([`crate::db::rows::literal_limit`]).

use std::{borrow::Cow, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{course, track};
use sea_orm::{ConnectionTrait, DbBackend, QuerySelect, QueryTrait, Select, sea_query::Expr};
use sqlx::Row as _;
use uuid::Uuid;

use super::track::Track;
use crate::{
    db::rows::{Cols, Positional, literal_limit},
    error::{AppError, AppResult},
    graphql::loaders::TrackColumns,
};

/// Each course's tracks as `[[id, name, description, position, created, updated], …]`.
/// UUIDs are blobs in SQLite, so JSON carries them as hex (upper case: `Uuid::parse_str`
/// takes either, and `lower()` would cost a copy per id). No ORDER BY inside the
/// aggregate (a sort per course): the rows are put in order after decoding.
const TRACKS_JSON: &str = r#"(SELECT json_group_array(json_array(hex(t.id), t.name, t.description, t.position, t.created_at, t.updated_at)) FROM tracks t WHERE t.course_id = "courses"."id")"#;

/// [`TRACKS_JSON`] for partial tracks (`[[id, name, position], …]`, see [`Track::partial`]).
const PARTIAL_TRACKS_JSON: &str = r#"(SELECT json_group_array(json_array(hex(t.id), t.name, t.position)) FROM tracks t WHERE t.course_id = "courses"."id")"#;

/// One track of [`PARTIAL_TRACKS_JSON`].
#[derive(serde::Deserialize)]
struct PartialTrackRow<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>, i32);

/// One track of [`TRACKS_JSON`]; strings are borrowed from the JSON unless they hold escapes.
#[derive(serde::Deserialize)]
struct TrackRow<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    i32,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

fn timestamp(s: &str) -> AppResult<DateTime<Utc>> {
    if let Some(t) = crate::db::rows::utc_timestamp(s) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| AppError::internal(format!("track timestamp `{s}`: {e}")))
}

fn track_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|e| AppError::internal(format!("track id `{id}`: {e}")))
}

/// Runs `page` (a tenant-scoped, ordered, limited course query) on SQLite with its
/// tracks embedded, whole or partial. Returns the courses and, in the same order, each
/// one's tracks.
pub async fn courses_with_tracks(
    db: &impl ConnectionTrait,
    page: Select<course::Entity>,
    columns: TrackColumns,
) -> AppResult<(Vec<course::Model>, Vec<Vec<Track>>)> {
    let embedded = match columns {
        TrackColumns::All => TRACKS_JSON,
        TrackColumns::Partial => PARTIAL_TRACKS_JSON,
    };
    let stmt = literal_limit(page.expr_as(Expr::cust(embedded), "tracks_json").build(DbBackend::Sqlite));
    let rows = db.query_all_raw(stmt).await?;
    let mut courses = Vec::with_capacity(rows.len());
    let mut tracks = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cols = Cols::new(&row)?;
        let c = course::Model::read(&mut cols)?;
        let json: Option<&str> = row
            .try_as_sqlite_row()
            .ok_or_else(|| AppError::internal("tracks json: not a SQLite row"))?
            .try_get(course::Model::COLUMNS.len())
            .map_err(|e| AppError::internal(format!("tracks json: {e}")))?;
        let json = json.unwrap_or("[]");
        let bad = |e: serde_json::Error| AppError::internal(format!("tracks json: {e}"));
        let mut ts = Vec::new();
        match columns {
            TrackColumns::All => {
                let list: Vec<TrackRow> = serde_json::from_str(json).map_err(bad)?;
                for TrackRow(id, name, description, position, created, updated) in list {
                    ts.push(Track::new(Arc::new(track::Model {
                        id: track_id(&id)?,
                        organization_id: c.organization_id,
                        course_id: c.id,
                        name: name.into_owned(),
                        description: description.map(Cow::into_owned),
                        position,
                        created_at: timestamp(&created)?,
                        updated_at: timestamp(&updated)?,
                    })));
                }
            }
            TrackColumns::Partial => {
                let list: Vec<PartialTrackRow> = serde_json::from_str(json).map_err(bad)?;
                for PartialTrackRow(id, name, position) in list {
                    ts.push(Track::partial(Arc::new(track::Model {
                        id: track_id(&id)?,
                        organization_id: c.organization_id,
                        course_id: c.id,
                        name: name.into_owned(),
                        // Placeholders, never shown (see `Track::partial`).
                        description: None,
                        position,
                        created_at: DateTime::<Utc>::UNIX_EPOCH,
                        updated_at: DateTime::<Utc>::UNIX_EPOCH,
                    })));
                }
            }
        }
        ts.sort_by_key(|t| (t.row().position, t.row().id));
        courses.push(c);
        tracks.push(ts);
    }
    Ok((courses, tracks))
}

/// Runs a page query (with [`literal_limit`]), rows read by position.
pub async fn page<E>(db: &impl ConnectionTrait, page: Select<E>) -> AppResult<Vec<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Positional,
{
    Ok(crate::db::rows::all(db, page).await?)
}
