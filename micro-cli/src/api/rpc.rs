//! The handlers that call services: `rpc`, `meta` (by the endpoint's `handler` metadata),
//! `api` (go-micro's request/response envelope), `event` (publish), and `POST /rpc`.

use super::resolver::{ID, Route, segments};
use super::{Gateway, error_response, read_body};
use crate::commands::CallSpec;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use micro::client::Request as CallRequest;
use micro::{Context, Error};
use serde_json::{Map, Value, json};

/// Headers that describe the HTTP exchange itself, not the call: not passed as metadata.
const NOT_METADATA: [&str; 9] = [
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "accept-encoding",
    "upgrade",
    "keep-alive",
    "te",
];

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The request's headers as call metadata (repeated headers joined with `,`).
fn metadata(headers: &HeaderMap) -> Context {
    let mut ctx = Context::new();
    for name in headers.keys() {
        if NOT_METADATA.contains(&name.as_str()) || name.as_str().starts_with("sec-websocket") {
            continue;
        }
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        ctx = ctx.with_metadata(name.as_str(), values.join(","));
    }
    ctx
}

/// `a=1&b=x` as `{"a": "1", "b": "x"}` (a repeated key keeps its last value).
fn form_json(text: &[u8]) -> Value {
    let map: Map<String, Value> = form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(map)
}

