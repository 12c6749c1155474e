//! [`Smdp`]: the SM-DP+ logic bound to a configuration and a store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrosim_saip::ProfilePackage;

use crate::config::SmdpConfig;
use crate::ids::OperatorId;
use crate::metadata::ProfileTypeMetadata;
use crate::store::{ProfileTypeRecord, Store, StoreError};
use crate::time::Timestamp;

/// How long a profile type stays cached; a re-imported package is used by
/// every instance at most this long after the import.
const TYPE_CACHE_MS: i64 = 30_000;

/// The SM-DP+: ES2+ and ES9+ functions over a [`Store`].
///
/// Cheap to clone; the HTTP layer keeps one and calls its methods from many
/// tasks at once. Time comes in with each call; randomness from the
/// operating system's generator.
#[derive(Debug)]
pub struct Smdp<S> {
    pub(crate) config: Arc<SmdpConfig>,
    pub(crate) store: S,
    types: Arc<Mutex<TypeCache>>,
}

/// Cached profile types by (operator, name), with the time they were loaded.
type TypeCache = HashMap<(OperatorId, String), (Timestamp, Arc<CachedType>)>;

/// A profile type with its package parsed once, shared by downloads.
#[derive(Debug)]
pub(crate) struct CachedType {
    /// The type's profile metadata.
    pub metadata: ProfileTypeMetadata,
    /// The package, parsed (it owns the stored bytes).
    pub package: ProfilePackage,
}

impl<S: Clone> Clone for Smdp<S> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            store: self.store.clone(),
            types: Arc::clone(&self.types),
        }
    }
}

/// Why a profile type could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TypeError {
    #[error("profile type {0} not found")]
    Missing(String),
    #[error("profile type {name}: stored package unreadable: {source}")]
    Package {
        name: String,
        source: ferrosim_saip::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: Store> Smdp<S> {
    /// An SM-DP+ with this configuration and store.
    pub fn new(config: SmdpConfig, store: S) -> Self {
        Self {
            config: Arc::new(config),
            store,
            types: Arc::new(Mutex::new(HashMap::new())),
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

    /// A profile type, from the cache when fresh.
    pub(crate) async fn profile_type(
        &self,
        operator: &OperatorId,
        name: &str,
        now: Timestamp,
    ) -> Result<Arc<CachedType>, TypeError> {
        let key = (operator.clone(), name.to_owned());
        if let Ok(cache) = self.types.lock()
            && let Some((at, t)) = cache.get(&key)
            && now.millis().saturating_sub(at.millis()) < TYPE_CACHE_MS
        {
            return Ok(Arc::clone(t));
        }
        let record = self
            .store
            .profile_type(operator, name)
            .await?
            .ok_or_else(|| TypeError::Missing(name.to_owned()))?;
        let ProfileTypeRecord {
            metadata, package, ..
        } = record;
        let package = ProfilePackage::from_vec(package).map_err(|source| TypeError::Package {
            name: name.to_owned(),
            source,
        })?;
        let entry = Arc::new(CachedType { metadata, package });
        if let Ok(mut cache) = self.types.lock() {
            cache.insert(key, (now, Arc::clone(&entry)));
        }
        Ok(entry)
    }
}
