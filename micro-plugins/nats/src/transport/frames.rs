//! Frames on NATS: micro's header map to and from NATS headers, and the transport's own
//! control header that marks stream openings, ends, resets, credit and pings.

use async_nats::header::{HeaderName, HeaderValue};
use micro_core::transport::{HeaderMap, Message, header_text, headers};
use micro_core::{Error, Result};
use std::str::FromStr;

/// The `id` of errors raised by this transport.
pub(crate) const ID: &str = "go.micro.transport";

/// The transport's control header. A stream frame without it is a data frame; its value
/// says what a control frame is (see [`Control`]). Reserved: a frame the user sends with
/// this header is refused.
pub const CONTROL: &str = "Micro-Nats";

/// [`CONTROL`] as a NATS header name (made once: looking up by `&str` would copy it).
const CONTROL_NAME: HeaderName = HeaderName::from_static(CONTROL);

/// Frames a receiver may have outstanding (sent, not yet read by the receiving user) per
/// stream direction; the receiver grants credit back as its user reads.
pub const WINDOW: u32 = 64;

/// What a control frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Client → listener subject: open a stream; the reply subject is the client's inbox.
    Open,
    /// Server → client inbox: the stream is open; the reply subject is the server's inbox.
    Accept,
    /// The sender ended its direction.
    End,
    /// The receiver stopped reading: the peer's sends fail from now on.
    Stop,
    /// Both directions fail; `Micro-Error` carries the error (503 when absent).
    Reset,
    /// The receiver read this many frames: the sender may send as many more.
    Credit(u32),
    /// Liveness, sent by an idle side.
    Ping,
}

impl Control {
    /// The header value.
    pub(crate) fn value(self) -> String {
        match self {
            Control::Open => "open".into(),
            Control::Accept => "accept".into(),
            Control::End => "end".into(),
            Control::Stop => "stop".into(),
            Control::Reset => "reset".into(),
            Control::Credit(n) => format!("credit {n}"),
            Control::Ping => "ping".into(),
        }
    }

    /// Reads a header value; unknown values are an error naming them.
    pub(crate) fn parse(value: &str) -> Result<Control> {
        Ok(match value.trim() {
            "open" => Control::Open,
            "accept" => Control::Accept,
            "end" => Control::End,
            "stop" => Control::Stop,
            "reset" => Control::Reset,
            "ping" => Control::Ping,
            other => match other
                .strip_prefix("credit ")
                .map(|n| n.trim().parse::<u32>())
            {
                Some(Ok(n)) if n > 0 && n <= WINDOW => Control::Credit(n),
                _ => {
                    return Err(Error::bad_request(
                        ID,
                        format!(
                            "unknown {CONTROL} header {value:?}: expected open, accept, end, \
                             stop, reset, ping or credit N (1..={WINDOW})"
                        ),
                    ));
                }
            },
        })
    }

    /// NATS headers carrying only this control value.
    pub(crate) fn headers(self) -> async_nats::HeaderMap {
        let mut map = async_nats::HeaderMap::new();
        map.insert(CONTROL_NAME, self.value());
        map
    }
}

/// The control value of a received NATS message: `None` for a data frame (or a request).
pub(crate) fn control_of(message: &async_nats::Message) -> Option<Result<Control>> {
    let value = message.headers.as_ref()?.get_last(CONTROL_NAME)?;
    Some(Control::parse(value.as_str()))
}

/// The headers of a reset frame carrying `error`.
pub(crate) fn reset_headers(error: &Error) -> async_nats::HeaderMap {
    let mut map = Control::Reset.headers();
    map.insert(
        HeaderName::from_static(headers::ERROR),
        HeaderValue::from_lossy(&error.to_json()),
    );
    map
}

/// The error a reset frame carries (503 when it carries none).
pub(crate) fn reset_error(message: &async_nats::Message, subject: &str) -> Error {
    match message
        .headers
        .as_ref()
        .and_then(|h| h.get_last(headers::ERROR))
    {
        Some(json) => Error::parse(json.as_str()),
        None => Error::unavailable(ID, format!("{subject}: the peer reset the stream")),
    }
}

