//! The eIM's functions as pure steps over records.
//!
//! A step takes the records its driver loaded (with their versions), the
//! request, `now`, a `CryptoRng` and the eIM's keys; it does every check and
//! every EC operation, and returns a [`Step`]: the [`EimChanges`] to commit
//! and the answer to give once they are committed. A refusal that changes
//! nothing is an `Err`. Steps never touch a store, a clock or a socket; the
//! drivers in [`crate::Eim`] load, run the step, commit, and run it again if
//! the commit found a record changed.

pub mod associate;
pub mod certificates;
pub mod enqueue;
pub mod notify;
pub mod poll;
pub mod provide;
pub mod sanitize;

mod profiles;
mod verify;

use crate::store::EimChanges;

/// What a step decided.
#[derive(Debug)]
#[must_use = "a step's changes must be committed before its answer is given"]
pub struct Step<A> {
    /// What to write, all or nothing, before answering.
    pub changes: EimChanges,
    /// The answer to give once the changes are committed.
    pub answer: A,
}

impl<A> Step<A> {
    /// An answer with changes.
    pub fn new(changes: EimChanges, answer: A) -> Self {
        Self { changes, answer }
    }
}
