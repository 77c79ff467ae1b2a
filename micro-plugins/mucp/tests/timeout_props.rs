//! Property tests of the `Timeout` header (`micro_mucp::wire::parse_timeout`): any text is
//! a duration or a 400 naming the header and the value, never a panic; what a client writes
//! reads back as the same duration; zero, negative, huge and non-numeric values are errors.

use micro_core::client::Request;
use micro_core::transport::{ByteString, headers};
use micro_mucp::wire::{parse_timeout, request_frame};
use proptest::prelude::*;
use std::time::Duration;

/// The error for `value` is a 400 naming the header and quoting the value.
fn rejected(value: &str) -> Result<(), TestCaseError> {
    let err = match parse_timeout(value) {
        Ok(timeout) => return Err(TestCaseError::fail(format!("{value:?} gave {timeout:?}"))),
        Err(err) => err,
    };
    prop_assert_eq!(err.code, 400);
    prop_assert!(err.detail.contains("Timeout header"), "{}", err.detail);
    prop_assert!(err.detail.contains(&format!("{value:?}")), "{}", err.detail);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_positive_duration_or_a_400(value in any::<String>()) {
        match parse_timeout(&value) {
            Ok(timeout) => prop_assert!(!timeout.is_zero()),
            Err(_) => rejected(&value)?,
        }
    }

    #[test]
    fn digit_and_unit_soup_never_panics(value in "[ 0-9a-z.+-]{0,24}") {
        match parse_timeout(&value) {
            Ok(timeout) => prop_assert!(!timeout.is_zero()),
            Err(_) => rejected(&value)?,
        }
    }

    #[test]
    fn nanoseconds_round_trip(nanos in 1u64..=u64::MAX) {
        let timeout = Duration::from_nanos(nanos);
        prop_assert_eq!(parse_timeout(&nanos.to_string()), Ok(timeout));
        // What the client writes is what the server reads.
        let frame = request_frame(
            &Request::new("svc", "Svc.Call", "{}"),
            &ByteString::from_static("id"),
            Some(timeout),
        );
        let written = frame.header(headers::TIMEOUT).expect("a Timeout header");
        prop_assert_eq!(parse_timeout(written), Ok(timeout));
    }

    #[test]
    fn durations_with_units_round_trip(n in 1u64..1_000_000, unit in 0usize..4) {
        let (text, timeout) = match unit {
            0 => (format!("{n}ms"), Duration::from_millis(n)),
            1 => (format!("{n}s"), Duration::from_secs(n)),
            2 => (format!("{n}m"), Duration::from_secs(n * 60)),
            _ => (format!(" {n}us "), Duration::from_micros(n)),
        };
        prop_assert_eq!(parse_timeout(&text), Ok(timeout));
    }

    #[test]
    fn zero_in_any_form_is_rejected(zeros in "0{1,6}", unit in "(|ns|us|ms|s|m|h)") {
        rejected(&format!("{zeros}{unit}"))?;
    }

    #[test]
    fn negative_values_are_rejected(n in 1u64..=u64::MAX, unit in "(|ns|ms|s|m)") {
        rejected(&format!("-{n}{unit}"))?;
    }

    #[test]
    fn numbers_beyond_any_deadline_are_rejected(extra in "[0-9]{1,10}", unit in "(|s|h)") {
        // More than u64::MAX nanoseconds (bare), or hundreds of billions of years.
        rejected(&format!("{}{extra}{unit}", u64::MAX))?;
    }

    #[test]
    fn text_without_digits_is_rejected(value in "[a-zA-Z .:_-]{0,20}") {
        rejected(&value)?;
    }
}
