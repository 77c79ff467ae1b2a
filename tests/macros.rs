//! Compile-time behaviour of `#[micro::service]` and `#[micro::subscriber]`: what must
//! compile (`tests/macros/pass`) and what must be rejected with a clear, well-placed message
//! (`tests/macros/fail/*.rs` with the expected `.stderr`; regenerate with
//! `TRYBUILD=overwrite cargo test --test macros` and review the diff).

#[test]
fn service_and_subscriber_macros() {
    let t = trybuild::TestCases::new();
    t.pass("tests/macros/pass/*.rs");
    t.compile_fail("tests/macros/fail/*.rs");
}
