//! `Subscription`: live changes of courses and tracks, relative to the viewer.
//!
//! Each event is judged when it is delivered, with the viewer as they are then (the
//! WebSocket connection re-reads its viewer when a membership or role changes): ADDED
//! when the row became readable to them, CHANGED when it was and is, REMOVED when it was
//! and no longer is; a change they could read neither before nor after never reaches
//! them, not even its id. The payload is the API's own `Course` / `Track`, so every field
//! guard runs as it does for queries.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, SimpleObject, Subscription as GqlSubscription};
use futures_util::Stream;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::{
    context::{ContextExt, ViewerCell},
    loaders::Loaders,
    lookup,
    types::{course::Course, parse_id, track::Track},
};
use crate::{
    auth::Viewer,
    authz::{Action, Resource, Subject as _, guard, policy},
    db::RequestDb,
    error::{AppError, AppResult},
    live::{CourseState, LiveEvent, LiveTarget, Op},
};

/// How a change looks from where the viewer stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// It became readable to the viewer: created, or published for a MEMBER/VIEWER.
    Added,
    /// Readable before and after.
    Changed,
    /// Readable before, not after: deleted, or unpublished for a MEMBER/VIEWER.
    Removed,
}

/// A course of the organization changed.
#[derive(SimpleObject)]
pub struct CourseChange {
    pub kind: ChangeKind,
    pub course_id: ID,
    pub organization_id: ID,
    /// The course as it is now; null when REMOVED.
    pub course: Option<Course>,
}

/// A track of the course changed.
#[derive(SimpleObject)]
pub struct TrackChange {
    pub kind: ChangeKind,
    pub track_id: ID,
    pub course_id: ID,
    /// The track as it is now; null when REMOVED.
    pub track: Option<Track>,
}

#[derive(Default)]
pub struct Subscription;

