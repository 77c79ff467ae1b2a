//! `#[derive(micro::Wire)]` at compile time: a YAML naming a plugin whose Cargo feature is
//! off fails the build, naming the file, line, key and feature.

#[test]
fn wire_compile_checks() {
    let t = trybuild::TestCases::new();
    t.pass("tests/wire/pass/*.rs");
    t.compile_fail("tests/wire/fail/*.rs");
}
