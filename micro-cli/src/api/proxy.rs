//! The `http`/`proxy` handlers (a reverse proxy to a node of the service the path names) and
//! `web` (the same, plus websocket upgrades passed through both ways).

use super::resolver::{ID, proxy_route, with_namespace};
use super::{Gateway, error_response};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use micro::Error;

/// The HTTP client of the proxying handlers (pooled connections to the nodes).
pub(super) type ProxyClient = Client<HttpConnector, Body>;

/// A client for [`ProxyClient`].
pub(super) fn client() -> ProxyClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Headers of one hop, not forwarded (RFC 9110 §7.6.1), except the upgrade pair for `web`.
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn is_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Proxies `request` to a node of the service its path names; with `websockets`, an upgrade
/// request is passed through and the two connections joined.
pub(super) async fn proxy(gateway: &Gateway, mut request: Request, websockets: bool) -> Response {
    let path = request.uri().path().to_string();
    let Some(service) = proxy_route(&path) else {
        return error_response(&Error::not_found(
            ID,
            format!(
                "no service in the path {path:?}: /<service>/... with a name of letters, digits and -"
            ),
        ));
    };
    let service = with_namespace(&gateway.options().namespace, &service);
    let address = match gateway.pick_node(&service).await {
        Ok(address) => address,
        Err(e) => return error_response(&e),
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let uri: Uri = match format!("http://{address}{path_and_query}").parse() {
        Ok(uri) => uri,
        Err(e) => {
            return error_response(&Error::internal(
                ID,
                format!("node {address} of {service} has an address that is not a URL: {e}"),
            ));
        }
    };
    let upgrade = websockets && is_upgrade(&request);
    let incoming = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    if !upgrade {
        parts.headers.remove(header::CONNECTION);
        parts.headers.remove(header::UPGRADE);
    }
    if let Ok(host) = HeaderValue::from_str(&address) {
        parts.headers.insert(header::HOST, host);
    }
    let mut response = match gateway
        .proxy_client()
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response,
        Err(e) => {
            return error_response(&Error::new(
                ID,
                502,
                format!("node {address} of {service} did not answer: {e}"),
            ));
        }
    };
    if let Some(incoming) = incoming
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let outgoing = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(client), Ok(node)) = (incoming.await, outgoing.await) {
                let (mut client, mut node) = (TokioIo::new(client), TokioIo::new(node));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
            }
        });
    }
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, Body::new(body)).into_response()
}
