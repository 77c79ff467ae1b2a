//! Issue 18's probes against a real service process (tcp unless said), speaking the
//! documented wire format on a raw socket: a panicking handler and an absurd `Timeout` leave
//! the connection serving; streams beyond `max_streams` are refused, and one whose request
//! never comes is reset after `first_message_timeout`; half a frame is cut after
//! `read_timeout`; a bad content type is a 415; protocol-error warnings are
//! rate-limited; on http a stalled head or body is cut after `read_timeout`; zero limits and
//! absurdly nested config files stop the process at start, naming the key or file; a client
//! that pipelines calls and never reads does not make the server buffer every answer; a FIFO
//! in the local registry's directory does not hang lookups. (Graceful stop is
//! `stop_processes.rs`.)
//!
//! Child processes are this test binary run again with `MICRO_PROBE_CHILD` set: a service
//! built with `Service::builder()` from the environment the parent gives it, run with
//! `Service::run`.

use bytes::BytesMut;
use micro::tcp::frame::{self, Frame};
use micro::transport::Message;
use micro::{Built, Context, Error, Streaming};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A functional bound on each step, far above what it takes.
const WAIT: Duration = Duration::from_secs(30);

/// Child mode: serve `Probe.Hello`, `Probe.Boom` (panics) and `Probe.Count` (a stream) with
/// `Service::run`; print `READY <address>` (or `FAILED <error>` when it cannot build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_child() {
    if std::env::var("MICRO_PROBE_CHILD").is_err() {
        return;
    }
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MICRO_") && k != "MICRO_PROBE_CHILD")
        .collect();
    let handlers = vec![
        micro::server::Handler::unary("Probe.Hello", |_: Context, name: String| async move {
            Ok::<_, Error>(format!("Hello {name}"))
        }),
        micro::server::Handler::unary("Probe.Boom", |_: Context, name: String| async move {
            if !name.is_empty() {
                panic!("probe boom {name}");
            }
            Ok::<_, Error>(name)
        }),
        micro::server::Handler::server_stream("Probe.Count", |_: Context, n: u64| async move {
            Ok(Streaming::from_values(0..n))
        }),
    ];
    let built = micro::Service::builder()
        .name("probe")
        .args(["probe"])
        .env(env)
        .handler(handlers)
        .handler_with(|caller| {
            // `Probe.Ask` calls `Probe.Hello` by name: a registry lookup, then a call.
            let client = caller.client.clone();
            vec![micro::server::Handler::unary(
                "Probe.Ask",
                move |ctx: Context, name: String| {
                    let client = client.clone();
                    async move {
                        let client = client.ok_or_else(|| Error::internal("probe", "no client"))?;
                        micro::client::call::<String, String>(
                            &*client,
                            &ctx,
                            "probe",
                            "Probe.Hello",
                            &name,
                            micro::client::CallOptions::default(),
                        )
                        .await
                    }
                },
            )]
        })
        .try_build();
    let service = match built {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => {
            println!("FAILED {e}");
            return;
        }
    };
    let running = {
        let service = service.clone();
        tokio::spawn(async move { service.run().await })
    };
    let server = service.components().server.clone().expect("a server");
    let address = loop {
        if let Some(address) = server.address() {
            break address;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("READY {address}");
    let _ = running.await;
}

/// A child service process; killed when dropped.
struct Probe {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Probe {
    /// Starts a child with the base environment (memory registry and broker, tcp on
    /// 127.0.0.1:0, warnings logged) plus `env`; its first line is `READY` or `FAILED`.
    fn start(env: &[(&str, &str)]) -> (Probe, String) {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "probe_child", "--nocapture", "--test-threads=1"])
            .env("MICRO_PROBE_CHILD", "1")
            .env("MICRO_REGISTRY", "memory")
            .env("MICRO_BROKER", "memory")
            .env("MICRO_TRANSPORT", "tcp")
            .env("MICRO_SERVER_ADDRESS", "127.0.0.1:0")
            .env("MICRO_LOGGER_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the test binary runs");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out.send(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            for line in text.lines() {
                let _ = tx.send(format!("STDERR {line}"));
            }
        });
        let mut probe = Probe { child, lines };
        // The test harness prints `test probe_child ... ` on the same line first.
        let first = probe.line(|l| l.contains("READY ") || l.contains("FAILED "));
        let at = first
            .find("READY ")
            .or_else(|| first.find("FAILED "))
            .unwrap_or(0);
        (probe, first[at..].to_string())
    }

    /// The address of a child that started.
    fn started(env: &[(&str, &str)]) -> (Probe, String) {
        let (probe, first) = Probe::start(env);
        let address = first
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("the probe did not start: {first}"))
            .to_string();
        (probe, address)
    }

    /// The next output line that `wanted` accepts.
    fn line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("no wanted line from the probe: {e}"),
            }
        }
    }

    /// Stops the child and returns what it wrote to stderr.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            if let Some(line) = line.strip_prefix("STDERR ") {
                stderr.push(line.to_string());
            }
        }
        stderr
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw connection speaking frames.
struct Raw {
    socket: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(address: &str) -> Raw {
        Raw {
            socket: TcpStream::connect(address).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: &Frame) {
        let mut buf = BytesMut::new();
        frame::encode(frame, &mut buf).unwrap();
        self.socket.write_all(&buf).await.unwrap();
    }

    /// The next frame, `None` once the server closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf, 1 << 20).unwrap() {
                return Some(f);
            }
            let read = tokio::time::timeout(WAIT, self.socket.read_buf(&mut self.buf))
                .await
                .expect("the server answers or closes");
            if read.unwrap_or(0) == 0 {
                return None;
            }
        }
    }
}

