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

/// A network: mobile country code and mobile network code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    by_name: HashMap<(&'static str, String), u16>,
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
            by_name: b.by_name,
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
        self.by_name.get(&(kind, name.to_owned())).copied()
    }

    /// The carrier named `name`.
    pub fn carrier_id(&self, name: &str) -> Option<CarrierId> {
        self.find("carrier", name).map(CarrierId)
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

fn profile_key(r: &ProfileRef) -> String {
    format!("{}\u{0}{}\u{0}{}", r.carrier, r.profile_type, r.version)
}

struct Builder {
    dict: Dictionary,
    carriers: Vec<Carrier>,
    smdps: Vec<Smdp>,
    apns: Vec<Apn>,
    profile_types: Vec<ProfileType>,
    groups: Vec<Group>,
    rules: Vec<Rule>,
    tags: Vec<String>,
    regions: Vec<String>,
    reconciler: ReconcilerConfig,
    outage: OutageDetectionConfig,
    by_name: HashMap<(&'static str, String), u16>,
}

impl Builder {
    fn new(dict: Dictionary) -> Self {
        Self {
            dict,
            carriers: Vec::new(),
            smdps: Vec::new(),
            apns: Vec::new(),
            profile_types: Vec::new(),
            groups: Vec::new(),
            rules: Vec::new(),
            tags: Vec::new(),
            regions: Vec::new(),
            reconciler: ReconcilerConfig::default(),
            outage: OutageDetectionConfig::default(),
            by_name: HashMap::new(),
        }
    }

    fn name(
        &mut self,
        kind: &'static str,
        name: &str,
        next: usize,
        max: usize,
    ) -> Result<u16, ConfigError> {
        check_name(kind, name)?;
        self.register(kind, name, next, max)
    }

    /// Registers a key (a name, or a composite key checked by the caller).
    fn register(
        &mut self,
        kind: &'static str,
        name: &str,
        next: usize,
        max: usize,
    ) -> Result<u16, ConfigError> {
        if next >= max {
            return Err(ConfigError::TooMany {
                kind,
                count: next + 1,
                max,
            });
        }
        let id = u16::try_from(next).map_err(|_| ConfigError::TooMany {
            kind,
            count: next + 1,
            max,
        })?;
        if self.by_name.insert((kind, name.to_owned()), id).is_some() {
            return Err(ConfigError::Duplicate {
                kind,
                name: name.to_owned(),
            });
        }
        Ok(id)
    }

    fn intern(&self, item: &str, name: &str) -> Result<Sym, ConfigError> {
        self.dict
            .intern(name)
            .map_err(|e| ConfigError::invalid(item, "name", e.to_string()))
    }

    fn build(&mut self, c: &FleetConfig) -> Result<(), ConfigError> {
        for (i, tag) in c.tags.iter().enumerate() {
            self.name("tag", tag, i, MAX_TAGS)?;
            self.tags.push(tag.clone());
        }
        for (i, region) in c.regions.iter().enumerate() {
            self.name("region", region, i, MAX_ITEMS)?;
            self.regions.push(region.clone());
        }
        for s in &c.smdps {
            let item = format!("smdp {:?}", s.address);
            check_address(&item, &s.address)?;
            let id = self.name("smdp", &s.address, self.smdps.len(), MAX_ITEMS)?;
            debug_assert_eq!(usize::from(id), self.smdps.len());
            let sym = self.intern(&item, &s.address)?;
            self.smdps.push(Smdp {
                address: s.address.clone(),
                sym,
                downloads_per_minute: s.downloads_per_minute,
                burst: s.burst.max(1),
            });
        }
        self.carriers_from(c)?;
        self.rules_from(&c.rules)?;
        self.groups_from(c)?;
        self.reconciler = c.reconciler;
        check_reconciler(&c.reconciler)?;
        self.outage = c.outage_detection;
        check_outage(&c.outage_detection)?;
        Ok(())
    }

    fn carriers_from(&mut self, c: &FleetConfig) -> Result<(), ConfigError> {
        for (i, cc) in c.carriers.iter().enumerate() {
            let item = format!("carrier {:?}", cc.name);
            self.name("carrier", &cc.name, i, MAX_ITEMS)?;
            if cc.mcc_mnc.is_empty() {
                return Err(ConfigError::invalid(
                    &item,
                    "mcc_mnc",
                    "must name at least one network",
                ));
            }
            let networks = cc
                .mcc_mnc
                .iter()
                .map(|n| {
                    MccMnc::parse(n).ok_or_else(|| {
                        ConfigError::invalid(
                            &item,
                            "mcc_mnc",
                            format!("{n:?} is not MCC-MNC (310-410)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_address(&item, &cc.smdp_address)?;
            if cc.es2_credentials.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &item,
                    "es2_credentials",
                    "must name where the credentials are",
                ));
            }
            let smdp = match self.by_name.get(&("smdp", cc.smdp_address.clone())) {
                Some(id) => SmdpId(*id),
                None => {
                    let id = self.name("smdp", &cc.smdp_address, self.smdps.len(), MAX_ITEMS)?;
                    let sym = self.intern(&item, &cc.smdp_address)?;
                    self.smdps.push(Smdp {
                        address: cc.smdp_address.clone(),
                        sym,
                        downloads_per_minute: 0,
                        burst: 1,
                    });
                    SmdpId(id)
                }
            };
            let sym = self.intern(&item, &cc.name)?;
            self.carriers.push(Carrier {
                name: cc.name.clone(),
                sym,
                networks,
                smdp,
                es2_credentials: cc.es2_credentials.clone(),
                smdp_is_ferrosim: cc.smdp_is_ferrosim,
                fallbacks: Vec::new(),
                limits: cc.rate_limits,
            });
            let carrier = CarrierId(u16::try_from(i).unwrap_or(u16::MAX));
            for apn in &cc.apns {
                check_apn(&item, apn)?;
                let key = format!("{}\u{0}{}", carrier.0, apn.name);
                self.register("apn", &key, self.apns.len(), MAX_ITEMS)
                    .map_err(|e| rename_dup(e, &format!("{}/{}", cc.name, apn.name)))?;
                self.apns.push(Apn {
                    carrier,
                    settings: apn.clone(),
                });
            }
            for pt in &cc.profile_types {
                check_name("profile type", &pt.name)?;
                let r = ProfileRef {
                    carrier: cc.name.clone(),
                    profile_type: pt.name.clone(),
                    version: pt.version,
                };
                self.register(
                    "profile type",
                    &profile_key(&r),
                    self.profile_types.len(),
                    MAX_ITEMS,
                )
                .map_err(|e| rename_dup(e, &format!("{}/{}@{}", cc.name, pt.name, pt.version)))?;
                let apn = self
                    .by_name
                    .get(&("apn", format!("{}\u{0}{}", carrier.0, pt.apn)))
                    .copied()
                    .ok_or_else(|| ConfigError::Unknown {
                        from: format!("{item} profile type {:?}", pt.name),
                        kind: "apn",
                        name: pt.apn.clone(),
                    })?;
                self.profile_types.push(ProfileType {
                    carrier,
                    name: pt.name.clone(),
                    version: pt.version,
                    apn: ApnId(apn),
                    fallback_allowed: pt.fallback_allowed,
                });
            }
        }
        for (i, cc) in c.carriers.iter().enumerate() {
            let mut fallbacks = Vec::new();
            for f in &cc.fallback_carriers {
                let id = self
                    .by_name
                    .get(&("carrier", f.clone()))
                    .copied()
                    .ok_or_else(|| ConfigError::Unknown {
                        from: format!("carrier {:?} fallback_carriers", cc.name),
                        kind: "carrier",
                        name: f.clone(),
                    })?;
                if usize::from(id) == i || fallbacks.contains(&CarrierId(id)) {
                    return Err(ConfigError::invalid(
                        format!("carrier {:?}", cc.name),
                        "fallback_carriers",
                        format!("{f:?} is listed twice or is the carrier itself"),
                    ));
                }
                fallbacks.push(CarrierId(id));
            }
            self.carriers[i].fallbacks = fallbacks;
        }
        Ok(())
    }

    fn rules_from(&mut self, rules: &[RuleConfig]) -> Result<(), ConfigError> {
        for (i, r) in rules.iter().enumerate() {
            self.name("rule", &r.name, i, MAX_ITEMS)?;
            self.rules.push(Rule::from_config(r)?);
        }
        Ok(())
    }

    fn groups_from(&mut self, c: &FleetConfig) -> Result<(), ConfigError> {
        for (i, g) in c.groups.iter().enumerate() {
            let item = format!("group {:?}", g.name);
            self.name("group", &g.name, i, MAX_ITEMS)?;
            let rule = self
                .by_name
                .get(&("rule", g.rule.clone()))
                .copied()
                .ok_or_else(|| ConfigError::Unknown {
                    from: item.clone(),
                    kind: "rule",
                    name: g.rule.clone(),
                })?;
            let lookup = |r: &ProfileRef, what: &str| {
                self.by_name
                    .get(&("profile type", profile_key(r)))
                    .copied()
                    .map(ProfileTypeId)
                    .ok_or_else(|| ConfigError::Unknown {
                        from: format!("{item} {what}"),
                        kind: "profile type",
                        name: format!("{}/{}@{}", r.carrier, r.profile_type, r.version),
                    })
            };
            let primary = lookup(&g.primary, "primary")?;
            let fallback = g
                .fallback
                .as_ref()
                .map(|f| lookup(f, "fallback"))
                .transpose()?;
            if let Some(f) = fallback {
                let pc = self.profile_types[primary.index()].carrier;
                let fc = self.profile_types[f.index()].carrier;
                if !self.carriers[pc.index()].fallbacks.contains(&fc) {
                    return Err(ConfigError::invalid(
                        &item,
                        "fallback",
                        format!(
                            "carrier {:?} is not a pre-authorised fallback of {:?}",
                            self.carriers[fc.index()].name,
                            self.carriers[pc.index()].name
                        ),
                    ));
                }
                if !self.profile_types[f.index()].fallback_allowed {
                    return Err(ConfigError::invalid(
                        &item,
                        "fallback",
                        "its profile type does not allow the fallback attribute",
                    ));
                }
            }
            let sym = self.intern(&item, &g.name)?;
            self.groups.push(Group {
                name: g.name.clone(),
                sym,
                rule: RuleId(rule),
                primary,
                fallback,
            });
        }
        Ok(())
    }
}

fn rename_dup(e: ConfigError, shown: &str) -> ConfigError {
    match e {
        ConfigError::Duplicate { kind, .. } => ConfigError::Duplicate {
            kind,
            name: shown.to_owned(),
        },
        other => other,
    }
}

fn check_name(kind: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.len() > 64
        || name.chars().any(|c| c.is_control())
        || name.trim() != name
    {
        return Err(ConfigError::invalid(
            format!("{kind} {name:?}"),
            "name",
            "must be 1..=64 characters without control characters or surrounding spaces",
        ));
    }
    Ok(())
}

fn check_address(item: &str, address: &str) -> Result<(), ConfigError> {
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (address, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            item,
            "smdp_address",
            format!("{address:?} is not an FQDN[:port]"),
        ))
    }
}

/// APN network identifier rules of 3GPP TS 23.003 9.1: labels of letters,
/// digits and hyphens separated by dots, at most 100 octets in all.
fn check_apn(item: &str, apn: &ApnConfig) -> Result<(), ConfigError> {
    check_name("apn", &apn.name)?;
    let a = &apn.apn;
    let labels_ok = a.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    if a.is_empty() || a.len() > 100 || !labels_ok {
        return Err(ConfigError::invalid(
            format!("{item} apn {:?}", apn.name),
            "apn",
            format!("{a:?} is not an access point name (TS 23.003 9.1)"),
        ));
    }
    let lower = a.to_ascii_lowercase();
    if lower.starts_with("rac")
        || lower.starts_with("lac")
        || lower.starts_with("sgsn")
        || lower.ends_with(".gprs")
    {
        return Err(ConfigError::invalid(
            format!("{item} apn {:?}", apn.name),
            "apn",
            "must not start with rac/lac/sgsn or end in .gprs (TS 23.003 9.1.1)",
        ));
    }
    Ok(())
}

fn check_reconciler(r: &ReconcilerConfig) -> Result<(), ConfigError> {
    let item = "reconciler";
    if r.retry_base.millis() == 0 || r.retry_max < r.retry_base {
        return Err(ConfigError::invalid(
            item,
            "retry_base",
            "must be above 0 and at most retry_max",
        ));
    }
    if r.es2_timeout.millis() == 0 || r.eim_timeout.millis() == 0 {
        return Err(ConfigError::invalid(item, "timeouts", "must be above 0"));
    }
    Ok(())
}

fn check_outage(o: &OutageDetectionConfig) -> Result<(), ConfigError> {
    let item = "outage_detection";
    if !(o.failure_rate > 0.0 && o.failure_rate <= 1.0) {
        return Err(ConfigError::invalid(
            item,
            "failure_rate",
            "must be in (0, 1]",
        ));
    }
    if !(o.recover_rate >= 0.0 && o.recover_rate < o.failure_rate) {
        return Err(ConfigError::invalid(
            item,
            "recover_rate",
            "must be in [0, failure_rate) (hysteresis)",
        ));
    }
    if o.min_samples == 0 {
        return Err(ConfigError::invalid(
            item,
            "min_samples",
            "must be at least 1",
        ));
    }
    if o.window.millis() < 10_000 || o.probe_interval.millis() == 0 {
        return Err(ConfigError::invalid(
            item,
            "window",
            "must be at least 10s (probe_interval above 0)",
        ));
    }
    Ok(())
}
