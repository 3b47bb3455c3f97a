//! Reading the event log, and the hand-off to subscribers.

use dockhand_protocol::Event;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;

use crate::Result;
use crate::Store;
use crate::time::rfc3339;

/// A committed event, ready to send: its JSON is built once for every subscriber.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The task it belongs to.
    pub task_id: TaskId,
    /// Its seq.
    pub seq: u64,
    /// The event as wire JSON (`{"seq","ts","kind","data"}`).
    pub json: String,
}

/// Receives committed events, batch by batch, in commit order. Called on the
/// writer thread, so it must not block.
pub trait Publish: Send + Sync {
    /// A committed batch.
    fn publish(&self, batch: Vec<Committed>);
}

pub(crate) fn event_json(seq: u64, ts_ms: i64, kind: &str, data: &str) -> String {
    let ts = rfc3339(ts_ms);
    format!(r#"{{"seq":{seq},"ts":"{ts}","kind":"{kind}","data":{data}}}"#)
}

impl Store {
    /// Hands an event to the writer and returns at once; it is committed with the next batch.
    pub fn append(&self, task: &TaskId, body: EventBody) -> Result<()> {
        self.inner.writer.append(task.clone(), body)
    }

    /// Appends an event and waits until it is committed; returns its seq.
    pub async fn append_durable(&self, task: &TaskId, body: EventBody) -> Result<u64> {
        let task = task.clone();
        self.transact(move |ctx| ctx.emit(&task, body)).await
    }

    /// Stored events after `after`, at most `limit`, as wire JSON, in order.
    pub fn events_after_json(
        &self,
        task: &TaskId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, ts, kind, data FROM events WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                rusqlite::params![task.as_str(), after as i64, limit as i64],
                |r| {
                    let seq: i64 = r.get(0)?;
                    let ts: i64 = r.get(1)?;
                    let kind: String = r.get(2)?;
                    let data: String = r.get(3)?;
                    Ok((seq as u64, event_json(seq as u64, ts, &kind, &data)))
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Stored events after `after`, at most `limit`, parsed.
    pub fn events_after(&self, task: &TaskId, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.events_after_json(task, after, limit)?
            .into_iter()
            .map(|(_, json)| Ok(serde_json::from_str(&json)?))
            .collect()
    }

    /// The last committed seq of a task (0 when it has none).
    pub fn last_seq(&self, task: &TaskId) -> Result<u64> {
        self.read(|c| {
            let seq: i64 = c.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE task_id = ?1",
                [task.as_str()],
                |r| r.get(0),
            )?;
            Ok(seq as u64)
        })
    }
}
