//! micro-conformance: the suites every micro plugin passes, one test per case.
//!
//! Each suite module ([`registry`], [`broker`], [`store`], [`events`], [`sync`],
//! [`transport`], [`rpc`]) exposes its cases as public async functions (`check_*`) taking
//! the component under test (for [`rpc`], a factory of client and server), and a macro
//! that expands to one `#[tokio::test]` per case in the calling test crate, so one failing
//! case does not hide the others. [`codec`] checks micro-core's own codecs the same way,
//! with plain `#[test]`s.
//!
//! ```ignore
//! // tests/conformance.rs of a registry plugin
//! use micro_core::registry::Registry;
//! use std::sync::Arc;
//!
//! micro_conformance::registry_suite!(async || Arc::new(MyRegistry::new()) as Arc<dyn Registry>);
//! ```
//!
//! The macros take three forms:
//!
//! - `suite!(factory)`: a module `conformance` of tests on a multi-thread runtime;
//! - `suite!(mod name, factory)`: the same in a module called `name` (to run one suite more
//!   than once in a crate, e.g. with different plugin options);
//! - `suite!(mod name(tokio test arguments), factory)`: the arguments go to
//!   `#[tokio::test(...)]` as they are, e.g. `mod on_current_thread(flavor = "current_thread")`.
//!
//! The factory is any expression that can be called with no argument and awaited: an async
//! closure (`async || ...`), a closure returning an async block, or the name of an async
//! function. It is called once per test and returns the component (`Arc<dyn Registry>`), or
//! the component paired with whatever must outlive it (see [`support::Fixture`]). The
//! generated module imports its parent (`use super::*`), so the factory sees the names the
//! test file imports. The macros refer to this crate through `$crate` and to tokio as
//! `::tokio`: a test crate needs only `micro-conformance` and `tokio` (with the `macros` and
//! `rt-multi-thread` features) as dev-dependencies.
//!
//! No check asserts on speed: what should happen is awaited up to a generous deadline
//! ([`support::DEADLINE`]); what should not happen is checked over a short grace period.
//! Names (services, topics, keys, locks) are unique per check, so a backend shared between
//! runs (a real server) is fine. Network checks listen on `127.0.0.1:0` only.

pub mod broker;
pub mod codec;
pub mod events;
pub mod lock_child;
pub mod registry;
pub mod rpc;
pub mod store;
pub mod support;
pub mod sync;
pub mod transport;

/// Expands a suite's cases into tests; the suite macros forward here.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite {
    // One test per case, each calling the case with the factory's component.
    (@emit component $suite:ident [$($case:ident),* $(,)?] $name:ident $args:tt $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test $args]
                async fn $case() {
                    let fixture = ($make)().await;
                    $crate::$suite::$case($crate::support::Fixture::component(&fixture)).await;
                    ::std::mem::drop(fixture);
                }
            )*
        }
    };
    // One test per case, each handing the factory itself to the case.
    (@emit factory $suite:ident [$($case:ident),* $(,)?] $name:ident $args:tt $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test $args]
                async fn $case() {
                    $crate::$suite::$case($make).await;
                }
            )*
        }
    };
    ($kind:ident $suite:ident $cases:tt mod $name:ident ($($args:tt)*), $make:expr $(,)?) => {
        $crate::__suite!(@emit $kind $suite $cases $name ($($args)*) $make);
    };
    ($kind:ident $suite:ident $cases:tt mod $name:ident, $make:expr $(,)?) => {
        $crate::__suite!(@emit $kind $suite $cases $name (flavor = "multi_thread") $make);
    };
    ($kind:ident $suite:ident $cases:tt $make:expr $(,)?) => {
        $crate::__suite!(@emit $kind $suite $cases conformance (flavor = "multi_thread") $make);
    };
}
