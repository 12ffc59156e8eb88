//! The unit of work every mutation commits through: its rows, its audit events, the
//! changes other processes must hear of (cached viewers to drop) and the live events
//! subscribers get — written in one transaction and announced only if it commits.
//!
//! A mutation begins one, writes through it (it is the transaction), records what it
//! changed, and commits it; what committed goes back to the request (fresh loaders, the
//! viewer re-read when the change concerns them, live events delivered on SQLite).

use sea_orm::DbErr;

use super::audit;
use crate::{
    db::{self, Change, WriteTxn},
    live::{self, LiveEvent},
};

/// A write in progress.
pub struct UnitOfWork {
    txn: WriteTxn,
    changes: Vec<Change>,
    events: Vec<LiveEvent>,
}

/// What a committed unit of work changed.
#[derive(Debug, Default)]
pub struct Committed {
    pub changes: Vec<Change>,
    pub events: Vec<LiveEvent>,
}

impl UnitOfWork {
    pub fn new(txn: WriteTxn) -> Self {
        Self { txn, changes: Vec::new(), events: Vec::new() }
    }

    /// Records `event` in the audit log, in this transaction: it exists exactly when the
    /// change it records does.
    pub async fn audit(&self, event: audit::Event) -> Result<(), DbErr> {
        audit::record(&self.txn, event).await
    }

    /// Notes a change to what a viewer is (their memberships, an organization's slug).
    pub fn changed(&mut self, change: Change) {
        if !self.changes.contains(&change) {
            self.changes.push(change);
        }
    }

    /// Notes live events for subscribers.
    pub fn live(&mut self, events: impl IntoIterator<Item = LiveEvent>) {
        self.events.extend(events);
    }

    /// Announces the changes and events (inside the transaction, so they travel only if it
    /// commits) and commits.
    pub async fn commit(self) -> Result<Committed, DbErr> {
        db::announce(&self.txn, &self.changes).await?;
        live::notify(&self.txn, &self.events).await?;
        self.txn.commit().await?;
        Ok(Committed { changes: self.changes, events: self.events })
    }
}

// Statements run in the unit of work's transaction.
crate::db::delegate_connection!(UnitOfWork, txn);
