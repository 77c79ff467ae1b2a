//! micro-build: the protobuf path of micro, the role of go-micro's `protoc-gen-micro`.
//!
//! Called from a `build.rs`, it reads `.proto` files with [protox](https://docs.rs/protox)
//! (a protobuf compiler in pure Rust: no system `protoc`), hands the descriptors to
//! [prost-build](https://docs.rs/prost-build) for the messages, and writes every protobuf
//! `service` as a `#[micro::service(codec = "protobuf")]` trait next to them:
//!
//! ```no_run
//! // build.rs, in `fn main()`: a failure names the file and line, e.g.
//! // `proto/greeter.proto:9:3: syntax error: expected ';' or '[', but found '}'`.
//! if let Err(error) = micro_build::compile_protos(&["proto/greeter.proto"], &["proto"]) {
//!     panic!("{error}");
//! }
//! ```
//!
//! ```ignore
//! // src/main.rs: `package greeter.v1;` is written to `$OUT_DIR/greeter.v1.rs`.
//! pub mod greeter {
//!     include!(concat!(env!("OUT_DIR"), "/greeter.v1.rs"));
//! }
//! ```
//!
//! For `rpc Hello(HelloRequest) returns (HelloReply)` the trait gets
//! `async fn hello(&self, ctx: &micro::Context, req: HelloRequest) -> micro::Result<HelloReply>`;
//! `stream` on the request side makes `req: micro::Streaming<T>`, on the response side
//! `micro::Result<micro::Streaming<T>>`. Every message also derives `serde::Serialize`,
//! `serde::Deserialize` (with `#[serde(default)]`) and `schemars::JsonSchema`, so the crate
//! that includes the code depends on `micro`, `prost`, `serde` and `schemars`.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod service;

pub use error::{Error, ErrorKind};

use std::path::{Path, PathBuf};

/// Compiles `protos` (found in the `includes` directories) into `$OUT_DIR`: prost messages
/// and one `#[micro::service]` trait per service, one file per protobuf package
/// (`greeter.v1.rs`; `_.rs` without a package). Prints `cargo:rerun-if-changed` for every
/// `.proto` file read from disk.
///
/// ```no_run
/// micro_build::compile_protos(&["proto/greeter.proto"], &["proto"])?;
/// # Ok::<(), micro_build::Error>(())
/// ```
///
/// # Errors
///
/// A missing file, a syntax error or a bad definition, with the file and line
/// ([`Error::file`], [`Error::line`]); a failure writing the code ([`ErrorKind::Generate`]).
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Error> {
    Config::new().compile(protos, includes)
}

/// Options for [`compile_protos`]: `Config::new().out_dir(dir).compile(protos, includes)`.
#[derive(Debug, Clone)]
pub struct Config {
    out_dir: Option<PathBuf>,
    json_schema: bool,
    rerun_if_changed: bool,
    well_known_types: bool,
    include_file: Option<PathBuf>,
    extern_paths: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// The defaults: write into `$OUT_DIR`, derive `schemars::JsonSchema`, print
    /// `cargo:rerun-if-changed` lines.
    pub fn new() -> Self {
        Config {
            out_dir: None,
            json_schema: true,
            rerun_if_changed: true,
            well_known_types: false,
            include_file: None,
            extern_paths: Vec::new(),
        }
    }

    /// Writes the generated files into `dir` instead of `$OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether messages derive `schemars::JsonSchema` (default on), which publishes the
    /// request and response shapes of each endpoint in the registry. Off, the crate needs no
    /// `schemars` and endpoints are registered without shapes.
    pub fn json_schema(mut self, on: bool) -> Self {
        self.json_schema = on;
        self
    }

    /// Whether to print `cargo:rerun-if-changed=<file>` for each `.proto` read (default on;
    /// turn it off when not running in a build script).
    pub fn emit_rerun_if_changed(mut self, on: bool) -> Self {
        self.rerun_if_changed = on;
        self
    }

