//! Making, listing, attaching to and destroying sandboxes.

use dockhand_sandbox::NetworkLevel;

use super::Fixture;
use super::spec;
use crate::harness::sh;
use crate::harness::text;

pub(crate) async fn provider_creates_lists_and_destroys<F: Fixture>(fx: &F) {
    let provider = fx.provider();
    assert_eq!(provider.backend(), F::BACKEND);
    let t1 = provider
        .create(spec(fx, "t1", NetworkLevel::None))
        .await
        .unwrap();
    let t2 = provider
        .create(spec(fx, "t2", NetworkLevel::Open))
        .await
        .unwrap();
    let info = t1.info();
    assert_eq!(info.backend, F::BACKEND);
    assert_eq!(info.task_id.as_deref(), Some("t1"));
    assert_ne!(info.id, t2.info().id);

    let mut expected = vec![info.clone(), t2.info()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(provider.list().await.unwrap(), expected);

    sh(&*t1, "echo keep > /workspace/kept.txt").await;
    t1.destroy().await.unwrap();
    assert_eq!(provider.list().await.unwrap(), vec![t2.info()]);
    // The workspace outlives its sandbox.
    assert_eq!(
        std::fs::read_to_string(fx.workspace("t1").join("kept.txt")).unwrap(),
        "keep\n"
    );
    // Destroying twice is fine.
    t1.destroy().await.unwrap();
    t2.destroy().await.unwrap();
    assert_eq!(provider.list().await.unwrap(), vec![]);
}

pub(crate) async fn attach_finds_the_workspace_again<F: Fixture>(fx: &F) {
    let provider = fx.provider();
    let sb = provider
        .create(spec(fx, "t1", NetworkLevel::None))
        .await
        .unwrap();
    let id = sb.info().id;
    sh(&*sb, "echo persisted > /workspace/kept.txt").await;

    let again = provider
        .attach(&id, spec(fx, "t1", NetworkLevel::None))
        .await
        .unwrap()
        .expect("the sandbox and its workspace still exist");
    assert_eq!(again.info().id, id);
    assert_eq!(again.info().task_id.as_deref(), Some("t1"));
    assert_eq!(
        again.read_file("/workspace/kept.txt", 100).await.unwrap(),
        b"persisted\n"
    );
    assert_eq!(text(&sh(&*again, "echo hi").await.stdout), "hi\n");
    assert!(
        provider
            .attach("no-such-sandbox", spec(fx, "t1", NetworkLevel::None))
            .await
            .unwrap()
            .is_none()
    );
    again.destroy().await.unwrap();
    assert_eq!(provider.list().await.unwrap(), vec![]);
}
