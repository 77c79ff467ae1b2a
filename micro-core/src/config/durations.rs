//! Serde helpers for durations written as `5s`, `1m`, `250ms`, or whole seconds (`30`).

use serde::{Deserialize, Deserializer, Serializer, de};
use std::time::Duration;

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Seconds(u64),
    Float(f64),
    Text(String),
}

/// Parses `5s`, `1m`, `250ms`, `1h30m` or bare seconds (`30`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|_| {
        format!("invalid duration {text:?}: write it as 30 (seconds), 5s, 1m or 250ms")
    })
}

fn from_raw<E: de::Error>(raw: Raw) -> Result<Duration, E> {
    match raw {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Float(f) if f.is_finite() && f >= 0.0 => {
            Duration::try_from_secs_f64(f).map_err(|_| {
                E::custom(format!(
                    "invalid duration {f}: it is too large; write it as 30 (seconds), 5s, 1m \
                     or 250ms"
                ))
            })
        }
        Raw::Float(f) => Err(E::custom(format!(
            "invalid duration {f}: it must not be negative"
        ))),
        Raw::Text(t) => parse_duration(&t).map_err(E::custom),
    }
}

fn format(d: &Duration) -> String {
    humantime::format_duration(*d).to_string()
}

/// `#[serde(with = "micro::config::duration")]` for `Duration` fields.
pub mod duration {
    use super::*;

    /// Writes `5s`, `1m`, ...
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(d))
    }

    /// Reads `5s`, `1m`, `250ms` or bare seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_raw(Raw::deserialize(d)?)
    }
}

/// `#[serde(with = "micro::config::option_duration")]` for `Option<Duration>` fields.
pub mod option_duration {
    use super::*;

    /// Writes `5s`, `1m`, ... or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(d)),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<Raw>::deserialize(d)?.map(from_raw).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_seconds() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").unwrap_err().contains("250ms"));
    }

    #[test]
    fn huge_float_seconds_are_an_error_not_a_panic() {
        #[derive(Debug, serde::Deserialize)]
        struct Holder {
            #[serde(with = "duration")]
            #[allow(dead_code)]
            d: Duration,
        }
        let err = serde_json::from_str::<Holder>(r#"{"d": 5.4e256}"#).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        let ok: Holder = serde_json::from_str(r#"{"d": 1.5}"#).unwrap();
        assert_eq!(ok.d, Duration::from_millis(1500));
    }
}
