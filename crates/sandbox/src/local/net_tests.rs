#[test]
fn reads_the_child_pid_only_when_complete() {
    let json = "{\n    \"child-pid\": 17653,\n    \"cgroup-namespace\": 1\n}\n";
    assert_eq!(super::child_pid(json), Some(17653));
    assert_eq!(super::child_pid("{\n    \"child-pid\": 176"), None);
    assert_eq!(super::child_pid("{"), None);
}
