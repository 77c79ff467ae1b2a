//! One lazily made etcd client per component: a plugin factory is synchronous, so the
//! component connects on first use. The client (tonic over HTTP/2) reconnects by itself when
//! the server comes back; requests made meanwhile fail with a 503 naming the address.

use micro_core::{Error, Result};
use std::future::Future;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The server used when a section gives no `addresses`.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:2379";

/// How to reach etcd: the endpoints, the time limit of one request, the credentials.
#[derive(Clone, Default)]
pub struct Settings {
    /// `host:port` or `http://host:port` endpoints; empty = [`DEFAULT_ADDRESS`].
    pub addresses: Vec<String>,
    /// Time limit of connecting and of one request (not of a lock or an election, which wait
    /// as long as their own options say, nor of a watch).
    pub timeout: Duration,
    /// User name for etcd's authentication; empty = none.
    pub username: String,
    /// The user's password.
    pub password: String,
    /// PEM file of the CA that signed etcd's certificate; empty = the system's roots. Setting
    /// it (or any `tls_*` file, or giving an `https://` address) turns TLS on.
    pub tls_ca_file: String,
    /// PEM file of this client's certificate, for etcd's `--client-cert-auth`.
    pub tls_cert_file: String,
    /// PEM file of the key of `tls_cert_file`.
    pub tls_key_file: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("addresses", &self.addresses)
            .field("timeout", &self.timeout)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

/// A component's etcd endpoints and, once made, its client.
pub struct Connector {
    endpoints: Vec<String>,
    settings: Settings,
    /// The TLS settings, when TLS is on.
    tls: Option<etcd_client::TlsOptions>,
    /// What the connection is for (`registry`, `sync`): named in errors.
    purpose: String,
    client: OnceCell<etcd_client::Client>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoints", &self.endpoints)
            .field("purpose", &self.purpose)
            .finish()
    }
}

impl Connector {
    /// A connector for the component `purpose`. Addresses may be comma-separated, each
    /// `host:port`, `http://host:port` or `https://host:port`. TLS is on when an address is
    /// `https://` or a `tls_*` file is given; then every address is `https://` (a bare
    /// `host:port` becomes one) and the PEM files are read now, so a missing one is an error
    /// at once, naming the option.
    pub fn new(settings: Settings, purpose: &str) -> Result<Self> {
        let bad = |detail: String| Error::bad_request("go.micro.etcd", detail);
        let addresses: Vec<&str> = settings
            .addresses
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        let tls_on = addresses.iter().any(|a| a.starts_with("https://"))
            || !settings.tls_ca_file.is_empty()
            || !settings.tls_cert_file.is_empty()
            || !settings.tls_key_file.is_empty();
        let mut endpoints = Vec::new();
        for address in addresses {
            let endpoint = if address.starts_with("https://") {
                address.to_string()
            } else if address.starts_with("http://") {
                if tls_on {
                    return Err(bad(format!(
                        "{purpose}: {address} is plain http, but TLS is on (an https:// \
                         address or a {purpose}.tls_* file); give https:// or host:port \
                         addresses in {purpose}.addresses"
                    )));
                }
                address.to_string()
            } else if address.contains("://") {
                return Err(bad(format!(
                    "{purpose}: {address} is not an etcd address; give host:port, \
                     http://host:port or https://host:port in {purpose}.addresses"
                )));
            } else if tls_on {
                format!("https://{address}")
            } else {
                format!("http://{address}")
            };
            endpoints.push(endpoint);
        }
        if endpoints.is_empty() {
            let scheme = if tls_on { "https" } else { "http" };
            endpoints.push(format!("{scheme}://{DEFAULT_ADDRESS}"));
        }
        if settings.timeout.is_zero() {
            return Err(bad(format!("{purpose}.timeout must be longer than zero")));
        }
        let tls = if tls_on {
            Some(tls_options(&settings, purpose)?)
        } else {
            None
        };
        Ok(Connector {
            endpoints,
            settings,
            tls,
            purpose: purpose.to_string(),
            client: OnceCell::new(),
        })
    }

    /// The endpoints, comma-separated, for messages.
    pub fn address(&self) -> String {
        self.endpoints.join(",")
    }

    /// The time limit of one request.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// The shared client, made on first use; a first connect that fails is an error naming
    /// the address (the next call tries again).
    pub async fn client(&self) -> Result<etcd_client::Client> {
        self.client
            .get_or_try_init(|| async {
                let mut options = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(self.settings.timeout)
                    // Notice a dead server on idle watch and keep-alive streams too.
                    .with_keep_alive(Duration::from_secs(10), self.settings.timeout)
                    .with_keep_alive_while_idle(true);
                if let Some(tls) = &self.tls {
                    options = options.with_tls(tls.clone());
                }
                if !self.settings.username.is_empty() {
                    options = options
                        .with_user(&self.settings.username, &self.settings.password)
                        .with_auto_token_refresh(true);
                }
                let connect = etcd_client::Client::connect(&self.endpoints, Some(options));
                match tokio::time::timeout(self.settings.timeout, connect).await {
                    Ok(Ok(client)) => Ok(client),
                    Ok(Err(e)) => Err(self.failed("connect", &e)),
                    Err(_) => Err(self.timed_out("connect")),
                }
            })
            .await
            .cloned()
    }