    /// Generates the `google.protobuf` well-known types (`Timestamp`, `Duration`, ...) as
    /// well, with the same derives, instead of using `prost-types` (whose types do not derive
    /// serde). They land in `google.protobuf.rs`, which must be included as the module
    /// `google::protobuf` next to the package's module (see prost-build's
    /// `compile_well_known_types`).
    pub fn compile_well_known_types(mut self, on: bool) -> Self {
        self.well_known_types = on;
        self
    }

    /// Also writes `file` (in the output directory), which includes every generated file in
    /// nested modules by package: one `include!` for all packages.
    pub fn include_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.include_file = Some(file.into());
        self
    }

    /// Uses existing Rust types for a protobuf path instead of generating them
    /// (`.common.v1` → `::common::v1`), as prost-build's `extern_path`. The types must derive
    /// serde (and `JsonSchema` when [`json_schema`](Self::json_schema) is on).
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Compiles `protos`, looked up in `includes` (as `protoc -I`), into the output directory.
    ///
    /// # Errors
    ///
    /// As [`compile_protos`].
    pub fn compile(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        let includes: Vec<PathBuf> = includes.iter().map(|i| i.as_ref().to_path_buf()).collect();
        let mut compiler = protox::Compiler::new(&includes)
            .map_err(|error| Error::from_protox(error, &includes))?;
        compiler.include_source_info(true).include_imports(true);
        for proto in protos {
            let proto = proto.as_ref();
            if !proto.is_file() && !includes.iter().any(|i| i.join(proto).is_file()) {
                return Err(Error::missing(proto, &includes));
            }
            compiler
                .open_file(proto)
                .map_err(|error| Error::from_protox(error, &includes))?;
        }
        if self.rerun_if_changed {
            for file in compiler.files() {
                if let Some(path) = file.path() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        let descriptors = compiler.file_descriptor_set();
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::generate(
                        "OUT_DIR is not set: call micro-build from a build script, or give \
                     Config::out_dir"
                            .to_string(),
                        std::io::Error::other("OUT_DIR is not set"),
                    )
                })?,
        };
        let encoded = prost::Message::encode_to_vec(&descriptors);
        let generator = std::rc::Rc::new(std::cell::RefCell::new(service::MicroServices::new(
            encoded, out_dir,
        )));
        self.prost_config(Box::new(Shared(generator.clone())))
            .compile_fds(descriptors)
            .map_err(|error| Error::generate(format!("writing the Rust code: {error}"), error))?;
        match generator.borrow_mut().error.take() {
            Some(error) => Err(Error::generate(
                format!("writing the file descriptor set: {error}"),
                error,
            )),
            None => Ok(()),
        }
    }

    /// The prost-build configuration: the derives, the service generator, the options.
    fn prost_config(
        &self,
        generator: Box<dyn prost_build::ServiceGenerator>,
    ) -> prost_build::Config {
        let mut config = prost_build::Config::new();
        config.service_generator(generator);
        config.type_attribute(".", "#[derive(::serde::Serialize, ::serde::Deserialize)]");
        config.message_attribute(".", "#[serde(default)]");
        if self.json_schema {
            config.type_attribute(".", "#[derive(::schemars::JsonSchema)]");
        }
        if let Some(dir) = &self.out_dir {
            config.out_dir(dir);
        }
        if self.well_known_types {
            config.compile_well_known_types();
        }
        if let Some(file) = &self.include_file {
            config.include_file(file);
        }
        for (proto_path, rust_path) in &self.extern_paths {
            config.extern_path(proto_path, rust_path);
        }
        config
    }
}

/// The service generator, shared so its outcome can be read after prost-build is done.
struct Shared(std::rc::Rc<std::cell::RefCell<service::MicroServices>>);

impl prost_build::ServiceGenerator for Shared {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        prost_build::ServiceGenerator::generate(&mut *self.0.borrow_mut(), service, buf);
    }
}
