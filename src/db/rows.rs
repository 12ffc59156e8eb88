//! Decoding the rows every read goes through (organizations, courses, tracks, memberships) by column
//! position instead of by name.
//!
//! Why: sea-orm's derived `FromQueryResult` finds each column by a formatted name (a
//! `format!` and a hashed lookup per value) and formats an error message for every NULL
//! it meets before turning it into `None`. On W1 that was about a tenth of a request's
//! instructions (BENCHMARKS.md). Here each value is read with the same sqlx decoder
//! sea-orm would use (`try_get::<Option<T>>`), only by index.
//!
//! The selects are the entity's own (`Entity::find()`: every column, in `Column` order),
//! and each decoder lists the columns it expects in that order; a unit test holds the two
//! together, and a model gaining a field stops the struct literals below from compiling.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{course, membership, organization, track};
use rust_decimal::Decimal;
use sea_orm::{ActiveEnum, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryResult, QueryTrait, Select};
use sqlx::{Postgres, Row as _, Sqlite};

/// A model that can be read from a row of its entity's default select.
pub trait Positional: Sized {
    /// The columns, in select order (checked against the entity by a unit test).
    const COLUMNS: &'static [&'static str];
    fn read(cols: &mut Cols<'_>) -> Result<Self, DbErr>;
}

enum RowRef<'a> {
    Sqlite(&'a sqlx::sqlite::SqliteRow),
    Postgres(&'a sqlx::postgres::PgRow),
}

/// A cursor over one row's columns.
pub struct Cols<'a> {
    row: RowRef<'a>,
    next: usize,
}

/// A value type both backends decode.
pub trait Both:
    for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

impl<T> Both for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

impl<'a> Cols<'a> {
    pub fn new(row: &'a QueryResult) -> Result<Self, DbErr> {
        let row = if let Some(r) = row.try_as_sqlite_row() {
            RowRef::Sqlite(r)
        } else if let Some(r) = row.try_as_pg_row() {
            RowRef::Postgres(r)
        } else {
            return Err(DbErr::Custom("rows: unsupported database row".into()));
        };
        Ok(Self { row, next: 0 })
    }

    /// Skips to column `at` (for a select that starts with other columns).
    pub fn at(mut self, at: usize) -> Self {
        self.next = at;
        self
    }

