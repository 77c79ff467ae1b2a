//! The publishing side: find the topic's subscribers in the registry and POST the message to
//! every broadcast subscriber and to one member of each queue group.

use super::{ID, Inner, SERVICE, SUBSCRIBER_HEADER, lock};
use crate::headers::{MICRO_ERROR, MICRO_STREAM, is_http_only};
use http::header::{HeaderName, HeaderValue};
use micro_core::broker::{Message, empty_topic};
use micro_core::registry::{Node, Service};
use micro_core::transport::headers::TOPIC;
use micro_core::transport::{self, DialOptions, Stream, Transport};
use micro_core::{Error, Result};
use std::collections::{BTreeMap, HashSet};

/// Round-robin cursors kept before the table is reset (bounds memory with many topics).
const MAX_CURSORS: usize = 4096;

/// The subscribers of one topic, as the registry lists them.
#[derive(Default)]
struct Targets {
    /// Subscribers without a queue group: each gets the message.
    broadcast: Vec<Node>,
    /// Queue group → its members, sorted by node id: one member gets the message.
    groups: BTreeMap<String, Vec<Node>>,
}

impl Targets {
    fn of(topic: &str, services: Vec<Service>) -> Targets {
        let mut seen = HashSet::new();
        let mut targets = Targets::default();
        let nodes = services.into_iter().flat_map(|s| s.nodes);
        for node in nodes {
            if node.metadata.get("topic").map(String::as_str) != Some(topic)
                || !seen.insert(node.id.clone())
            {
                continue;
            }
            match node.metadata.get("queue").filter(|q| !q.is_empty()) {
                Some(queue) => targets.groups.entry(queue.clone()).or_default().push(node),
                None => targets.broadcast.push(node),
            }
        }
        for members in targets.groups.values_mut() {
            members.sort_by(|a, b| a.id.cmp(&b.id));
        }
        targets
    }
}

/// The HTTP headers of a delivery: the message's headers plus `Micro-Topic`. Headers HTTP
/// cannot carry are refused (400) rather than silently dropped.
fn outgoing_headers(topic: &str, message: &Message) -> Result<transport::HeaderMap> {
    let mut header = transport::HeaderMap::with_capacity(message.header.len() + 2);
    for (key, value) in &message.header {
        if key.eq_ignore_ascii_case(TOPIC) || key.eq_ignore_ascii_case(SUBSCRIBER_HEADER) {
            continue;
        }
        let refuse = |why: &str| {
            Err(Error::bad_request(
                ID,
                format!("message header {key:?} cannot be published over the http broker: {why}"),
            ))
        };
        if is_http_only(key) {
            return refuse("HTTP itself uses that header");
        }
        if key.eq_ignore_ascii_case(MICRO_STREAM) || key.eq_ignore_ascii_case(MICRO_ERROR) {
            return refuse("the http transport reserves that header");
        }
        if HeaderName::from_bytes(key.as_bytes()).is_err() {
            return refuse("not a valid HTTP header name");
        }
        if HeaderValue::from_str(value).is_err() {
            return refuse("its value is not a valid HTTP header value (control characters?)");
        }
        header.insert(key, value);
    }
    if HeaderValue::from_str(topic).is_err() {
        return Err(Error::bad_request(
            ID,
            format!("topic {topic:?} cannot travel in an HTTP header (control characters?)"),
        ));
    }
    header.insert(TOPIC, topic);
    Ok(header)
}

