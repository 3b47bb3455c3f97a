//! Workspaces and environment images: what `dockhand gc` needs to decide what
//! may be removed.

use dockhand_protocol::TaskId;
use rusqlite::params;

use crate::Result;
use crate::Store;
use crate::TaskRow;
use crate::tasks::COLUMNS;
use crate::tasks::row_to_task;

/// When an environment image was last used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvImageUse {
    /// The image reference.
    pub image: String,
    /// Last used, ms.
    pub last_used: i64,
}

impl Store {
    /// Records a freshly seeded workspace and the repository's environment (JSON):
    /// `prepare` has not run in it, and it is not removed.
    pub async fn set_workspace(
        &self,
        id: &TaskId,
        workspace: String,
        environment: String,
    ) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET workspace = ?2, environment = ?3, updated_at = ?4, \
                 prepared = 0, workspace_removed_at = NULL WHERE id = ?1",
                params![id.as_str(), workspace, environment, ctx.now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that `prepare` ran.
    pub async fn set_prepared(&self, id: &TaskId) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn()
                .execute("UPDATE tasks SET prepared = 1 WHERE id = ?1", [id.as_str()])?;
            Ok(())
        })
        .await
    }

    /// Records that the work was handed back: the workspace holds nothing unpublished.
    pub async fn set_published(&self, id: &TaskId) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET published_at = ?2, workspace_dirty = 0 WHERE id = ?1",
                params![id.as_str(), ctx.now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that a workspace was removed.
    pub async fn set_workspace_removed(&self, id: &TaskId) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET workspace_removed_at = ?2 WHERE id = ?1",
                params![id.as_str(), ctx.now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Finished tasks whose workspace is still on disk, oldest first.
    pub fn finished_with_workspace(&self) -> Result<Vec<TaskRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled') \
                 AND workspace IS NOT NULL AND workspace_removed_at IS NULL ORDER BY finished_at"
            ))?;
            let rows = stmt.query_map([], row_to_task)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Records that an environment image was used now.
    pub async fn touch_env_image(&self, image: &str) -> Result<()> {
        let image = image.to_owned();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "INSERT INTO env_images (image, last_used) VALUES (?1, ?2) \
                 ON CONFLICT (image) DO UPDATE SET last_used = excluded.last_used",
                params![image, ctx.now()],
            )?;
            Ok(())
        })
        .await
    }

    /// When each environment image was last used, ms.
    pub fn env_image_uses(&self) -> Result<Vec<EnvImageUse>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT image, last_used FROM env_images")?;
            let rows = stmt.query_map([], |r| {
                Ok(EnvImageUse {
                    image: r.get(0)?,
                    last_used: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Finished tasks still holding a sandbox, oldest first.
    pub fn finished_with_sandbox(&self) -> Result<Vec<TaskRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled') \
                 AND sandbox_id IS NOT NULL ORDER BY finished_at"
            ))?;
            let rows = stmt.query_map([], row_to_task)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