#[GqlSubscription]
impl Subscription {
    /// The courses of an organization (no id: the active one) as they change. Not an active
    /// member: NOT_FOUND. Ends with FORBIDDEN (MEMBERSHIP_INACTIVE) when the viewer's
    /// membership there is removed.
    async fn course_changes(
        &self,
        ctx: &Context<'_>,
        organization_id: Option<ID>,
    ) -> Result<impl Stream<Item = AppResult<CourseChange>> + use<>, AppError> {
        let watch = Watch::new(ctx)?;
        let viewer = ctx.viewer()?;
        let org = match &organization_id {
            Some(id) => parse_id("organizationId", id)?,
            None => ctx.fallback_organization()?.ok_or_else(|| {
                AppError::bad_input(
                    "organizationId",
                    "no active organization: pass `organizationId` or send X-Organization-Id",
                )
            })?,
        };
        // What a query answers for an organization the viewer does not actively belong to.
        if viewer.effective_role(org).is_none() {
            return Err(AppError::not_found("organization"));
        }
        ctx.require_as(&viewer, Action::ReadCourse, &Resource::Organization { id: org })?;
        let topic = ctx.request()?.bus.subscribe(org);
        watch.listening(LiveTarget { organization_id: org, course_id: None });
        Ok(futures_util::stream::unfold(CourseStream { watch, org, topic, done: false }, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }

    /// The tracks of a course the viewer can read, as they change (`reorderTracks`: one
    /// CHANGED per track that moved). Ends with NOT_FOUND when the course stops being
    /// readable (deleted, unpublished for a MEMBER/VIEWER), with FORBIDDEN
    /// (MEMBERSHIP_INACTIVE) when the viewer's membership is removed.
    async fn track_changes(
        &self,
        ctx: &Context<'_>,
        course_id: ID,
    ) -> Result<impl Stream<Item = AppResult<TrackChange>> + use<>, AppError> {
        let watch = Watch::new(ctx)?;
        let id = parse_id("courseId", &course_id)?;
        let c = lookup::course(ctx, id, Action::ReadCourse).await?;
        let topic = ctx.request()?.bus.subscribe(c.organization_id);
        watch.listening(LiveTarget { organization_id: c.organization_id, course_id: Some(c.id) });
        let s =
            TrackStream { watch, org: c.organization_id, course: c.id, state: CourseState::of(&c), topic, done: false };
        Ok(futures_util::stream::unfold(s, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }
}

/// What every subscription stream holds of its operation's context.
struct Watch {
    viewer: ViewerCell,
    version: watch::Receiver<u64>,
    loaders: Arc<Loaders>,
    db: RequestDb,
    target: Option<Arc<std::sync::OnceLock<LiveTarget>>>,
    decisions: crate::authz::guard::DecisionLog,
}

impl Watch {
    fn new(ctx: &Context<'_>) -> AppResult<Self> {
        let r = ctx.request()?;
        let version = r.viewer_version.clone().ok_or_else(|| {
            AppError::bad_input("query", "subscriptions need a WebSocket (graphql-transport-ws) on /graphql")
        })?;
        Ok(Self {
            viewer: r.viewer.clone(),
            version,
            loaders: r.loaders.clone(),
            db: r.db.clone(),
            target: r.live_target.clone(),
            decisions: r.decisions.clone(),
        })
    }

    /// Tells the transport where this subscription now listens.
    fn listening(&self, target: LiveTarget) {
        if let Some(t) = &self.target {
            let _ = t.set(target);
        }
    }

    fn viewer(&self) -> AppResult<Arc<Viewer>> {
        self.viewer.get().ok_or_else(|| AppError::internal("a subscription without a viewer"))
    }

    /// Between events: the last one's reads are done, so the next starts afresh (new
    /// loaders, a new transaction under the viewer's tenancy as it is now).
    async fn settle(&self) -> AppResult<()> {
        self.loaders.clear();
        self.db.end_unit().await?;
        if let Some(v) = self.viewer.get() {
            self.db.set_tenancy(crate::auth::viewer::tenancy(Some(&v))).await?;
        }
        Ok(())
    }

    /// FORBIDDEN (MEMBERSHIP_INACTIVE) once the viewer no longer actively belongs to `org`.
    fn still_member(&self, org: Uuid) -> AppResult<Arc<Viewer>> {
        let v = self.viewer()?;
        let at = guard::At { log: Some(&self.decisions), root_field: None };
        guard::require(v.as_ref(), Action::ReadCourse, &Resource::Organization { id: org }, at)?;
        Ok(v)
    }
}

/// Whether the viewer may read a course of `org` in `state`.
fn readable(v: &Viewer, org: Uuid, state: CourseState) -> bool {
    let r =
        Resource::Course { organization_id: org, instructor_id: state.instructor_id, is_published: state.is_published };
    policy::allows(v, Action::ReadCourse, &r)
}

/// What the next thing to happen to a subscription is.
enum Wake {
    ViewerChanged,
    Event(Arc<LiveEvent>),
    Closed,
}

async fn wake(watch: &mut Watch, topic: &mut broadcast::Receiver<Arc<LiveEvent>>) -> Wake {
    loop {
        tokio::select! {
            biased;
            changed = watch.version.changed() => {
                return if changed.is_ok() { Wake::ViewerChanged } else { Wake::Closed };
            }
            e = topic.recv() => match e {
                Ok(e) => return Wake::Event(e),
                // At-most-once: a subscriber that fell this far behind misses events.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "a subscription fell behind and missed events");
                }
                Err(broadcast::error::RecvError::Closed) => return Wake::Closed,
            },
        }
    }
}

struct CourseStream {
    watch: Watch,
    org: Uuid,
    topic: broadcast::Receiver<Arc<LiveEvent>>,
    done: bool,
}

impl CourseStream {
    async fn next(&mut self) -> Option<AppResult<CourseChange>> {
        if self.done {
            return None;
        }
        if let Err(e) = self.watch.settle().await {
            self.done = true;
            return Some(Err(e));
        }
        loop {
            let event = match wake(&mut self.watch, &mut self.topic).await {
                Wake::Closed => return None,
                Wake::ViewerChanged => match self.watch.still_member(self.org) {
                    Ok(_) => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
                Wake::Event(e) => e,
            };
            let LiveEvent::Course { course_id, before, after, .. } = event.as_ref() else { continue };
            let v = match self.watch.still_member(self.org) {
                Ok(v) => v,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let was = before.is_some_and(|b| readable(&v, self.org, b));
            let is = after.as_deref().is_some_and(|a| readable(&v, self.org, CourseState::of(a)));
            let kind = match (was, is) {
                (false, true) => ChangeKind::Added,
                (true, true) => ChangeKind::Changed,
                (true, false) => ChangeKind::Removed,
                // Never readable to this viewer: not even its id reaches them.
                (false, false) => continue,
            };
            return Some(Ok(CourseChange {
                kind,
                course_id: super::types::id(*course_id),
                organization_id: super::types::id(self.org),
                course: after.clone().filter(|_| is).map(Course),
            }));
        }
    }
}

struct TrackStream {
    watch: Watch,
    org: Uuid,
    course: Uuid,
    /// The watched course's readability, as its own events last said.
    state: CourseState,
    topic: broadcast::Receiver<Arc<LiveEvent>>,
    done: bool,
}

impl TrackStream {
    /// The viewer, if they may still read the course: else the error that ends the subscription.
    fn check(&self) -> AppResult<Arc<Viewer>> {
        let v = self.watch.still_member(self.org)?;
        if !readable(&v, self.org, self.state) {
            return Err(AppError::not_found("course"));
        }
        Ok(v)
    }

    async fn next(&mut self) -> Option<AppResult<TrackChange>> {
        if self.done {
            return None;
        }
        if let Err(e) = self.watch.settle().await {
            self.done = true;
            return Some(Err(e));
        }
        loop {
            let event = match wake(&mut self.watch, &mut self.topic).await {
                Wake::Closed => return None,
                Wake::ViewerChanged => match self.check() {
                    Ok(_) => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
                Wake::Event(e) => e,
            };
            match event.as_ref() {
                LiveEvent::Course { course_id, after, .. } if *course_id == self.course => {
                    match after {
                        Some(a) => self.state = CourseState::of(a),
                        None => {
                            self.done = true;
                            return Some(Err(AppError::not_found("course")));
                        }
                    }
                    if let Err(e) = self.check() {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                LiveEvent::Track { op, course_id, track_id, after, .. } if *course_id == self.course => {
                    if let Err(e) = self.check() {
                        self.done = true;
                        return Some(Err(e));
                    }
                    let kind = match op {
                        Op::Created => ChangeKind::Added,
                        Op::Updated => ChangeKind::Changed,
                        Op::Deleted => ChangeKind::Removed,
                    };
                    return Some(Ok(TrackChange {
                        kind,
                        track_id: super::types::id(*track_id),
                        course_id: super::types::id(self.course),
                        track: after.clone().map(Track::new),
                    }));
                }
                _ => {}
            }
        }
    }
}
