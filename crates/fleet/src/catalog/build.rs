//! Building a [`Catalog`] from a [`FleetConfig`]: every name checked
//! (unique, well-formed), addresses and APN settings validated, limits and
//! rules checked, and each item given its small id in configuration order.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) struct Builder {
    pub(super) dict: Dictionary,
    pub(super) carriers: Vec<Carrier>,
    pub(super) smdps: Vec<Smdp>,
    pub(super) apns: Vec<Apn>,
    pub(super) profile_types: Vec<ProfileType>,
    pub(super) groups: Vec<Group>,
    pub(super) rules: Vec<Rule>,
    pub(super) tags: Vec<String>,
    pub(super) regions: Vec<String>,
    pub(super) reconciler: ReconcilerConfig,
    pub(super) outage: OutageDetectionConfig,
    pub(super) by_name: HashMap<(&'static str, String), u16>,
}

impl Builder {
    pub(super) fn new(dict: Dictionary) -> Self {
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

    pub(super) fn build(&mut self, c: &FleetConfig) -> Result<(), ConfigError> {
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
