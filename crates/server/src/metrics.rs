//! `/metrics` in the Prometheus text format.

use std::fmt::Write as _;

use dockhand_protocol::TaskStatus;

use crate::services::Services;

/// Every metric, in the Prometheus text format.
pub(crate) fn render(state: &Services) -> String {
    let mut out = String::new();
    let counts = state.store.count_by_status().unwrap_or_default();
    let _ = writeln!(
        out,
        "# HELP dockhand_tasks Tasks by status.\n# TYPE dockhand_tasks gauge"
    );
    for status in TaskStatus::ALL {
        let n = counts
            .iter()
            .find(|c| c.status == status)
            .map_or(0, |c| c.tasks);
        let _ = writeln!(out, "dockhand_tasks{{status=\"{status}\"}} {n}");
    }
    for (name, kind, help, value) in counters(state) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP dockhand_egress_refused_total Connections the egress proxy refused, by reason.\n# TYPE dockhand_egress_refused_total counter"
    );
    for (reason, n) in state.egress.refused() {
        let _ = writeln!(
            out,
            "dockhand_egress_refused_total{{reason=\"{reason}\"}} {n}"
        );
    }
    out
}

/// The single-valued metrics: (name, type, help, value).
fn counters(state: &Services) -> [(&'static str, &'static str, &'static str, u64); 8] {
    let w = state.store.writer_stats();
    let h = state.hub.stats();
    let s = state.scheduler.stats();
    let pool = state.sandboxes.warm_pool().map_or(0, |p| p.ready() as u64);
    [
        (
            "dockhand_events_committed_total",
            "counter",
            "Events committed to the store.",
            w.events,
        ),
        (
            "dockhand_store_batches_total",
            "counter",
            "Group-commit transactions.",
            w.batches,
        ),
        (
            "dockhand_ws_subscribers",
            "gauge",
            "Connected event subscribers.",
            h.subscribers,
        ),
        (
            "dockhand_ws_overflows_total",
            "counter",
            "Subscribers dropped for falling behind.",
            h.overflows,
        ),
        (
            "dockhand_ws_events_sent_total",
            "counter",
            "Events queued to subscribers.",
            h.published,
        ),
        (
            "dockhand_runners_active",
            "gauge",
            "Tasks being run now.",
            s.running,
        ),
        (
            "dockhand_max_concurrent_tasks",
            "gauge",
            "The concurrency limit.",
            s.max_concurrent,
        ),
        (
            "dockhand_pool_ready",
            "gauge",
            "Warm-pool containers waiting for a task.",
            pool,
        ),
    ]
}