/// The media type without parameters, lowercase.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// The call body and its content type from an HTTP request: the query of a body-less GET,
/// a form, JSON (checked), or protobuf (passed through).
fn call_body(
    method: &axum::http::Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(String, Bytes), Error> {
    let media = media_type(headers);
    if body.is_empty() && (method == axum::http::Method::GET || media.is_empty()) {
        let json = form_json(query.unwrap_or("").as_bytes());
        return Ok(("application/json".into(), json.to_string().into()));
    }
    match media.as_str() {
        "application/x-www-form-urlencoded" => Ok((
            "application/json".into(),
            form_json(&body).to_string().into(),
        )),
        "" | "application/json" | "text/json" => {
            serde_json::from_slice::<serde::de::IgnoredAny>(&body)
                .map_err(|e| Error::bad_request(ID, format!("the body is not valid JSON: {e}")))?;
            Ok(("application/json".into(), body))
        }
        "application/protobuf" | "application/x-protobuf" | "application/octet-stream" => {
            Ok(("application/protobuf".into(), body))
        }
        other => Err(Error::unsupported_media_type(
            ID,
            format!(
                "content type {other:?} is not supported: send application/json, \
                 application/protobuf or a form"
            ),
        )),
    }
}

/// Calls `route` with `body` and answers with the service's response in its content type.
async fn call(
    gateway: &Gateway,
    route: &Route,
    content_type: String,
    body: Bytes,
    ctx: Context,
) -> Result<Response, Error> {
    let mut request = CallRequest::new(route.service.clone(), route.endpoint.clone(), body);
    request.content_type = content_type;
    request.context = ctx;
    let response = match gateway
        .commands()
        .client()
        .call(request, Default::default())
        .await
    {
        Ok(response) => response,
        Err(e) => return Err(unknown_service_or(gateway, &route.service, e).await),
    };
    let mut http = (StatusCode::OK, response.body).into_response();
    if let Ok(value) = HeaderValue::from_str(&response.content_type) {
        http.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(http)
}

/// A call that found no node: the registry's 404 (naming close services) when the service
/// is not registered at all, else the call's own error.
async fn unknown_service_or(gateway: &Gateway, service: &str, error: Error) -> Error {
    if error.code != 503 {
        return error;
    }
    match gateway.commands().get_service(service).await {
        Err(not_found) if not_found.code == 404 => not_found,
        _ => error,
    }
}

/// The method, host and path of a request, owned: a request (its body) is not Sync, so no
/// borrow of it may live across an await.
fn target(request: &Request) -> (String, String, String) {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("")
        .to_string();
    (
        request.method().as_str().to_string(),
        host,
        request.uri().path().to_string(),
    )
}

/// The route of a request: an endpoint that declared a matching path first, else the
/// resolver's; with the declared `handler` metadata, if any.
fn route_of(
    gateway: &Gateway,
    request: &Request,
) -> impl std::future::Future<Output = Result<(Route, Option<String>), Error>> + Send {
    let (method, host, path) = target(request);
    route_for(gateway.clone(), method, host, path)
}

async fn route_for(
    gateway: Gateway,
    method: String,
    host: String,
    path: String,
) -> Result<(Route, Option<String>), Error> {
    let options = gateway.options();
    if let Some(found) = gateway
        .routes()
        .find(gateway.commands(), &method, &host, &path)
        .await
    {
        return Ok(found);
    }
    let route = options.resolver.resolve(&path, &host, &options.namespace)?;
    Ok((route, None))
}

/// The `rpc` handler.
pub(super) async fn rpc(gateway: &Gateway, request: Request) -> Result<Response, Error> {
    let (route, _) = route_of(gateway, &request).await?;
    rpc_to(gateway, &route, request).await
}

async fn rpc_to(gateway: &Gateway, route: &Route, request: Request) -> Result<Response, Error> {
    let (mut parts, body) = request.into_parts();
    if is_websocket(&parts.headers) {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| Error::bad_request(ID, format!("the websocket upgrade: {e}")))?;
        let (gateway, route, ctx) = (gateway.clone(), route.clone(), metadata(&parts.headers));
        return Ok(
            upgrade.on_upgrade(move |socket| super::stream::bridge(socket, gateway, route, ctx))
        );
    }
    let body = read_body(body, gateway.options().max_body).await?;
    let (content_type, body) = call_body(&parts.method, parts.uri.query(), &parts.headers, body)?;
    call(gateway, route, content_type, body, metadata(&parts.headers)).await
}

/// The `meta` handler: the endpoint's `handler` metadata (`rpc`, `api`, `event`) decides;
/// `rpc` when it has none. An unknown service is a 404.
pub(super) async fn meta(gateway: &Gateway, request: Request) -> Result<Response, Error> {
    let (route, declared) = route_of(gateway, &request).await?;
    let handler = match declared {
        Some(handler) => Some(handler),
        None => gateway.routes().handler(gateway.commands(), &route).await,
    };
    match handler.as_deref() {
        None | Some("rpc") => rpc_to(gateway, &route, request).await,
        Some("api") => api_to(gateway, &route, request).await,
        Some("event") => event(gateway, request).await,
        Some(other) => Err(Error::not_implemented(
            ID,
            format!(
                "endpoint {} asks for handler {other:?}, which the meta handler does not \
                 dispatch to: set its handler metadata to rpc, api or event, or run the \
                 gateway with --handler {other}",
                route.endpoint
            ),
        )),
    }
}

/// go-micro's `Pair`: `{"key": k, "values": [...]}` per name.
fn pairs<'a>(items: impl Iterator<Item = (String, &'a str)>) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for (key, value) in items {
        let entry = map
            .entry(key.clone())
            .or_insert_with(|| json!({"key": key, "values": []}));
        if let Some(values) = entry.get_mut("values").and_then(Value::as_array_mut) {
            values.push(Value::String(value.to_string()));
        }
    }
    Value::Object(map)
}

/// The `api` handler: the request as go-micro's `api.Request`; the answer's `statusCode`,
/// `header` and `body` make the response.
pub(super) async fn api(gateway: &Gateway, request: Request) -> Result<Response, Error> {
    let (route, _) = route_of(gateway, &request).await?;
    api_to(gateway, &route, request).await
}

