//! The text of the commands' answers, in the layouts of the micro tool's transcripts.

use crate::commands::NodeAnswer;
use micro::registry::{Service, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// `get service`: the service, each version with its node table (ID, Address, Port,
/// Metadata), then each endpoint with its metadata, request and response shapes (→ is a tab):
///
/// ```text
/// service  greeter
///
/// version 1.0.0
///
/// ID→Address→Port→Metadata
/// greeter-1→127.0.0.1→9090→protocol=mucp,server=mucp
///
/// Endpoint: Greeter.Hello
/// Metadata: stream=false
///
/// Request: {
/// →name string
/// }
///
/// Response: {
/// →msg string
/// }
/// ```
pub fn service(versions: &[Service]) -> String {
    let Some(first) = versions.first() else {
        return String::new();
    };
    let mut out = format!("service  {}\n", first.name);
    for version in versions {
        let _ = write!(out, "\nversion {}\n", version_name(&version.version));
        out.push_str("\nID\tAddress\tPort\tMetadata\n");
        for node in &version.nodes {
            let (host, port) = split_address(&node.address);
            let _ = writeln!(
                out,
                "{}\t{host}\t{port}\t{}",
                node.id,
                pairs(&node.metadata)
            );
        }
    }
    for endpoint in &first.endpoints {
        let _ = write!(
            out,
            "\nEndpoint: {}\nMetadata: {}\n\nRequest: {}\n\nResponse: {}\n\n",
            endpoint.name,
            pairs(&shown_metadata(&endpoint.metadata)),
            shape(endpoint.request.as_ref()),
            shape(endpoint.response.as_ref()),
        );
    }
    out
}

fn version_name(version: &str) -> &str {
    if version.is_empty() {
        "latest"
    } else {
        version
    }
}

/// An endpoint's metadata without the JSON Schemas kept beside its shapes (the shapes are
/// printed as Request/Response).
fn shown_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let schemas = [
        micro::schema::REQUEST_SCHEMA,
        micro::schema::RESPONSE_SCHEMA,
    ];
    metadata
        .iter()
        .filter(|(k, _)| !schemas.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `k=v,k=v` in key order.
fn pairs(map: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// `host:port` as (host, port); an address without a port is all host.
fn split_address(address: &str) -> (&str, &str) {
    match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => (host, port),
        _ => (address, ""),
    }
}

/// A request or response shape: `{}` when it has no fields, else its fields one per line,
/// tab-indented by depth, nested messages in braces.
fn shape(value: Option<&Value>) -> String {
    match value {
        Some(value) if !value.values.is_empty() => {
            let mut out = String::from("{\n");
            for field in &value.values {
                field_lines(field, 1, &mut out);
            }
            out.push('}');
            out
        }
        _ => "{}".to_string(),
    }
}

fn field_lines(value: &Value, depth: usize, out: &mut String) {
    let indent = "\t".repeat(depth);
    if value.values.is_empty() {
        let _ = writeln!(out, "{indent}{} {}", value.name, value.type_);
        return;
    }
    let _ = writeln!(out, "{indent}{} {} {{", value.name, value.type_);
    for field in &value.values {
        field_lines(field, depth + 1, out);
    }
    let _ = writeln!(out, "{indent}}}");
}

/// `health`: one row per node with `ok` or the error (→ is a tab).
///
/// ```text
/// service  greeter
///
/// version 1.0.0
///
/// node→→address:port→→status
/// greeter-1→→127.0.0.1:9090→→ok
/// ```
pub fn health(name: &str, answers: &[NodeAnswer]) -> String {
    table(name, answers, "node\t\taddress:port\t\tstatus", |answer| {
        let status = match &answer.answer {
            Ok(value) => value
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("ok")
                .to_string(),
            Err(e) => e.to_json(),
        };
        format!("{}\t\t{}\t\t{status}", answer.node.id, answer.node.address)
    })
}

/// `stats`: one row per node: started, uptime, memory, threads, requests, errors.
pub fn stats(name: &str, answers: &[NodeAnswer]) -> String {
    let header = "node\t\taddress:port\t\tstarted\tuptime\tmemory\tthreads\trequests\terrors";
    table(name, answers, header, |answer| {
        let cells = match &answer.answer {
            Ok(stats) => {
                let number = |key: &str| stats.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
                let started =
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(number("started"));
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    humantime::format_rfc3339_seconds(started),
                    humantime::format_duration(std::time::Duration::from_secs(number("uptime"))),
                    human_bytes(number("memory")),
                    number("threads"),
                    number("requests"),
                    number("errors"),
                )
            }
            Err(e) => e.to_json(),
        };
        format!("{}\t\t{}\t\t{cells}", answer.node.id, answer.node.address)
    })
}

/// The service line, then per version its rows under `header`.
fn table(
    name: &str,
    answers: &[NodeAnswer],
    header: &str,
    row: impl Fn(&NodeAnswer) -> String,
) -> String {
    let mut out = format!("service  {name}\n");
    let mut versions: Vec<&str> = answers.iter().map(|a| a.version.as_str()).collect();
    versions.dedup();
    for version in versions {
        let _ = write!(out, "\nversion {}\n\n{header}\n", version_name(version));
        for answer in answers.iter().filter(|a| a.version == version) {
            out.push_str(&row(answer));
            out.push('\n');
        }
    }
    out
}

/// `12.3MiB`-style sizes.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{size:.1}{}", UNITS[unit])
    }
}

