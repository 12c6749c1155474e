//! The validated, interned form of a [`FleetConfig`]: what decisions read.
//!
//! Every carrier, SM-DP+, APN, profile type, group, rule, tag and region
//! gets a small index ([`CarrierId`], [`ProfileTypeId`]...), so per-device
//! state holds two-byte ids instead of strings. Ids are positions in the
//! configuration's order: the same configuration always gives the same ids,
//! which is why snapshots carry the configuration they were made with.

use std::collections::HashMap;
use std::fmt;

use ferrosim_telemetry::{Dictionary, Sym};
use serde::{Deserialize, Serialize};

use crate::config::{
    ApnConfig, CarrierRateLimits, FleetConfig, OutageDetectionConfig, ProfileRef, ReconcilerConfig,
    RuleConfig,
};
use crate::error::ConfigError;
use crate::rules::Rule;

mod build;

use build::Builder;

macro_rules! small_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u16);

        impl $name {
            /// The index in the catalog's table.
            pub fn index(self) -> usize {
                usize::from(self.0)
            }
        }
    };
}

small_id!(
    /// A carrier: index into [`Catalog::carriers`].
    CarrierId
);
small_id!(
    /// An SM-DP+: index into [`Catalog::smdps`].
    SmdpId
);
small_id!(
    /// An APN setting: index into [`Catalog::apns`].
    ApnId
);
small_id!(
    /// A profile type in one version: index into [`Catalog::profile_types`].
    ProfileTypeId
);
small_id!(
    /// A device group: index into [`Catalog::groups`].
    GroupId
);
small_id!(
    /// A failover rule: index into [`Catalog::rules`].
    RuleId
);
small_id!(
    /// A region: index into [`Catalog::regions`].
    RegionId
);

/// Most carriers, profile types, groups... a catalog holds (ids are `u16`).
pub const MAX_ITEMS: usize = u16::MAX as usize;
/// Most tags (a device's tags are a 64-bit set).
pub const MAX_TAGS: usize = 64;

/// A network: mobile country code and mobile network code. In JSON the
/// text `"310-410"` (read also as `"310410"`, or as the object
/// `{"mcc", "mnc", "three_digit_mnc"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MccMnc {
    /// Mobile country code (3 digits).
    pub mcc: u16,
    /// Mobile network code.
    pub mnc: u16,
    /// Whether the MNC has three digits (`310-410` vs `234-15`).
    pub three_digit_mnc: bool,
}

impl MccMnc {
    /// Parses `310-410`, `234-15`, `310410` or `23415`.
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = text.chars().filter(|c| *c != '-').collect();
        let dash = text.find('-');
        if !(5..=6).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if dash.is_some_and(|d| d != 3) || text.matches('-').count() > 1 {
            return None;
        }
        let mcc: u16 = digits[..3].parse().ok()?;
        let mnc: u16 = digits[3..].parse().ok()?;
        Some(Self {
            mcc,
            mnc,
            three_digit_mnc: digits.len() == 6,
        })
    }
}

impl Serialize for MccMnc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MccMnc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Parts {
                mcc: u16,
                mnc: u16,
                three_digit_mnc: bool,
            },
        }
        let parsed = match Form::deserialize(d)? {
            Form::Text(text) => Self::parse(&text),
            Form::Parts {
                mcc,
                mnc,
                three_digit_mnc,
            } => (mcc <= 999 && mnc <= if three_digit_mnc { 999 } else { 99 }).then_some(Self {
                mcc,
                mnc,
                three_digit_mnc,
            }),
        };
        parsed.ok_or_else(|| serde::de::Error::custom("not an MCC-MNC (310-410)"))
    }
}

impl fmt::Display for MccMnc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.three_digit_mnc {
            write!(f, "{:03}-{:03}", self.mcc, self.mnc)
        } else {
            write!(f, "{:03}-{:02}", self.mcc, self.mnc)
        }
    }
}

