//! Two services in one process logging with different formats (zap and text), levels and
//! fields; both outputs captured and parsed. Needs the `zap` feature.
#![cfg(feature = "zap")]

use micro::logger::LogOutput;
use std::sync::{Arc, Mutex};

fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
}

/// Every component off, so the test sees only its own lines.
fn env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        "MICRO_SERVER_ENABLED",
        "MICRO_CLIENT_ENABLED",
        "MICRO_REGISTRY_ENABLED",
        "MICRO_SELECTOR_ENABLED",
        "MICRO_TRANSPORT_ENABLED",
        "MICRO_STORE_ENABLED",
        "MICRO_EVENTS_ENABLED",
        "MICRO_SYNC_ENABLED",
        "MICRO_AUTH_ENABLED",
    ]
    .iter()
    .map(|k| (k.to_string(), "false".to_string()))
    .collect();
    // The broker stays on (its loggers are the ones used) on a backend that needs nothing.
    env.push(("MICRO_BROKER".to_string(), "memory".to_string()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn service(name: &str, env: Vec<(String, String)>, out: &Arc<Mutex<Vec<u8>>>) -> micro::Service {
    match micro::Service::builder()
        .name(name)
        .args([name])
        .env(env)
        .log_output(LogOutput::buffer(out.clone()))
        .try_build()
    {
        Ok(micro::Built::Service(service)) => service,
        Ok(_) => panic!("help/version instead of a service"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn zap_and_text_services_side_by_side() {
    let (zap_out, text_out) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let zap = service(
        "alpha",
        env(&[
            ("MICRO_LOGGER", "zap"),
            ("MICRO_LOGGER_LEVEL", "debug"),
            ("MICRO_LOGGER_FIELDS", "service=alpha"),
            ("MICRO_BROKER_LOGGER_FIELDS", "component=broker"),
        ]),
        &zap_out,
    );
    let plain = service(
        "beta",
        env(&[
            ("MICRO_LOGGER_LEVEL", "warn"),
            ("MICRO_BROKER_LOGGER_FIELDS", "component=broker"),
        ]),
        &text_out,
    );
    for (service, tag) in [(&zap, "alpha"), (&plain, "beta")] {
        service.logger("broker").in_scope(|| {
            tracing::debug!(topic = "orders", "{tag} debug line");
            tracing::warn!(attempt = 2, "{tag} warn line");
        });
    }

    let zap_lines: Vec<serde_json::Value> = text(&zap_out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    assert_eq!(zap_lines.len(), 2, "{zap_lines:?}");
    assert_eq!(zap_lines[0]["level"], "debug");
    assert_eq!(zap_lines[0]["msg"], "alpha debug line");
    assert_eq!(zap_lines[0]["topic"], "orders");
    assert_eq!(zap_lines[0]["component"], "broker", "the section's fields");
    assert_eq!(zap_lines[0]["service"], "alpha", "the top-level fields");
    assert_eq!(zap_lines[1]["level"], "warn");
    assert_eq!(zap_lines[1]["attempt"], 2);
    for line in &zap_lines {
        assert!(line["ts"].is_f64(), "{line}");
        assert!(
            line["caller"].as_str().unwrap().contains("zap_logging.rs:"),
            "{line}"
        );
    }

    let text_lines: Vec<String> = text(&text_out).lines().map(str::to_string).collect();
    assert_eq!(text_lines.len(), 1, "warn only: {text_lines:?}");
    let line = &text_lines[0];
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "text: {line}"
    );
    assert!(
        line.contains("WARN") && line.contains("component=broker"),
        "{line}"
    );
    assert!(
        line.contains("beta warn line") && line.contains("attempt=2"),
        "{line}"
    );
}

#[test]
fn json_is_zap_and_a_component_can_choose_its_own_format() {
    let out = Arc::new(Mutex::new(Vec::new()));
    // Text at the top, json (= zap) for the broker alone.
    let service = service("gamma", env(&[("MICRO_BROKER_LOGGER", "json")]), &out);
    service
        .logger("broker")
        .in_scope(|| tracing::info!("broker line"));
    service
        .logger("registry")
        .in_scope(|| tracing::info!("registry line"));
    let text = text(&out);
    let mut lines = text.lines();
    let broker: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(broker["msg"], "broker line");
    let registry = lines.next().unwrap();
    assert!(
        registry.contains("INFO") && registry.contains("registry line"),
        "{registry}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(registry).is_err());
}
