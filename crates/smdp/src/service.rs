//! [`Smdp`]: the SM-DP+ logic bound to a configuration and a store.

use std::sync::Arc;

use crate::config::SmdpConfig;
use crate::store::Store;

/// The SM-DP+: ES2+ and ES9+ functions over a [`Store`].
///
/// Cheap to clone; the HTTP layer keeps one and calls its methods from many
/// tasks at once. Time comes in with each call; randomness from the
/// operating system's generator.
#[derive(Debug)]
pub struct Smdp<S> {
    pub(crate) config: Arc<SmdpConfig>,
    pub(crate) store: S,
}

impl<S: Clone> Clone for Smdp<S> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            store: self.store.clone(),
        }
    }
}

impl<S: Store> Smdp<S> {
    /// An SM-DP+ with this configuration and store.
    pub fn new(config: SmdpConfig, store: S) -> Self {
        Self {
            config: Arc::new(config),
            store,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SmdpConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}
