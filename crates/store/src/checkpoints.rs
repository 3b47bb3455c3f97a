//! Checkpoints of a task's workspace: after each turn that changed files, the
//! sandbox's snapshot commit arrives as an incremental git bundle, kept in
//! `blobs`, so backups and other coordinators have it. A task's checkpoints form
//! one chain: each names the one before it as its parent.

use dockhand_protocol::CheckpointEvent;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use rusqlite::OptionalExtension;
use rusqlite::Row;
use rusqlite::params;

use crate::Result;
use crate::Store;
use crate::StoreError;

/// A stored checkpoint, without its bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Row id.
    pub id: i64,
    /// The task.
    pub task_id: TaskId,
    /// The index of the conversation message (the turn's tool results) it follows.
    pub turn: u32,
    /// The snapshot commit.
    pub commit: String,
    /// Its tree.
    pub tree: String,
    /// The checkpoint before it; `None` for the first, whose parent commit is the
    /// task's base commit.
    pub parent: Option<i64>,
    /// The blob holding the bundle.
    pub blob_id: i64,
    /// The bundle's size in bytes.
    pub size: u64,
    /// When it was stored, ms.
    pub created_at: i64,
}

/// A checkpoint to store.
#[derive(Clone, Debug)]
pub struct NewCheckpoint {
    /// The task.
    pub task_id: TaskId,
    /// The index of the conversation message it follows.
    pub turn: u32,
    /// The snapshot commit.
    pub commit: String,
    /// Its tree.
    pub tree: String,
    /// The task's newest checkpoint when the snapshot was taken; `None` when it
    /// is the first.
    pub parent: Option<i64>,
    /// The incremental bundle (`git bundle create - <commit> ^<parent commit>`),
    /// whose prerequisite is the parent's commit or the task's base commit: so
    /// the chain applies in order onto a repository holding the base.
    pub bundle: Vec<u8>,
}

const COLUMNS: &str = "id, task_id, turn, commit_id, tree_id, parent_id, blob_id, size, created_at";

fn row_to_checkpoint(r: &Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        id: r.get(0)?,
        task_id: TaskId::from_stored(r.get(1)?),
        turn: r.get(2)?,
        commit: r.get(3)?,
        tree: r.get(4)?,
        parent: r.get(5)?,
        blob_id: r.get(6)?,
        size: r.get::<_, i64>(7)?.max(0) as u64,
        created_at: r.get(8)?,
    })
}

fn last_id(conn: &rusqlite::Connection, task: &TaskId) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM checkpoints WHERE task_id = ?1 ORDER BY id DESC LIMIT 1",
            [task.as_str()],
            |r| r.get(0),
        )
        .optional()?)
}

