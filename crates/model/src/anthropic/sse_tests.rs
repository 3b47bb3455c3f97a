use super::*;

fn ev(event: &str, data: &str) -> SseEvent {
    SseEvent {
        event: event.to_owned(),
        data: data.to_owned(),
    }
}

fn parse_all(input: &str) -> Vec<SseEvent> {
    SseParser::new(1 << 20).feed(input.as_bytes()).unwrap()
}

#[test]
fn event_and_data_fields() {
    let events = parse_all("event: ping\ndata: {\"type\": \"ping\"}\n\ndata:no-space\n\n");
    assert_eq!(
        events,
        vec![
            ev("ping", "{\"type\": \"ping\"}"),
            ev("message", "no-space")
        ]
    );
}

#[test]
fn multi_line_data_is_joined_with_newlines() {
    let events = parse_all("event: x\ndata: one\ndata: two\ndata\n\n");
    assert_eq!(events, vec![ev("x", "one\ntwo\n")]);
}

#[test]
fn crlf_cr_comments_and_unknown_fields() {
    let input = ": keep-alive\r\nid: 7\r\nretry: 100\r\nevent: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r: a comment\n";
    assert_eq!(parse_all(input), vec![ev("a", "1"), ev("b", "2")]);
}

#[test]
fn an_event_without_data_is_not_dispatched_and_its_name_is_reset() {
    assert_eq!(
        parse_all("event: lonely\n\ndata: d\n\n"),
        vec![ev("message", "d")]
    );
}

#[test]
fn an_unterminated_event_stays_pending() {
    let mut parser = SseParser::new(1 << 20);
    assert_eq!(parser.feed(b"event: a\ndata: 1\n").unwrap(), vec![]);
    assert_eq!(parser.feed(b"\n").unwrap(), vec![ev("a", "1")]);
}

#[test]
fn chunks_split_anywhere_give_the_same_events() {
    let input = "event: message_start\r\ndata: {\"a\":\"\u{e9}\u{1F980}\"}\r\n\r\n: c\nevent: b\ndata: x\ndata: y\n\n";
    let whole = parse_all(input);
    assert_eq!(whole.len(), 2);
    // One byte at a time splits CRLF pairs and multi-byte characters.
    let mut parser = SseParser::new(1 << 20);
    let mut events = Vec::new();
    for byte in input.as_bytes() {
        events.extend(parser.feed(std::slice::from_ref(byte)).unwrap());
    }
    assert_eq!(events, whole);
}

#[test]
fn oversized_events_are_refused() {
    let mut parser = SseParser::new(16);
    let err = parser
        .feed(b"data: 0123456789\ndata: 0123456789\n")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model API response not understood: an event in the stream is larger than 16 bytes"
    );
    // A single endless line is refused too, before it ends.
    let mut parser = SseParser::new(16);
    assert!(parser.feed(b"data: 01234567890123456789").is_err());
}

#[test]
fn invalid_utf8_is_a_protocol_error() {
    let err = SseParser::new(64).feed(b"data: \xff\n\n").unwrap_err();
    assert!(matches!(err, ModelError::Protocol(_)), "{err}");
}
