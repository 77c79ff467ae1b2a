//! micro-core's codecs (JSON, protobuf, raw bytes; content type resolution) against the codec
//! suite of micro-conformance.

micro_conformance::codec_suite!();
