//! One SQS record as a processor sees it, and how its body is decoded.

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};

use crate::report::{code, Failure};

/// One message of the batch, borrowed from the event.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The SQS message id (never empty: the engine checks it).
    pub id: &'a str,
    /// The raw body (empty when the record has none).
    pub body: &'a str,
    /// The whole record, for anything else.
    pub record: &'a SqsMessage,
    /// When the engine stops waiting for this message: calls the processor
    /// makes should give up by then. The engine drops the step there and
    /// reports the message failed; a call already sent may still take effect.
    pub deadline: Instant,
}

impl<'a> Message<'a> {
    /// A system attribute such as `ApproximateReceiveCount` or `SentTimestamp`.
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        self.record.attributes.get(name).map(String::as_str)
    }

    /// A message attribute's string value.
    pub fn message_attribute(&self, name: &str) -> Option<&'a str> {
        self.record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.as_deref())
    }

    /// Every message attribute.
    pub fn message_attributes(&self) -> &'a HashMap<String, SqsMessageAttribute> {
        &self.record.message_attributes
    }

    /// `MessageGroupId`: on a FIFO queue the ordering group, on a standard
    /// queue the fair-queue tenant (which says nothing about order).
    pub fn group_id(&self) -> Option<&'a str> {
        self.attribute("MessageGroupId")
    }

    /// How many times SQS has handed this message out, this time included.
    pub fn receive_count(&self) -> Option<u32> {
        self.attribute("ApproximateReceiveCount")?.parse().ok()
    }

    /// Milliseconds since the Unix epoch when SQS first handed the message
    /// out, or else when it was sent.
    pub fn first_received_ms(&self) -> Option<u64> {
        ["ApproximateFirstReceiveTimestamp", "SentTimestamp"]
            .iter()
            .find_map(|k| self.attribute(k)?.parse().ok())
    }
}

/// A body type a processor takes: decoded per message, so one bad body is
/// that message's failure ([`code::INVALID_BODY`]) and nobody else's.
pub trait Decode<'a>: Sized {
    /// Decodes the raw body.
    fn decode(body: &'a str) -> Result<Self, Failure>;
}

/// The raw body, JSON or not.
impl<'a> Decode<'a> for &'a str {
    fn decode(body: &'a str) -> Result<Self, Failure> {
        Ok(body)
    }
}

/// A JSON body deserialized into `T` (owned, or borrowing from the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<'a, T: serde::Deserialize<'a>> Decode<'a> for Json<T> {
    fn decode(body: &'a str) -> Result<Self, Failure> {
        serde_json::from_str(body)
            .map(Json)
            .map_err(|e| Failure::new(code::INVALID_BODY, e))
    }
}
