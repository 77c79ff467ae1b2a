//! `GET /openapi.json`: an OpenAPI 3.1 document of every endpoint the gateway reaches, built
//! from the registry on each request, so it follows services as they come and go.
//!
//! Each unary endpoint gets `POST <path>`, the path being the one the gateway's resolver
//! maps back to it (or the path it declared), its request and response schemas being the
//! JSON Schemas kept in its registry metadata (their `$defs` moved to
//! `components/schemas`, prefixed with the service's name). Streaming endpoints (websocket)
//! and subscribers are left out, and so is everything when the handler does not call
//! endpoints (`event`, `http`, `proxy`, `web`) or the resolver has no inverse (`host`).

use super::resolver::{Resolver, api_route, camel, with_namespace};
use super::{Gateway, HandlerKind, error_response, json_response};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use micro::Error;
use micro::registry::Endpoint;
use serde_json::{Map, Value, json};

/// Serves the document.
pub(super) async fn serve(State(gateway): State<Gateway>) -> Response {
    match document(&gateway).await {
        Ok(document) => json_response(StatusCode::OK, document.to_string()),
        Err(e) => error_response(&e),
    }
}

/// `SayHello` → `sayHello` (the resolver turns it back into `SayHello`).
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The service name without the namespace, if the gateway's joining rule produced it.
fn short_name<'a>(namespace: &str, service: &'a str) -> Option<&'a str> {
    if namespace.is_empty() {
        return Some(service);
    }
    let rest = if namespace.ends_with('.') || namespace.ends_with('-') {
        service.strip_prefix(namespace)?
    } else {
        service.strip_prefix(namespace)?.strip_prefix('.')?
    };
    (with_namespace(namespace, rest) == service).then_some(rest)
}

/// The path that the gateway's resolver maps to `service`'s `endpoint`, checked by
/// resolving it back; `None` when there is none.
pub fn path_for(
    resolver: Resolver,
    namespace: &str,
    service: &str,
    endpoint: &str,
) -> Option<String> {
    let short = short_name(namespace, service)?;
    let (trait_, method) = endpoint.split_once('.')?;
    let segments: Vec<&str> = short.split('.').collect();
    let path = match resolver {
        Resolver::Micro | Resolver::Path | Resolver::Vpath => {
            if segments.len() == 1 && camel(short) == trait_ {
                format!("/{short}/{}", lower_first(method))
            } else {
                format!(
                    "/{}/{}/{}",
                    segments.join("/"),
                    lower_first(trait_),
                    lower_first(method)
                )
            }
        }
        Resolver::Grpc => format!("/{short}.{trait_}/{method}"),
        Resolver::Host => return None,
    };
    let back = match resolver {
        Resolver::Micro => api_route(&path),
        other => other
            .resolve(&path, "", "")
            .ok()
            .map(|r| (r.service, r.endpoint)),
    };
    (back == Some((short.to_string(), endpoint.to_string()))).then_some(path)
}

/// A schema from endpoint metadata, its `$defs` moved into `components` under `prefix`.
fn schema(text: Option<&String>, prefix: &str, components: &mut Map<String, Value>) -> Value {
    let Some(mut schema) = text.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return json!({});
    };
    if let Value::Object(root) = &mut schema {
        root.remove("$schema");
        if let Some(Value::Object(defs)) = root.remove("$defs") {
            for (name, mut def) in defs {
                rewrite_refs(&mut def, prefix);
                components.insert(format!("{prefix}{name}"), def);
            }
        }
    }
    rewrite_refs(&mut schema, prefix);
    schema
}

/// `#/$defs/X` → `#/components/schemas/<prefix>X`, everywhere in `value`.
fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("#/components/schemas/{prefix}{name}");
                        }
                    }
                    (_, item) => rewrite_refs(item, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_refs(i, prefix)),
        _ => {}
    }
}

