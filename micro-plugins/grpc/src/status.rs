//! micro errors ↔ gRPC statuses, both ways.
//!
//! | micro `code` | gRPC status | back to micro |
//! | --- | --- | --- |
//! | 400 | `INVALID_ARGUMENT` (3) | 400 |
//! | 401 | `UNAUTHENTICATED` (16) | 401 |
//! | 403 | `PERMISSION_DENIED` (7) | 403 |
//! | 404 | `NOT_FOUND` (5) | 404 |
//! | 405, 501 | `UNIMPLEMENTED` (12) | 501 |
//! | 408, 504 | `DEADLINE_EXCEEDED` (4) | 408 |
//! | 409 | `ALREADY_EXISTS` (6) | 409 |
//! | 413, 429 | `RESOURCE_EXHAUSTED` (8) | 429 |
//! | 415 | `INVALID_ARGUMENT` (3) | 400 |
//! | 499 | `CANCELLED` (1) | 499 |
//! | 502, 503 | `UNAVAILABLE` (14) | 503 |
//! | 500 and any other | `INTERNAL` (13) | 500 |
//! | | `UNKNOWN` (2), `DATA_LOSS` (15) | 500 |
//! | | `FAILED_PRECONDITION` (9), `OUT_OF_RANGE` (11) | 400 |
//! | | `ABORTED` (10) | 409 |
//!
//! The status message (`grpc-message`, what `details()` shows in grpcio) is the error's
//! `detail`. The whole micro error also travels as JSON in the binary `micro-error-bin`
//! trailer (base64 on the wire, so any detail fits), so a micro client gets back exactly
//! what the handler returned (id, code, `retryable`); the table applies to statuses without
//! it (from other gRPC servers). One exception to the table: an unknown method is
//! `UNIMPLEMENTED`, as gRPC clients expect, while its micro error is the 404 mucp gives.

use micro_core::Error;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// The binary trailer that carries the micro error as JSON.
pub const MICRO_ERROR: &str = "micro-error-bin";

/// The gRPC code a micro error code maps to.
pub fn code_of(micro_code: u16) -> Code {
    match micro_code {
        400 | 415 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        405 | 501 => Code::Unimplemented,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::AlreadyExists,
        413 | 429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        502 | 503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// The micro error code a gRPC code maps to (`OK` has none: 200).
pub fn micro_code_of(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 408,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// The status a micro error is sent as: its code per the table, its detail as the message,
/// the whole error in the `micro-error` trailer.
pub fn to_status(error: &Error) -> Status {
    to_status_as(code_of(error.code), error)
}

/// The status of `error` with `code` instead of the table's.
pub fn to_status_as(code: Code, error: &Error) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert_bin(
        MICRO_ERROR,
        MetadataValue::from_bytes(error.to_json().as_bytes()),
    );
    Status::with_metadata(code, error.detail.clone(), metadata)
}

/// The micro error a status stands for: the `micro-error` trailer when the server is micro,
/// else the table's code with the status message as the detail.
pub fn from_status(status: &Status, id: &str) -> Error {
    if let Some(json) = status
        .metadata()
        .get_bin(MICRO_ERROR)
        .and_then(|v| v.to_bytes().ok())
    {
        let error = Error::parse(&String::from_utf8_lossy(&json));
        if error.code != 0 {
            return error;
        }
    }
    let detail = if status.message().is_empty() {
        format!("gRPC status {:?}", status.code())
    } else {
        status.message().to_string()
    };
    Error::new(id, micro_code_of(status.code()), detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_micro_code_round_trips_to_a_close_one() {
        for (micro, grpc, back) in [
            (400, Code::InvalidArgument, 400),
            (401, Code::Unauthenticated, 401),
            (403, Code::PermissionDenied, 403),
            (404, Code::NotFound, 404),
            (405, Code::Unimplemented, 501),
            (408, Code::DeadlineExceeded, 408),
            (409, Code::AlreadyExists, 409),
            (413, Code::ResourceExhausted, 429),
            (415, Code::InvalidArgument, 400),
            (429, Code::ResourceExhausted, 429),
            (499, Code::Cancelled, 499),
            (500, Code::Internal, 500),
            (501, Code::Unimplemented, 501),
            (502, Code::Unavailable, 503),
            (503, Code::Unavailable, 503),
            (504, Code::DeadlineExceeded, 408),
            (418, Code::Internal, 500),
        ] {
            assert_eq!(code_of(micro), grpc, "{micro}");
            assert_eq!(micro_code_of(grpc), back, "{micro}");
        }
    }

    #[test]
    fn a_micro_error_travels_whole_in_the_trailer() {
        let error = Error::unavailable("greeter", "shutting down,\nünïcödé").retryable();
        let status = to_status(&error);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "shutting down,\nünïcödé");
        let back = from_status(&status, "go.micro.client");
        assert_eq!(back.id, "greeter");
        assert_eq!(back.code, 503);
        assert!(back.retryable);
        assert_eq!(back.detail, error.detail);
    }

    #[test]
    fn a_foreign_status_maps_by_the_table() {
        let back = from_status(&Status::not_found("no such user"), "go.micro.client");
        assert_eq!((back.code, back.detail.as_str()), (404, "no such user"));
        assert_eq!(back.id, "go.micro.client");
        let empty = from_status(&Status::new(Code::DataLoss, ""), "c");
        assert_eq!(empty.code, 500);
        assert!(empty.detail.contains("DataLoss"), "{empty}");
    }
}
