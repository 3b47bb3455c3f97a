//! A killed coordinator resumes its tasks.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_resumes_its_tasks_without_rerunning_a_command() {
    resume_after_kills("local").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_reattaches_the_same_container() {
    resume_after_kills("docker").await;
}

/// Kills the coordinator twice, once while a command runs and once between tool
/// calls, and checks the task finishes without running the command again.
async fn resume_after_kills(backend: &str) {
    let gated = "echo started; sleep 777.123 & while [ ! -e /workspace/.git/go ]; do sleep 0.02; done; echo finished";
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": gated})))
        .turn(Turn::tool("bash", json!({"command": "echo second"})))
        .turn(Turn::text("a slow answer that will be cut off by the crash").stop_reason("end_turn"))
        .text("Done.")
        .token_delay_ms(150);
    let env = Env::with_backend(scenario, backend).await;
    let docker = backend == "docker";
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("dockhand.toml"),
        "[sandbox]\nidle_secs = 1\npool_size = 0\n",
    )
    .unwrap();
    let repo = env.dir.path().join("repo");
    make_repo(&repo);
    let (mut server, url, _) = env.serve();
    let token = env.token();
    let task = api(
        &url,
        &token,
        reqwest::Method::POST,
        "/api/v1/tasks",
        Some(json!({"repo": repo, "prompt": "wait"})),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let events_path = format!("/api/v1/tasks/{id}/events");
    let has = |events: &Value, needle: &str| {
        events["events"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "tool_output" && e["data"]["text"].as_str().unwrap().contains(needle)
        })
    };

    // Crash 1: while a command runs in the sandbox.
    eventually("the command to start", || async {
        has(
            &api(&url, &token, reqwest::Method::GET, &events_path, None).await,
            "started",
        ) && processes_with("777.123") > 0
    })
    .await;
    let task_path = format!("/api/v1/tasks/{id}");
    let container =
        api(&url, &token, reqwest::Method::GET, &task_path, None).await["sandbox"]["id"].clone();
    kill9(&mut server);
    if !docker {
        eventually("the sandbox to die with the coordinator", || async {
            processes_with("777.123") == 0
        })
        .await;
    }

    let (mut server, url, _) = env.serve();
    // A container outlives the coordinator; re-attaching stops what was left running.
    eventually("the interrupted command to be gone", || async {
        processes_with("777.123") == 0
    })
    .await;
    // Crash 2: between tool calls, while the model is streaming its next turn.
    eventually("the model to be asked again", || async {
        env.fake.requests().len() >= 3
    })
    .await;
    kill9(&mut server);
    let (mut server, url2, _) = env.serve();
    let _ = url;
    let same =
        api(&url2, &token, reqwest::Method::GET, &task_path, None).await["sandbox"]["id"].clone();
    assert_eq!(
        same, container,
        "the task keeps its sandbox across restarts"
    );
    eventually("the task to finish", || async {
        let t = api(
            &url2,
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/tasks/{id}"),
            None,
        )
        .await;
        t["status"] == "succeeded"
    })
    .await;

    let requests = env.fake.requests();
    // After the first crash the model was told the command was interrupted.
    let second = &requests[1]["messages"];
    let result = second.as_array().unwrap().last().unwrap()["content"][0].clone();
    assert_eq!(result["type"], "tool_result");
    assert!(result["is_error"].as_bool().unwrap());
    let text = result["content"].as_str().unwrap();
    assert!(
        text.contains("interrupted") && text.contains("started"),
        "{text}"
    );
    // It was never run a second time.
    let events = api(&url2, &token, reqwest::Method::GET, &events_path, None).await;
    let all = events.to_string();
    let output: String = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tool_output")
        .map(|e| e["data"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(output.matches("started").count(), 1, "{output}");
    assert!(
        !output.contains("finished"),
        "the interrupted command ran again: {output}"
    );
    assert!(output.contains("second"), "{output}");
    // Events stayed gap-free across both crashes.
    let seqs: Vec<u64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(all.contains("resuming after a coordinator restart"));
    if docker {
        let coordinator = std::fs::read_to_string(env.data().join("coordinator-id")).unwrap();
        let filter = format!("label=dockhand.coordinator={}", coordinator.trim());
        eventually("no container to be left over", || async {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .unwrap();
            out.stdout.is_empty()
        })
        .await;
    }
    kill9(&mut server);
}