async fn api_to(gateway: &Gateway, route: &Route, request: Request) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let body = read_body(body, gateway.options().max_body).await?;
    let header = pairs(
        parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((canonical(k), v.to_str().ok()?))),
    );
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let form: Vec<(String, String)> =
        if media_type(&parts.headers) == "application/x-www-form-urlencoded" {
            form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        } else {
            Vec::new()
        };
    let envelope = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "header": header,
        "get": pairs(query.iter().map(|(k, v)| (k.clone(), v.as_str()))),
        "post": pairs(form.iter().map(|(k, v)| (k.clone(), v.as_str()))),
        "body": String::from_utf8_lossy(&body),
        "url": parts.uri.to_string(),
    });
    let answer = call(
        gateway,
        route,
        "application/json".into(),
        envelope.to_string().into(),
        metadata(&parts.headers),
    )
    .await?;
    let bytes = read_body(answer.into_body(), usize::MAX).await?;
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::internal(
            ID,
            format!("{} did not answer an api.Response: {e}", route.endpoint),
        )
    })?;
    let status = answer
        .get("statusCode")
        .or_else(|| answer.get("status_code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        answer
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
        .into_response();
    if let Some(Value::Object(headers)) = answer.get("header") {
        for (name, pair) in headers {
            let Ok(name) = HeaderName::try_from(name.as_str()) else {
                continue;
            };
            let values = pair.get("values").and_then(Value::as_array);
            for value in values.into_iter().flatten().filter_map(Value::as_str) {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().append(name.clone(), value);
                }
            }
        }
    }
    Ok(response)
}

/// `content-type` → `Content-Type`, as Go's http package names headers.
fn canonical(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The `event` handler: publishes `{"name", "id", "timestamp", "header", "data"}` on
/// `namespace.<first segment>`; the rest of the path, joined with `.`, is the name (action).
pub(super) async fn event(gateway: &Gateway, request: Request) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let segments = segments(&path);
    let Some((first, rest)) = segments.split_first() else {
        return Err(Error::not_found(
            ID,
            "no topic in the path: POST /<topic>/<action>",
        ));
    };
    let topic = super::resolver::with_namespace(&gateway.options().namespace, first);
    let body = read_body(body, gateway.options().max_body).await?;
    let header = pairs(
        parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((canonical(k), v.to_str().ok()?))),
    );
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let event = json!({
        "name": rest.join("."),
        "id": uuid::Uuid::new_v4().to_string(),
        "timestamp": timestamp,
        "header": header,
        "data": String::from_utf8_lossy(&body),
    });
    gateway.commands().publish(&topic, &event).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /rpc`: `{"service", "endpoint", "request", "address"}` as JSON or form fields
/// (`request` then holds JSON text); 400 when service or endpoint is missing.
pub(super) async fn rpc_endpoint(State(gateway): State<Gateway>, request: Request) -> Response {
    rpc_endpoint_inner(&gateway, request)
        .await
        .unwrap_or_else(|e| error_response(&e))
}

async fn rpc_endpoint_inner(gateway: &Gateway, request: Request) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let body = read_body(body, gateway.options().max_body).await?;
    // A form, unless it is JSON sent with curl's default form content type.
    let is_form = media_type(&parts.headers) == "application/x-www-form-urlencoded"
        && !body.trim_ascii_start().starts_with(b"{");
    let fields: Value = if is_form {
        form_json(&body)
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::bad_request(ID, format!("the body is not valid JSON: {e}")))?
    };
    let text = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (Some(service), Some(endpoint)) = (text("service"), text("endpoint")) else {
        return Err(Error::bad_request(
            ID,
            "POST /rpc needs \"service\" and \"endpoint\" (and \"request\", \"address\" optional)",
        ));
    };
    let request = match fields.get("request") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| Error::bad_request(ID, format!("\"request\" is not valid JSON: {e}")))?,
        Some(other) => other.clone(),
    };
    let spec = CallSpec {
        address: text("address"),
        metadata: metadata(&parts.headers)
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..CallSpec::new(service, endpoint)
    };
    let response = gateway.commands().call(&spec, &request).await?;
    let mut http = (StatusCode::OK, Body::from(response.body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&response.content_type) {
        http.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(http)
}
