//! The TXT record of one node, as go-micro's mdns registry writes it: the service record
//! (here the whole single-node `registry::Service`) JSON-encoded, zlib-compressed,
//! hex-encoded and split into TXT strings. mdns-sd writes TXT strings as `key=value`, so the
//! chunks are `e00=<hex>`, `e01=<hex>`, ... (go-micro writes bare chunks); the receiving
//! side joins them in key order.

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use micro_core::registry::Service;
use std::io::{Read, Write};

/// Hex characters per TXT string (a TXT string holds at most 255 bytes, `eNN=` included).
pub const CHUNK: usize = 248;

/// Most hex digits sent: with the `eNN=` keys and length bytes the TXT record stays under
/// the 9000-byte mDNS packet (RFC 6762 §17) with room for the other records.
pub const MAX_HEX: usize = 7936;

/// Largest decoded record accepted (a peer cannot make us inflate without bound).
const MAX_RECORD: u64 = 1 << 20;

/// The TXT strings (key, value) of `service`.
pub fn encode(service: &Service) -> Result<Vec<(String, String)>, String> {
    let json = serde_json::to_vec(service).map_err(|e| format!("encoding the record: {e}"))?;
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&json)
        .and_then(|()| zlib.finish())
        .map_err(|e| format!("compressing the record: {e}"))
        .map(|compressed| {
            let hex: String = compressed.iter().map(|b| format!("{b:02x}")).collect();
            (hex, compressed.len())
        })
        .and_then(|(hex, compressed)| {
            if hex.len() > MAX_HEX {
                return Err(format!(
                    "the service record is too large for an mDNS TXT record ({} bytes of \
                     JSON, {compressed} compressed, {} hex digits; at most {MAX_HEX} fit one \
                     packet): register fewer endpoints or less metadata, or use another \
                     registry",
                    json.len(),
                    hex.len()
                ));
            }
            Ok(hex)
        })
        .map(|hex| {
            hex.as_bytes()
                .chunks(CHUNK)
                .enumerate()
                .map(|(i, chunk)| {
                    (
                        format!("e{i:02}"),
                        String::from_utf8_lossy(chunk).into_owned(),
                    )
                })
                .collect()
        })
}

/// The service of TXT strings made by [`encode`]; an error says what is wrong.
pub fn decode<'a>(strings: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Service, String> {
    let mut chunks: Vec<(usize, &str)> = strings
        .filter_map(|(key, value)| {
            key.strip_prefix('e')
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| (n, value))
        })
        .collect();
    if chunks.is_empty() {
        return Err("no eNN TXT strings: not a micro record".into());
    }
    chunks.sort_by_key(|(n, _)| *n);
    let hex: String = chunks.iter().map(|(_, v)| *v).collect();
    if !hex.is_ascii() || !hex.len().is_multiple_of(2) {
        return Err("not an even number of hex digits".into());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|e| format!("not hex: {e}"))?;
    let mut json = Vec::new();
    ZlibDecoder::new(bytes.as_slice())
        .take(MAX_RECORD)
        .read_to_end(&mut json)
        .map_err(|e| format!("not zlib: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("not a service record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::registry::Node;

    #[test]
    fn round_trips_and_splits_long_records() {
        let service = Service {
            name: "greeter".into(),
            version: "1.0.0".into(),
            metadata: (0..200)
                .map(|i| (format!("key{i}"), format!("{i:x}{}", "v".repeat(i % 7))))
                .collect(),
            nodes: vec![Node {
                id: "greeter-1".into(),
                address: "10.0.0.1:8080".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let strings = encode(&service).unwrap();
        assert!(strings.len() > 1, "{} strings", strings.len());
        assert!(strings.iter().all(|(k, v)| k.len() + 1 + v.len() <= 255));
        let mut reversed = strings.clone();
        reversed.reverse();
        let back = decode(reversed.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, service);
    }

    #[test]
    fn a_record_too_large_for_a_packet_is_a_clear_error() {
        let service = Service {
            name: "big".into(),
            // Incompressible metadata: distinct pseudo-random values.
            metadata: (0..2000u64)
                .map(|i| {
                    (
                        format!("k{i}"),
                        format!("{:x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    )
                })
                .collect(),
            ..Default::default()
        };
        let error = encode(&service).unwrap_err();
        assert!(
            error.contains("too large for an mDNS TXT record"),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for strings in [
            vec![],
            vec![("e00", "zz")],
            vec![("e00", "abc")],
            vec![("e00", "00ff")],
            vec![("other", "00")],
            vec![("e00", "é0")],
        ] {
            assert!(decode(strings.into_iter()).is_err());
        }
    }
}
