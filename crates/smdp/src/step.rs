//! The shape of every SM-DP+ function: a pure step and a thin driver.
//!
//! A step is a plain function of the request, the records it needs (as
//! loaded, with their versions), `now`, a `CryptoRng` and the instance's
//! keys ([`crate::SmdpConfig`]). It does every check and every piece of EC
//! work and returns an [`Outcome`]: the [`Changes`] to commit and the answer
//! to give once they are committed. The step may refuse and still change
//! records (a wrong confirmation code is counted, an expired order ends), so
//! the answer is a `Result` beside the changes.
//!
//! The async methods of [`crate::Smdp`] are the drivers: load, step, commit.
//! When the commit finds that a record changed since it was loaded
//! ([`StoreError::Stale`]), nothing was written; the driver loads again and
//! runs the step again, at most [`ATTEMPTS`] times, so a lost race ends in
//! the answer the new state calls for, never in a double-issued profile.

use crate::Smdp;
use crate::store::{Changes, Store, StoreError};

/// How often a driver runs a step whose commit lost a race before it gives
/// up with [`StoreError::Stale`].
pub const ATTEMPTS: usize = 4;

/// What a step decided.
#[derive(Debug)]
#[must_use = "an outcome's changes must be committed before its answer is given"]
pub struct Outcome<A, E> {
    /// What to write, all or nothing, before answering.
    pub changes: Changes,
    /// The answer to give once the changes are committed.
    pub answer: Result<A, E>,
}

impl<A, E> Outcome<A, E> {
    /// An answer with changes.
    pub fn new(changes: Changes, answer: Result<A, E>) -> Self {
        Self { changes, answer }
    }

    /// A refusal that changes nothing.
    pub fn refuse(error: E) -> Self {
        Self {
            changes: Changes::default(),
            answer: Err(error),
        }
    }
}

impl<A, E> From<Result<(Changes, A), E>> for Outcome<A, E> {
    /// A step that either succeeds with changes or refuses without any.
    fn from(r: Result<(Changes, A), E>) -> Self {
        match r {
            Ok((changes, answer)) => Self::new(changes, Ok(answer)),
            Err(e) => Self::refuse(e),
        }
    }
}

impl<S: Store> Smdp<S> {
    /// Commits an outcome's changes. `Ok(Some(answer))` once committed (or
    /// the step's refusal), `Ok(None)` when a record changed since it was
    /// loaded: nothing was written, run the step again.
    pub(crate) async fn settle<A, E: From<StoreError>>(
        &self,
        outcome: Outcome<A, E>,
    ) -> Result<Option<A>, E> {
        match self.store.commit(outcome.changes).await {
            Ok(()) => outcome.answer.map(Some),
            Err(StoreError::Stale) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
