//! Compiles `proto/greeter.proto` with micro-build: prost messages and the
//! `#[micro::service]` trait `Greeter`, written to `$OUT_DIR/greeter.v1.rs`.

fn main() {
    if let Err(error) = micro_build::compile_protos(&["proto/greeter.proto"], &["proto"]) {
        panic!("{error}");
    }
    // Every rpc shape, for tests/shapes.rs (not part of the example itself).
    if let Err(error) = micro_build::compile_protos(&["tests/proto/shapes.proto"], &["tests/proto"])
    {
        panic!("{error}");
    }
}
