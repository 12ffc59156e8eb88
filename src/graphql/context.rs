//! The per-request context and the typed accessors resolvers read it through.

use std::sync::{Arc, RwLock};

use async_graphql::{Context, ErrorExtensions as _};

use super::loaders::Loaders;
use crate::{
    auth::{
        AuthError, Viewer,
        cache::{Change, ContextCache},
    },
    authz::{
        Action, Decision, Resource,
        guard::{self, At, DecisionLog},
    },
    db::RequestDb,
    domain::write::{Committed, UnitOfWork},
    error::{AppError, AppResult},
    live::{Bus, LiveEvent},
};

/// The request's viewer. Shared by the resolvers and the loaders, and replaced (never
/// mutated) when a mutation changes the viewer's own memberships, so the rest of the
/// response answers for the viewer as they are now.
#[derive(Clone, Default)]
pub struct ViewerCell(Arc<RwLock<Option<Arc<Viewer>>>>);

impl ViewerCell {
    pub fn new(v: Option<Arc<Viewer>>) -> Self {
        Self(Arc::new(RwLock::new(v)))
    }

    pub fn get(&self) -> Option<Arc<Viewer>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, v: Arc<Viewer>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }
}

/// Built once per HTTP request by the HTTP layer; nothing below it reads headers or env.
pub struct RequestContext {
    pub request_id: String,
    /// Empty for an anonymous request (only introspection and `__typename` work then).
    pub viewer: ViewerCell,
    /// What an anonymous request hears when an operation needs a viewer.
    pub unauthenticated: AuthError,
    pub db: RequestDb,
    /// Shared with the operation's subscription streams, which start each event afresh.
    pub loaders: Arc<Loaders>,
    pub cache: Arc<ContextCache>,
    pub bus: Arc<Bus>,
    /// On a WebSocket connection: bumped whenever the connection re-read its viewer (a
    /// membership or role changed), so subscriptions re-evaluate what they may deliver.
    pub viewer_version: Option<tokio::sync::watch::Receiver<u64>>,
    /// On a WebSocket connection: where the subscription's resolver says it listens.
    pub live_target: Option<Arc<std::sync::OnceLock<crate::live::LiveTarget>>>,
    /// The decisions the operation's guards noted (refusals, platform-admin powers).
    pub decisions: DecisionLog,
}

impl RequestContext {
    pub fn new(
        request_id: String,
        viewer: ViewerCell,
        unauthenticated: AuthError,
        db: RequestDb,
        cache: Arc<ContextCache>,
        bus: Arc<Bus>,
        max_page_size: i32,
    ) -> Self {
        let loaders = Arc::new(Loaders::new(db.clone(), viewer.clone(), max_page_size));
        Self {
            request_id,
            viewer,
            unauthenticated,
            db,
            loaders,
            cache,
            bus,
            viewer_version: None,
            live_target: None,
            decisions: DecisionLog::default(),
        }
    }

    /// Begins a mutation's unit of work (in the request's transaction under row-level
    /// security).
    pub async fn begin(&self) -> AppResult<UnitOfWork> {
        Ok(UnitOfWork::new(self.db.begin_write().await?))
    }

    /// Commits `work`, then brings the request up to date with it ([`Self::after_write`]).
    pub async fn commit(&self, work: UnitOfWork) -> AppResult<()> {
        let Committed { changes, events } = work.commit().await?;
        self.after_write(&changes, events).await
    }

    /// After a committed write: fresh loaders, the context cache told what changed, the
    /// viewer re-read when the change concerns them, and the live events (announced in the
    /// transaction) delivered where that is this process's job.
    async fn after_write(&self, changes: &[Change], events: Vec<LiveEvent>) -> AppResult<()> {
        self.bus.committed(events);
        self.loaders.clear();
        for c in changes {
            self.cache.invalidate(*c);
        }
        self.db.remember_changes(changes);
        if let Some(v) = self.viewer.get() {
            let concerns_viewer = changes.iter().any(|c| match c {
                Change::User(id) => *id == v.user.id,
                Change::Organization(id) => v.membership(*id).is_some(),
            });
            if concerns_viewer {
                let next = crate::auth::provision::reload_viewer(&self.db, &v).await?;
                self.db.set_tenancy(crate::auth::viewer::tenancy(Some(&next))).await?;
                self.viewer.set(Arc::new(next));
            }
        }
        Ok(())
    }
}

