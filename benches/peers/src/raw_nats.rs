//! The raw NATS peer: core NATS request/reply with async-nats, no micro. The server is one
//! subscriber on a fresh subject that publishes every request's payload back to its reply
//! inbox, in the subscription loop; the client sends each call as one `Client::request`
//! (answers come back on the client's shared reply inbox).

use crate::{BoxError, Caller, PAYLOAD, check_echo};
use bytes::Bytes;
use futures::StreamExt;

/// The NATS server both nats systems use: `NATS_URL`, else the local default.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// Subscribes a fresh subject and returns it with the task that answers on it.
pub async fn serve() -> Result<(String, tokio::task::JoinHandle<Result<(), BoxError>>), BoxError> {
    let client = async_nats::connect(nats_url()).await?;
    let inbox = client.new_inbox();
    let subject = format!("bench.raw.{}", inbox.rsplit('.').next().unwrap_or("echo"));
    let mut requests = client.subscribe(subject.clone()).await?;
    client.flush().await?;
    let task = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                client.publish(reply, request.payload).await?;
            }
        }
        Err::<(), BoxError>("the NATS subscription ended".into())
    });
    Ok((subject, task))
}

/// A NATS client calling the echo subject.
pub struct RawNatsCaller {
    client: async_nats::Client,
    subject: async_nats::Subject,
    payload: Bytes,
}

impl RawNatsCaller {
    /// Connects to the NATS server, to call `subject`.
    pub async fn connect(subject: &str) -> Result<Self, BoxError> {
        Ok(RawNatsCaller {
            client: async_nats::connect(nats_url()).await?,
            subject: subject.into(),
            payload: Bytes::from_static(PAYLOAD.as_bytes()),
        })
    }
}

impl Caller for RawNatsCaller {
    async fn call(&self) -> Result<(), String> {
        let reply = self
            .client
            .request(self.subject.clone(), self.payload.clone())
            .await
            .map_err(|e| e.to_string())?;
        check_echo(&reply.payload)
    }
}
