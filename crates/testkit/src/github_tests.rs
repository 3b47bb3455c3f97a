use super::*;

#[test]
fn minting_stops_at_the_cap() {
    let mut inner = Inner::default();
    for _ in 0..MAX_GRANTS {
        assert!(inner.mint(0, Vec::new()).is_some());
    }
    assert!(inner.mint(0, Vec::new()).is_none());
    // Revoking does not make room: `issued` keeps every token for leak checks.
    let first = inner.issued[0].clone();
    inner.tokens.remove(&first);
    assert!(inner.mint(0, Vec::new()).is_none());
    assert_eq!(inner.issued.len(), MAX_GRANTS);
}

#[test]
fn codes_make_room_only_by_expiring() {
    let now = Instant::now();
    let mut inner = Inner::default();
    let grant = |expires| CodeGrant {
        user: 0,
        redirect_uri: String::new(),
        scopes: Vec::new(),
        expires,
    };
    for i in 0..MAX_GRANTS - 1 {
        inner
            .codes
            .insert(format!("live{i}"), grant(now + CODE_TTL));
    }
    inner.codes.insert("old".into(), grant(now));
    assert!(inner.room_for_code(now), "the expired code is dropped");
    assert!(!inner.codes.contains_key("old"));
    inner.codes.insert("new".into(), grant(now + CODE_TTL));
    assert!(!inner.room_for_code(now));
}

#[test]
fn scopes_split_on_spaces_and_commas_without_repeats() {
    assert_eq!(
        parse_scopes("repo read:org,repo  user:email,"),
        ["repo", "read:org", "user:email"]
    );
    assert!(parse_scopes("").is_empty());
}