impl Store {
    /// Stores a checkpoint, its bundle and its `checkpoint` event, atomically.
    /// Refuses ([`StoreError::Conflict`]) one whose parent is not the task's
    /// newest checkpoint, so the chain never forks.
    pub async fn add_checkpoint(&self, new: NewCheckpoint) -> Result<CheckpointRow> {
        self.transact(move |ctx| {
            let last = last_id(ctx.conn(), &new.task_id)?;
            if last != new.parent {
                return Err(StoreError::Conflict(format!(
                    "checkpoint of task {} follows checkpoint {:?}, but the newest is {last:?}",
                    new.task_id, new.parent
                )));
            }
            let size = new.bundle.len() as i64;
            let now = ctx.now();
            ctx.conn().execute(
                "INSERT INTO blobs (size, data, created_at) VALUES (?1, ?2, ?3)",
                params![size, new.bundle, now],
            )?;
            let blob_id = ctx.conn().last_insert_rowid();
            ctx.conn().execute(
                "INSERT INTO checkpoints (task_id, turn, commit_id, tree_id, parent_id, blob_id, size, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    new.task_id.as_str(),
                    new.turn,
                    new.commit,
                    new.tree,
                    new.parent,
                    blob_id,
                    size,
                    now
                ],
            )?;
            let id = ctx.conn().last_insert_rowid();
            ctx.emit(
                &new.task_id,
                EventBody::Checkpoint(CheckpointEvent {
                    turn: new.turn,
                    commit: Some(new.commit.clone()),
                    bytes: size as u64,
                    skipped_reason: None,
                }),
            )?;
            Ok(CheckpointRow {
                id,
                task_id: new.task_id,
                turn: new.turn,
                commit: new.commit,
                tree: new.tree,
                parent: new.parent,
                blob_id,
                size: size as u64,
                created_at: now,
            })
        })
        .await
    }

    /// A task's checkpoints, oldest first: the order their bundles apply in.
    pub fn checkpoints(&self, task: &TaskId) -> Result<Vec<CheckpointRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM checkpoints WHERE task_id = ?1 ORDER BY id"
            ))?;
            let rows = stmt.query_map([task.as_str()], row_to_checkpoint)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// A task's newest checkpoint.
    pub fn last_checkpoint(&self, task: &TaskId) -> Result<Option<CheckpointRow>> {
        self.read(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM checkpoints WHERE task_id = ?1 ORDER BY id DESC LIMIT 1"
                ),
                [task.as_str()],
                row_to_checkpoint,
            )
            .optional()?)
        })
    }

    /// The bytes of a blob.
    pub fn blob(&self, id: i64) -> Result<Vec<u8>> {
        self.read(|c| {
            c.query_row("SELECT data FROM blobs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("blob {id}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::NewTask;
    use crate::StoreOptions;
    use crate::UserRole;

    struct Discard;

    impl crate::Publish for Discard {
        fn publish(&self, _: Vec<crate::Committed>) {}
    }

    fn new(task: &TaskId, turn: u32, parent: Option<i64>, bundle: &[u8]) -> NewCheckpoint {
        NewCheckpoint {
            task_id: task.clone(),
            turn,
            commit: format!("{turn:040}"),
            tree: format!("{:040}", turn + 1),
            parent,
            bundle: bundle.to_vec(),
        }
    }

    #[tokio::test]
    async fn checkpoints_chain_per_task_with_their_bundles_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            StoreOptions::new(dir.path().join("t.db")),
            Arc::new(Discard),
        )
        .unwrap();
        let user = store.ensure_user("u", UserRole::User).await.unwrap();
        let mut tasks = Vec::new();
        for prompt in ["a", "b"] {
            let id = TaskId::generate();
            store
                .create_task(NewTask {
                    id: id.clone(),
                    user_id: user.id,
                    repo: "/tmp/repo".into(),
                    prompt: prompt.into(),
                    title: prompt.into(),
                    base_branch: None,
                    branch: format!("dockhand/{prompt}"),
                    model: "m".into(),
                    image: None,
                    origin_issue: None,
                })
                .await
                .unwrap();
            tasks.push(id);
        }
        let (a, b) = (&tasks[0], &tasks[1]);
        assert_eq!(store.last_checkpoint(a).unwrap(), None);
        let first = store.add_checkpoint(new(a, 2, None, b"one")).await.unwrap();
        let other = store.add_checkpoint(new(b, 2, None, b"x")).await.unwrap();
        let second = store
            .add_checkpoint(new(a, 4, Some(first.id), &[0, 255, 7]))
            .await
            .unwrap();
        // A stale parent would fork the chain.
        let stale = store.add_checkpoint(new(a, 6, Some(first.id), b"z")).await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        let stale = store.add_checkpoint(new(b, 6, None, b"z")).await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");

        let chain = store.checkpoints(a).unwrap();
        assert_eq!(chain, [first.clone(), second.clone()]);
        assert_eq!(store.checkpoints(b).unwrap(), [other]);
        assert_eq!(store.last_checkpoint(a).unwrap(), Some(second.clone()));
        assert_eq!(second.parent, Some(first.id));
        assert_eq!(second.size, 3);
        assert_eq!(store.blob(second.blob_id).unwrap(), [0, 255, 7]);
        assert_eq!(store.blob(first.blob_id).unwrap(), b"one");
        assert!(matches!(store.blob(9999), Err(StoreError::NotFound(_))));

        let events = store.events_after(a, 0, 100).unwrap();
        let stored: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Checkpoint(c) => Some((c.turn, c.bytes, c.skipped_reason.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(stored, [(2, 3, None), (4, 3, None)]);
    }
}
