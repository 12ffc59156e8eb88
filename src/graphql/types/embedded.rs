//! Nested rows fetched inside their parent's statement: a page of courses with each
//! course's tracks as one JSON array, so the page costs one statement and the driver
//! moves a value per course instead of a row per track (see BENCHMARKS.md).
//!
//! Used on SQLite, whose driver pays per value moved, so one JSON value per course beats
//! a row per track. On PostgreSQL both JSON (`json_agg`: its timestamp and uuid
//! formatting) and typed arrays (a LATERAL `array_agg` per column) measured slower than
//! a second, batched statement over the binary protocol, so it uses that instead.
//!
//! One more SQLite detail lives here: a bound `LIMIT ?` makes SQLite re-prepare the
//! statement on every run (its planner keys on the limit's value), so page queries
//! carry their small, validated limit as a literal instead.

use chrono::{DateTime, Utc};
use entity::{course, track};
#[cfg(test)]
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sea_orm::{
    ConnectionTrait, DbBackend, FromQueryResult, QuerySelect, QueryTrait, Select, Statement, Value, Values,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Each course's tracks as `[[id, name, description, position, created, updated], …]`.
/// UUIDs are blobs in SQLite, so JSON carries them as hex. No ORDER BY inside the
/// aggregate (a sort per course): the rows are put in order after decoding.
const TRACKS_JSON: &str = r#"(SELECT json_group_array(json_array(lower(hex(t.id)), t.name, t.description, t.position, t.created_at, t.updated_at)) FROM tracks t WHERE t.course_id = "courses"."id")"#;

#[derive(serde::Deserialize)]
struct TrackRow(String, String, Option<String>, i32, String, String);

fn timestamp(s: &str) -> AppResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| AppError::internal(format!("track timestamp `{s}`: {e}")))
}

/// Runs `page` (a tenant-scoped, ordered, limited course query) on SQLite with its
/// tracks embedded. Returns the courses and, in the same order, each one's tracks.
pub async fn courses_with_tracks(
    db: &impl ConnectionTrait,
    page: Select<course::Entity>,
) -> AppResult<(Vec<course::Model>, Vec<Vec<track::Model>>)> {
    let stmt = literal_limit(page.expr_as(Expr::cust(TRACKS_JSON), "tracks_json").build(DbBackend::Sqlite));
    let rows = db.query_all_raw(stmt).await?;
    let mut courses = Vec::with_capacity(rows.len());
    let mut tracks = Vec::with_capacity(rows.len());
    for row in rows {
        let c = course::Model::from_query_result(&row, "")?;
        let json: Option<String> = row.try_get("", "tracks_json")?;
        let list: Vec<TrackRow> = match json.as_deref() {
            None => Vec::new(),
            Some(j) => serde_json::from_str(j).map_err(|e| AppError::internal(format!("tracks json: {e}")))?,
        };
        let mut ts = Vec::with_capacity(list.len());
        for TrackRow(id, name, description, position, created, updated) in list {
            ts.push(track::Model {
                id: Uuid::parse_str(&id).map_err(|e| AppError::internal(format!("track id `{id}`: {e}")))?,
                organization_id: c.organization_id,
                course_id: c.id,
                name,
                description,
                position,
                created_at: timestamp(&created)?,
                updated_at: timestamp(&updated)?,
            });
        }
        ts.sort_by_key(|t| (t.position, t.id));
        courses.push(c);
        tracks.push(ts);
    }
    Ok((courses, tracks))
}

/// Rewrites a trailing `LIMIT ?` (SQLite) into a literal: the value is a validated page
/// size, never text from a client.
pub fn literal_limit(mut stmt: Statement) -> Statement {
    if stmt.db_backend != DbBackend::Sqlite || !stmt.sql.ends_with(" LIMIT ?") {
        return stmt;
    }
    let Some(Values(values)) = stmt.values.as_mut() else { return stmt };
    let limit = match values.last() {
        Some(Value::BigUnsigned(Some(n))) => *n,
        Some(Value::BigInt(Some(n))) if *n >= 0 => *n as u64,
        _ => return stmt,
    };
    values.pop();
    stmt.sql.truncate(stmt.sql.len() - 1);
    stmt.sql.push_str(&limit.to_string());
    stmt
}

/// Runs a page query (with [`literal_limit`]).
pub async fn page<E: sea_orm::EntityTrait>(db: &impl ConnectionTrait, page: Select<E>) -> AppResult<Vec<E::Model>> {
    let stmt = literal_limit(page.build(db.get_database_backend()));
    let rows = db.query_all_raw(stmt).await?;
    rows.iter().map(|r| E::Model::from_query_result(r, "").map_err(AppError::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_becomes_a_literal_on_sqlite_only() {
        let q = course::Entity::find().filter(course::Column::Title.eq("x")).limit(21);
        let s = literal_limit(q.clone().build(DbBackend::Sqlite));
        assert!(s.sql.ends_with(" LIMIT 21"), "{}", s.sql);
        assert_eq!(s.values.unwrap().0.len(), 1);
        let p = literal_limit(q.build(DbBackend::Postgres));
        assert!(p.sql.ends_with(" LIMIT $2"), "{}", p.sql);
    }
}