    /// Runs one request on the client within the timeout; `what` names it in errors.
    pub async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T>
    where
        F: FnOnce(etcd_client::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = self.client().await?;
        match tokio::time::timeout(self.settings.timeout, request(client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failed(what, &e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    /// The error for a request that did not answer within the timeout.
    pub fn timed_out(&self, what: &str) -> Error {
        Error::unavailable(
            "go.micro.etcd",
            format!(
                "{}: cannot {what}: etcd at {} did not answer within {:?}; is etcd running \
                 there? set {}.addresses (MICRO_{}_ADDRESS) to where it is, or a longer \
                 {}.timeout",
                self.purpose,
                self.address(),
                self.settings.timeout,
                self.purpose,
                self.purpose.to_uppercase(),
                self.purpose
            ),
        )
    }

    /// The error for a failed request: 503 when etcd cannot be reached, 401 when it refuses
    /// the credentials, 500 otherwise.
    pub fn failed(&self, what: &str, e: &etcd_client::Error) -> Error {
        use etcd_client::Error as E;
        let unreachable = match e {
            E::TransportError(_) | E::IoError(_) => true,
            E::GRpcStatus(status) => {
                matches!(
                    status.code() as i32,
                    grpc::UNAVAILABLE | grpc::DEADLINE_EXCEEDED | grpc::CANCELLED
                ) || (status.code() as i32 == grpc::UNKNOWN && from_io(status))
            }
            _ => false,
        };
        if unreachable {
            return Error::unavailable(
                "go.micro.etcd",
                format!(
                    "{}: cannot {what}: etcd at {} cannot be reached: {e}; is etcd running \
                     there? set {}.addresses (MICRO_{}_ADDRESS) to where it is",
                    self.purpose,
                    self.address(),
                    self.purpose,
                    self.purpose.to_uppercase()
                ),
            );
        }
        if let E::GRpcStatus(status) = e
            && matches!(
                status.code() as i32,
                grpc::UNAUTHENTICATED | grpc::PERMISSION_DENIED
            )
        {
            return Error::unauthorized(
                "go.micro.etcd",
                format!(
                    "{}: cannot {what}: etcd at {} refused: {}; check {}.username and \
                     {}.password",
                    self.purpose,
                    self.address(),
                    status.message(),
                    self.purpose,
                    self.purpose
                ),
            );
        }
        Error::internal(
            "go.micro.etcd",
            format!(
                "{}: cannot {what} on etcd at {}: {e}",
                self.purpose,
                self.address()
            ),
        )
    }
}

/// The TLS settings of `settings`: the CA (else the system's roots) and the client identity.
fn tls_options(settings: &Settings, purpose: &str) -> Result<etcd_client::TlsOptions> {
    let read = |option: &str, path: &str| {
        std::fs::read(path).map_err(|e| {
            Error::bad_request(
                "go.micro.etcd",
                format!("{purpose}.{option}: cannot read {path}: {e}; give a readable PEM file"),
            )
        })
    };
    let mut tls = etcd_client::TlsOptions::new();
    tls = if settings.tls_ca_file.is_empty() {
        tls.with_native_roots()
    } else {
        let ca = read("tls_ca_file", &settings.tls_ca_file)?;
        tls.ca_certificate(etcd_client::Certificate::from_pem(ca))
    };
    match (
        settings.tls_cert_file.is_empty(),
        settings.tls_key_file.is_empty(),
    ) {
        (true, true) => {}
        (false, false) => {
            let cert = read("tls_cert_file", &settings.tls_cert_file)?;
            let key = read("tls_key_file", &settings.tls_key_file)?;
            tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
        }
        _ => {
            return Err(Error::bad_request(
                "go.micro.etcd",
                format!(
                    "{purpose}.tls_cert_file and {purpose}.tls_key_file go together: give both \
                     (a client certificate and its key) or neither"
                ),
            ));
        }
    }
    Ok(tls)
}

/// Whether a status came from a broken connection: tonic reports a connection that breaks
/// under a request as `Unknown` "transport error", with the I/O error as a source.
fn from_io(status: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = status.source();
    while let Some(e) = source {
        if e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The gRPC status codes looked at (etcd-client does not re-export tonic's `Code`).
mod grpc {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}
