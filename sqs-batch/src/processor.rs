//! What a user of the engine supplies.

use std::future::Future;
use std::time::Instant;

use crate::message::{Decode, Message};
use crate::report::Failure;

/// A destination for SQS messages: an async step per message and, when
/// [`batch_limit`](Processor::batch_limit) is above zero, a batched step
/// that takes up to that many outputs of the first step in one call (as
/// DynamoDB's BatchWriteItem takes 25 items).
///
/// A message succeeds when its per-message step succeeds and, with a batched
/// step, when that step reports its item written. Both steps run with
/// bounded concurrency; a panic in either fails only the messages involved.
pub trait Processor: Sync {
    /// The body type: `&'a str` for raw bodies, [`Json<T>`](crate::Json)
    /// for JSON, or any [`Decode`] of your own.
    type Body<'a>: Decode<'a> + Send
    where
        Self: 'a;
    /// What the per-message step hands to the batched step (`()` without one).
    type Output: Send;

    /// The per-message step.
    fn process<'a>(
        &'a self,
        message: Message<'a>,
        body: Self::Body<'a>,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send + 'a;

    /// Most outputs per call of the batched step; 0 (the default): no
    /// batched step, a message is done when its per-message step is.
    fn batch_limit(&self) -> usize {
        0
    }

    /// The batched step: one result per output, in the order given. A
    /// missing result counts as a failure ([`code::NO_RESULT`](crate::code::NO_RESULT)),
    /// never as a success. `deadline` is when the engine stops waiting.
    fn flush(
        &self,
        outputs: Vec<Self::Output>,
        deadline: Instant,
    ) -> impl Future<Output = Vec<Result<(), Failure>>> + Send {
        let _ = deadline;
        let results = outputs.iter().map(|_| Ok(())).collect();
        std::future::ready(results)
    }
}