impl Inner {
    /// Publishes `message` on `topic`; see the crate README for the delivery rules.
    pub(crate) async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let max = self.settings.options.max_body_size;
        if message.body.len() > max {
            return Err(Error::too_large(
                ID,
                format!(
                    "message body of {} bytes is larger than the limit of {max} bytes",
                    message.body.len()
                ),
            ));
        }
        let header = outgoing_headers(topic, &message)?;
        let services = match self.settings.registry.get_service(SERVICE).await {
            Ok(services) => services,
            Err(err) if err.code == 404 => return Ok(()),
            Err(err) => return Err(err),
        };
        let targets = Targets::of(topic, services);
        let frame = transport::Message {
            header,
            body: message.body,
        };
        let broadcast = targets.broadcast.iter().map(|node| {
            let frame = &frame;
            async move {
                if let Err(err) = self.deliver(node, frame).await {
                    self.settings.logger.in_scope(|| {
                        tracing::warn!(topic, subscriber = %node.id, address = %node.address, error = %err,
                            "http broker: delivery failed")
                    });
                }
            }
        });
        let groups = targets
            .groups
            .iter()
            .map(|(queue, members)| self.deliver_group(topic, queue, members, &frame));
        let (_, groups) = futures::future::join(
            futures::future::join_all(broadcast),
            futures::future::join_all(groups),
        )
        .await;
        groups.into_iter().collect()
    }

    /// Delivers to one member of a queue group, starting at the group's round-robin cursor
    /// and moving on to the next member on failure (each member tried at most once).
    async fn deliver_group(
        &self,
        topic: &str,
        queue: &str,
        members: &[Node],
        frame: &transport::Message,
    ) -> Result<()> {
        let start = self.cursor(topic, queue);
        let mut last = None;
        for i in 0..members.len() {
            let node = &members[(start + i) % members.len()];
            match self.deliver(node, frame).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    self.settings.logger.in_scope(|| {
                        tracing::debug!(topic, queue, subscriber = %node.id, address = %node.address, error = %err,
                            "http broker: queue member failed; trying the next one")
                    });
                    last = Some(err);
                }
            }
        }
        let (code, detail) = last
            .map(|e| (e.code, e.detail))
            .unwrap_or((503, "no member".to_string()));
        let err = Error::new(
            ID,
            code,
            format!(
                "no member of queue group {queue:?} on topic {topic:?} took the message ({} tried); last error: {detail}",
                members.len()
            ),
        );
        self.settings.logger.in_scope(
            || tracing::warn!(topic, queue, error = %err, "http broker: message not delivered"),
        );
        Err(err)
    }

    /// The next round-robin position of (topic, queue).
    fn cursor(&self, topic: &str, queue: &str) -> usize {
        let mut cursors = lock(&self.cursors);
        if cursors.len() >= MAX_CURSORS && !cursors.contains_key(&(topic.into(), queue.into())) {
            cursors.clear();
        }
        let cursor = cursors
            .entry((topic.to_string(), queue.to_string()))
            .or_insert(0);
        let position = *cursor;
        *cursor = cursor.wrapping_add(1);
        position
    }

    /// One delivery attempt: a unary POST over the http transport, within `publish_timeout`.
    async fn deliver(&self, node: &Node, frame: &transport::Message) -> Result<()> {
        let mut frame = frame.clone();
        frame
            .header
            .insert(SUBSCRIBER_HEADER.to_string(), node.id.clone());
        let timeout = self.settings.options.publish_timeout;
        let attempt = async {
            let options = DialOptions::default().timeout(timeout);
            let connection = self.client.dial(&node.address, options).await?;
            let Stream {
                sender,
                mut receiver,
                ..
            } = connection.open_stream().await?;
            sender.send(frame).await?;
            drop(sender);
            match receiver.recv().await {
                Some(Ok(reply)) => match reply.header(MICRO_ERROR) {
                    Some(text) => Err(Error::parse(text)),
                    None => Ok(()),
                },
                Some(Err(err)) => Err(err),
                None => Err(Error::unavailable(ID, "the subscriber sent no answer")),
            }
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(
                ID,
                format!("no answer within the publish timeout of {timeout:?}"),
            )),
        };
        result.map_err(|e| {
            Error::new(
                ID,
                e.code,
                format!(
                    "delivery to subscriber {} at {}: {}",
                    node.id, node.address, e.detail
                ),
            )
        })
    }
}
