//! Payloads: how a record's data becomes the value a handler takes. Decoded
//! per record, so one bad payload is that record's failure
//! ([`code::INVALID_PAYLOAD`]) and nobody else's.

use crate::failure::{code, Failure};

/// A payload type decoded from records of type `R`.
///
/// Implemented by the crate for [`Json<T>`], `String` and `Vec<u8>` on SQS
/// and Kinesis records, for the DynamoDB Streams image types, and for `()`
/// (nothing decoded: read the [`Record`](crate::Record) instead). Implement
/// it for a type of your own to add a format.
pub trait Decode<R>: Sized {
    /// Decodes the record's payload.
    fn decode(record: &R) -> Result<Self, Failure>;
}

/// No payload: the handler reads what it needs from the record.
impl<R> Decode<R> for () {
    fn decode(_: &R) -> Result<Self, Failure> {
        Ok(())
    }
}

/// A JSON payload deserialized into `T`: an SQS body, or Kinesis data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

/// The engine's failure for a payload that does not decode.
pub(crate) fn invalid(what: impl std::fmt::Display) -> Failure {
    Failure::new(code::INVALID_PAYLOAD, what)
}

impl<T: serde::de::DeserializeOwned> Json<T> {
    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, Failure> {
        serde_json::from_slice(bytes).map(Json).map_err(invalid)
    }
}