/// Typed accessors: `ctx.viewer()?`, `ctx.db()?`, `ctx.loaders()?`.
pub trait ContextExt {
    fn request(&self) -> AppResult<&RequestContext>;

    /// The signed-in viewer; UNAUTHENTICATED (TOKEN_MISSING, saying why) for an anonymous
    /// request.
    fn viewer(&self) -> AppResult<Arc<Viewer>> {
        let r = self.request()?;
        r.viewer.get().ok_or_else(|| AppError::Unauthenticated(r.unauthenticated.clone()))
    }

    fn db(&self) -> AppResult<&RequestDb> {
        Ok(&self.request()?.db)
    }

    fn loaders(&self) -> AppResult<&Loaders> {
        Ok(&self.request()?.loaders)
    }

    /// The server's settings (see [`super::schema::Settings`]).
    fn settings(&self) -> AppResult<&super::schema::Settings>;

    /// Requires `action` on `resource` for the viewer: the decision, or FORBIDDEN explaining
    /// it — noted for the operation's audit and metrics either way it must be.
    fn require(&self, action: Action, resource: &Resource) -> AppResult<Decision> {
        let viewer = self.viewer()?;
        self.require_as(&viewer, action, resource)
    }

    /// [`Self::require`] for `subject` as it stands now (re-read inside a transaction).
    fn require_as(&self, subject: &Viewer, action: Action, resource: &Resource) -> AppResult<Decision>;

    /// The FORBIDDEN error for `d`, a refusal decided by a rule besides an action's own.
    fn refuse(&self, d: Decision) -> AppError;

    /// The organization an operation without one acts in (see `Viewer::fallback_organization`):
    /// FORBIDDEN (MEMBERSHIP_INACTIVE) when the token names one the viewer was removed from.
    fn fallback_organization(&self) -> AppResult<Option<uuid::Uuid>> {
        self.viewer()?.fallback_organization().map_err(|d| self.refuse(d))
    }

    /// Resolves a nullable field: an error becomes `null` plus the error at this field's
    /// own path, so siblings and the parent survive (async-graphql would otherwise drop
    /// the key, see async-graphql #1532).
    fn or_null<T>(&self, r: AppResult<Option<T>>) -> Option<T>;
}

impl ContextExt for Context<'_> {
    fn request(&self) -> AppResult<&RequestContext> {
        self.data::<RequestContext>()
            .map_err(|_| AppError::internal("request context missing from the GraphQL context"))
    }

    fn settings(&self) -> AppResult<&super::schema::Settings> {
        self.data::<super::schema::Settings>().map_err(|_| AppError::internal("settings missing from the schema data"))
    }

    fn require_as(&self, subject: &Viewer, action: Action, resource: &Resource) -> AppResult<Decision> {
        let log = &self.request()?.decisions;
        guard::require(subject, action, resource, At { log: Some(log), root_field: root_field(self) })
    }

    fn refuse(&self, d: Decision) -> AppError {
        match (self.viewer(), self.request()) {
            (Ok(v), Ok(r)) => guard::refuse(&v, d, At { log: Some(&r.decisions), root_field: root_field(self) }),
            (Err(e), _) | (_, Err(e)) => e,
        }
    }

    fn or_null<T>(&self, r: AppResult<Option<T>>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                let err: async_graphql::Error = e.into();
                let err = err.extend();
                self.add_error(self.set_error_path(err.into_server_error(self.item.pos)));
                None
            }
        }
    }
}

/// The root field being resolved, when `ctx` is at one.
fn root_field<'a>(ctx: &'a Context<'_>) -> Option<&'a str> {
    let node = ctx.path_node.as_ref()?;
    match (node.parent, node.segment) {
        (None, async_graphql::QueryPathSegment::Name(n)) => Some(n),
        _ => None,
    }
}
