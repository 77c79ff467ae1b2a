//! RPC client/server suite: every RPC client and server plugin (pair) must pass it.
//!
//! The suite defines the handlers it needs (with [`Handler::unary`],
//! [`Handler::server_stream`], [`Handler::client_stream`] and [`Handler::bidi_stream`]) and
//! hands them to a factory, which starts a server hosting them and returns a [`Target`]: a
//! client that reaches that server, the service name to call, the base call options (an
//! `address` when the client has no selector), and whatever must stay alive meanwhile (the
//! server). Each `check_*` function is one case and takes the factory;
//! [`rpc_suite!`](crate::rpc_suite) turns every case into a `#[tokio::test]`:
//!
//! ```ignore
//! use micro_conformance::rpc::Target;
//! use micro_core::server::{Handler, Server};
//! use std::sync::Arc;
//!
//! async fn my_rpc(handlers: Vec<Handler>) -> Target {
//!     let server = MyServer::new(/* name "conformance", a transport, ... */);
//!     for handler in handlers {
//!         server.handle(handler).unwrap();
//!     }
//!     server.start().await.unwrap();
//!     let client = Arc::new(MyClient::new(/* ... */));
//!     Target::new(client, "conformance").with_guard(server)
//! }
//!
//! micro_conformance::rpc_suite!(my_rpc);
//! ```
//!
//! The cases: a unary call answers, also many at once; an application error comes back
//! with its code, id, detail and status, and the server keeps serving; an unknown endpoint
//! is a 404 (unary or stream); metadata reaches unary and streaming handlers; a deadline
//! shorter than the handler is a 408, and the handler sees it pass; server-streaming,
//! client-streaming and bidirectional streams deliver every message in order (also none);
//! an error of a stream handler reaches the caller after the messages before it. Nothing
//! asserts on speed: answers are awaited up to a generous deadline.

use crate::support::{DEADLINE, within};
use futures::StreamExt;
use micro_core::client::{self, CallOptions, Client};
use micro_core::codec::Payload;
use micro_core::server::Handler;
use micro_core::streaming::ClientStream;
use micro_core::{Context, Error, Result, Streaming};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the factory of the RPC suite returns: a client that reaches a started server
/// hosting the suite's handlers.
pub struct Target {
    /// The client under test.
    pub client: Arc<dyn Client>,
    /// The name the server serves (and registers) under: what the calls address.
    pub service: String,
    /// The options of every call, e.g. `address` when the client has no selector.
    pub options: CallOptions,
    /// Kept alive until the case ends, then dropped: the server, its registry, ...
    pub guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("client", &self.client.name())
            .field("service", &self.service)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Calls to `service` through `client`, with default call options and nothing to keep.
    pub fn new(client: Arc<dyn Client>, service: impl Into<String>) -> Self {
        Target {
            client,
            service: service.into(),
            options: CallOptions::default(),
            guard: Box::new(()),
        }
    }

    /// The options every call of the case uses.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// Calls straight to `address` (for a client without a selector).
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.options.address = Some(address.into());
        self
    }

    /// Keeps `guard` (the server, a registry, a temporary directory) alive for the case.
    pub fn with_guard(mut self, guard: impl Send + 'static) -> Self {
        self.guard = Box::new(guard);
        self
    }

    async fn call<Req: Payload, Resp: Payload>(
        &self,
        ctx: &Context,
        endpoint: &str,
        request: &Req,
    ) -> Result<Resp> {
        client::call(
            &*self.client,
            ctx,
            &self.service,
            endpoint,
            request,
            self.options.clone(),
        )
        .await
    }

    async fn stream<Req: Payload, Resp: Payload>(
        &self,
        ctx: &Context,
        endpoint: &str,
    ) -> Result<ClientStream<Req, Resp>> {
        client::stream(
            &*self.client,
            ctx,
            &self.service,
            endpoint,
            self.options.clone(),
        )
        .await
    }

    async fn open<Req: Payload, Resp: Payload>(
        &self,
        check: &str,
        ctx: &Context,
        endpoint: &str,
    ) -> ClientStream<Req, Resp> {
        match within(check, self.stream(ctx, endpoint)).await {
            Ok(stream) => stream,
            Err(err) => panic!("{check}: opening a stream to {endpoint}: {err}"),
        }
    }
}

