//! A handler that panics (issue 18, item 1): the caller gets a 500 naming the endpoint, and
//! the connection and server go on serving other calls, over memory, tcp and http.

mod common;

use micro_core::client::{self, CallOptions};
use micro_core::config::ServerConfig;
use micro_core::server::{Handler, Server};
use micro_core::transport::Transport;
use micro_core::{Context, Error, Streaming};
use micro_http::HttpTransport;
use micro_memory::MemoryTransport;
use micro_mucp::{MucpClient, MucpServer};
use micro_tcp::TcpTransport;
use std::sync::Arc;
use std::time::Duration;

fn transports() -> Vec<Arc<dyn Transport>> {
    vec![
        Arc::new(MemoryTransport::default()),
        Arc::new(TcpTransport::default()),
        Arc::new(HttpTransport::default()),
    ]
}

fn handlers() -> Vec<Handler> {
    vec![
        Handler::unary("Greeter.Hello", |_ctx: Context, name: String| async move {
            Ok::<_, Error>(format!("Hello {name}"))
        }),
        Handler::unary("Greeter.Boom", |_ctx: Context, name: String| async move {
            if !name.is_empty() {
                panic!("boom for {name}");
            }
            Ok::<_, Error>(name)
        }),
        Handler::server_stream("Greeter.BoomStream", |_ctx: Context, n: u64| async move {
            Ok(Streaming::new(futures::stream::unfold(
                0u64,
                move |i| async move {
                    assert!(i < n, "stream boom at {i}");
                    Some((Ok(i), i + 1))
                },
            )))
        }),
    ]
}

async fn start(transport: &Arc<dyn Transport>) -> (MucpServer, MucpClient, CallOptions) {
    let server = common::server(transport, ServerConfig::default(), handlers()).await;
    let mut options = CallOptions::default();
    options.address = server.address();
    (server, common::client(transport), options)
}

fn ctx() -> Context {
    Context::new().with_timeout(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_unary_handler_is_a_500_and_the_connection_goes_on() {
    for transport in transports() {
        let name = transport.name().to_string();
        let (server, client, options) = start(&transport).await;
        // A call in flight on the same (pooled) connection while another one panics.
        let (ctx1, ctx2) = (ctx(), ctx());
        let (before, john) = ("before".to_string(), "John".to_string());
        let hello = client::call::<String, String>(
            &client,
            &ctx1,
            "greeter",
            "Greeter.Hello",
            &before,
            options.clone(),
        );
        let boom = client::call::<String, String>(
            &client,
            &ctx2,
            "greeter",
            "Greeter.Boom",
            &john,
            options.clone(),
        );
        let (hello, boom) = tokio::join!(hello, boom);
        assert_eq!(hello.unwrap(), "Hello before", "{name}");
        let err = boom.unwrap_err();
        assert_eq!(err.code, 500, "{name}: {err}");
        assert!(
            err.detail.contains("Greeter.Boom") && err.detail.contains("boom for John"),
            "{name}: the error names the endpoint and the panic: {err}"
        );
        assert!(
            !err.retryable,
            "{name}: a handler that ran is never retried"
        );
        for i in 0..3 {
            let answer = client::call::<String, String>(
                &client,
                &ctx(),
                "greeter",
                "Greeter.Hello",
                &format!("after {i}"),
                options.clone(),
            )
            .await;
            assert_eq!(answer.unwrap(), format!("Hello after {i}"), "{name}");
        }
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_stream_handler_ends_the_stream_with_a_500() {
    for transport in transports() {
        let name = transport.name().to_string();
        let (server, client, options) = start(&transport).await;
        let stream_ctx = ctx();
        let mut stream = client::stream::<u64, u64>(
            &client,
            &stream_ctx,
            "greeter",
            "Greeter.BoomStream",
            options.clone(),
        )
        .await
        .unwrap();
        stream.send(&3).await.unwrap();
        stream.close_send();
        let mut got = Vec::new();
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.recv()).await {
                Ok(Some(Ok(n))) => got.push(n),
                Ok(other) => break other,
                Err(_) => panic!("{name}: the stream neither ended nor failed"),
            }
        };
        assert_eq!(
            got,
            [0, 1, 2],
            "{name}: the messages before the panic arrive"
        );
        let err = end.expect("the stream ends with an error").unwrap_err();
        assert_eq!(err.code, 500, "{name}: {err}");
        assert!(err.detail.contains("Greeter.BoomStream"), "{name}: {err}");
        let answer = client::call::<String, String>(
            &client,
            &ctx(),
            "greeter",
            "Greeter.Hello",
            &"again".to_string(),
            options.clone(),
        )
        .await;
        assert_eq!(answer.unwrap(), "Hello again", "{name}");
        server.stop().await.unwrap();
    }
}
