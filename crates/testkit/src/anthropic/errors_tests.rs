use super::*;

#[test]
fn statuses_get_the_documented_error_types() {
    let of = |s: u16| error_type_for(StatusCode::from_u16(s).unwrap());
    assert_eq!(
        [
            of(400),
            of(401),
            of(402),
            of(403),
            of(404),
            of(408),
            of(409),
            of(413),
            of(429)
        ],
        [
            "invalid_request_error",
            "authentication_error",
            "billing_error",
            "permission_error",
            "not_found_error",
            "invalid_request_error",
            "conflict_error",
            "request_too_large",
            "rate_limit_error",
        ]
    );
    assert_eq!(
        [of(500), of(503), of(504), of(529)],
        [
            "api_error",
            "api_error",
            "timeout_error",
            "overloaded_error"
        ]
    );
    assert_eq!(default_message("overloaded_error"), "Overloaded");
}

#[test]
fn each_error_type_maps_back_to_its_status() {
    for status in [400, 401, 402, 403, 404, 409, 413, 429, 500, 504, 529] {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(status_for(error_type_for(status)), status);
    }
}
