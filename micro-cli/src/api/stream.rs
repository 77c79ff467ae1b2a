//! Websocket streaming: a websocket request to a streaming endpoint opens a stream; each
//! text (or binary) message from the client is one request (JSON), each response one text
//! message back. The client closing its side ends the requests; the stream ending (or
//! failing, with the error JSON as the last message) closes the socket.

use super::Gateway;
use super::resolver::Route;
use axum::extract::ws::{Message, WebSocket};
use micro::__private::futures::{SinkExt, StreamExt};
use micro::Context;
use serde_json::Value;

/// Joins `socket` to a stream of `route` until either side ends.
pub(super) async fn bridge(socket: WebSocket, gateway: Gateway, route: Route, ctx: Context) {
    let (mut to_client, mut from_client) = socket.split();
    let opened = micro::client::stream::<Value, Value>(
        gateway.commands().client().as_ref(),
        &ctx,
        &route.service,
        &route.endpoint,
        Default::default(),
    )
    .await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(e) => {
            let _ = to_client.send(Message::Text(e.to_json().into())).await;
            let _ = to_client.close().await;
            return;
        }
    };
    let mut sender = stream.take_sender();
    loop {
        tokio::select! {
            message = from_client.next(), if sender.is_some() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // The client is done sending (or gone): end the requests, keep reading.
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        sender = None;
                        continue;
                    }
                };
                let Some(requests) = sender.as_ref() else { continue };
                let sent = match serde_json::from_str::<Value>(&text) {
                    Ok(request) => requests.send(&request).await,
                    Err(e) => {
                        let error = micro::Error::bad_request(
                            super::resolver::ID,
                            format!("a websocket message is not valid JSON: {e}"),
                        );
                        let _ = requests.send_error(&error).await;
                        Err(error)
                    }
                };
                if let Err(e) = sent {
                    let _ = to_client.send(Message::Text(e.to_json().into())).await;
                    break;
                }
            }
            response = stream.recv() => match response {
                Some(Ok(value)) => {
                    if to_client.send(Message::Text(value.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    let _ = to_client.send(Message::Text(e.to_json().into())).await;
                    break;
                }
                None => break,
            },
        }
    }
    let _ = to_client.close().await;
}
