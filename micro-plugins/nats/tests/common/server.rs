//! A nats-server of the test's own, on a spare port of 127.0.0.1 (never the shared 4222),
//! with JetStream storing into a temporary directory, that a fault test can kill and start
//! again on the same port with the same data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private nats-server process; killed when dropped.
pub struct TestServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl TestServer {
    /// Starts nats-server on a port the kernel picks (`-p -1`); the port is read from the
    /// server's ports file.
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let child = spawn(dir.path(), -1);
        let port = read_port(dir.path(), child.id());
        let server = TestServer {
            dir,
            port,
            child: Some(child),
        };
        server.wait_listening();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL: no goodbye to clients) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same JetStream data.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = spawn(self.dir.path(), i32::from(self.port));
            std::thread::sleep(Duration::from_millis(200));
            match child.try_wait() {
                // Still running: it has the port.
                Ok(None) => {
                    self.child = Some(child);
                    break;
                }
                // The port is not free yet (TIME_WAIT is not a problem for a listener, but
                // the old process may still hold it for a moment): try again.
                _ if Instant::now() < deadline => continue,
                other => panic!(
                    "nats-server did not start again on port {}: {other:?}",
                    self.port
                ),
            }
        }
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server is not listening on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &Path, port: i32) -> Child {
    Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"))
        .arg("--ports_file_dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (scripts/test.sh installs it)")
}

/// The client port from `<dir>/nats-server_<pid>.ports` (`{"nats": ["nats://127.0.0.1:N"]}`).
fn read_port(dir: &Path, pid: u32) -> u16 {
    let file: PathBuf = dir.join(format!("nats-server_{pid}.ports"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(ports) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(url) = ports["nats"][0].as_str()
            && let Some(port) = url.rsplit(':').next().and_then(|p| p.parse().ok())
        {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "no ports file {} from nats-server",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
