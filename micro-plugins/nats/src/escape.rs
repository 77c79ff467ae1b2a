//! The one reversible "hex escape" every component uses to fit arbitrary text into the
//! names NATS allows: stream and consumer names, subject and KV key tokens, bucket names,
//! header names and values.
//!
//! [`escape`] keeps the bytes of the UTF-8 text that the caller's `keep` accepts and writes
//! every other byte (and always the marker byte itself) as the marker followed by two
//! upper-case hex digits: with marker `_` and letters kept, `a.b` is `a_2Eb`. [`unescape`]
//! reverses it, accepting only such escapes. The encodings are persisted (KV keys, stream
//! names, headers), so the output of [`escape`] must never change.

/// The hex digits of an escape; only these (upper case) are accepted back.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `text` with every byte `keep` refuses, and the `marker` byte itself, written as `marker`
/// and two upper-case hex digits. `keep` is asked about each byte with its index in `text`;
/// a character is kept whole only when `keep` accepts all of its bytes, otherwise all of them
/// are escaped, so the result is always UTF-8 and [`unescape`] gives `text` back. `marker`
/// must be ASCII.
pub(crate) fn escape(text: &str, marker: u8, mut keep: impl FnMut(usize, u8) -> bool) -> String {
    debug_assert!(marker.is_ascii(), "the escape marker must be ASCII");
    let mut out = String::with_capacity(text.len());
    for (index, ch) in text.char_indices() {
        let mut buf = [0u8; 4];
        let encoded = ch.encode_utf8(&mut buf);
        if encoded
            .bytes()
            .enumerate()
            .all(|(offset, byte)| byte != marker && keep(index + offset, byte))
        {
            out.push(ch);
        } else {
            for byte in encoded.bytes() {
                out.push(char::from(marker));
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
    out
}

/// The text [`escape`] made `escaped` from with `marker`; `None` when a `marker` is not
/// followed by two upper-case hex digits or the bytes it gives are not UTF-8. Bytes other
/// than escapes are taken as they are, so this does not check that `escaped` is exactly what
/// [`escape`] would write (callers that need that compare with a fresh [`escape`]).
pub(crate) fn unescape(escaped: &str, marker: u8) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == marker {
            let high = hex_digit(*bytes.get(i + 1)?)?;
            let low = hex_digit(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Like [`escape`], but the empty text becomes the `marker` alone, so the result is never
/// empty (for subject and KV key tokens).
pub(crate) fn escape_nonempty(
    text: &str,
    marker: u8,
    keep: impl FnMut(usize, u8) -> bool,
) -> String {
    if text.is_empty() {
        char::from(marker).to_string()
    } else {
        escape(text, marker, keep)
    }
}

/// Reverses [`escape_nonempty`]: the `marker` alone is the empty text, anything else is
/// [`unescape`]d.
pub(crate) fn unescape_nonempty(escaped: &str, marker: u8) -> Option<String> {
    if escaped.len() == 1 && escaped.as_bytes()[0] == marker {
        Some(String::new())
    } else {
        unescape(escaped, marker)
    }
}

/// The value of an upper-case hex digit.
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alnum(_: usize, byte: u8) -> bool {
        byte.is_ascii_alphanumeric()
    }

    #[test]
    fn round_trips_including_unicode_and_the_marker() {
        for marker in [b'_', b'=', b'%'] {
            for text in [
                "",
                "plain",
                "a.b*c>d e",
                "ünïcödé ✓ 日本 🦀",
                "_",
                "=",
                "%",
                "_5F=3D%25",
                "\0\r\n\u{7f}",
            ] {
                let escaped = escape(text, marker, alnum);
                assert!(
                    escaped
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == marker),
                    "{escaped}"
                );
                assert_eq!(
                    unescape(&escaped, marker).as_deref(),
                    Some(text),
                    "{escaped}"
                );
                let token = escape_nonempty(text, marker, alnum);
                assert!(!token.is_empty());
                assert_eq!(unescape_nonempty(&token, marker).as_deref(), Some(text));
            }
        }
    }

    #[test]
    fn the_encoding_is_fixed() {
        assert_eq!(escape("a.b", b'_', alnum), "a_2Eb");
        assert_eq!(
            escape("_", b'_', |_, _| true),
            "_5F",
            "the marker is always escaped"
        );
        assert_eq!(escape("é", b'=', alnum), "=C3=A9");
        assert_eq!(escape("\n", b'%', alnum), "%0A");
        assert_eq!(escape(" a ", b'%', |i, b| b != b' ' || i == 1), "%20a%20");
        assert_eq!(escape_nonempty("", b'=', alnum), "=");
        assert_eq!(escape("", b'=', alnum), "");
    }

    #[test]
    fn bad_escapes_are_refused() {
        for bad in [
            "_", "a_", "_4", "_4g", "_2e", "_+F", "_-1", "_ 1", "_ü", "_FF", "_C3",
        ] {
            assert_eq!(unescape(bad, b'_'), None, "{bad:?}");
        }
        assert_eq!(
            unescape("a_41", b'_').as_deref(),
            Some("aA"),
            "not checked canonical"
        );
        assert_eq!(unescape("", b'_').as_deref(), Some(""));
        assert_eq!(unescape_nonempty("", b'=').as_deref(), Some(""));
        assert_eq!(unescape_nonempty("==", b'='), None);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // Every text of up to three bytes from an alphabet of markers, hex digits, other
        // ASCII and the pieces of multi-byte characters.
        let alphabet = [
            "_", "=", "%", "0", "9", "A", "F", "a", "f", "+", ".", "é", "✓", "🦀",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |a| format!("{t}{a}")))
                .collect();
            texts.extend(longer);
        }
        for text in &texts {
            for marker in [b'_', b'=', b'%'] {
                let _ = unescape(text, marker);
                let _ = unescape_nonempty(text, marker);
                let escaped = escape(text, marker, alnum);
                assert_eq!(unescape(&escaped, marker).as_ref(), Some(text));
                // A `keep` that accepts everything (but the marker) still round-trips.
                let escaped = escape(text, marker, |_, _| true);
                assert_eq!(unescape(&escaped, marker).as_ref(), Some(text));
            }
        }
    }
}
