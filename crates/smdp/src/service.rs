//! [`Smdp`]: the SM-DP+ logic bound to a configuration and a store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ferrosim_asn1::metadata::IccidTemplate;
use ferrosim_saip::ProfilePackage;

use crate::config::SmdpConfig;
use crate::ids::OperatorId;
use crate::metadata::{MetadataError, ProfileTypeMetadata, store_metadata_der};
use crate::order::ProfileRecord;
use crate::randomness::Randomness;
use crate::store::{ProfileTypeRecord, Store, StoreError};
use crate::time::Timestamp;

/// How long a profile type stays cached; a re-imported package is used by
/// every instance at most this long after the import.
const TYPE_CACHE_MS: i64 = 30_000;

/// The SM-DP+: the ES2+ and ES9+ drivers over a [`Store`] (see [`crate::step`]).
///
/// Cheap to clone; the HTTP layer keeps one and calls its methods from many
/// tasks at once. Time comes in with each call; randomness from its
/// [`Randomness`] (the operating system's generator unless given another).
#[derive(Debug)]
pub struct Smdp<S> {
    pub(crate) config: Arc<SmdpConfig>,
    pub(crate) store: S,
    pub(crate) randomness: Randomness,
    types: Arc<Mutex<TypeCache>>,
}

/// Cached profile types by operator, name and version (`None`: the latest),
/// with the time they were loaded.
type TypeCache =
    HashMap<OperatorId, HashMap<(String, Option<u32>), (Timestamp, Arc<ProfileTemplate>)>>;

/// A profile type as downloads use it: its metadata and its package parsed
/// once (cached by [`Smdp`] and shared by concurrent downloads).
#[derive(Debug)]
pub struct ProfileTemplate {
    /// The type's profile metadata.
    pub metadata: ProfileTypeMetadata,
    /// The package, parsed (it owns the stored bytes).
    pub package: ProfilePackage,
    /// The StoreMetadataRequest of this type, encoded once: what differs
    /// between its profiles is only the ICCID, always 10 bytes at the same
    /// place (see [`ProfileTemplate::store_metadata_der`]).
    metadata_der: OnceLock<Option<MetadataDer>>,
}

/// A StoreMetadataRequest of a profile type for one SM-DP+ address, with
/// its ICCID to be written over.
#[derive(Debug)]
struct MetadataDer {
    address: String,
    template: IccidTemplate,
}

impl ProfileTemplate {
    /// Parses a stored profile type.
    pub fn from_record(record: ProfileTypeRecord) -> Result<Self, ferrosim_saip::Error> {
        let ProfileTypeRecord {
            metadata, package, ..
        } = record;
        Ok(Self {
            metadata,
            package: ProfilePackage::from_vec(package)?,
            metadata_der: OnceLock::new(),
        })
    }

    /// The StoreMetadataRequest (BF25) DER of one of this type's profiles,
    /// exactly as [`store_metadata_der`] encodes it, from the type's
    /// encoding made on first use with the ICCID written in.
    pub fn store_metadata_der(
        &self,
        iccid: &ferrosim_saip::Iccid,
        smdp_address: &str,
    ) -> Result<Vec<u8>, MetadataError> {
        let cached = self
            .metadata_der
            .get_or_init(|| MetadataDer::new(&self.metadata, iccid, smdp_address));
        match cached {
            Some(m) if m.address == smdp_address => Ok(m.template.with_iccid(&iccid.to_bcd())),
            _ => store_metadata_der(iccid, &self.metadata, smdp_address),
        }
    }
}

impl MetadataDer {
    /// Encodes the metadata once and finds the ICCID (`5A 0A`, the first
    /// field of BF25); `None` if the encoding fails or has another shape,
    /// in which case every call encodes in full.
    fn new(m: &ProfileTypeMetadata, iccid: &ferrosim_saip::Iccid, address: &str) -> Option<Self> {
        let der = store_metadata_der(iccid, m, address).ok()?;
        let template = IccidTemplate::new(der, &iccid.to_bcd()).ok()?;
        Some(Self {
            address: address.to_owned(),
            template,
        })
    }
}

