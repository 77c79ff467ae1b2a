//! Every system answers its echo in-process (the benchmark itself runs servers in their own
//! processes; this only checks that each server and caller agree).

use micro_bench_peers::axum_echo::{self, AxumCaller};
use micro_bench_peers::load;
use micro_bench_peers::micro_echo::{self, MicroCaller};
use micro_bench_peers::tonic_echo::{self, TonicCaller};
use micro_bench_peers::{BoxError, Caller};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

async fn exercise<C: Caller>(caller: Result<C, BoxError>) {
    let caller = Arc::new(caller.unwrap());
    caller.call().await.unwrap();
    let point = load::drive("x", &caller, 8, Duration::from_millis(200)).await;
    assert!(point.calls > 0);
    assert_eq!(point.errors, 0, "{:?}", point.first_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_echoes() {
    let (listener, addr) = listener().await;
    tokio::spawn(tonic_echo::serve(listener));
    exercise(TonicCaller::connect(&addr).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_echoes() {
    let (listener, addr) = listener().await;
    tokio::spawn(axum_echo::serve(listener));
    exercise(AxumCaller::connect(&addr).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mucp_echoes_over_tcp_and_http() {
    for transport in ["tcp", "http"] {
        let (service, addr) = micro_echo::serve(transport).await.unwrap();
        exercise(MicroCaller::connect(transport, &addr).await).await;
        service.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_grpc_echoes_and_tonic_calls_it() {
    let (service, addr) = micro_bench_peers::grpc_echo::serve().await.unwrap();
    exercise(micro_bench_peers::grpc_echo::GrpcCaller::connect(&addr).await).await;
    // A tonic-generated client calls the micro grpc server at the same path.
    exercise(TonicCaller::connect(&addr).await).await;
    // And the micro grpc client calls the tonic server.
    let (listener, tonic_addr) = listener().await;
    tokio::spawn(tonic_echo::serve(listener));
    exercise(micro_bench_peers::grpc_echo::GrpcCaller::connect(&tonic_addr).await).await;
    service.stop().await.unwrap();
}
