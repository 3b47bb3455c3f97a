use super::PidLine;

#[test]
fn strips_the_pid_line_in_pieces() {
    let mut line = PidLine::default();
    assert_eq!(line.feed(b"@dockhand"), b"");
    assert_eq!(line.feed(b"-pid=42"), b"");
    assert_eq!(line.feed(b"\nerr"), b"err");
    assert_eq!(line.pid, Some(42));
    assert_eq!(line.feed(b"@dockhand-pid=9\n"), b"@dockhand-pid=9\n");
}

#[test]
fn passes_foreign_output_through() {
    let mut line = PidLine::default();
    assert_eq!(line.feed(b"sh: not found\n"), b"sh: not found\n");
    assert_eq!(line.pid, None);

    let mut line = PidLine::default();
    assert_eq!(line.feed(b"@dockhand-pid=x\n"), b"@dockhand-pid=x\n");
    assert_eq!(line.pid, None);

    let mut line = PidLine::default();
    assert_eq!(line.feed(b"@dock"), b"");
    assert_eq!(line.finish(), b"@dock");
}
