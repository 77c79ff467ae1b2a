//! micro-build end to end on small `.proto` files written to a temp directory: the generated
//! text (traits, signatures, renames, docs, derives, module files) and the errors.

use micro_build::{Config, ErrorKind};
use std::path::{Path, PathBuf};

/// Every rpc shape, a comment, a nested message, an enum, a oneof, a rename, a package.
const SHAPES: &str = r#"syntax = "proto3";

package shapes.v1;

// Every shape of call.
service Shapes {
  // Answers once.
  rpc Hello(Ping) returns (Pong);
  rpc Count(Ping) returns (stream Pong); // Counts up.
  rpc Upload(stream Ping) returns (Pong);
  rpc Chat(stream Ping) returns (stream Pong);
  rpc GetURL(Ping.Inner) returns (Pong);
  rpc Type(Ping) returns (Pong);
}

message Ping {
  message Inner {
    string url = 1;
  }
  string text = 1;
  Inner inner = 2;
  oneof extra {
    string note = 3;
    int64 number = 4;
  }
}

enum Mood {
  MOOD_UNSPECIFIED = 0;
  MOOD_HAPPY = 1;
}

message Pong {
  string text = 1;
  Mood mood = 2;
  map<string, uint32> counts = 3;
}
"#;

/// A temp directory with `proto/NAME` holding `source`, and an empty `out/`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proto")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        for (name, source) in files {
            std::fs::write(dir.path().join("proto").join(name), source).unwrap();
        }
        Fixture { dir }
    }

    fn proto(&self, name: &str) -> PathBuf {
        self.dir.path().join("proto").join(name)
    }

    fn includes(&self) -> [PathBuf; 1] {
        [self.dir.path().join("proto")]
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn compile(&self, name: &str) -> Result<(), micro_build::Error> {
        Config::new()
            .out_dir(self.out())
            .emit_rerun_if_changed(false)
            .compile(&[self.proto(name)], &self.includes())
    }

    /// A generated file, whitespace collapsed so prettyplease's line breaks do not matter.
    fn generated(&self, file: &str) -> String {
        let text = std::fs::read_to_string(self.out().join(file)).unwrap();
        squash(&text)
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(",)", ")")
}

fn assert_has(text: &str, wanted: &str) {
    assert!(
        text.contains(&squash(wanted)),
        "missing `{wanted}` in:\n{text}"
    );
}

#[test]
fn services_become_micro_service_traits() {
    let fixture = Fixture::new(&[("shapes.proto", SHAPES)]);
    fixture.compile("shapes.proto").unwrap();
    let code = fixture.generated("shapes.v1.rs");
    assert_has(
        &code,
        "/// Every shape of call. /// /// The `shapes.v1.Shapes` service",
    );
    assert_has(
        &code,
        r#"#[::micro::service(codec = "protobuf", package = "shapes.v1", descriptors = FILE_DESCRIPTOR_SET)] pub trait Shapes {"#,
    );
    // The descriptors for gRPC reflection: a file next to the code, included by the constant.
    assert_has(
        &code,
        "pub const FILE_DESCRIPTOR_SET: &[u8] = ::core::include_bytes!(",
    );
    let set = std::fs::read(fixture.out().join("shapes.v1.fds.bin")).unwrap();
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(set.as_slice()).unwrap();
    assert!(
        set.file.iter().any(|f| f.name() == "shapes.proto"),
        "{set:?}"
    );
    assert_has(
        &code,
        "/// Answers once. async fn hello(&self, ctx: &::micro::Context, req: Ping) \
         -> ::micro::Result<Pong>;",
    );
    assert_has(
        &code,
        "/// Counts up. async fn count(&self, ctx: &::micro::Context, req: Ping) \
         -> ::micro::Result<::micro::Streaming<Pong>>;",
    );
    assert_has(
        &code,
        "async fn upload(&self, ctx: &::micro::Context, req: ::micro::Streaming<Ping>) \
         -> ::micro::Result<Pong>;",
    );
    assert_has(
        &code,
        "async fn chat(&self, ctx: &::micro::Context, req: ::micro::Streaming<Ping>) \
         -> ::micro::Result<::micro::Streaming<Pong>>;",
    );
    // `GetURL` is not the CamelCase of `get_url`: the endpoint keeps the rpc's name.
    assert_has(
        &code,
        r#"#[micro(name = "GetURL")] async fn get_url(&self, ctx: &::micro::Context, req: ping::Inner)"#,
    );
    // A keyword becomes a raw identifier, and needs no rename.
    assert_has(
        &code,
        "async fn r#type(&self, ctx: &::micro::Context, req: Ping)",
    );
    assert_eq!(code.matches("#[micro(name").count(), 1, "{code}");
}

#[test]
fn messages_derive_serde_and_json_schema() {
    let fixture = Fixture::new(&[("shapes.proto", SHAPES)]);
    fixture.compile("shapes.proto").unwrap();
    let code = fixture.generated("shapes.v1.rs");
    let derives = "#[derive(::serde::Serialize, ::serde::Deserialize)] \
                   #[derive(::schemars::JsonSchema)]";
    for message in ["pub struct Ping", "pub struct Inner", "pub struct Pong"] {
        assert_has(&code, &format!("{derives} #[serde(default)] #[derive("));
        assert!(code.contains(message), "{message} in {code}");
    }
    // Every message, the nested one, the enum and the oneof get the derives; only structs
    // get `#[serde(default)]`.
    assert_eq!(code.matches(&squash(derives)).count(), 5, "{code}");
    assert_eq!(code.matches("#[serde(default)]").count(), 3, "{code}");
}

#[test]
fn json_schema_can_be_left_out() {
    let fixture = Fixture::new(&[("shapes.proto", SHAPES)]);
    Config::new()
        .out_dir(fixture.out())
        .emit_rerun_if_changed(false)
        .json_schema(false)
        .compile(&[fixture.proto("shapes.proto")], &fixture.includes())
        .unwrap();
    let code = fixture.generated("shapes.v1.rs");
    assert!(!code.contains("JsonSchema"), "{code}");
    assert!(code.contains("::serde::Serialize"), "{code}");
}

#[test]
fn protos_are_found_by_their_name_under_an_include() {
    let fixture = Fixture::new(&[("shapes.proto", SHAPES)]);
    Config::new()
        .out_dir(fixture.out())
        .emit_rerun_if_changed(false)
        .compile(&["shapes.proto"], &fixture.includes())
        .unwrap();
    assert!(fixture.out().join("shapes.v1.rs").is_file());
}

#[test]
fn a_file_without_package_goes_to_the_default_file() {
    let source = "syntax = \"proto3\";\nmessage Empty {}\nservice Bare { rpc Poke(Empty) returns (Empty); }\n";
    let fixture = Fixture::new(&[("bare.proto", source)]);
    fixture.compile("bare.proto").unwrap();
    let code = fixture.generated("_.rs");
    assert_has(&code, "/// The `Bare` service");
    assert_has(
        &code,
        "async fn poke(&self, ctx: &::micro::Context, req: Empty) -> ::micro::Result<Empty>;",
    );
}

#[test]
fn imports_across_packages_use_prost_paths() {
    let common = "syntax = \"proto3\";\npackage common.v1;\nmessage Id { string value = 1; }\n";
    let users = "syntax = \"proto3\";\npackage users.v1;\nimport \"common.proto\";\n\
                 message User { string name = 1; }\n\
                 service Users { rpc Get(common.v1.Id) returns (User); }\n";
    let fixture = Fixture::new(&[("common.proto", common), ("users.proto", users)]);
    fixture.compile("users.proto").unwrap();
    assert!(fixture.out().join("common.v1.rs").is_file());
    let code = fixture.generated("users.v1.rs");
    assert_has(
        &code,
        "async fn get(&self, ctx: &::micro::Context, req: super::super::common::v1::Id) \
         -> ::micro::Result<User>;",
    );
}

fn ends_with(path: Option<&Path>, name: &str) -> bool {
    path.is_some_and(|path| path.ends_with(name))
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let source = "syntax = \"proto3\";\n\nmessage Broken {\n  string name = 1\n}\n";
    let fixture = Fixture::new(&[("broken.proto", source)]);
    let error = fixture.compile("broken.proto").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Syntax, "{error}");
    assert!(ends_with(error.file(), "proto/broken.proto"), "{error}");
    assert_eq!(error.line(), Some(5), "{error}");
    let text = error.to_string();
    assert!(text.contains("broken.proto:5:"), "{text}");
    assert!(!fixture.out().join("_.rs").exists());
}

