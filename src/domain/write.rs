//! The unit of work every mutation commits through: its rows, its audit events, the
//! changes other processes must hear of (cached viewers to drop) and the live events
//! subscribers get — written in one transaction and announced only if it commits.
//!
//! A mutation begins one, writes through it (it is the transaction), records what it
//! changed, and commits it; what committed goes back to the request (fresh loaders, the
//! viewer re-read when the change concerns them, live events delivered on SQLite).
//!
//! What it announces costs one statement, sent with the writes the mutation left for the
//! commit ([`UnitOfWork::at_commit`]) where it left some: on PostgreSQL a write is then
//! BEGIN, what it must read, one statement that writes and notifies, and COMMIT.

use sea_orm::{ConnectionTrait, DbErr, Statement};

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
    last: Vec<Statement>,
}

/// What a committed unit of work changed.
#[derive(Debug, Default)]
pub struct Committed {
    pub changes: Vec<Change>,
    pub events: Vec<LiveEvent>,
}

impl UnitOfWork {
    pub fn new(txn: WriteTxn) -> Self {
        Self { txn, changes: Vec::new(), events: Vec::new(), last: Vec::new() }
    }

    /// Records `event` in the audit log, in this transaction (sent with the last writes):
    /// it exists exactly when the change it records does.
    pub fn audit(&mut self, event: audit::Event) {
        self.at_commit(&audit::recorded(event));
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

    /// Leaves a write for the commit, which sends it with the announcements in one
    /// statement (see [`db::notes::send`]: such writes must touch rows no other of them
    /// does). For a mutation's last writes, whose result it already knows.
    pub fn at_commit(&mut self, write: &impl sea_orm::StatementBuilder) {
        self.last.push(self.txn.get_database_backend().build(write));
    }

    /// Runs the writes left for the commit and announces the changes and events (inside the
    /// transaction, so they travel only if it commits), then commits.
    pub async fn commit(self) -> Result<Committed, DbErr> {
        let mut notes = db::change_notes(&self.changes);
        notes.extend(live::notes(&self.events));
        db::notes::send(&self.txn, self.last, &notes).await?;
        self.txn.commit().await?;
        Ok(Committed { changes: self.changes, events: self.events })
    }
}

// Statements run in the unit of work's transaction.
crate::db::delegate_connection!(UnitOfWork, txn);