/// A carrier as the decisions see it.
#[derive(Debug, Clone)]
pub struct Carrier {
    /// Its name.
    pub name: String,
    /// Its name in the telemetry dictionary.
    pub sym: Sym,
    /// Its networks.
    pub networks: Vec<MccMnc>,
    /// Its SM-DP+.
    pub smdp: SmdpId,
    /// Reference to its ES2+ credentials.
    pub es2_credentials: String,
    /// Whether its SM-DP+ is a ferrosim instance.
    pub smdp_is_ferrosim: bool,
    /// Pre-authorised fallback carriers, in order of preference.
    pub fallbacks: Vec<CarrierId>,
    /// Its rate limits.
    pub limits: CarrierRateLimits,
}

/// An SM-DP+ (one address, possibly shared by carriers).
#[derive(Debug, Clone)]
pub struct Smdp {
    /// Its address (FQDN[:port]).
    pub address: String,
    /// Its address in the telemetry dictionary.
    pub sym: Sym,
    /// Downloads per minute (0: no limit).
    pub downloads_per_minute: u32,
    /// Burst.
    pub burst: u32,
}

/// APN settings of one carrier.
#[derive(Debug, Clone)]
pub struct Apn {
    /// Owner.
    pub carrier: CarrierId,
    /// The settings.
    pub settings: ApnConfig,
}

/// A profile type in one version.
#[derive(Debug, Clone)]
pub struct ProfileType {
    /// Owner.
    pub carrier: CarrierId,
    /// ES2+ `profileType`.
    pub name: String,
    /// Version.
    pub version: u16,
    /// APN its profiles use by default.
    pub apn: ApnId,
    /// The owner allows the fallback attribute on it.
    pub fallback_allowed: bool,
}

/// A device group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its name in the telemetry dictionary.
    pub sym: Sym,
    /// Its failover rule.
    pub rule: RuleId,
    /// Profile used normally.
    pub primary: ProfileTypeId,
    /// Fallback staged on each device.
    pub fallback: Option<ProfileTypeId>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Catalog {
    config: FleetConfig,
    dict: Dictionary,
    /// Carriers.
    pub carriers: Vec<Carrier>,
    /// SM-DP+s.
    pub smdps: Vec<Smdp>,
    /// APN settings.
    pub apns: Vec<Apn>,
    /// Profile types.
    pub profile_types: Vec<ProfileType>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Failover rules.
    pub rules: Vec<Rule>,
    /// Tag names (bit `i` of a device's tag set is `tags[i]`).
    pub tags: Vec<String>,
    /// Region names.
    pub regions: Vec<String>,
    /// Reconciler timing.
    pub reconciler: ReconcilerConfig,
    /// Outage detection.
    pub outage: OutageDetectionConfig,
    /// Ids by kind ("carrier", "group", ...) and then by name: looked up
    /// with a borrowed name, no key built per lookup (the fleet looks up a
    /// device's group, region and profile types as it adds each device).
    by_name: HashMap<&'static str, HashMap<String, u16>>,
}

impl Catalog {
    /// Checks `config` and builds the catalog, interning names into `dict`
    /// (shared with telemetry so events name the same carriers and groups).
    pub fn from_config(config: FleetConfig, dict: Dictionary) -> Result<Self, ConfigError> {
        let mut b = Builder::new(dict.clone());
        b.build(&config)?;
        Ok(Self {
            config,
            dict,
            carriers: b.carriers,
            smdps: b.smdps,
            apns: b.apns,
            profile_types: b.profile_types,
            groups: b.groups,
            rules: b.rules,
            tags: b.tags,
            regions: b.regions,
            reconciler: b.reconciler,
            outage: b.outage,
            by_name: b
                .by_name
                .into_iter()
                .fold(HashMap::new(), |mut kinds, ((kind, name), id)| {
                    kinds
                        .entry(kind)
                        .or_insert_with(HashMap::new)
                        .insert(name, id);
                    kinds
                }),
        })
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str, dict: Dictionary) -> Result<Self, ConfigError> {
        Self::from_config(FleetConfig::from_toml(text)?, dict)
    }