#[test]
fn an_unknown_type_names_the_file_and_line() {
    let source =
        "syntax = \"proto3\";\npackage p;\nservice S {\n  rpc Go(Missing) returns (Missing);\n}\n";
    let fixture = Fixture::new(&[("unknown.proto", source)]);
    let error = fixture.compile("unknown.proto").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    assert!(ends_with(error.file(), "unknown.proto"), "{error}");
    assert_eq!(error.line(), Some(4), "{error}");
    assert!(error.to_string().contains("Missing"), "{error}");
}

#[test]
fn a_duplicate_is_located_at_the_second_definition() {
    let source = "syntax = \"proto3\";\nmessage A { string a = 1; string b = 1; }\n";
    let fixture = Fixture::new(&[("dup.proto", source)]);
    let error = fixture.compile("dup.proto").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    assert_eq!(
        (error.line(), error.column()),
        (Some(2), Some(38)),
        "{error}"
    );
    assert!(error.to_string().contains("line 2, column 24"), "{error}");
}

#[test]
fn a_missing_file_is_named() {
    let fixture = Fixture::new(&[]);
    let error = Config::new()
        .out_dir(fixture.out())
        .emit_rerun_if_changed(false)
        .compile(&["nowhere.proto"], &fixture.includes())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    assert!(error.to_string().contains("nowhere.proto"), "{error}");
}

#[test]
fn a_missing_import_is_named_with_the_importing_line() {
    let source = "syntax = \"proto3\";\nimport \"gone.proto\";\n";
    let fixture = Fixture::new(&[("importer.proto", source)]);
    let error = fixture.compile("importer.proto").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
    let text = error.to_string();
    assert!(text.contains("gone.proto"), "{text}");
    assert!(text.contains("importer.proto:2:"), "{text}");
}

#[test]
fn an_unwritable_output_is_a_generate_error() {
    let fixture = Fixture::new(&[("shapes.proto", SHAPES)]);
    let error = Config::new()
        .out_dir(fixture.out().join("missing").join("dir"))
        .emit_rerun_if_changed(false)
        .compile(&[fixture.proto("shapes.proto")], &fixture.includes())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Generate, "{error}");
}
