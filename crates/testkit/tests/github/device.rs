//! The device flow.

use super::*;

#[tokio::test]
async fn the_device_flow_waits_slows_down_then_succeeds_once() {
    let fake = FakeGitHub::start(FakeGitHubOptions {
        client_id: Some("cid".into()),
        device_interval: 0,
        slow_down_increment: 1,
        ..options(&["alice", "bob"])
    })
    .await
    .unwrap();
    let response = client()
        .post(format!("{}/login/device/code", fake.base_url()))
        .header("accept", "application/json")
        .form(&[("client_id", "cid"), ("scope", "read:user read:org")])
        .send()
        .await
        .unwrap();
    let codes: Value = response.json().await.unwrap();
    let device_code = codes["device_code"].as_str().unwrap();
    assert_eq!(device_code.len(), 40);
    assert!(device_code.chars().all(|c| c.is_ascii_hexdigit()));
    let user_code = codes["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(
        codes["verification_uri"],
        format!("{}/login/device", fake.base_url())
    );
    assert_eq!(
        (codes["expires_in"].as_u64(), codes["interval"].as_u64()),
        (Some(900), Some(0))
    );

    let poll = [
        ("client_id", "cid"),
        ("device_code", device_code),
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
    ];
    let first = token_json(&fake, &poll).await;
    assert_eq!(first["error"], "authorization_pending");
    let second = token_json(&fake, &poll).await;
    assert_eq!(second["error"], "slow_down");
    assert_eq!(second["interval"], 1);
    let third = token_json(&fake, &poll).await;
    let token = third["access_token"].as_str().unwrap();
    assert_eq!(third["scope"], "read:user,read:org");
    let user: Value = api(&fake, token, "/user").await.json().await.unwrap();
    assert_eq!(user["login"], "alice");
    let fourth = token_json(&fake, &poll).await;
    assert_eq!(fourth["error"], "incorrect_device_code");

    let unknown = token_json(
        &fake,
        &[("client_id", "cid"), ("device_code", "0000"), poll[2]],
    )
    .await;
    assert_eq!(unknown["error"], "incorrect_device_code");
    let polls = fake.device_polls();
    assert_eq!(polls.len(), 5);
    assert!(polls.windows(2).all(|w| w[0] <= w[1]));

    // The web page for humans, and the form-encoded code reply.
    let page = client()
        .get(format!("{}/login/device", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    let text = client()
        .post(format!("{}/login/device/code", fake.base_url()))
        .form(&[("client_id", "cid")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("device_code="), "{text}");
    assert!(text.contains("&interval=0"), "{text}");
}

#[tokio::test]
async fn an_expired_device_code_says_so() {
    let fake = FakeGitHub::start(FakeGitHubOptions {
        device_expires_in: 0,
        ..options(&["alice"])
    })
    .await
    .unwrap();
    let codes: Value = client()
        .post(format!("{}/login/device/code", fake.base_url()))
        .header("accept", "application/json")
        .form(&[("client_id", "c")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reply = token_json(
        &fake,
        &[
            ("client_id", "c"),
            ("device_code", codes["device_code"].as_str().unwrap()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ],
    )
    .await;
    assert_eq!(reply["error"], "expired_token");
}
