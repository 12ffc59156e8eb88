//! Per-request DataLoaders (never shared between requests: each one's SQL is scoped
//! to its viewer, and its cache must not outlive the request).

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{course, membership, organization, track, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    RelationTrait,
};
use uuid::Uuid;

use super::{context::ViewerCell, types::track::Track};
use crate::{
    authz::{roles::RoleDef, scope},
    db::{RequestDb, rows},
    domain::roles,
};

type LoadResult<V> = Result<HashMap<Uuid, V>, Arc<DbErr>>;

/// Organizations by id, limited in SQL to those the viewer may read.
pub struct OrganizationLoader {
    db: RequestDb,
    viewer: ViewerCell,
}

impl Loader<Uuid> for OrganizationLoader {
    type Value = Arc<organization::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let select = organization::Entity::find()
            .filter(organization::Column::Id.is_in(keys.iter().copied()))
            .filter(scope::organizations(viewer.as_ref()));
        Ok(rows::all_arc(&self.db, select).await?.into_iter().map(|o| (o.id, o)).collect())
    }
}

/// The role keys assigned to each membership (none: an empty list). Ids come from
/// memberships already scoped to the viewer, and the fields check READ_MEMBERS first.
pub struct AssignedRolesLoader {
    db: RequestDb,
}

impl Loader<Uuid> for AssignedRolesLoader {
    type Value = Arc<Vec<String>>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let mut by = roles::assigned_to(&self.db, keys).await?;
        Ok(keys.iter().map(|k| (*k, Arc::new(by.remove(k).unwrap_or_default()))).collect())
    }
}

/// Each organization's own roles (none: an empty list), for the same callers.
pub struct OrganizationRolesLoader {
    db: RequestDb,
}

impl Loader<Uuid> for OrganizationRolesLoader {
    type Value = Arc<Vec<RoleDef>>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let mut by = roles::organizations_roles(&self.db, keys).await?;
        Ok(keys.iter().map(|k| (*k, Arc::new(by.remove(k).unwrap_or_default()))).collect())
    }
}

/// Users by id. Ids only ever come from rows already scoped to the viewer
/// (memberships, course instructors), so no further tenant filter applies.
pub struct UserLoader {
    db: RequestDb,
}

impl Loader<Uuid> for UserLoader {
    type Value = Arc<user::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let rows = user::Entity::find().filter(user::Column::Id.is_in(keys.iter().copied())).all(&self.db).await?;
        Ok(rows.into_iter().map(|u| (u.id, Arc::new(u))).collect())
    }
}

/// For READ_USER_PRIVATE: the organizations (among the viewer's active ones) each user
/// holds a membership in, active or not.
pub struct SharedOrganizationsLoader {
    db: RequestDb,
    viewer: ViewerCell,
}

impl Loader<Uuid> for SharedOrganizationsLoader {
    type Value = Arc<Vec<Uuid>>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let mut out: HashMap<Uuid, Vec<Uuid>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        let rows: Vec<(Uuid, Uuid)> = membership::Entity::find()
            .select_only()
            .column(membership::Column::UserId)
            .column(membership::Column::OrganizationId)
            .filter(membership::Column::UserId.is_in(keys.iter().copied()))
            .filter(scope::memberships(viewer.as_ref()))
            .into_tuple()
            .all(&self.db)
            .await?;
        for (u, o) in rows {
            out.entry(u).or_default().push(o);
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// Courses by id: published ones of the viewer's organizations, drafts only where the
/// viewer's role reads drafts. Anything else is indistinguishable from missing.
pub struct CourseLoader {
    db: RequestDb,
    viewer: ViewerCell,
}

impl Loader<Uuid> for CourseLoader {
    type Value = Arc<course::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let select = course::Entity::find()
            .filter(course::Column::Id.is_in(keys.iter().copied()))
            .filter(scope::courses(viewer.as_ref()));
        Ok(rows::all_arc(&self.db, select).await?.into_iter().map(|c| (c.id, c)).collect())
    }
}

/// Tracks by id, readable exactly when their course is.
pub struct TrackLoader {
    db: RequestDb,
    viewer: ViewerCell,
}

impl Loader<Uuid> for TrackLoader {
    type Value = Arc<track::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let select = track::Entity::find()
            .join(JoinType::InnerJoin, track::Relation::Course.def())
            .filter(track::Column::Id.is_in(keys.iter().copied()))
            .filter(scope::tracks(viewer.as_ref()))
            .filter(scope::courses(viewer.as_ref()));
        Ok(rows::all_arc(&self.db, select).await?.into_iter().map(|t| (t.id, t)).collect())
    }
}