/// A JSON answer, pretty-printed with tab indentation as in the transcripts; anything that
/// is not JSON is returned as text.
pub fn pretty_json(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            match serde::Serialize::serialize(&value, &mut serializer) {
                Ok(()) => String::from_utf8_lossy(&out).into_owned(),
                Err(_) => String::from_utf8_lossy(body).into_owned(),
            }
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro::registry::{Endpoint, Node};

    fn value(name: &str, type_: &str, values: Vec<Value>) -> Value {
        Value {
            name: name.into(),
            type_: type_.into(),
            values,
        }
    }

    #[test]
    fn service_layout_matches_the_transcript() {
        let service = Service {
            name: "go.micro.srv.example".into(),
            version: "latest".into(),
            nodes: vec![Node {
                id: "go.micro.srv.example-1".into(),
                address: "192.168.1.65:53545".into(),
                metadata: [("transport", "http"), ("broker", "http")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            endpoints: vec![
                Endpoint {
                    name: "Example.Call".into(),
                    request: Some(value(
                        "Request",
                        "Request",
                        vec![
                            value("name", "string", vec![]),
                            value("to", "Address", vec![value("city", "string", vec![])]),
                        ],
                    )),
                    response: Some(value("Response", "Response", vec![])),
                    metadata: [("stream".to_string(), "false".to_string())].into(),
                },
                Endpoint {
                    name: "Example.Stream".into(),
                    metadata: [("stream".to_string(), "true".to_string())].into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let expected = "service  go.micro.srv.example\n\
            \n\
            version latest\n\
            \n\
            ID\tAddress\tPort\tMetadata\n\
            go.micro.srv.example-1\t192.168.1.65\t53545\tbroker=http,transport=http\n\
            \n\
            Endpoint: Example.Call\n\
            Metadata: stream=false\n\
            \n\
            Request: {\n\
            \tname string\n\
            \tto Address {\n\
            \t\tcity string\n\
            \t}\n\
            }\n\
            \n\
            Response: {}\n\
            \n\
            \n\
            Endpoint: Example.Stream\n\
            Metadata: stream=true\n\
            \n\
            Request: {}\n\
            \n\
            Response: {}\n\
            \n";
        assert_eq!(service_text(&service), expected);
    }

    fn service_text(s: &Service) -> String {
        service(std::slice::from_ref(s))
    }

    #[test]
    fn sizes_and_json() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0MiB");
        assert_eq!(
            pretty_json(br#"{"msg":"Hello John"}"#),
            "{\n\t\"msg\": \"Hello John\"\n}"
        );
        assert_eq!(pretty_json(b"not json"), "not json");
    }
}