impl<S: Clone> Clone for Smdp<S> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            store: self.store.clone(),
            randomness: self.randomness.clone(),
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
    /// An SM-DP+ with this configuration and store, drawing randomness from
    /// the operating system.
    pub fn new(config: SmdpConfig, store: S) -> Self {
        Self::with_randomness(config, store, Randomness::os())
    }

    /// An SM-DP+ drawing its randomness (transaction ids, challenges,
    /// matching ids, one-time keys, profile protection keys, every random
    /// choice) from `randomness`; [`Randomness::seeded`] makes runs repeat.
    pub fn with_randomness(config: SmdpConfig, store: S, randomness: Randomness) -> Self {
        Self {
            config: Arc::new(config),
            store,
            randomness,
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

    /// The profile type a profile's order was made with (the version it
    /// pinned; the latest for an order from before versions), from the
    /// cache when fresh.
    pub(crate) async fn profile_template(
        &self,
        profile: &ProfileRecord,
        now: Timestamp,
    ) -> Result<Arc<ProfileTemplate>, TypeError> {
        let operator = &profile.operator;
        let name = profile.profile_type.as_str();
        let version = profile.order.as_ref().and_then(|o| o.type_version);
        let key = (name.to_owned(), version);
        if let Ok(cache) = self.types.lock()
            && let Some((at, t)) = cache.get(operator).and_then(|types| types.get(&key))
            && now.millis().saturating_sub(at.millis()) < TYPE_CACHE_MS
        {
            return Ok(Arc::clone(t));
        }
        let record = match version {
            Some(v) => self.store.profile_type_version(operator, name, v).await?,
            None => self.store.profile_type(operator, name).await?,
        }
        .ok_or_else(|| TypeError::Missing(name.to_owned()))?;
        let entry = Arc::new(ProfileTemplate::from_record(record).map_err(|source| {
            TypeError::Package {
                name: name.to_owned(),
                source,
            }
        })?);
        if let Ok(mut cache) = self.types.lock() {
            cache
                .entry(operator.clone())
                .or_default()
                .insert(key, (now, Arc::clone(&entry)));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PolicyRules, ProfileClass};

    const PACKAGE: &[u8] = include_bytes!("../../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der");

    fn template(fallback_allowed: bool, owner: Option<&str>) -> ProfileTemplate {
        ProfileTemplate::from_record(ProfileTypeRecord {
            operator: OperatorId::new("op").unwrap(),
            name: "t".into(),
            package: PACKAGE.to_vec(),
            metadata: ProfileTypeMetadata {
                service_provider_name: "Carrier".into(),
                profile_name: "Profile".into(),
                profile_class: ProfileClass::Operational,
                policy_rules: PolicyRules::default(),
                owner_mcc_mnc: owner.map(str::to_owned),
                fallback_allowed,
            },
            created_at: Timestamp::from_millis(0),
            version: 1,
        })
        .unwrap()
    }

    /// The cached encoding with the ICCID written in is byte for byte what
    /// a full encoding gives, for every ICCID, with and without the SGP.32
    /// field, and for another address than the one cached.
    #[test]
    fn cached_metadata_equals_full_encoding() {
        for (fallback, owner) in [
            (false, None),
            (true, Some("23415")),
            (false, Some("310410")),
        ] {
            let t = template(fallback, owner);
            for body in [
                "894410000000000001",
                "894410000000000019",
                "8944199999999999999",
            ] {
                let iccid = ferrosim_saip::Iccid::from_body(body).unwrap();
                for address in ["smdp.example", "smdp.example", "other.example"] {
                    assert_eq!(
                        t.store_metadata_der(&iccid, address).unwrap(),
                        store_metadata_der(&iccid, &t.metadata, address).unwrap(),
                        "{body} at {address}"
                    );
                }
            }
        }
    }
}