    fn index(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    /// The next column, NULL as `None`.
    pub fn opt<T: Both>(&mut self) -> Result<Option<T>, DbErr> {
        let i = self.index();
        match self.row {
            RowRef::Sqlite(r) => r.try_get::<Option<T>, usize>(i),
            RowRef::Postgres(r) => r.try_get::<Option<T>, usize>(i),
        }
        .map_err(|e| DbErr::Type(format!("column {i}: {e}")))
    }

    /// The next column, which must not be NULL.
    pub fn req<T: Both>(&mut self, what: &'static str) -> Result<T, DbErr> {
        self.opt()?.ok_or_else(|| DbErr::Type(format!("{what} is NULL")))
    }

    /// A NUMERIC column: SQLite hands it over as a float, as sea-orm reads it there.
    pub fn decimal(&mut self, what: &'static str) -> Result<Decimal, DbErr> {
        let i = self.index();
        match self.row {
            RowRef::Sqlite(r) => {
                let v: Option<f64> = r.try_get(i).map_err(|e| DbErr::Type(format!("{what}: {e}")))?;
                Decimal::try_from(v.ok_or_else(|| DbErr::Type(format!("{what} is NULL")))?)
                    .map_err(|e| DbErr::Type(format!("{what}: {e}")))
            }
            RowRef::Postgres(r) => r
                .try_get::<Option<Decimal>, usize>(i)
                .map_err(|e| DbErr::Type(format!("{what}: {e}")))?
                .ok_or_else(|| DbErr::Type(format!("{what} is NULL"))),
        }
    }

    /// A string-backed enum column.
    pub fn enumeration<E: ActiveEnum<Value = String>>(&mut self, what: &'static str) -> Result<E, DbErr> {
        let s: String = self.req(what)?;
        E::try_from_value(&s).map_err(|e| DbErr::Type(format!("{what}: {e}")))
    }

    /// A timestamp. SQLite keeps them as RFC 3339 text, read here without chrono's general
    /// parser when it has the shape the server writes (sqlx's decoder otherwise).
    pub fn timestamp(&mut self, what: &'static str) -> Result<DateTime<Utc>, DbErr> {
        if let RowRef::Sqlite(r) = self.row
            && let Ok(Some(t)) = r.try_get::<Option<&str>, usize>(self.next).map(|s| s.and_then(utc_timestamp))
        {
            self.next += 1;
            return Ok(t);
        }
        self.req(what)
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](+00:00|Z)`, the UTC form sqlx writes; `None`
/// for anything else (other offsets, leap seconds, other layouts), which callers hand to
/// a general parser.
pub fn utc_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |v, &c| c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0')))
    };
    let mut i = 19;
    let mut nanos = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start, i)? * 10u32.pow((9 - digits) as u32);
    }
    if !matches!(&b[i..], b"+00:00" | b"Z") {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, nanos)?;
    Some(date.and_time(time).and_utc())
}

impl Positional for organization::Model {
    const COLUMNS: &'static [&'static str] =
        &["id", "external_id", "name", "slug", "storage_bucket", "created_at", "updated_at"];

    fn read(c: &mut Cols<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: c.req("organizations.id")?,
            external_id: c.opt()?,
            name: c.req("organizations.name")?,
            slug: c.req("organizations.slug")?,
            storage_bucket: c.req("organizations.storage_bucket")?,
            created_at: c.timestamp("organizations.created_at")?,
            updated_at: c.timestamp("organizations.updated_at")?,
        })
    }
}

impl Positional for course::Model {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "organization_id",
        "instructor_id",
        "title",
        "description",
        "category",
        "difficulty_level",
        "estimated_duration",
        "duration_unit",
        "price",
        "is_published",
        "metadata",
        "created_at",
        "updated_at",
    ];

    fn read(c: &mut Cols<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: c.req("courses.id")?,
            organization_id: c.req("courses.organization_id")?,
            instructor_id: c.opt()?,
            title: c.req("courses.title")?,
            description: c.opt()?,
            category: c.opt()?,
            difficulty_level: c.enumeration("courses.difficulty_level")?,
            estimated_duration: c.opt()?,
            duration_unit: c.opt()?,
            price: c.decimal("courses.price")?,
            is_published: c.req("courses.is_published")?,
            metadata: c.opt()?,
            created_at: c.timestamp("courses.created_at")?,
            updated_at: c.timestamp("courses.updated_at")?,
        })
    }
}

impl Positional for track::Model {
    const COLUMNS: &'static [&'static str] =
        &["id", "organization_id", "course_id", "name", "description", "position", "created_at", "updated_at"];

    fn read(c: &mut Cols<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: c.req("tracks.id")?,
            organization_id: c.req("tracks.organization_id")?,
            course_id: c.req("tracks.course_id")?,
            name: c.req("tracks.name")?,
            description: c.opt()?,
            position: c.req("tracks.position")?,
            created_at: c.timestamp("tracks.created_at")?,
            updated_at: c.timestamp("tracks.updated_at")?,
        })
    }
}

impl Positional for membership::Model {
    const COLUMNS: &'static [&'static str] =
        &["id", "user_id", "organization_id", "role", "is_active", "joined_at", "updated_at"];

    fn read(c: &mut Cols<'_>) -> Result<Self, DbErr> {
        Ok(Self {
            id: c.req("memberships.id")?,
            user_id: c.req("memberships.user_id")?,
            organization_id: c.req("memberships.organization_id")?,
            role: c.enumeration("memberships.role")?,
            is_active: c.req("memberships.is_active")?,
            joined_at: c.timestamp("memberships.joined_at")?,
            updated_at: c.timestamp("memberships.updated_at")?,
        })
    }
}

/// The columns of a partial track (`graphql::types::track::Track::partial`), in order.
pub const PARTIAL_TRACK_COLUMNS: [track::Column; 5] = [
    track::Column::Id,
    track::Column::OrganizationId,
    track::Column::CourseId,
    track::Column::Name,
    track::Column::Position,
];

/// Reads a row of [`PARTIAL_TRACK_COLUMNS`]. The columns not read get placeholders (no
/// description, the epoch), which the API never shows: a partial track fetches its whole
/// row before answering those fields.
pub fn partial_track(row: &QueryResult) -> Result<track::Model, DbErr> {
    let c = &mut Cols::new(row)?;
    Ok(track::Model {
        id: c.req("tracks.id")?,
        organization_id: c.req("tracks.organization_id")?,
        course_id: c.req("tracks.course_id")?,
        name: c.req("tracks.name")?,
        position: c.req("tracks.position")?,
        description: None,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    })
}

/// Reads one row of `M`'s default select.
pub fn read<M: Positional>(row: &QueryResult) -> Result<M, DbErr> {
    M::read(&mut Cols::new(row)?)
}

/// Runs `select` (its entity's default columns, any filters, order and limit) and reads
/// every row by position. A small validated `LIMIT` becomes a literal on SQLite (see
/// [`literal_limit`]).
pub async fn all<E>(db: &impl ConnectionTrait, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: Positional,
{
    let stmt = literal_limit(select.build(db.get_database_backend()));
    let rows = db.query_all_raw(stmt).await?;
    rows.iter().map(read).collect()
}

/// [`all`], each row in an `Arc` (what the loaders hand out).
pub async fn all_arc<E>(db: &impl ConnectionTrait, select: Select<E>) -> Result<Vec<Arc<E::Model>>, DbErr>
where
    E: EntityTrait,
    E::Model: Positional,
{
    Ok(all(db, select).await?.into_iter().map(Arc::new).collect())
}

/// Rewrites a trailing `LIMIT ?` (SQLite) into a literal: a bound `LIMIT ?` makes SQLite
/// re-prepare the statement on every run (its planner keys on the limit's value). The
/// value is a validated page size, never text from a client.
pub fn literal_limit(mut stmt: sea_orm::Statement) -> sea_orm::Statement {
    use sea_orm::{Value, Values};
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

#[cfg(test)]
mod tests {
    use sea_orm::{ColumnTrait, Iterable, QueryFilter, QuerySelect, sea_query::Iden};

    use super::*;

    fn names<C: Iterable + Iden>() -> Vec<String> {
        C::iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn decoders_follow_the_entities_column_order() {
        assert_eq!(names::<organization::Column>(), organization::Model::COLUMNS);
        assert_eq!(names::<course::Column>(), course::Model::COLUMNS);
        assert_eq!(names::<track::Column>(), track::Model::COLUMNS);
        assert_eq!(names::<membership::Column>(), membership::Model::COLUMNS);
    }

    #[test]
    fn utc_timestamps_parse_like_chrono() {
        for s in [
            "2024-01-01T01:43:00+00:00",
            "2026-11-22T11:38:00.123456789+00:00",
            "2026-11-22T11:38:00.5Z",
            "1999-12-31T23:59:59.000001+00:00",
        ] {
            let want = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            assert_eq!(utc_timestamp(s), Some(want), "{s}");
        }
        for s in [
            "2024-01-01T01:43:00+02:00",
            "2024-01-01 01:43:00+00:00",
            "2024-02-30T01:43:00+00:00",
            "2024-01-01T01:43:60+00:00",
            "2024-01-01T01:43:00.+00:00",
            "2024-01-01T01:43:00.1234567891+00:00",
            "2024-01-01T01:43:00",
            "2024-01-01T01:43:00+00:00x",
            "２024-01-01T01:43:00+00:00",
        ] {
            assert_eq!(utc_timestamp(s), None, "{s}");
        }
    }

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
