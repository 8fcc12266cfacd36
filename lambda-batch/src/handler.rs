//! What a user supplies: a [`Handler`] (one async function per record; any
//! closure is one) or a [`BatchHandler`] (a per-record step and a batched
//! step, both required).

use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::time::Instant;

use crate::decode::Decode;
use crate::failure::Failure;
use crate::source::{Record, Source};

/// One async function per record: the common case. Any
/// `Fn(P, Record<S>) -> impl Future<Output = Result<(), Failure>>` is a
/// handler, where `P` is the payload type ([`Json<T>`](crate::Json),
/// `String`, `Vec<u8>`, a DynamoDB image, or `()`).
pub trait Handler<S: Source, P>: Sync {
    /// Processes one record.
    fn handle(
        &self,
        payload: P,
        record: Record<S>,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

impl<S, P, F, Fut> Handler<S, P> for F
where
    S: Source,
    F: Fn(P, Record<S>) -> Fut + Sync,
    Fut: Future<Output = Result<(), Failure>> + Send,
{
    fn handle(
        &self,
        payload: P,
        record: Record<S>,
    ) -> impl Future<Output = Result<(), Failure>> + Send {
        self(payload, record)
    }
}

/// A destination that takes records in batches, as DynamoDB's
/// BatchWriteItem takes 25 items: a per-record step that prepares an
/// output, and a batched step that writes up to
/// [`batch_limit`](BatchHandler::batch_limit) outputs in one call. Every
/// method is required, so a half-declared batched step cannot claim
/// success.
///
/// A record succeeds when its per-record step succeeds and the batched step
/// reports its output written.
pub trait BatchHandler<S: Source>: Sync {
    /// The payload type the per-record step takes.
    type Payload: Decode<S::Record> + Send;
    /// What the per-record step hands to the batched step.
    type Output: Send;

    /// Most outputs per call of [`flush`](BatchHandler::flush).
    fn batch_limit(&self) -> NonZeroUsize;

    /// The per-record step.
    fn prepare(
        &self,
        payload: Self::Payload,
        record: Record<S>,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;

    /// The batched step: one result per output, in the order given. A
    /// missing result counts as a failure
    /// ([`code::NO_RESULT`](crate::code::NO_RESULT)), never as a success.
    /// `deadline` is when the engine stops waiting (the call may still take
    /// effect after it, so the write must be idempotent).
    fn flush(
        &self,
        outputs: Vec<Self::Output>,
        deadline: Instant,
    ) -> impl Future<Output = Vec<Result<(), Failure>>> + Send;
}

/// What the engine runs: decode + step, and an optional batched step.
pub(crate) trait Steps<S: Source>: Sync {
    type Output: Send;

    /// Most outputs per batched call; 0: no batched step.
    fn limit(&self) -> usize;

    fn step(&self, record: Record<S>)
        -> impl Future<Output = Result<Self::Output, Failure>> + Send;

    fn flush(
        &self,
        outputs: Vec<Self::Output>,
        deadline: Instant,
    ) -> impl Future<Output = Vec<Result<(), Failure>>> + Send;
}

/// A [`Handler`] as the engine's steps.
pub(crate) struct PerRecord<'h, H, P>(pub(crate) &'h H, PhantomData<fn(P)>);

impl<'h, H, P> PerRecord<'h, H, P> {
    pub(crate) fn new(handler: &'h H) -> Self {
        Self(handler, PhantomData)
    }
}

impl<S, P, H> Steps<S> for PerRecord<'_, H, P>
where
    S: Source,
    P: Decode<S::Record> + Send,
    H: Handler<S, P>,
{
    type Output = ();

    fn limit(&self) -> usize {
        0
    }

    fn step(&self, record: Record<S>) -> impl Future<Output = Result<(), Failure>> + Send {
        let payload = P::decode(record.get());
        async move { self.0.handle(payload?, record).await }
    }

    fn flush(
        &self,
        outputs: Vec<()>,
        _: Instant,
    ) -> impl Future<Output = Vec<Result<(), Failure>>> + Send {
        // Never called: limit() is 0.
        std::future::ready(outputs.into_iter().map(Ok).collect())
    }
}

/// A [`BatchHandler`] as the engine's steps.
pub(crate) struct Batched<'h, H>(pub(crate) &'h H);

impl<S: Source, H: BatchHandler<S>> Steps<S> for Batched<'_, H> {
    type Output = H::Output;

    fn limit(&self) -> usize {
        self.0.batch_limit().get()
    }

    fn step(&self, record: Record<S>) -> impl Future<Output = Result<H::Output, Failure>> + Send {
        let payload = H::Payload::decode(record.get());
        async move { self.0.prepare(payload?, record).await }
    }

    fn flush(
        &self,
        outputs: Vec<H::Output>,
        deadline: Instant,
    ) -> impl Future<Output = Vec<Result<(), Failure>>> + Send {
        self.0.flush(outputs, deadline)
    }
}
