use serde_json::json;

use crate::*;

#[test]
fn event_serializes_as_seq_kind_ts_data() {
    let ev = Event {
        seq: 3,
        ts: "2026-01-01T00:00:00.000Z".into(),
        body: EventBody::Status(StatusEvent {
            status: TaskStatus::Running,
            message: None,
        }),
    };
    let v = serde_json::to_value(&ev).unwrap();
    assert_eq!(
        v,
        json!({"seq": 3, "ts": "2026-01-01T00:00:00.000Z", "kind": "status", "data": {"status": "running"}})
    );
    let back: Event = serde_json::from_value(v).unwrap();
    assert_eq!(back, ev);
}

#[test]
fn ws_message_tells_events_deltas_and_control_apart() {
    let ev: WsMessage = serde_json::from_value(json!({
        "seq": 1, "ts": "t", "kind": "error", "data": {"message": "boom"}
    }))
    .unwrap();
    assert!(matches!(ev, WsMessage::Event(_)));
    let delta: WsMessage = serde_json::from_value(json!({
        "kind": "assistant_delta", "after_seq": 4, "index": 0, "data": {"text": "hi"}
    }))
    .unwrap();
    assert!(matches!(delta, WsMessage::Delta(_)));
    let ctl: WsMessage = serde_json::from_value(json!({"control": "resume", "after": 9})).unwrap();
    assert_eq!(
        ctl,
        WsMessage::Control(ControlMessage {
            control: ControlKind::Resume,
            after: 9,
            message: None
        })
    );
}

#[test]
fn task_ids_round_trip_and_reject_junk() {
    let id = TaskId::generate();
    assert_eq!(TaskId::parse(id.as_str()), Some(id.clone()));
    for bad in [
        "",
        "t",
        "x0123456789a",
        "t0123456789A",
        "t../../etc/x",
        "t0123456789ab",
    ] {
        assert_eq!(TaskId::parse(bad), None, "{bad}");
    }
}

#[test]
fn branch_names_are_safe_slugs() {
    let id = TaskId::parse("t0123456789a").unwrap();
    assert_eq!(
        task_branch(&id, "Fix the failing test in src/lib.rs!"),
        "dockhand/t0123456789a-fix-the-failing-test-in-src-lib-rs"
    );
    assert_eq!(task_branch(&id, "¿¡"), "dockhand/t0123456789a-task");
    assert!(slugify(&"word ".repeat(100), 40).len() <= 40);
}

#[test]
fn create_params_reject_unknown_fields() {
    let err = serde_json::from_value::<CreateTaskParams>(json!({"repo": "a/b", "promt": "x"}))
        .unwrap_err();
    assert!(err.to_string().contains("promt"), "{err}");
}

#[test]
fn the_status_machine_is_this_table() {
    use TaskStatus::*;
    // Rows: from; columns: to, in `TaskStatus::ALL` order
    // (queued, provisioning, running, publishing, succeeded, failed, cancelled).
    let table: [(TaskStatus, [bool; 7]); 7] = [
        (Queued, [false, true, false, false, false, false, true]),
        (Provisioning, [false, true, true, false, false, true, true]),
        (Running, [false, true, false, true, false, true, true]),
        (Publishing, [false, true, false, false, true, true, true]),
        (Succeeded, [true, false, false, false, false, false, false]),
        (Failed, [true, false, false, false, false, false, false]),
        (Cancelled, [true, false, false, false, false, false, false]),
    ];
    for (from, row) in table {
        for (to, allowed) in TaskStatus::ALL.into_iter().zip(row) {
            assert_eq!(from.can_go_to(to), allowed, "{from} -> {to}");
        }
    }
    assert_eq!(
        TaskStatus::sources_of(Succeeded),
        vec![Publishing],
        "only a published task succeeds"
    );
    assert_eq!(
        TaskStatus::sources_of(Queued),
        vec![Succeeded, Failed, Cancelled]
    );
}
