//! Helpers of the code micro-derive's macros generate, reached through `__private::service`
//! so that a crate depending on micro-core alone (a plugin) can use `#[micro::service]`;
//! not a stable API.

use crate::codec::Proto;
use crate::{Context, Streaming};
use futures::{StreamExt, stream};

/// Wraps every message in [`Proto`] (protobuf services).
pub fn into_proto<T: Send + 'static>(messages: Streaming<T>) -> Streaming<Proto<T>> {
    Streaming::new(messages.map(|m| m.map(Proto)))
}

/// Takes every message out of [`Proto`] (protobuf services).
pub fn from_proto<T: Send + 'static>(messages: Streaming<Proto<T>>) -> Streaming<T> {
    Streaming::new(messages.map(|m| m.map(|Proto(inner)| inner)))
}

/// Ends `messages` with a 408 once `ctx`'s deadline passes, as a remote stream would end
/// (for in-process streams).
pub fn until_deadline<T: Send + 'static>(ctx: Context, messages: Streaming<T>) -> Streaming<T> {
    if ctx.deadline.is_none() {
        return messages;
    }
    Streaming::new(stream::unfold(Some((ctx, messages)), |state| async move {
        let (ctx, mut messages) = state?;
        let next = async { Ok(messages.next().await) };
        match crate::in_process::until_deadline(&ctx, next).await {
            Ok(Some(item)) => Some((item, Some((ctx, messages)))),
            Ok(None) => None,
            Err(err) => Some((Err(err), None)),
        }
    }))
}
