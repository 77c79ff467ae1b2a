//! `option_struct!`, which declares the option structs of the contracts
//! (`store::ReadOptions`, `client::CallOptions`, ...).
//!
//! They are `#[non_exhaustive]`, so a field added later breaks no plugin crate or
//! application; outside micro-core they are built with `Default` plus one chainable setter
//! per field: `store::ReadOptions::default().prefix(true).limit(10)`.

/// Declares an option struct as written, adds `#[non_exhaustive]`, and gives each field a
/// setter named after it that takes `self`, returns `Self` and is documented with
/// "Sets `field`." followed by the field's doc:
///
/// - `Option<String>` and `Option<Arc<str>>` fields: the setter takes `impl Into<...>` of the
///   inner type and wraps it in `Some`;
/// - any other `Option<T>` field: the setter takes `T` and wraps it in `Some`;
/// - any other field: the setter takes the field's type.
///
/// Fields must be `pub`, end with a comma and carry only doc comments as attributes.
/// A value that is already an `Option` is assigned to the field directly.
macro_rules! option_struct {
    (@setters) => {};
    (@setters $(#[doc = $doc:expr])* pub $field:ident : Option<String>, $($rest:tt)*) => {
        #[doc = concat!("Sets `", stringify!($field), "` to `Some(value)`.")]
        #[doc = ""]
        $(#[doc = $doc])*
        #[must_use]
        pub fn $field(mut self, value: impl Into<String>) -> Self {
            self.$field = Some(value.into());
            self
        }
        option_struct!(@setters $($rest)*);
    };
    (@setters $(#[doc = $doc:expr])* pub $field:ident : Option<Arc<str>>, $($rest:tt)*) => {
        #[doc = concat!("Sets `", stringify!($field), "` to `Some(value)`.")]
        #[doc = ""]
        $(#[doc = $doc])*
        #[must_use]
        pub fn $field(mut self, value: impl Into<::std::sync::Arc<str>>) -> Self {
            self.$field = Some(value.into());
            self
        }
        option_struct!(@setters $($rest)*);
    };
    (@setters $(#[doc = $doc:expr])* pub $field:ident : Option<$t:ty>, $($rest:tt)*) => {
        #[doc = concat!("Sets `", stringify!($field), "` to `Some(value)`.")]
        #[doc = ""]
        $(#[doc = $doc])*
        #[must_use]
        pub fn $field(mut self, value: $t) -> Self {
            self.$field = Some(value);
            self
        }
        option_struct!(@setters $($rest)*);
    };
    (@setters $(#[doc = $doc:expr])* pub $field:ident : $t:ty, $($rest:tt)*) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        #[doc = ""]
        $(#[doc = $doc])*
        #[must_use]
        pub fn $field(mut self, value: $t) -> Self {
            self.$field = value;
            self
        }
        option_struct!(@setters $($rest)*);
    };
    (
        $(#[$attr:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        $(#[$attr])*
        #[non_exhaustive]
        pub struct $name { $($fields)* }

        impl $name {
            option_struct!(@setters $($fields)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::{broker, client, events, selector, store};
    use std::time::Duration;

    #[test]
    fn setters_set_one_field_and_keep_the_defaults() {
        let read = store::ReadOptions::default().prefix(true).limit(10);
        assert!(read.prefix && !read.suffix);
        assert_eq!((read.limit, read.offset), (10, 0));

        let consume = events::ConsumeOptions::default().group("g").retry_limit(2);
        assert_eq!(consume.group.as_deref(), Some("g"));
        assert_eq!(consume.retry_limit, Some(2));
        assert!(consume.auto_ack, "the default auto-ack stays");
        assert_eq!(consume.ack_wait, Duration::from_secs(30));

        let subscribe = broker::SubscribeOptions::default().queue(String::from("q"));
        assert_eq!(subscribe.queue.as_deref(), Some("q"));
        assert!(subscribe.auto_ack);

        let call = client::CallOptions::default()
            .address("127.0.0.1:1")
            .retries(0)
            .select(selector::SelectOptions::default().transport("tcp"));
        assert_eq!(call.address.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(call.retries, Some(0));
        assert_eq!(call.select.transport.as_deref(), Some("tcp"));
        assert!(call.request_timeout.is_none() && !call.idempotent);
    }
}