/// A mucp request for `endpoint` as a UNARY frame on stream `id`.
fn request(id: u32, endpoint: &str, body: &str, extra: &[(&str, &str)]) -> Frame {
    let mut message = Message::new(body.to_string())
        .with_header("Micro-Service", "probe")
        .with_header("Micro-Endpoint", endpoint)
        .with_header("Micro-Id", id.to_string())
        .with_header("Content-Type", "application/json");
    for (k, v) in extra {
        message = message.with_header(*k, *v);
    }
    Frame::unary(id, message)
}

/// The error a frame carries (`Micro-Error`), if any.
fn error_of(frame: &Frame) -> Option<Error> {
    let text = frame.message.header.get("Micro-Error")?;
    Some(Error::parse(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_and_an_absurd_timeout_leave_the_connection_serving() {
    let (probe, address) = Probe::started(&[]);
    let mut raw = Raw::connect(&address).await;
    raw.send(&request(1, "Probe.Boom", "\"John\"", &[])).await;
    let answer = raw.next().await.expect("an answer to the panicking call");
    let err = error_of(&answer).expect("an error");
    assert_eq!(err.code, 500, "{err}");
    assert!(err.detail.contains("Probe.Boom"), "{err}");
    for timeout in ["18446744073709551615s", "584542046090y", "0", "-5", "abc"] {
        raw.send(&request(3, "Probe.Hello", "\"x\"", &[("Timeout", timeout)]))
            .await;
        let answer = raw.next().await.expect("an answer to a bad Timeout");
        let err = error_of(&answer).expect("an error");
        assert_eq!(err.code, 400, "Timeout {timeout}: {err}");
        assert!(err.detail.contains("Timeout"), "{err}");
    }
    raw.send(&request(5, "Probe.Hello", "\"again\"", &[])).await;
    let answer = raw.next().await.expect("the connection still serves");
    assert!(error_of(&answer).is_none(), "{answer:?}");
    assert_eq!(&answer.message.body[..], b"\"Hello again\"");
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_without_a_type_is_a_415() {
    let (probe, address) = Probe::started(&[]);
    let mut raw = Raw::connect(&address).await;
    let mut bad = request(1, "Probe.Hello", "\"x\"", &[]);
    bad.message.header.insert("Content-Type", ";;;");
    raw.send(&bad).await;
    let err = error_of(&raw.next().await.unwrap()).expect("an error");
    assert_eq!(err.code, 415, "{err}");
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_max_streams_are_refused_naming_the_option() {
    let (probe, address) = Probe::started(&[("MICRO_TRANSPORT_MAX_STREAMS", "4")]);
    let mut raw = Raw::connect(&address).await;
    // Half-open streams: the opening frame, never END (the handler waits for more).
    for id in [1u32, 3, 5, 7, 9] {
        let mut open = request(id, "Probe.Count", "3", &[("Micro-Stream", "true")]);
        open.flags = 0;
        raw.send(&open).await;
    }
    let refused = loop {
        let f = raw.next().await.expect("the connection stays open");
        if f.flags & frame::RESET != 0 {
            break f;
        }
    };
    assert_eq!(refused.stream, 9, "the fifth stream is the one refused");
    let err = error_of(&refused).expect("the RESET carries an error");
    assert_eq!(err.code, 429, "{err}");
    assert!(err.detail.contains("max_streams"), "{err}");
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_request_never_comes_is_reset_after_first_message_timeout() {
    let (probe, address) = Probe::started(&[("MICRO_TRANSPORT_FIRST_MESSAGE_TIMEOUT", "300ms")]);
    let mut raw = Raw::connect(&address).await;
    // The opening frame of a client stream, then nothing: the handler would wait forever.
    let mut open = request(1, "Probe.Count", "", &[("Micro-Stream", "true")]);
    open.flags = 0;
    open.message.body = Default::default();
    raw.send(&open).await;
    let reset = loop {
        let f = raw.next().await.expect("the connection stays open");
        if f.flags & frame::RESET != 0 {
            break f;
        }
    };
    let err = error_of(&reset).expect("the RESET carries an error");
    assert_eq!(err.code, 408, "{err}");
    assert!(err.detail.contains("first_message_timeout"), "{err}");
    // The connection goes on serving.
    raw.send(&request(3, "Probe.Hello", "\"next\"", &[])).await;
    let answer = raw.next().await.expect("an answer");
    assert_eq!(&answer.message.body[..], b"\"Hello next\"");
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_frame_is_cut_after_read_timeout() {
    let (probe, address) = Probe::started(&[("MICRO_TRANSPORT_READ_TIMEOUT", "300ms")]);
    let mut raw = Raw::connect(&address).await;
    let mut whole = BytesMut::new();
    frame::encode(&request(1, "Probe.Hello", "\"x\"", &[]), &mut whole).unwrap();
    raw.socket
        .write_all(&whole[..whole.len() / 2])
        .await
        .unwrap();
    let mut errors = Vec::new();
    while let Some(f) = raw.next().await {
        errors.extend(error_of(&f));
    }
    // The connection was closed; its stream-0 error names the option.
    assert!(
        errors.iter().any(|e| e.detail.contains("read_timeout")),
        "{errors:?}"
    );
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_clients_are_cut_after_read_timeout() {
    let (probe, address) = Probe::started(&[
        ("MICRO_TRANSPORT", "http"),
        ("MICRO_TRANSPORT_READ_TIMEOUT", "300ms"),
    ]);
    // Half a request head: the connection is closed.
    let mut socket = TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(b"POST / HTTP/1.1\r\nHost: probe\r\nMicro-Endp")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut rest))
        .await
        .expect("the server closes a connection whose head stalls")
        .unwrap();
    // A body shorter than announced: a 408 naming the option, then the connection closes.
    let mut socket = TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(
            b"POST / HTTP/1.1\r\nHost: probe\r\nMicro-Endpoint: Probe.Hello\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n\"0123456",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("read_timeout"), "{answer}");
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_error_warnings_are_rate_limited() {
    let (probe, address) = Probe::started(&[]);
    for _ in 0..100 {
        let mut socket = TcpStream::connect(&address).await.unwrap();
        socket.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut sink)).await;
    }
    let stderr = probe.stop();
    let warnings = stderr.iter().filter(|l| l.contains("WARN")).count();
    assert!(
        warnings > 0 && warnings < 50,
        "100 bad connections gave {warnings} WARN lines:\n{}",
        stderr.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_limits_and_deep_config_files_stop_the_process_at_start() {
    for (env, named) in [
        (
            ("MICRO_TRANSPORT_MAX_STREAMS", "0"),
            "transport.max_streams",
        ),
        (("MICRO_REGISTER_INTERVAL", "0s"), "register_interval"),
    ] {
        let (_probe, first) = Probe::start(&[env]);
        assert!(
            first.starts_with("FAILED ") && first.contains(named),
            "{env:?}: {first}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.yaml");
    let depth = 200_000;
    std::fs::write(
        &deep,
        format!("app: {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
    )
    .unwrap();
    let (_probe, first) = Probe::start(&[("MICRO_CONFIG", deep.to_str().unwrap())]);
    assert!(
        first.starts_with("FAILED ") && first.contains("deep.yaml"),
        "{first}"
    );
}

/// The resident memory of process `pid` in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_never_read_do_not_pile_up_in_the_server() {
    const CALLS: u32 = 4000;
    let (probe, address) = Probe::started(&[]);
    let pid = probe.child.id();
    let before = rss_kib(pid);
    let (mut reader, mut writer) = TcpStream::connect(&address).await.unwrap().into_split();
    // Each answer is about 64 KiB: 4000 of them would be 250 MiB held by a server that
    // buffered every answer of a client that does not read.
    let name = format!("\"{}\"", "x".repeat(64 * 1024));
    // The writer sends every call, counting those written; it blocks once the server stops
    // reading.
    let sent = Arc::new(AtomicU32::new(0));
    let writing = tokio::spawn({
        let sent = sent.clone();
        async move {
            let mut bytes = BytesMut::new();
            for n in 0..CALLS {
                bytes.clear();
                frame::encode(&request(n * 2 + 1, "Probe.Hello", &name, &[]), &mut bytes).unwrap();
                writer.write_all(&bytes).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
            writer
        }
    });
    // Wait until the count stops moving for a while (a condition to go on, not a
    // measurement): the server stopped reading a client that reads none of its answers.
    let mut last = u32::MAX;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == last || now == CALLS {
            break;
        }
        last = now;
    }
    let stalled = sent.load(Ordering::SeqCst);
    assert!(
        stalled < CALLS,
        "the server read all {CALLS} requests of a client that never reads its answers"
    );
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 150,
        "the server grew by {grown_mib} MiB holding answers nobody reads"
    );
    // Reading now lets every call through, the ones not written yet too.
    let answers = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut count = 0u32;
        while count < CALLS {
            while let Some(f) = frame::decode(&mut buf, 1 << 20).unwrap() {
                assert!(error_of(&f).is_none(), "{:?}", error_of(&f));
                count += 1;
            }
            if count == CALLS {
                break;
            }
            let n = tokio::time::timeout(WAIT, reader.read_buf(&mut buf))
                .await
                .expect("answers keep coming")
                .unwrap();
            assert!(n > 0, "the server closed after {count} answers");
        }
        count
    });
    let _writer = tokio::time::timeout(WAIT * 4, writing)
        .await
        .expect("the server reads again once its answers are read")
        .unwrap();
    assert_eq!(answers.await.unwrap(), CALLS);
    probe.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_the_registry_directory_does_not_hang_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let registry_dir = dir.path().to_str().unwrap().to_string();
    let (probe, address) = Probe::started(&[
        ("MICRO_REGISTRY", "local"),
        ("MICRO_REGISTRY_DIR", registry_dir.as_str()),
    ]);
    // The probe registered itself: put a FIFO named like a record beside its record, before
    // anything looked the service up.
    let versions = std::fs::read_dir(dir.path().join("probe")).expect("the probe registered");
    for version in versions {
        let fifo = version.unwrap().path().join("x.json");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo {}", fifo.display());
    }
    let mut raw = Raw::connect(&address).await;
    for id in [1u32, 3] {
        raw.send(&request(id, "Probe.Ask", "\"fifo\"", &[])).await;
        let answer = raw.next().await.expect("an answer");
        assert!(error_of(&answer).is_none(), "{:?}", error_of(&answer));
        assert_eq!(&answer.message.body[..], b"\"Hello fifo\"");
    }
    probe.stop();
}