/// A course's tracks in order, for courses already known to be readable.
pub struct TracksByCourseLoader {
    db: RequestDb,
    viewer: ViewerCell,
}

impl Loader<Uuid> for TracksByCourseLoader {
    type Value = Arc<Vec<Track>>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let select = track::Entity::find()
            .filter(track::Column::CourseId.is_in(keys.iter().copied()))
            // Defence in depth: the course was checked, the tenant filter runs anyway.
            .filter(scope::tracks(viewer.as_ref()))
            .order_by_asc(track::Column::CourseId)
            .order_by_asc(track::Column::Position)
            .order_by_asc(track::Column::Id);
        let mut out: HashMap<Uuid, Vec<Track>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for t in rows::all_arc(&self.db, select).await? {
            out.entry(t.course_id).or_default().push(Track::new(t));
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

/// Memberships by id, in the viewer's organizations.
pub struct MembershipLoader {
    db: RequestDb,
    viewer: ViewerCell,
}

impl Loader<Uuid> for MembershipLoader {
    type Value = Arc<membership::Model>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[Uuid]) -> LoadResult<Self::Value> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let select = membership::Entity::find()
            .filter(membership::Column::Id.is_in(keys.iter().copied()))
            .filter(scope::memberships(viewer.as_ref()));
        Ok(rows::all_arc(&self.db, select).await?.into_iter().map(|m| (m.id, m)).collect())
    }
}

type L<T> = DataLoader<T, HashMapCache>;

/// Which of a track's columns a page of courses reads (see [`Track::partial`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackColumns {
    All,
    Partial,
}

/// The request's loaders.
pub struct Loaders {
    pub organizations: L<OrganizationLoader>,
    pub users: L<UserLoader>,
    pub shared_organizations: L<SharedOrganizationsLoader>,
    pub courses: L<CourseLoader>,
    pub tracks: L<TrackLoader>,
    pub tracks_by_course: L<TracksByCourseLoader>,
    pub memberships: L<MembershipLoader>,
    pub assigned_roles: L<AssignedRolesLoader>,
    pub organization_roles: L<OrganizationRolesLoader>,
    pub max_page_size: i32,
    viewer: ViewerCell,
}

fn loader<T: Loader<Uuid>>(t: T) -> L<T> {
    DataLoader::with_cache(t, tokio::spawn, HashMapCache::default())
}

impl Loaders {
    pub fn new(db: RequestDb, viewer: ViewerCell, max_page_size: i32) -> Self {
        Self {
            organizations: loader(OrganizationLoader { db: db.clone(), viewer: viewer.clone() }),
            users: loader(UserLoader { db: db.clone() }),
            shared_organizations: loader(SharedOrganizationsLoader { db: db.clone(), viewer: viewer.clone() }),
            courses: loader(CourseLoader { db: db.clone(), viewer: viewer.clone() }),
            tracks: loader(TrackLoader { db: db.clone(), viewer: viewer.clone() }),
            tracks_by_course: loader(TracksByCourseLoader { db: db.clone(), viewer: viewer.clone() }),
            memberships: loader(MembershipLoader { db: db.clone(), viewer: viewer.clone() }),
            assigned_roles: loader(AssignedRolesLoader { db: db.clone() }),
            organization_roles: loader(OrganizationRolesLoader { db }),
            max_page_size,
            viewer,
        }
    }

