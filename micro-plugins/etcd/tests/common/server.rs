//! An etcd of a test's own, on spare ports of 127.0.0.1 and a temporary data directory,
//! killed when dropped; optionally serving clients over TLS with client certificates.

use micro_conformance::support::DEADLINE;
use micro_etcd::{Connector, Settings};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// PEM files made by [`make_certificates`] in `dir`.
pub struct Certificates {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A CA, a server certificate for IP 127.0.0.1 and a client certificate, made with the
/// `openssl` command.
pub fn make_certificates(dir: &Path) -> Certificates {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=micro-test-ca",
    ]);
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!(
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
            ),
        )
        .unwrap();
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
    Certificates {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

/// An etcd of this test, killed when dropped.
pub struct Server {
    child: Child,
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    /// Server certificate and key, and the CA clients must be signed by, when serving TLS.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a plain (http) etcd and waits until it answers.
    pub async fn start() -> Self {
        let server = Self::spawn_new(None);
        server.ready(server.settings("registry")).await;
        server
    }

    /// Starts an etcd serving clients over TLS that requires client certificates signed by
    /// the CA of `certificates`, and waits until it answers.
    pub async fn start_tls(certificates: &Certificates) -> Self {
        let tls = (
            certificates.server_cert.clone(),
            certificates.server_key.clone(),
            certificates.ca.clone(),
        );
        let server = Self::spawn_new(Some(tls));
        let mut settings = server.settings("registry");
        settings.tls_ca_file = certificates.ca.display().to_string();
        settings.tls_cert_file = certificates.client_cert.display().to_string();
        settings.tls_key_file = certificates.client_key.display().to_string();
        server.ready(settings).await;
        server
    }

    fn spawn_new(tls: Option<(PathBuf, PathBuf, PathBuf)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (client_port, peer_port) = (spare_port(), spare_port());
        let child = spawn(client_port, peer_port, &dir, tls.as_ref());
        Server {
            child,
            client_port,
            peer_port,
            dir,
            tls,
        }
    }

    /// `127.0.0.1:port` of its client URL.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Settings for it with a 2 s timeout (no TLS files).
    pub fn settings(&self, _purpose: &str) -> Settings {
        Settings {
            addresses: vec![self.address()],
            timeout: Duration::from_secs(2),
            ..Default::default()
        }
    }

    /// A connector for `purpose` on it (plain).
    pub fn connector(&self, purpose: &str) -> Connector {
        Connector::new(self.settings(purpose), purpose).unwrap()
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and data directory.
    pub async fn start_again(&mut self) {
        self.child = spawn(
            self.client_port,
            self.peer_port,
            &self.dir,
            self.tls.as_ref(),
        );
        self.ready(self.settings("registry")).await;
    }

    /// Waits until a read through micro's connector with `settings` answers.
    async fn ready(&self, settings: Settings) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let connector = Connector::new(settings.clone(), "registry").unwrap();
            let ok = connector
                .call("read", |mut c| async move { c.get("ready", None).await })
                .await;
            if ok.is_ok() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd on port {} did not start: {ok:?}",
                self.client_port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(
    client: u16,
    peer: u16,
    dir: &tempfile::TempDir,
    tls: Option<&(PathBuf, PathBuf, PathBuf)>,
) -> Child {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut command = Command::new("etcd");
    command
        .args(["--name", "default", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .args(["--logger", "zap", "--log-outputs"])
        .arg(dir.path().join("etcd.log"));
    if let Some((cert, key, ca)) = tls {
        command
            .arg("--cert-file")
            .arg(cert)
            .arg("--key-file")
            .arg(key)
            .arg("--trusted-ca-file")
            .arg(ca)
            .arg("--client-cert-auth");
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is installed (scripts/test.sh installs Debian's etcd-server)")
}
