//! Relay connections (`edges { cursor node }`, `pageInfo`, `totalCount`) with keyset
//! pagination: courses by (title, id), members by (joinedAt, id). Cursors are opaque.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use entity::{course, membership};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{course::Course, membership::Membership, scalars::Difficulty};
use crate::{
    authz::scope,
    error::{AppError, AppResult},
    graphql::{context::ContextExt, loaders::TrackColumns, validate},
};

/// Pagination state of a page.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

fn encode_cursor<T: Serialize>(kind: &str, key: T) -> String {
    let json = serde_json::to_vec(&(kind, key)).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor<T: DeserializeOwned>(kind: &str, cursor: &str) -> AppResult<T> {
    let bad = || AppError::bad_input("after", "`after` is not a cursor of this list");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    let (k, key): (String, T) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if k != kind {
        return Err(bad());
    }
    Ok(key)
}

fn page_info(cursors: &[String], has_next: bool, after: bool) -> PageInfo {
    PageInfo {
        has_next_page: has_next,
        has_previous_page: after,
        start_cursor: cursors.first().cloned(),
        end_cursor: cursors.last().cloned(),
    }
}

/// Which courses to list.
#[derive(InputObject, Clone, Debug, Default)]
pub struct CourseFilter {
    /// Only published (`true`) or only unpublished (`false`) courses; drafts are only
    /// ever listed for roles that may read them.
    pub published: Option<bool>,
    pub difficulty: Option<Difficulty>,
    /// Case-insensitive substring of the title.
    pub search: Option<String>,
}

/// A page of courses.
pub struct CourseConnection {
    edges: Vec<Arc<course::Model>>,
    has_next: bool,
    has_previous: bool,
    /// The filtered, tenant-scoped query without paging, for `totalCount`.
    base: Select<course::Entity>,
}

/// A course and its cursor.
pub struct CourseEdge {
    node: Arc<course::Model>,
}

fn course_cursor(c: &course::Model) -> String {
    encode_cursor("course", (&c.title, c.id))
}

#[Object]
impl CourseEdge {
    // Computed only when asked for.
    async fn cursor(&self) -> String {
        course_cursor(&self.node)
    }

    async fn node(&self) -> Course {
        Course(self.node.clone())
    }
}

#[Object]
impl CourseConnection {
    async fn edges(&self) -> Vec<CourseEdge> {
        self.edges.iter().map(|n| CourseEdge { node: n.clone() }).collect()
    }

    /// The courses of this page, without cursors.
    async fn nodes(&self) -> Vec<Course> {
        self.edges.iter().map(|n| Course(n.clone())).collect()
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            has_previous_page: self.has_previous,
            start_cursor: self.edges.first().map(|c| course_cursor(c)),
            end_cursor: self.edges.last().map(|c| course_cursor(c)),
        }
    }

    /// All courses matching the filter (every page).
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i32> {
        let n = self.base.clone().count(ctx.db()?).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// Lists courses of `orgs` (already known to be readable by the viewer) — the SQL
/// carries the viewer's scope as well, so a wrong `orgs` still leaks nothing.
pub async fn course_page(
    ctx: &Context<'_>,
    orgs: Condition,
    first: i32,
    after: Option<&str>,
    filter: Option<&CourseFilter>,
) -> AppResult<CourseConnection> {
    let viewer = ctx.viewer()?;
    let loaders = ctx.loaders()?;
    let limit = validate::first(first, loaders.max_page_size)?;
    let after_key: Option<(String, Uuid)> = after.map(|a| decode_cursor("course", a)).transpose()?;

    let mut base = course::Entity::find().filter(scope::courses(viewer.as_ref())).filter(orgs);
    if let Some(f) = filter {
        if let Some(p) = f.published {
            base = base.filter(course::Column::IsPublished.eq(p));
        }
        if let Some(d) = f.difficulty {
            base = base.filter(course::Column::DifficultyLevel.eq(d));
        }
        if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let s = validate::text("filter.search", s, 1, 500)?;
            let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_").to_lowercase();
            base = base.filter(
                Expr::expr(Func::lower(Expr::col(course::Column::Title)))
                    .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            );
        }
    }
    let mut page = base.clone();
    if let Some((title, id)) = &after_key {
        page = page.filter(
            Condition::any()
                .add(course::Column::Title.gt(title.as_str()))
                .add(Condition::all().add(course::Column::Title.eq(title.as_str())).add(course::Column::Id.gt(*id))),
        );
    }
    // Look ahead: what will the page's courses be asked for?
    let look = ctx.look_ahead();
    let wants = |f: &str| look.field("nodes").field(f).exists() || look.field("edges").field("node").field(f).exists();
    let page = page.order_by_asc(course::Column::Title).order_by_asc(course::Column::Id).limit(limit + 1);
    let db = ctx.db()?;
    // Tracks read whole only when the query asks one of the fields a partial track lacks
    // (a miss here costs a statement later, never a wrong answer: see `Track::partial`).
    let track_columns = wants("tracks").then(|| {
        let whole = super::track::PARTIAL_FIELDS.iter().any(|f| {
            look.field("nodes").field("tracks").field(f).exists()
                || look.field("edges").field("node").field("tracks").field(f).exists()
        });
        if whole { TrackColumns::All } else { TrackColumns::Partial }
    });
    // On SQLite the tracks ride along in the page's own statement (see `embedded`); on
    // PostgreSQL a second, batched statement is cheaper (both measured, BENCHMARKS.md).
    let embed = track_columns.filter(|_| db.backend() == sea_orm::DbBackend::Sqlite);
    let (mut rows, mut tracks) = match embed {
        Some(columns) => super::embedded::courses_with_tracks(db, page, columns).await?,
        None => (super::embedded::page(db, page).await?, Vec::new()),
    };
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    tracks.truncate(limit as usize);
    let edges: Vec<Arc<course::Model>> = rows.into_iter().map(Arc::new).collect();
    if !tracks.is_empty() {
        let by_course = edges.iter().zip(tracks).map(|(c, t)| (c.id, Arc::new(t)));
        loaders.tracks_by_course.feed_many(by_course).await;
    }
    loaders.prefetch_for_courses(&edges, track_columns.filter(|_| embed.is_none()), wants("instructor")).await?;
    Ok(CourseConnection { edges, has_next, has_previous: after_key.is_some(), base })
}

/// A page of an organization's members.
pub struct MembershipConnection {
    edges: Vec<(String, Membership)>,
    page_info: PageInfo,
    base: Select<membership::Entity>,
}

/// A membership and its cursor.
pub struct MembershipEdge {
    cursor: String,
    node: Membership,
}

#[Object]
impl MembershipEdge {
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    async fn node(&self) -> &Membership {
        &self.node
    }
}

#[Object]
impl MembershipConnection {
    async fn edges(&self) -> Vec<MembershipEdge> {
        self.edges.iter().map(|(c, n)| MembershipEdge { cursor: c.clone(), node: n.clone() }).collect()
    }

    /// The memberships of this page, without cursors.
    async fn nodes(&self) -> Vec<Membership> {
        self.edges.iter().map(|(_, n)| n.clone()).collect()
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// All memberships matching (every page).
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i32> {
        let n = self.base.clone().count(ctx.db()?).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// Lists the members of `org` (READ_MEMBERS already granted), by (joinedAt, id).
pub async fn member_page(
    ctx: &Context<'_>,
    org: Uuid,
    first: i32,
    after: Option<&str>,
    include_inactive: bool,
) -> AppResult<MembershipConnection> {
    let viewer = ctx.viewer()?;
    let limit = validate::first(first, ctx.loaders()?.max_page_size)?;
    let after_key: Option<(DateTime<Utc>, Uuid)> = after.map(|a| decode_cursor("member", a)).transpose()?;
    let mut base = membership::Entity::find()
        .filter(scope::memberships(viewer.as_ref()))
        .filter(membership::Column::OrganizationId.eq(org));
    if !include_inactive {
        base = base.filter(membership::Column::IsActive.eq(true));
    }
    let mut page = base.clone();
    if let Some((joined, id)) = after_key {
        page = page.filter(
            Condition::any()
                .add(membership::Column::JoinedAt.gt(joined))
                .add(Condition::all().add(membership::Column::JoinedAt.eq(joined)).add(membership::Column::Id.gt(id))),
        );
    }
    let page = page.order_by_asc(membership::Column::JoinedAt).order_by_asc(membership::Column::Id).limit(limit + 1);
    let mut rows = super::embedded::page(ctx.db()?, page).await?;
    let has_next = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let edges: Vec<(String, Membership)> =
        rows.iter().map(|m| (encode_cursor("member", (m.joined_at, m.id)), Membership::from(m))).collect();
    let cursors: Vec<String> = edges.iter().map(|(c, _)| c.clone()).collect();
    Ok(MembershipConnection { page_info: page_info(&cursors, has_next, after_key.is_some()), edges, base })
}

/// One page of a newest-first list (invitations, the audit log): rows ordered by
/// (`ts` DESC, `id` DESC), keyset-paginated with opaque cursors of `kind`.
pub struct NewestFirst<E: EntityTrait> {
    pub edges: Vec<(String, E::Model)>,
    pub page_info: PageInfo,
    /// The filtered, tenant-scoped query without paging, for `totalCount`.
    pub base: Select<E>,
}

impl<E: EntityTrait> NewestFirst<E>
where
    E::Model: Sync,
{
    /// Reads the page of `base` after the cursor `after`.
    #[allow(clippy::too_many_arguments)]
    pub async fn load(
        ctx: &Context<'_>,
        base: Select<E>,
        ts: E::Column,
        id: E::Column,
        kind: &'static str,
        key: impl Fn(&E::Model) -> (DateTime<Utc>, Uuid),
        first: i32,
        after: Option<&str>,
    ) -> AppResult<Self> {
        let limit = validate::first(first, ctx.loaders()?.max_page_size)?;
        let after_key: Option<(DateTime<Utc>, Uuid)> = after.map(|a| decode_cursor(kind, a)).transpose()?;
        let mut page = base.clone();
        if let Some((at, last)) = after_key {
            page = page.filter(Condition::any().add(ts.lt(at)).add(Condition::all().add(ts.eq(at)).add(id.lt(last))));
        }
        let mut rows = page.order_by_desc(ts).order_by_desc(id).limit(limit + 1).all(ctx.db()?).await?;
        let has_next = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let edges: Vec<(String, E::Model)> = rows.into_iter().map(|r| (encode_cursor(kind, key(&r)), r)).collect();
        let cursors: Vec<String> = edges.iter().map(|(c, _)| c.clone()).collect();
        Ok(Self { page_info: page_info(&cursors, has_next, after_key.is_some()), edges, base })
    }

    pub async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i32> {
        let n = self.base.clone().count(ctx.db()?).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

/// Declares the Relay connection and edge types of a [`NewestFirst`] list: `$conn` over
/// rows of `$entity`, shown as `$node` (built by `$make` from a row and the connection).
macro_rules! newest_first_connection {
    ($conn:ident, $edge:ident, $entity:path, $node:ty, $doc:literal) => {
        #[doc = $doc]
        pub struct $conn {
            pub page: $crate::graphql::types::connection::NewestFirst<$entity>,
            pub make: fn(&<$entity as sea_orm::EntityTrait>::Model) -> $node,
        }

        /// A node of the list and its cursor.
        pub struct $edge {
            cursor: String,
            node: $node,
        }

        #[async_graphql::Object]
        impl $edge {
            async fn cursor(&self) -> &str {
                &self.cursor
            }

            async fn node(&self) -> &$node {
                &self.node
            }
        }

        #[async_graphql::Object]
        impl $conn {
            async fn edges(&self) -> Vec<$edge> {
                self.page.edges.iter().map(|(c, r)| $edge { cursor: c.clone(), node: (self.make)(r) }).collect()
            }

            /// The nodes of this page, without cursors.
            async fn nodes(&self) -> Vec<$node> {
                self.page.edges.iter().map(|(_, r)| (self.make)(r)).collect()
            }

            async fn page_info(&self) -> &$crate::graphql::types::connection::PageInfo {
                &self.page.page_info
            }

            /// All matching (every page).
            async fn total_count(&self, ctx: &async_graphql::Context<'_>) -> $crate::error::AppResult<i32> {
                self.page.total_count(ctx).await
            }
        }
    };
}
pub(crate) use newest_first_connection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_typed() {
        let id = Uuid::now_v7();
        let c = encode_cursor("course", ("Rust", id));
        let back: (String, Uuid) = decode_cursor("course", &c).unwrap();
        assert_eq!(back, ("Rust".to_owned(), id));
        assert!(decode_cursor::<(String, Uuid)>("member", &c).is_err());
        assert!(decode_cursor::<(String, Uuid)>("course", "not-a-cursor!").is_err());
        assert!(decode_cursor::<(String, Uuid)>("course", "").is_err());
    }
}