    /// Loads one organization now (no batching window) and remembers it for the request.
    /// For entry points, which have exactly one key and nothing to wait for. One the viewer
    /// actively belongs to comes with the viewer (see `MembershipRecord::organization`):
    /// no statement. Anything else is read under the viewer's scope.
    pub async fn organization_now(&self, id: Uuid) -> Result<Option<Arc<organization::Model>>, Arc<DbErr>> {
        let known =
            self.viewer.get().and_then(|v| v.membership(id).filter(|m| m.is_active).map(|m| m.organization.clone()));
        if let Some(o) = known {
            return Ok(Some(o));
        }
        let found = self.organizations.loader().load(&[id]).await?;
        let hit = found.get(&id).cloned();
        self.organizations.feed_many(found).await;
        Ok(hit)
    }

    /// Loads one course now (no batching window) and remembers it for the request.
    pub async fn course_now(&self, id: Uuid) -> Result<Option<Arc<course::Model>>, Arc<DbErr>> {
        let found = self.courses.loader().load(&[id]).await?;
        let hit = found.get(&id).cloned();
        self.courses.feed_many(found).await;
        Ok(hit)
    }

    /// Prefetches what a page of courses will ask for (their tracks, their instructors),
    /// one query each, so the nested fields find it cached instead of waiting for a batch.
    /// With `TrackColumns::Partial`, the tracks are read without the columns the query
    /// does not ask for (see [`Track::partial`]).
    pub async fn prefetch_for_courses(
        &self,
        courses: &[Arc<course::Model>],
        tracks: Option<TrackColumns>,
        instructors: bool,
    ) -> Result<(), Arc<DbErr>> {
        if courses.is_empty() {
            return Ok(());
        }
        match tracks {
            None => {}
            Some(TrackColumns::All) => {
                let ids: Vec<Uuid> = courses.iter().map(|c| c.id).collect();
                let found = self.tracks_by_course.loader().load(&ids).await?;
                self.tracks_by_course.feed_many(found).await;
            }
            Some(TrackColumns::Partial) => {
                let found = self.partial_tracks_by_course(courses).await?;
                self.tracks_by_course.feed_many(found).await;
            }
        }
        if instructors {
            let mut ids: Vec<Uuid> = courses.iter().filter_map(|c| c.instructor_id).collect();
            ids.sort();
            ids.dedup();
            if !ids.is_empty() {
                let found = self.users.loader().load(&ids).await?;
                self.users.feed_many(found).await;
            }
        }
        Ok(())
    }

    /// [`TracksByCourseLoader`]'s statement with only the columns of a partial track.
    async fn partial_tracks_by_course(
        &self,
        courses: &[Arc<course::Model>],
    ) -> Result<HashMap<Uuid, Arc<Vec<Track>>>, Arc<DbErr>> {
        let Some(viewer) = self.viewer.get() else { return Ok(HashMap::new()) };
        let db = &self.tracks_by_course.loader().db;
        let select = track::Entity::find()
            .select_only()
            .columns(rows::PARTIAL_TRACK_COLUMNS)
            .filter(track::Column::CourseId.is_in(courses.iter().map(|c| c.id)))
            .filter(scope::tracks(viewer.as_ref()))
            .order_by_asc(track::Column::CourseId)
            .order_by_asc(track::Column::Position)
            .order_by_asc(track::Column::Id);
        let stmt = rows::literal_limit(select.build(db.get_database_backend()));
        let mut out: HashMap<Uuid, Vec<Track>> = courses.iter().map(|c| (c.id, Vec::new())).collect();
        for row in db.query_all_raw(stmt).await? {
            let t = rows::partial_track(&row)?;
            out.entry(t.course_id).or_default().push(Track::partial(Arc::new(t)));
        }
        Ok(out.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }

    /// Forgets everything loaded so far: after a write, the rest of the response reads fresh rows.
    pub fn clear(&self) {
        self.organizations.clear::<Uuid>();
        self.users.clear::<Uuid>();
        self.shared_organizations.clear::<Uuid>();
        self.courses.clear::<Uuid>();
        self.tracks.clear::<Uuid>();
        self.tracks_by_course.clear::<Uuid>();
        self.memberships.clear::<Uuid>();
        self.assigned_roles.clear::<Uuid>();
        self.organization_roles.clear::<Uuid>();
    }
}