/// The id of the errors the suite's handlers return.
const APP_ID: &str = "conformance.app";
/// The detail of those errors: quotes, a newline, non-ASCII, JSON-looking text.
const APP_DETAIL: &str = "order 42 \"already\" shipped {\"x\": 1}\nsecond line, ünïcödé";
/// The endpoint no handler serves.
const UNKNOWN: &str = "Conformance.DoesNotExist";
/// The deadline of the deadline checks: far shorter than the slow handler, long enough for
/// the request to reach the server on a busy machine.
const SHORT_DEADLINE: Duration = Duration::from_millis(500);
/// How many messages the streaming checks send.
const MANY: u64 = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping {
    text: String,
    n: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pong {
    text: String,
    n: u64,
}

fn ping(text: impl Into<String>, n: u64) -> Ping {
    Ping {
        text: text.into(),
        n,
    }
}

fn pong_of(ping: &Ping) -> Pong {
    Pong {
        text: format!("echo: {}", ping.text),
        n: ping.n + 1,
    }
}

fn app_error(code: u16) -> Error {
    match code {
        400 => Error::bad_request(APP_ID, APP_DETAIL),
        403 => Error::forbidden(APP_ID, APP_DETAIL),
        404 => Error::not_found(APP_ID, APP_DETAIL),
        409 => Error::conflict(APP_ID, APP_DETAIL),
        503 => Error::unavailable(APP_ID, APP_DETAIL),
        _ => Error::internal(APP_ID, APP_DETAIL),
    }
}

/// Asserts that `err` is [`app_error`]`(code)` as the handler returned it.
fn assert_app_error(check: &str, what: &str, err: &Error, code: u16) {
    let want = app_error(code);
    assert_eq!(err.code, want.code, "{check}: {what}: code of {err}");
    assert_eq!(err.id, want.id, "{check}: {what}: id of {err}");
    assert_eq!(err.detail, want.detail, "{check}: {what}: detail of {err}");
    assert_eq!(err.status, want.status, "{check}: {what}: status of {err}");
}

/// `Conformance.Echo`: answers `ping` with [`pong_of`].
fn echo() -> Handler {
    Handler::unary("Conformance.Echo", |_ctx: Context, p: Ping| async move {
        Ok(pong_of(&p))
    })
}

/// `Conformance.Fail`: fails with [`app_error`] of the code asked for.
fn fail() -> Handler {
    Handler::unary("Conformance.Fail", |_ctx: Context, code: u16| async move {
        Err::<Pong, Error>(app_error(code))
    })
}

/// `Conformance.Metadata`: the values of the metadata keys asked for.
fn metadata() -> Handler {
    Handler::unary(
        "Conformance.Metadata",
        |ctx: Context, keys: Vec<String>| async move {
            Ok(keys
                .iter()
                .map(|k| ctx.metadata.get(k).map(str::to_string))
                .collect::<Vec<Option<String>>>())
        },
    )
}

/// `Conformance.StreamMetadata`: streams the values of the metadata keys asked for.
fn stream_metadata() -> Handler {
    Handler::server_stream(
        "Conformance.StreamMetadata",
        |ctx: Context, keys: Vec<String>| async move {
            let values: Vec<Option<String>> = keys
                .iter()
                .map(|k| ctx.metadata.get(k).map(str::to_string))
                .collect();
            Ok(Streaming::from_values(values))
        },
    )
}

/// What the slow handler saw: whether it knew a deadline, and whether the call was
/// cancelled (rather than the handler finishing its long wait).
type Seen = (bool, &'static str);

/// `Conformance.Slow`: waits until the call is cancelled (or far longer than any deadline
/// the suite sets), reports which to `seen`, then stays busy a long while before answering:
/// a handler slower than the deadline even after it noticed it (one that answered right at
/// the deadline would race the caller's own timer).
fn slow(seen: mpsc::UnboundedSender<Seen>) -> Handler {
    Handler::unary("Conformance.Slow", move |ctx: Context, p: Ping| {
        let seen = seen.clone();
        async move {
            let had_deadline = ctx.deadline.is_some();
            let outcome = tokio::select! {
                _ = ctx.cancelled() => "cancelled",
                _ = tokio::time::sleep(DEADLINE * 6) => "finished",
            };
            let _ = seen.send((had_deadline, outcome));
            tokio::time::sleep(DEADLINE * 6).await;
            Ok(pong_of(&p))
        }
    })
}

/// `Conformance.Count`: streams `0..n`.
fn count() -> Handler {
    Handler::server_stream("Conformance.Count", |_ctx: Context, n: u64| async move {
        Ok(Streaming::from_values(0..n))
    })
}

/// `Conformance.CountThenFail`: streams `0..n`, then fails with a 409.
fn count_then_fail() -> Handler {
    Handler::server_stream(
        "Conformance.CountThenFail",
        |_ctx: Context, n: u64| async move {
            let items = (0..n).map(Ok).chain(std::iter::once(Err(app_error(409))));
            Ok(Streaming::new(futures::stream::iter(items)))
        },
    )
}

/// `Conformance.Refuse`: a server stream that fails with a 403 before any message.
fn refuse() -> Handler {
    Handler::server_stream("Conformance.Refuse", |_ctx: Context, _n: u64| async move {
        Err::<Streaming<u64>, Error>(app_error(403))
    })
}

/// `Conformance.Collect`: answers every number it was sent, in the order received.
fn collect() -> Handler {
    Handler::client_stream(
        "Conformance.Collect",
        |_ctx: Context, mut numbers: Streaming<u64>| async move {
            let mut got = Vec::new();
            while let Some(n) = numbers.next().await {
                got.push(n?);
            }
            Ok(got)
        },
    )
}

/// `Conformance.CollectFail`: reads numbers and fails with a 409 when it reads `0`.
fn collect_fail() -> Handler {
    Handler::client_stream(
        "Conformance.CollectFail",
        |_ctx: Context, mut numbers: Streaming<u64>| async move {
            let mut got = Vec::new();
            while let Some(n) = numbers.next().await {
                match n? {
                    0 => return Err(app_error(409)),
                    n => got.push(n),
                }
            }
            Ok(got)
        },
    )
}

/// `Conformance.Upper`: answers each ping with [`pong_of`] as it arrives.
fn upper() -> Handler {
    Handler::bidi_stream(
        "Conformance.Upper",
        |_ctx: Context, pings: Streaming<Ping>| async move {
            Ok(Streaming::new(pings.map(|p| p.map(|p| pong_of(&p)))))
        },
    )
}

/// `Conformance.UpperFail`: like `Upper`, but a ping saying `boom` is answered with a 409.
fn upper_fail() -> Handler {
    Handler::bidi_stream(
        "Conformance.UpperFail",
        |_ctx: Context, pings: Streaming<Ping>| async move {
            Ok(Streaming::new(pings.map(|p| {
                let p = p?;
                if p.text == "boom" {
                    Err(app_error(409))
                } else {
                    Ok(pong_of(&p))
                }
            })))
        },
    )
}

/// The next message of `stream`, failing the check on an error, the end, or no answer.
async fn next_message<Req: Payload, Resp: Payload>(
    check: &str,
    what: &str,
    stream: &mut ClientStream<Req, Resp>,
) -> Resp {
    match within(&format!("{check}: {what}"), stream.recv()).await {
        Some(Ok(message)) => message,
        Some(Err(err)) => panic!("{check}: {what}: error {err}"),
        None => panic!("{check}: {what}: the stream ended"),
    }
}

/// The next item of `stream`, which must be an error.
async fn next_error<Req: Payload, Resp: Payload + std::fmt::Debug>(
    check: &str,
    what: &str,
    stream: &mut ClientStream<Req, Resp>,
) -> Error {
    match within(&format!("{check}: {what}"), stream.recv()).await {
        Some(Err(err)) => err,
        Some(Ok(message)) => panic!("{check}: {what}: expected an error, got {message:?}"),
        None => panic!("{check}: {what}: the stream ended without the error"),
    }
}

/// Asserts that `stream` ends (after its last message or error).
async fn assert_ends<Req: Payload, Resp: Payload + std::fmt::Debug>(
    check: &str,
    what: &str,
    stream: &mut ClientStream<Req, Resp>,
) {
    let end = within(&format!("{check}: {what}"), stream.recv()).await;
    assert!(
        end.is_none(),
        "{check}: {what}: expected the end, got {end:?}"
    );
}

async fn send<Req: Payload, Resp: Payload>(
    check: &str,
    stream: &ClientStream<Req, Resp>,
    message: &Req,
) {
    if let Err(err) = within(check, stream.send(message)).await {
        panic!("{check}: sending on the stream: {err}");
    }
}

/// A unary call answers, several times in a row on one client.
pub async fn check_unary_call(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_unary_call";
    let target = make(vec![echo()]).await;
    for (n, text) in ["John", "", "ünïcödé \"quoted\"\n"].into_iter().enumerate() {
        let p = ping(text, n as u64);
        let got: Result<Pong> =
            within(check, target.call(&Context::new(), "Conformance.Echo", &p)).await;
        match got {
            Ok(pong) => assert_eq!(pong, pong_of(&p), "{check}: answer to {p:?}"),
            Err(err) => panic!("{check}: call {n} failed: {err}"),
        }
    }
}

/// Fifty calls at once on one client each get their own answer.
pub async fn check_concurrent_calls(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_concurrent_calls";
    let target = make(vec![echo()]).await;
    let ctx = Context::new();
    let pings: Vec<Ping> = (0..50).map(|n| ping(format!("call {n}"), n)).collect();
    let calls = pings
        .iter()
        .map(|p| target.call::<Ping, Pong>(&ctx, "Conformance.Echo", p));
    let answers = within(check, futures::future::join_all(calls)).await;
    for (p, answer) in pings.iter().zip(answers) {
        match answer {
            Ok(pong) => assert_eq!(pong, pong_of(p), "{check}: answer to {p:?}"),
            Err(err) => panic!("{check}: call {} failed: {err}", p.n),
        }
    }
}

/// A handler's error reaches the caller with its code, id, detail and status, for client
/// and server errors alike; the server keeps serving.
pub async fn check_application_error(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_application_error";
    let target = make(vec![fail(), echo()]).await;
    let ctx = Context::new();
    for code in [400u16, 403, 404, 409, 500, 503] {
        let got: Result<Pong> = within(check, target.call(&ctx, "Conformance.Fail", &code)).await;
        match got {
            Err(err) => assert_app_error(check, &format!("error {code}"), &err, code),
            Ok(pong) => panic!("{check}: a failing handler answered {pong:?}"),
        }
    }
    let p = ping("still there", 1);
    match within(
        check,
        target.call::<Ping, Pong>(&ctx, "Conformance.Echo", &p),
    )
    .await
    {
        Ok(pong) => assert_eq!(pong, pong_of(&p), "{check}: a call after the errors"),
        Err(err) => panic!("{check}: the server stopped serving after the errors: {err}"),
    }
}

/// A unary call to an endpoint the server does not have is a 404.
pub async fn check_unknown_endpoint(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_unknown_endpoint";
    let target = make(vec![echo()]).await;
    let got: Result<Pong> =
        within(check, target.call(&Context::new(), UNKNOWN, &ping("x", 0))).await;
    match got {
        Err(err) => assert_eq!(err.code, 404, "{check}: expected a 404, got {err}"),
        Ok(pong) => panic!("{check}: an unknown endpoint answered {pong:?}"),
    }
}

/// A stream to an endpoint the server does not have is a 404, when opening it or as its
/// first item.
pub async fn check_unknown_stream_endpoint(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_unknown_stream_endpoint";
    let target = make(vec![count()]).await;
    let ctx = Context::new();
    let err = match within(check, target.stream::<u64, u64>(&ctx, UNKNOWN)).await {
        Err(err) => err,
        Ok(mut stream) => {
            // The request may fail to send once the server refused the stream.
            let _ = within(check, stream.send(&3)).await;
            stream.close_send();
            next_error(check, "the first item", &mut stream).await
        }
    };
    assert_eq!(err.code, 404, "{check}: expected a 404, got {err}");
}

/// The caller's metadata reaches a unary handler, whatever the case of the key asked for.
pub async fn check_metadata(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_metadata";
    let target = make(vec![metadata()]).await;
    let ctx = Context::new()
        .with_metadata("X-Conformance-Trace", "trace-42")
        .with_metadata("X-Conformance-User", "Ann Smith; role=admin");
    let keys: Vec<String> = [
        "X-Conformance-Trace",
        "x-conformance-user",
        "X-Conformance-Absent",
    ]
    .map(String::from)
    .into();
    let got: Result<Vec<Option<String>>> =
        within(check, target.call(&ctx, "Conformance.Metadata", &keys)).await;
    let values = got.unwrap_or_else(|e| panic!("{check}: call failed: {e}"));
    assert_eq!(
        values,
        [
            Some("trace-42".to_string()),
            Some("Ann Smith; role=admin".to_string()),
            None
        ],
        "{check}: the handler's view of {keys:?}"
    );
}

/// The caller's metadata reaches a streaming handler.
pub async fn check_stream_metadata(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_stream_metadata";
    let target = make(vec![stream_metadata()]).await;
    let ctx = Context::new()
        .with_metadata("X-Conformance-Trace", "trace-43")
        .with_metadata("X-Conformance-User", "Bob");
    let keys: Vec<String> = ["X-Conformance-Trace", "X-Conformance-User"]
        .map(String::from)
        .into();
    let mut stream = target
        .open::<Vec<String>, Option<String>>(check, &ctx, "Conformance.StreamMetadata")
        .await;
    send(check, &stream, &keys).await;
    stream.close_send();
    let trace = next_message(check, "the first value", &mut stream).await;
    let user = next_message(check, "the second value", &mut stream).await;
    assert_eq!(
        trace.as_deref(),
        Some("trace-43"),
        "{check}: X-Conformance-Trace"
    );
    assert_eq!(user.as_deref(), Some("Bob"), "{check}: X-Conformance-User");
    assert_ends(check, "after the values", &mut stream).await;
}

/// A call whose deadline passes before the handler answers is a 408.
pub async fn check_deadline(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_deadline";
    let (seen, _reports) = mpsc::unbounded_channel();
    let target = make(vec![slow(seen)]).await;
    let ctx = Context::new().with_timeout(SHORT_DEADLINE);
    let got: Result<Pong> =
        within(check, target.call(&ctx, "Conformance.Slow", &ping("x", 0))).await;
    match got {
        Err(err) => assert_eq!(err.code, 408, "{check}: expected a 408, got {err}"),
        Ok(pong) => panic!("{check}: a handler slower than the deadline answered {pong:?}"),
    }
}

/// The handler knows the caller's deadline and sees it pass (its context is cancelled).
pub async fn check_deadline_reaches_handler(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_deadline_reaches_handler";
    let (seen, mut reports) = mpsc::unbounded_channel();
    let target = make(vec![slow(seen)]).await;
    let ctx = Context::new().with_timeout(SHORT_DEADLINE);
    let _ = within(
        check,
        target.call::<Ping, Pong>(&ctx, "Conformance.Slow", &ping("x", 0)),
    )
    .await;
    let report = within(&format!("{check}: the handler's report"), reports.recv()).await;
    assert_eq!(
        report,
        Some((true, "cancelled")),
        "{check}: (the handler had a deadline, how its wait ended)"
    );
}

/// A server stream delivers every message in order, then ends; an empty one just ends.
pub async fn check_server_stream(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_server_stream";
    let target = make(vec![count()]).await;
    let ctx = Context::new();
    for n in [MANY, 1, 0] {
        let mut stream = target
            .open::<u64, u64>(check, &ctx, "Conformance.Count")
            .await;
        send(check, &stream, &n).await;
        stream.close_send();
        for i in 0..n {
            let got = next_message(check, &format!("message {i} of {n}"), &mut stream).await;
            assert_eq!(got, i, "{check}: message {i} of {n}");
        }
        assert_ends(check, &format!("after {n} messages"), &mut stream).await;
    }
}

/// A client stream delivers every message in order to the handler, whose one answer
/// comes back; an empty one too.
pub async fn check_client_stream(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_client_stream";
    let target = make(vec![collect()]).await;
    let ctx = Context::new();
    for n in [MANY, 1, 0] {
        let mut stream = target
            .open::<u64, Vec<u64>>(check, &ctx, "Conformance.Collect")
            .await;
        for i in 0..n {
            send(check, &stream, &i).await;
        }
        stream.close_send();
        let got = next_message(check, &format!("the answer to {n} messages"), &mut stream).await;
        assert_eq!(
            got,
            (0..n).collect::<Vec<_>>(),
            "{check}: what the handler received"
        );
        assert_ends(check, &format!("after the answer to {n}"), &mut stream).await;
    }
}

/// A bidirectional stream answers each message as it comes (in lock step), and delivers
/// every message both ways in order while both sides send at once.
pub async fn check_bidi_stream(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_bidi_stream";
    let target = make(vec![upper()]).await;
    let ctx = Context::new();
    let mut stream = target
        .open::<Ping, Pong>(check, &ctx, "Conformance.Upper")
        .await;
    for n in 0..20 {
        let p = ping(format!("step {n}"), n);
        send(check, &stream, &p).await;
        let got = next_message(check, &format!("answer {n}"), &mut stream).await;
        assert_eq!(got, pong_of(&p), "{check}: lock step {n}");
    }
    stream.close_send();
    assert_ends(check, "after the lock step", &mut stream).await;

    let pings: Vec<Ping> = (0..MANY).map(|n| ping(format!("bulk {n}"), n)).collect();
    let opened = client::bidi_stream::<Ping, Pong>(
        &*target.client,
        &ctx,
        &target.service,
        "Conformance.Upper",
        Streaming::from_values(pings.clone()),
        target.options.clone(),
    );
    let mut answers = match within(check, opened).await {
        Ok(answers) => answers,
        Err(err) => panic!("{check}: opening the bulk stream: {err}"),
    };
    for (i, p) in pings.iter().enumerate() {
        match within(&format!("{check}: bulk answer {i}"), answers.next()).await {
            Some(Ok(got)) => assert_eq!(got, pong_of(p), "{check}: bulk answer {i}"),
            Some(Err(err)) => panic!("{check}: bulk answer {i}: error {err}"),
            None => panic!("{check}: the bulk stream ended after {i} answers"),
        }
    }
    let end = within(&format!("{check}: end of the bulk stream"), answers.next()).await;
    assert!(
        end.is_none(),
        "{check}: expected the end of the bulk stream, got {end:?}"
    );
}

/// A server stream's error reaches the caller after the messages before it, with its code,
/// id and detail; a handler that fails before streaming is seen at once.
pub async fn check_server_stream_error(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_server_stream_error";
    let target = make(vec![count_then_fail(), refuse()]).await;
    let ctx = Context::new();
    let mut stream = target
        .open::<u64, u64>(check, &ctx, "Conformance.CountThenFail")
        .await;
    send(check, &stream, &3).await;
    stream.close_send();
    for i in 0..3 {
        let got = next_message(check, &format!("message {i}"), &mut stream).await;
        assert_eq!(got, i, "{check}: message {i} before the error");
    }
    let err = next_error(check, "the error after 3 messages", &mut stream).await;
    assert_app_error(check, "the error after 3 messages", &err, 409);
    assert_ends(check, "after the error", &mut stream).await;

    let err = match within(check, target.stream::<u64, u64>(&ctx, "Conformance.Refuse")).await {
        Err(err) => err,
        Ok(mut stream) => {
            let _ = within(check, stream.send(&3)).await;
            stream.close_send();
            next_error(check, "the refusal", &mut stream).await
        }
    };
    assert_app_error(
        check,
        "a stream refused before its first message",
        &err,
        403,
    );
}

/// A client stream handler's error is its answer, with its code, id and detail.
pub async fn check_client_stream_error(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_client_stream_error";
    let target = make(vec![collect_fail()]).await;
    let ctx = Context::new();
    let mut stream = target
        .open::<u64, Vec<u64>>(check, &ctx, "Conformance.CollectFail")
        .await;
    for n in [3, 2, 1, 0] {
        send(check, &stream, &n).await;
    }
    stream.close_send();
    let err = next_error(check, "the answer", &mut stream).await;
    assert_app_error(check, "the handler's error", &err, 409);
    assert_ends(check, "after the error", &mut stream).await;
}

/// A bidirectional handler's error reaches the caller after the answers before it.
pub async fn check_bidi_stream_error(make: impl AsyncFnOnce(Vec<Handler>) -> Target) {
    let check = "check_bidi_stream_error";
    let target = make(vec![upper_fail()]).await;
    let ctx = Context::new();
    let mut stream = target
        .open::<Ping, Pong>(check, &ctx, "Conformance.UpperFail")
        .await;
    for n in 0..3 {
        let p = ping(format!("fine {n}"), n);
        send(check, &stream, &p).await;
        let got = next_message(check, &format!("answer {n}"), &mut stream).await;
        assert_eq!(got, pong_of(&p), "{check}: answer {n} before the error");
    }
    send(check, &stream, &ping("boom", 3)).await;
    let err = next_error(check, "the error", &mut stream).await;
    assert_app_error(check, "the handler's error", &err, 409);
    assert_ends(check, "after the error", &mut stream).await;
}

/// One `#[tokio::test]` per case of the RPC suite, each with its own server from the
/// factory, an `async fn(Vec<Handler>) -> Target` or an async closure taking the handlers
/// (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::rpc_suite!(mod over_tcp, my_rpc_over_tcp);
/// ```
#[macro_export]
macro_rules! rpc_suite {
    ($($input:tt)*) => {
        $crate::__suite!(factory rpc [
            check_unary_call,
            check_concurrent_calls,
            check_application_error,
            check_unknown_endpoint,
            check_unknown_stream_endpoint,
            check_metadata,
            check_stream_metadata,
            check_deadline,
            check_deadline_reaches_handler,
            check_server_stream,
            check_client_stream,
            check_bidi_stream,
            check_server_stream_error,
            check_client_stream_error,
            check_bidi_stream_error,
        ] $($input)*);
    };
}