    /// The configuration this catalog was built from.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The telemetry dictionary names are interned in.
    pub fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    fn find(&self, kind: &'static str, name: &str) -> Option<u16> {
        self.by_name.get(kind)?.get(name).copied()
    }

    /// The carrier named `name`.
    pub fn carrier_id(&self, name: &str) -> Option<CarrierId> {
        self.find("carrier", name).map(CarrierId)
    }

    /// The SM-DP+ at `address`.
    pub fn smdp_id(&self, address: &str) -> Option<SmdpId> {
        self.find("smdp", address).map(SmdpId)
    }

    /// The group named `name`.
    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.find("group", name).map(GroupId)
    }

    /// The region named `name`.
    pub fn region_id(&self, name: &str) -> Option<RegionId> {
        self.find("region", name).map(RegionId)
    }

    /// The rule named `name`.
    pub fn rule_id(&self, name: &str) -> Option<RuleId> {
        self.find("rule", name).map(RuleId)
    }

    /// Bit of the tag named `name`.
    pub fn tag_bit(&self, name: &str) -> Option<u8> {
        self.find("tag", name).and_then(|i| u8::try_from(i).ok())
    }

    /// The profile type `profile_type` version `version` of carrier `carrier`.
    pub fn profile_type_id(&self, r: &ProfileRef) -> Option<ProfileTypeId> {
        // A catalog names a few profile types: compared in place, without
        // building the lookup key (an allocation per device the fleet adds).
        if self.profile_types.len() <= SCANNED_PROFILE_TYPES {
            let carrier = self.carrier_id(&r.carrier)?;
            let i = self.profile_types.iter().position(|t| {
                t.carrier == carrier && t.version == r.version && t.name == r.profile_type
            })?;
            return u16::try_from(i).ok().map(ProfileTypeId);
        }
        self.find("profile type", &profile_key(r))
            .map(ProfileTypeId)
    }

    /// The APN named `name` of carrier `carrier`.
    pub fn apn_id(&self, carrier: CarrierId, name: &str) -> Option<ApnId> {
        self.find("apn", &format!("{}\u{0}{name}", carrier.0))
            .map(ApnId)
    }

    /// A carrier.
    pub fn carrier(&self, id: CarrierId) -> &Carrier {
        &self.carriers[id.index()]
    }

    /// A profile type.
    pub fn profile_type(&self, id: ProfileTypeId) -> &ProfileType {
        &self.profile_types[id.index()]
    }

    /// The first carrier that lists `network` among its networks
    /// (`mcc_mnc`), if any: whose network a device registered on.
    pub fn carrier_of_network(&self, network: MccMnc) -> Option<CarrierId> {
        self.carriers
            .iter()
            .position(|c| c.networks.contains(&network))
            .and_then(|i| u16::try_from(i).ok())
            .map(CarrierId)
    }

    /// The carrier of a profile type.
    pub fn carrier_of(&self, id: ProfileTypeId) -> CarrierId {
        self.profile_types[id.index()].carrier
    }

    /// A group.
    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id.index()]
    }

    /// A rule.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.index()]
    }

    /// The SM-DP+ of a profile type's carrier.
    pub fn smdp_of(&self, id: ProfileTypeId) -> SmdpId {
        self.carrier(self.carrier_of(id)).smdp
    }

    /// `carrier/type@version`, for logs and decisions.
    pub fn profile_label(&self, id: ProfileTypeId) -> String {
        let t = self.profile_type(id);
        format!("{}/{}@{}", self.carrier(t.carrier).name, t.name, t.version)
    }
}

/// Up to this many profile types, [`Catalog::profile_type_id`] compares
/// them in place instead of looking up a key.
const SCANNED_PROFILE_TYPES: usize = 32;

pub(super) fn profile_key(r: &ProfileRef) -> String {
    format!("{}\u{0}{}\u{0}{}", r.carrier, r.profile_type, r.version)
}
