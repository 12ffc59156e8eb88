//! The PostgreSQL listener: one connection per server process, LISTENing on the context
//! channel (membership, role and organization changes, for the context cache and live
//! connections) and the live channel (course and track events, for subscriptions).
//!
//! It runs for the life of the server over its own direct connection
//! (`COURSEGRAPH_DATABASE_LISTEN_URL`, else the database URL: LISTEN needs a session, which
//! a transaction-pooling PgBouncer does not keep). While it is disconnected the context
//! cache is bypassed (a notification may have been missed); when it reconnects, the cache
//! starts over and every live connection re-reads its viewer.

use std::{sync::Arc, time::Duration};

use entity::{course, track};
use sea_orm::{DatabaseConnection, EntityTrait};
use sqlx::postgres::PgListener;

use super::{Bus, LiveEvent};
use crate::auth::cache::{self, ContextCache};

pub async fn run(cache: Arc<ContextCache>, bus: Arc<Bus>, url: String, conn: DatabaseConnection) {
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(mut l) => match l.listen_all([cache::CHANNEL, super::CHANNEL]).await {
                Ok(()) => {
                    // Report a lost connection at once: sqlx would otherwise reconnect before
                    // returning, waiting out its pool's acquire timeout (30 s) while the
                    // database is unreachable — with the cache still serving.
                    l.eager_reconnect(false);
                    l
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listener: LISTEN failed; context cache bypassed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "listener: cannot connect; context cache bypassed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        cache.resync();
        tracing::info!(channels = %format!("{}, {}", cache::CHANNEL, super::CHANNEL), "listening for changes from every server process");
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == super::CHANNEL => match super::decode(n.payload()) {
                    Some(d) if d.fetch => {
                        if let Some(e) = complete(&conn, d.event).await {
                            bus.deliver(e);
                        }
                    }
                    Some(d) => bus.deliver(d.event),
                    None => tracing::warn!("listener: a live event it cannot read"),
                },
                Ok(Some(n)) => match crate::auth::cache::parse(n.payload()) {
                    Some(c) => cache.heard(c),
                    None => cache.resync(),
                },
                // The connection dropped: anything may have been missed until it is back.
                Ok(None) => {
                    cache.set_live(false);
                    tracing::warn!("listener: lost its connection; context cache bypassed until it reconnects");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listener failed; context cache bypassed until it reconnects");
                    cache.set_live(false);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// Reads the row of an event that was too large to travel with it — once per process,
/// not once per subscriber. A row gone meanwhile drops the event: the deletion that
/// removed it has its own.
async fn complete(conn: &DatabaseConnection, event: LiveEvent) -> Option<LiveEvent> {
    let read = match event {
        LiveEvent::Course { op, organization_id, course_id, before, .. } => course::Entity::find_by_id(course_id)
            .one(conn)
            .await
            .map(|r| r.map(|c| LiveEvent::Course { op, organization_id, course_id, before, after: Some(Arc::new(c)) })),
        LiveEvent::Track { op, organization_id, course_id, track_id, .. } => {
            track::Entity::find_by_id(track_id).one(conn).await.map(|r| {
                r.map(|t| LiveEvent::Track { op, organization_id, course_id, track_id, after: Some(Arc::new(t)) })
            })
        }
    };
    match read {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "listener: cannot read the row of a live event; dropped");
            None
        }
    }
}