/// A name usable in `components/schemas` (`[A-Za-z0-9._-]`).
fn component_name(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn operation(service: &str, endpoint: &Endpoint, components: &mut Map<String, Value>) -> Value {
    let prefix = format!("{}.", component_name(service));
    let request = schema(
        endpoint.metadata.get(micro::schema::REQUEST_SCHEMA),
        &prefix,
        components,
    );
    let response = schema(
        endpoint.metadata.get(micro::schema::RESPONSE_SCHEMA),
        &prefix,
        components,
    );
    let mut operation = json!({
        "operationId": format!("{service}.{}", endpoint.name),
        "summary": format!("{service} {}", endpoint.name),
        "tags": [service],
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": request}},
        },
        "responses": {
            "200": {
                "description": "The endpoint's answer.",
                "content": {"application/json": {"schema": response}},
            },
            "default": {
                "description": "A micro error; the HTTP status is its code.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MicroError"}}},
            },
        },
    });
    if let Some(description) = endpoint.metadata.get("description") {
        operation["description"] = Value::String(description.clone());
    }
    operation
}

/// The document for the gateway's current view of the registry.
pub async fn document(gateway: &Gateway) -> Result<Value, Error> {
    let options = gateway.options();
    let calls_endpoints = matches!(
        options.handler,
        HandlerKind::Meta | HandlerKind::Rpc | HandlerKind::Api
    );
    let mut paths = Map::new();
    let mut components = Map::new();
    components.insert(
        "MicroError".into(),
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "code": {"type": "integer"},
                "detail": {"type": "string"},
                "status": {"type": "string"},
            },
        }),
    );
    let commands = gateway.commands();
    let names = if calls_endpoints {
        commands.list_services().await?
    } else {
        Vec::new()
    };
    for name in names {
        let Ok(versions) = commands.get_service(&name).await else {
            continue;
        };
        let Some(service) = versions.first() else {
            continue;
        };
        for endpoint in &service.endpoints {
            let streams = endpoint.metadata.get("stream").is_some_and(|s| s == "true");
            if streams || endpoint.metadata.contains_key("subscriber") {
                continue;
            }
            let declared = endpoint
                .metadata
                .get("path")
                .filter(|p| {
                    p.starts_with('/')
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
                })
                .cloned();
            let Some(path) = declared.or_else(|| {
                path_for(
                    options.resolver,
                    &options.namespace,
                    &service.name,
                    &endpoint.name,
                )
            }) else {
                continue;
            };
            paths.insert(
                path,
                json!({"post": operation(&service.name, endpoint, &mut components)}),
            );
        }
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "micro api",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The endpoints of the services in the registry, as the gateway routes them.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_back_to_their_endpoints() {
        let m = Resolver::Micro;
        assert_eq!(
            path_for(m, "", "greeter", "Greeter.Hello").as_deref(),
            Some("/greeter/hello")
        );
        assert_eq!(
            path_for(m, "", "greeter", "Debug.Health").as_deref(),
            Some("/greeter/debug/health")
        );
        assert_eq!(
            path_for(
                m,
                "go.micro.srv",
                "go.micro.srv.example",
                "Example.SayHello"
            )
            .as_deref(),
            Some("/example/sayHello")
        );
        assert_eq!(
            path_for(m, "go.micro.srv", "other.example", "Example.Call"),
            None
        );
        assert_eq!(
            path_for(m, "", "v1.foo", "Foo.Bar").as_deref(),
            Some("/v1/foo/foo/bar")
        );
        assert_eq!(
            path_for(Resolver::Grpc, "", "greeter", "Greeter.Hello").as_deref(),
            Some("/greeter.Greeter/Hello")
        );
        assert_eq!(
            path_for(Resolver::Host, "", "greeter", "Greeter.Hello"),
            None
        );
    }

    #[test]
    fn defs_move_to_components() {
        let mut components = Map::new();
        let text = r##"{"$schema":"x","type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"object","properties":{"b":{"$ref":"#/$defs/B"}}},"B":{"type":"string"}}}"##.to_string();
        let root = schema(Some(&text), "svc.", &mut components);
        assert_eq!(
            root["properties"]["a"]["$ref"],
            "#/components/schemas/svc.A"
        );
        assert!(root.get("$schema").is_none() && root.get("$defs").is_none());
        assert_eq!(
            components["svc.A"]["properties"]["b"]["$ref"],
            "#/components/schemas/svc.B"
        );
        assert_eq!(components["svc.B"]["type"], "string");
    }
}
