//! Tower layers around handlers, calls and attempts: tower's timeout and concurrency limit
//! work as handler middleware, errors map to micro errors, and call/attempt layers run.

use micro::client::{self, CallOptions};
use micro::middleware::RpcLayer;
use micro::server::Handler;
use micro::{Built, Context};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::ServiceBuilder;

fn in_memory() -> Vec<(String, String)> {
    [
        ("MICRO_TRANSPORT", "memory"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn service(builder: micro::ServiceBuilder) -> micro::Service {
    match builder.args(["mw"]).env(in_memory()).try_build() {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    }
}

fn nap(now: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> Handler {
    Handler::unary("Sleepy.Nap", move |_: Context, millis: u64| {
        let (now, peak) = (now.clone(), peak.clone());
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(millis)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_concurrency_limit_and_timeout_around_handlers() {
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stack = ServiceBuilder::new()
        .concurrency_limit(1)
        .timeout(Duration::from_millis(400));
    let svc = service(
        micro::Service::builder()
            .name("sleepy")
            .handler(nap(now.clone(), peak.clone()))
            .wrap_handler(RpcLayer::new(stack)),
    );
    svc.start().await.unwrap();
    let client = svc.components().client.clone().unwrap();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client::call::<u64, u64>(
                    client.as_ref(),
                    &Context::new(),
                    "sleepy",
                    "Sleepy.Nap",
                    &50,
                    CallOptions::default(),
                )
                .await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 50);
    }
    assert_eq!(peak.load(Ordering::SeqCst), 1, "the concurrency limit held");
    let err = client::call::<u64, u64>(
        client.as_ref(),
        &Context::new(),
        "sleepy",
        "Sleepy.Nap",
        &2000,
        CallOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, 408, "tower's timeout becomes a 408: {err}");
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn call_and_attempt_layers_run_once_per_call_and_attempt() {
    let (calls, attempts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let count = |counter: Arc<AtomicUsize>| {
        RpcLayer::new(tower::util::MapRequestLayer::new(
            move |req: micro::client::Request| {
                counter.fetch_add(1, Ordering::SeqCst);
                req
            },
        ))
    };
    let svc = service(
        micro::Service::builder()
            .name("sleepy")
            .handler(nap(Arc::default(), Arc::default()))
            .wrap_call(count(calls.clone()))
            .wrap_attempt(count(attempts.clone())),
    );
    svc.start().await.unwrap();
    let client = svc.components().client.clone().unwrap();
    for _ in 0..3 {
        let got: u64 = client::call(
            client.as_ref(),
            &Context::new(),
            "sleepy",
            "Sleepy.Nap",
            &1,
            CallOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(got, 1);
    }
    // A call to an address nobody serves fails before it starts, so it is retried.
    let nowhere = CallOptions::default().address("memory:nobody").retries(2);
    let _ = client::call::<u64, u64>(
        client.as_ref(),
        &Context::new(),
        "sleepy",
        "Sleepy.Nap",
        &1,
        nowhere,
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(attempts.load(Ordering::SeqCst), 3 + 3);
    svc.stop().await.unwrap();
}
