//! The tonic peer: a gRPC unary echo on one HTTP/2 connection.

use crate::{BoxError, Caller, PAYLOAD, check_echo};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

/// Code generated from `proto/echo.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("bench");
}

use pb::EchoMessage;
use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Serves the echo on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> Result<(), BoxError> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .add_service(EchoServer::new(EchoService))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// A client on one connection (a tonic `Channel` is one HTTP/2 connection).
pub struct TonicCaller {
    client: EchoClient<Channel>,
}

impl TonicCaller {
    /// Connects to `addr` (`127.0.0.1:port`).
    pub async fn connect(addr: &str) -> Result<Self, BoxError> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(TonicCaller {
            client: EchoClient::new(channel),
        })
    }
}

impl Caller for TonicCaller {
    async fn call(&self) -> Result<(), String> {
        let reply = self
            .client
            .clone()
            .echo(EchoMessage {
                data: PAYLOAD.to_string(),
            })
            .await
            .map_err(|e| e.to_string())?;
        check_echo(reply.get_ref().data.as_bytes())
    }
}