/// The NATS header name for `key`: micro's own names need no allocation; a name NATS
/// cannot carry (`:`, control characters, non-ASCII) or the reserved [`CONTROL`] is a 400.
fn header_name(key: &str) -> Result<HeaderName> {
    if let Some(known) = headers::reserved_name(key) {
        return Ok(HeaderName::from_static(known));
    }
    if key.eq_ignore_ascii_case(CONTROL) {
        return Err(Error::bad_request(
            ID,
            format!("header {CONTROL} is reserved by the nats transport; rename it"),
        ));
    }
    let parsed = if key.is_empty() {
        Err(())
    } else {
        HeaderName::from_str(key).map_err(|_| ())
    };
    parsed.map_err(|()| {
        Error::bad_request(
            ID,
            format!(
                "header name {key:?} cannot travel over NATS (empty, ':', control characters \
                 or non-ASCII); rename it"
            ),
        )
    })
}

/// A frame's headers as NATS headers (a key given twice is sent twice, in order). Values
/// with a line break are refused (NATS headers are lines).
pub(crate) fn to_nats(header: &HeaderMap) -> Result<async_nats::HeaderMap> {
    let mut map = async_nats::HeaderMap::new();
    for (i, (key, value)) in header.iter().enumerate() {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::bad_request(
                ID,
                format!(
                    "header {key}: its value has a line break, which NATS headers cannot \
                     carry; encode it"
                ),
            )
        })?;
        let name = header_name(key)?;
        // `insert` hashes the key once; `append` (for a key seen before) twice.
        if header
            .keys()
            .take(i)
            .any(|earlier| earlier.eq_ignore_ascii_case(key))
        {
            map.append(name, value);
        } else {
            map.insert(name, value);
        }
    }
    Ok(map)
}

/// A received NATS message as a frame, without the transport's control header.
pub(crate) fn to_frame(message: async_nats::Message) -> Message {
    let mut header = HeaderMap::new();
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let key: &str = name.as_ref();
            if key.eq_ignore_ascii_case(CONTROL) {
                continue;
            }
            for value in values {
                header.append(header_text(key), header_text(value.as_str()));
            }
        }
    }
    Message {
        header,
        body: message.payload,
    }
}

/// The timeout a request's `Timeout` header asks for: whole nanoseconds (go-micro) or a
/// duration such as `100ms`; `None` when absent or unreadable (the server answers an
/// unreadable one with 400).
pub(crate) fn timeout_of(frame: &Message) -> Option<std::time::Duration> {
    let text = frame.header(headers::TIMEOUT)?.trim();
    let timeout = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        std::time::Duration::from_nanos(text.parse().ok()?)
    } else {
        micro_core::config::parse_duration(text).ok()?
    };
    (!timeout.is_zero()).then_some(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_values_round_trip() {
        for c in [
            Control::Open,
            Control::Accept,
            Control::End,
            Control::Stop,
            Control::Reset,
            Control::Credit(7),
            Control::Ping,
        ] {
            assert_eq!(Control::parse(&c.value()).unwrap(), c);
        }
        for bad in ["", "credit", "credit 0", "credit 1000", "credit x", "nope"] {
            let err = Control::parse(bad).unwrap_err();
            assert_eq!(err.code, 400, "{bad}");
        }
    }

    #[test]
    fn bad_header_names_are_errors_not_panics() {
        for bad in ["a:b", "", "é", "a\nb", "micro-nats"] {
            let header = HeaderMap::new();
            let mut header = header;
            header.insert(bad, "x");
            assert_eq!(to_nats(&header).unwrap_err().code, 400, "{bad:?}");
        }
        let mut header = HeaderMap::new();
        header.insert("Ok", "line\nbreak");
        assert_eq!(to_nats(&header).unwrap_err().code, 400);
    }

    #[test]
    fn a_key_given_twice_is_sent_twice_in_order() {
        let mut header = HeaderMap::new();
        header.append("X-Twice".into(), "a".into());
        header.append("Micro-Id".into(), "1".into());
        header.append("X-Twice".into(), "b".into());
        let map = to_nats(&header).unwrap();
        let twice: Vec<&str> = map.get_all("X-Twice").map(|v| v.as_str()).collect();
        assert_eq!(twice, ["a", "b"]);
        assert_eq!(map.get("Micro-Id").map(|v| v.as_str()), Some("1"));
    }

    #[test]
    fn timeout_forms() {
        let frame = |v: &str| Message::new("").with_header("Timeout", v);
        assert_eq!(
            timeout_of(&frame("100000000")),
            Some(std::time::Duration::from_millis(100))
        );
        assert_eq!(
            timeout_of(&frame("250ms")),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(timeout_of(&frame("0")), None);
        assert_eq!(timeout_of(&frame("soon")), None);
        assert_eq!(timeout_of(&Message::new("")), None);
    }
}
