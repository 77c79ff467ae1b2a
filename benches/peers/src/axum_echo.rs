//! The axum peer: `POST /echo` with a JSON body `{"data": ...}`, answered with the same body,
//! called by hyper-util's pooled HTTP/1.1 keep-alive client.

use crate::{BoxError, Caller, PAYLOAD, check_echo};
use axum::serve::ListenerExt;
use axum::{Json, Router, routing::post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::net::TcpListener;

/// The JSON body, both ways.
#[derive(Serialize, Deserialize)]
pub struct EchoBody {
    /// The payload.
    pub data: String,
}

async fn echo(Json(body): Json<EchoBody>) -> Json<EchoBody> {
    Json(body)
}

/// Serves the echo on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> Result<(), BoxError> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, Router::new().route("/echo", post(echo))).await?;
    Ok(())
}

/// A keep-alive HTTP/1.1 client; its pool opens a connection per concurrent request.
pub struct AxumCaller {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    body: Bytes,
}

impl AxumCaller {
    /// A client of the server at `addr` (`127.0.0.1:port`).
    pub async fn connect(addr: &str) -> Result<Self, BoxError> {
        Self::connect_path(addr, "/echo").await
    }

    /// A client posting the echo body to `path` of the server at `addr` (e.g. the API
    /// gateway's route to a micro echo service).
    pub async fn connect_path(addr: &str, path: &str) -> Result<Self, BoxError> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let body = serde_json::to_vec(&EchoBody {
            data: PAYLOAD.to_string(),
        })?;
        Ok(AxumCaller {
            client,
            uri: format!("http://{addr}{path}").parse()?,
            body: Bytes::from(body),
        })
    }
}

impl Caller for AxumCaller {
    async fn call(&self) -> Result<(), String> {
        let request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let reply: EchoBody = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        check_echo(reply.data.as_bytes())
    }
}
