//! What happened to each record: [`Report`] and the partial batch response.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use crate::error::FailureSummary;
use crate::failure::Failure;
use crate::source::Source;

/// One record that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordFailure {
    /// The record's item identifier (SQS message id, stream sequence number).
    pub id: String,
    /// The record's position in the batch.
    pub index: usize,
    /// Why.
    pub failure: Failure,
}

/// The outcome of a batch: counts, every record that did not succeed, and
/// the partial batch response for the source `S`.
pub struct Report<S: Source> {
    pub(crate) received: usize,
    pub(crate) succeeded: usize,
    pub(crate) duplicates: usize,
    pub(crate) failures: Vec<RecordFailure>,
    /// How many of `failures`, from the first, the response names: all of
    /// them, or (streams) only the first, the checkpoint.
    pub(crate) reported: usize,
    pub(crate) source: PhantomData<fn() -> S>,
}

impl<S: Source> Report<S> {
    /// Records in the event.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Distinct records that succeeded and will not be delivered again.
    pub fn succeeded(&self) -> usize {
        self.succeeded
    }

    /// Records whose item identifier repeated an earlier record's; each
    /// shares the first one's outcome.
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// The distinct records that did not succeed, in batch order: Lambda
    /// delivers each of them again. For a stream this includes the records
    /// after the checkpoint ([`code::AFTER_CHECKPOINT`](crate::code::AFTER_CHECKPOINT)).
    pub fn failures(&self) -> &[RecordFailure] {
        &self.failures
    }

    /// Whether nothing of a non-empty batch succeeded.
    pub fn all_failed(&self) -> bool {
        self.succeeded == 0 && !self.failures.is_empty()
    }

    /// The item identifiers the response reports: every failed record, or
    /// for a stream the checkpoint alone.
    pub fn reported_ids(&self) -> impl Iterator<Item = &str> {
        self.failures[..self.reported].iter().map(|f| f.id.as_str())
    }

    /// The partial batch response: the item identifiers of
    /// [`reported_ids`](Report::reported_ids), each a non-empty identifier
    /// of the batch, so Lambda never finds the response invalid.
    pub fn response(&self) -> S::Response {
        S::response(self.reported_ids())
    }

    /// Failures counted by reason code, most frequent first.
    pub fn failures_by_code(&self) -> Vec<(&str, usize)> {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for f in &self.failures {
            match counts.iter_mut().find(|(c, _)| *c == f.failure.code()) {
                Some((_, n)) => *n += 1,
                None => counts.push((f.failure.code(), 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }

    /// A bounded summary: counts and the most common codes.
    pub fn summary(&self) -> FailureSummary {
        FailureSummary {
            received: self.received,
            failed: self.failures.len(),
            by_code: self
                .failures_by_code()
                .into_iter()
                .take(FailureSummary::MAX_CODES)
                .map(|(code, n)| (Cow::Owned(code.to_owned()), n))
                .collect(),
        }
    }
}

impl<S: Source> Clone for Report<S> {
    fn clone(&self) -> Self {
        Self {
            received: self.received,
            succeeded: self.succeeded,
            duplicates: self.duplicates,
            failures: self.failures.clone(),
            reported: self.reported,
            source: PhantomData,
        }
    }
}

impl<S: Source> fmt::Debug for Report<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("received", &self.received)
            .field("succeeded", &self.succeeded)
            .field("duplicates", &self.duplicates)
            .field("failures", &self.failures)
            .field("reported", &self.reported)
            .finish()
    }
}
