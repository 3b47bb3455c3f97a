use std::collections::HashSet;

use dockhand_protocol::ControlKind;
use dockhand_protocol::Event;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::WsMessage;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn late_joiners_and_reconnects_see_every_event_exactly_once() {
    let scenario = Scenario::new()
        .turn(Turn::text("Waiting.").tool_use("bash", json!({"command": GATED})))
        .text("Done.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "wait for the gate").await;
    let id = task.id.as_str();

    // A first client sees the start, then drops mid-task.
    let mut first = h.ws(id, 0).await;
    let before_drop = read_until(&mut first, is_started).await;
    drop(first);

    // A client joining mid-task with after=k gets exactly what follows k.
    let k = 3;
    let mut late = h.ws(id, k).await;
    let mut late_events = read_until(&mut late, is_started).await;

    open_gate(&h, id);
    late_events.extend(read_until(&mut late, is_end).await);

    // The dropped client reconnects from its last seq.
    let last = before_drop.last().unwrap().seq;
    let mut again = h.ws(id, last).await;
    let after_reconnect = read_until(&mut again, is_end).await;

    let full = h.events(id).await;
    assert_eq!(h.task(id).await.status, TaskStatus::Succeeded);
    assert!(
        full.iter()
            .any(|e| matches!(&e.body, EventBody::ToolOutput(o) if o.text.contains("finished")))
    );
    assert_eq!(late_events, full[k as usize..].to_vec());
    let rejoined: Vec<Event> = before_drop.into_iter().chain(after_reconnect).collect();
    assert_eq!(rejoined, full);
    let unique: HashSet<u64> = rejoined.iter().map(|e| e.seq).collect();
    assert_eq!(unique.len(), rejoined.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_client_does_not_slow_the_task_and_is_told_to_resume() {
    let loud = "head -c 2000000 /dev/zero | tr '\\0' x | fold -w 100";
    // Far more output than socket buffers and the subscriber queue can hold.
    let mut scenario = Scenario::new().turn(Turn::tool("bash", json!({"command": GATED})));
    for _ in 0..24 {
        scenario = scenario.turn(Turn::tool("bash", json!({"command": loud})));
    }
    let scenario = scenario.text("Done.");
    let h = Harness::start_with(scenario, |c| c.limits.ws_queue = 64).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "be loud").await;
    let id = task.id.as_str();

    // A client with a tiny receive buffer that stops reading once it is connected.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(h.coord().addr()).await.unwrap();
    let url = format!("ws://{}/api/v1/tasks/{id}/events?after=0", h.coord().addr());
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", h.token).parse().unwrap(),
    );
    let (mut stalled, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    // Make sure it is subscribed before the noise starts: wait for the gated command.
    read_until(&mut stalled, is_started).await;
    open_gate(&h, id);

    // The task finishes while that client reads nothing.
    let done = h.wait_done(id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);

    // When it reads again it finds a gap-free prefix, then an instruction to resume.
    let mut seqs = Vec::new();
    let resume = tokio::time::timeout(PATIENCE, async {
        loop {
            match next_msg(&mut stalled).await {
                Some(WsMessage::Event(e)) => seqs.push(e.seq),
                Some(WsMessage::Control(c)) if c.control == ControlKind::Resume => return c.after,
                Some(_) => {}
                None => panic!("closed without a resume message"),
            }
        }
    })
    .await
    .unwrap();
    let first = seqs.first().copied().unwrap_or(resume + 1);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gaps");
    assert_eq!(seqs.last().copied().unwrap_or(resume), resume);
    assert!(
        first > 1 && resume < done.last_seq,
        "the stalled client was cut off before the end"
    );
    let metrics = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("dockhand_ws_overflows_total 0"),
        "{metrics}"
    );
}
