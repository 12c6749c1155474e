//! Operators' changes of the catalog on a running fleet: carriers, groups
//! and failover rules created, changed or deleted.
//!
//! Ids are positions in the configuration (see [`crate::catalog`]), so a
//! changed configuration may give an item another id (a carrier deleted
//! before it, a profile type added to an earlier carrier). A change is
//! therefore applied as a whole: the new catalog is built and checked, every
//! id the fleet's state holds (devices' desired and observed state,
//! downloads, actions in flight, rollouts, per-carrier and per-SM-DP+
//! limits and health) is translated by name to the new catalog, and
//! anything still in use that the change removes refuses the change with
//! [`FleetError::InUse`]. Either all of it applies or nothing does.
//!
//! What a change means for devices: a group's `primary`/`fallback` is what
//! devices registered from then on get (existing devices' desired state
//! changes only through rollouts); a rule's thresholds and a group's rule
//! apply at once to the devices that follow them; a carrier's rate limits,
//! networks and SM-DP+ apply to the next decisions. Decision records keep
//! the catalog indices of the moment they were taken.

use std::collections::BinaryHeap;
use std::sync::Arc;

use ferrosim_ids::Timestamp;

use super::{FastMap, Fleet, NO_REGION};
use crate::action::{Action, Command};
use crate::catalog::{ApnId, CarrierId, Catalog, GroupId, ProfileTypeId, RegionId, RuleId, SmdpId};
use crate::config::{CarrierConfig, FleetConfig, GroupConfig, ProfileRef, RuleConfig};
use crate::device::{Desired, DeviceState};
use crate::error::FleetError;
use crate::limit::TokenBucket;
use crate::rollout::{Change, ChangeSpec};

/// Old id -> new id, per kind (`None`: the item is gone).
struct Remap {
    carriers: Vec<Option<u16>>,
    smdps: Vec<Option<u16>>,
    apns: Vec<Option<u16>>,
    types: Vec<Option<u16>>,
    groups: Vec<Option<u16>>,
    rules: Vec<Option<u16>>,
    regions: Vec<Option<u16>>,
    tags: Vec<Option<u8>>,
}

fn at(table: &[Option<u16>], i: usize) -> Option<u16> {
    table.get(i).copied().flatten()
}

impl Remap {
    fn new(old: &Catalog, new: &Catalog) -> Self {
        let type_ref = |t: &crate::catalog::ProfileType| ProfileRef {
            carrier: old.carrier(t.carrier).name.clone(),
            profile_type: t.name.clone(),
            version: t.version,
        };
        Self {
            carriers: old
                .carriers
                .iter()
                .map(|c| new.carrier_id(&c.name).map(|i| i.0))
                .collect(),
            smdps: old
                .smdps
                .iter()
                .map(|s| new.smdp_id(&s.address).map(|i| i.0))
                .collect(),
            apns: old
                .apns
                .iter()
                .map(|a| {
                    new.carrier_id(&old.carrier(a.carrier).name)
                        .and_then(|c| new.apn_id(c, &a.settings.name))
                        .map(|i| i.0)
                })
                .collect(),
            types: old
                .profile_types
                .iter()
                .map(|t| new.profile_type_id(&type_ref(t)).map(|i| i.0))
                .collect(),
            groups: old
                .groups
                .iter()
                .map(|g| new.group_id(&g.name).map(|i| i.0))
                .collect(),
            rules: old
                .rules
                .iter()
                .map(|r| new.rule_id(&r.name).map(|i| i.0))
                .collect(),
            regions: old
                .regions
                .iter()
                .map(|r| new.region_id(r).map(|i| i.0))
                .collect(),
            tags: old.tags.iter().map(|t| new.tag_bit(t)).collect(),
        }
    }

    fn carrier(&self, c: CarrierId) -> Option<CarrierId> {
        at(&self.carriers, c.index()).map(CarrierId)
    }

    fn smdp(&self, s: SmdpId) -> Option<SmdpId> {
        at(&self.smdps, s.index()).map(SmdpId)
    }

    fn apn(&self, a: ApnId) -> Option<ApnId> {
        at(&self.apns, a.index()).map(ApnId)
    }

    fn profile_type(&self, t: ProfileTypeId) -> Option<ProfileTypeId> {
        at(&self.types, t.index()).map(ProfileTypeId)
    }

    fn group(&self, g: GroupId) -> Option<GroupId> {
        at(&self.groups, g.index()).map(GroupId)
    }

    fn rule(&self, r: RuleId) -> Option<RuleId> {
        at(&self.rules, r.index()).map(RuleId)
    }

    fn region(&self, r: RegionId) -> Option<RegionId> {
        at(&self.regions, r.index()).map(RegionId)
    }

    /// The new id of the carrier at each new position (`None`: new).
    fn inverse(table: &[Option<u16>], new_len: usize) -> Vec<Option<usize>> {
        let mut inv = vec![None; new_len];
        for (old, new) in table.iter().enumerate() {
            if let Some(n) = new
                && let Some(slot) = inv.get_mut(usize::from(*n))
            {
                *slot = Some(old);
            }
        }
        inv
    }
}

/// What a remapped item was called, for refusals.
struct Labels<'a>(&'a Catalog);

impl Labels<'_> {
    fn profile_type(&self, t: ProfileTypeId) -> String {
        self.0.profile_label(t)
    }

    fn apn(&self, a: ApnId) -> String {
        let apn = &self.0.apns[a.index()];
        format!(
            "APN setting {}/{}",
            self.0.carrier(apn.carrier).name,
            apn.settings.name
        )
    }
}

impl Fleet {
    /// Replaces the catalog with one built from `config` (see the module
    /// documentation): checked, every id in the state translated, refused
    /// with [`FleetError::InUse`] when something removed is still in use
    /// and with [`FleetError::InvalidConfig`] when `config` is not valid.
    pub fn reconfigure(&mut self, config: FleetConfig, now: Timestamp) -> Result<(), FleetError> {
        let new = Catalog::from_config(config, self.catalog.dictionary().clone())
            .map_err(|e| FleetError::InvalidConfig(e.to_string()))?;
        let old = self.catalog.clone();
        let map = Remap::new(&old, &new);
        let labels = Labels(&old);
        let in_use = FleetError::InUse;

        // Check and translate into new tables; nothing changes before all
        // of it succeeded.
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            devices.push(remap_device(d, &map, &old, &labels).map_err(in_use)?);
        }
        let mut downloads =
            FastMap::with_capacity_and_hasher(self.downloads.len(), Default::default());
        for (idx, p) in &self.downloads {
            let mut p = p.clone();
            p.profile_type = map.profile_type(p.profile_type).ok_or_else(|| {
                in_use(format!(
                    "a download of {} is in progress for device {}",
                    labels.profile_type(p.profile_type),
                    self.devices[*idx as usize].eid
                ))
            })?;
            downloads.insert(*idx, p);
        }
        let mut in_flight =
            FastMap::with_capacity_and_hasher(self.in_flight.len(), Default::default());
        for (id, f) in &self.in_flight {
            let mut f = f.clone();
            f.action = remap_action(&f.action, &map).map_err(in_use)?;
            in_flight.insert(*id, f);
        }
        let mut actions = std::collections::VecDeque::with_capacity(self.actions.len());
        for a in &self.actions {
            actions.push_back(remap_action(a, &map).map_err(in_use)?);
        }
        let mut rollouts = self.rollouts.clone();
        for r in rollouts.values_mut() {
            let what = format!("rollout {} ({})", r.id, r.state.name());
            if r.state.is_final() {
                // Over: its selection and its record of replaced states are
                // no longer acted on; what the change removed drops out.
                r.groups = r.groups.iter().filter_map(|g| map.group(*g)).collect();
                r.previous = std::mem::take(&mut r.previous)
                    .into_iter()
                    .filter_map(|(eid, d)| remap_desired(&d, &map).ok().map(|d| (eid, d)))
                    .collect();
                continue;
            }
            let mut groups = Vec::with_capacity(r.groups.len());
            for g in &r.groups {
                groups.push(map.group(*g).ok_or_else(|| {
                    in_use(format!("{what} selects group {:?}", old.group(*g).name))
                })?);
            }
            r.groups = groups;
            let mut previous = std::collections::BTreeMap::new();
            for (eid, d) in &r.previous {
                let d = remap_desired(d, &map).map_err(|m| {
                    in_use(format!(
                        "{what} keeps device {eid}'s state to roll back to: {m}"
                    ))
                })?;
                previous.insert(*eid, d);
            }
            r.previous = previous;
            Change::resolve(&r.spec.change, &new)
                .map_err(|e| in_use(format!("{what} needs what the change removes: {e}")))?;
        }

        let carriers = new.carriers.len();
        let smdps = new.smdps.len();
        let inv_c = Remap::inverse(&map.carriers, carriers);
        let inv_s = Remap::inverse(&map.smdps, smdps);
        for (c, q) in self.switch_queues.iter().enumerate() {
            if !q.is_empty() && at(&map.carriers, c).is_none() {
                return Err(in_use(format!(
                    "switches onto carrier {:?} are queued",
                    old.carriers[c].name
                )));
            }
        }
        let pick = |inv: &[Option<usize>], j: usize| inv.get(j).copied().flatten();
        let es2_buckets = (0..carriers)
            .map(|j| {
                let l = new.carriers[j].limits;
                let mut b = pick(&inv_c, j).map_or_else(
                    || TokenBucket::new(l.es2_per_minute, l.es2_burst, now),
                    |i| self.es2_buckets[i],
                );
                b.reshape(l.es2_per_minute, l.es2_burst, now);
                b
            })
            .collect();
        let smdp_buckets = (0..smdps)
            .map(|j| {
                let s = &new.smdps[j];
                let mut b = pick(&inv_s, j).map_or_else(
                    || TokenBucket::new(s.downloads_per_minute, s.burst, now),
                    |i| self.smdp_buckets[i],
                );
                b.reshape(s.downloads_per_minute, s.burst, now);
                b
            })
            .collect();
        let switch_buckets = (0..carriers)
            .map(|j| {
                pick(&inv_c, j)
                    .map_or_else(|| TokenBucket::new(1, 1, now), |i| self.switch_buckets[i])
            })
            .collect();
        let switch_queues = (0..carriers)
            .map(|j| {
                pick(&inv_c, j).map_or_else(BinaryHeap::new, |i| self.switch_queues[i].clone())
            })
            .collect();
        let declared_everywhere = (0..carriers)
            .map(|j| pick(&inv_c, j).and_then(|i| self.declared_everywhere[i]))
            .collect();
        let healthy_everywhere_since = (0..carriers)
            .map(|j| {
                pick(&inv_c, j).map_or(Timestamp(i64::MIN), |i| self.healthy_everywhere_since[i])
            })
            .collect();
        let region_key = |r: u16| -> Option<u16> {
            if r == NO_REGION {
                Some(NO_REGION)
            } else {
                map.region(RegionId(r)).map(|r| r.0)
            }
        };
        let regions = self
            .regions
            .iter()
            .filter_map(|((c, r), h)| Some(((map.carrier(*c)?, region_key(*r)?), *h)))
            .collect();
        let on_fallback = self
            .on_fallback
            .iter()
            .filter_map(|((c, r), list)| Some(((map.carrier(*c)?, region_key(*r)?), list.clone())))
            .collect();

        // Apply.
        self.catalog = Arc::new(new);
        self.devices = devices;
        self.downloads = downloads;
        self.in_flight = in_flight;
        self.actions = actions;
        self.rollouts = rollouts;
        self.es2_buckets = es2_buckets;
        self.smdp_buckets = smdp_buckets;
        self.switch_buckets = switch_buckets;
        self.switch_limits = vec![1; carriers];
        self.switch_queues = switch_queues;
        self.declared_everywhere = declared_everywhere;
        self.healthy_everywhere_since = healthy_everywhere_since;
        self.regions = regions;
        self.on_fallback = on_fallback;
        self.waiting_until = vec![Timestamp(i64::MIN); carriers + smdps];
        self.carrier_devices = vec![0; carriers];
        self.carrier_ppm = vec![1_000_000; carriers];
        let n = u32::try_from(self.devices.len()).unwrap_or(u32::MAX);
        for idx in 0..n {
            self.count_carriers(idx, 1);
            // Looked at again under the new rules and limits.
            self.mark(idx);
        }
        self.rates_stale = true;
        Ok(())
    }

    /// Creates or replaces the carrier named `carrier.name` (a new one is
    /// appended). Answers whether it was created.
    pub fn put_carrier(
        &mut self,
        carrier: CarrierConfig,
        now: Timestamp,
    ) -> Result<bool, FleetError> {
        let mut config = self.catalog.config().clone();
        let created = put(&mut config.carriers, carrier, |c| &c.name);
        self.reconfigure(config, now)?;
        Ok(created)
    }

    /// Deletes a carrier: refused while another carrier lists it as a
    /// pre-authorised fallback, a group uses its profile types, or a device,
    /// download, action or unfinished rollout still refers to it.
    pub fn delete_carrier(&mut self, name: &str, now: Timestamp) -> Result<(), FleetError> {
        let mut config = self.catalog.config().clone();
        if !config.carriers.iter().any(|c| c.name == name) {
            return Err(unknown("carrier", name));
        }
        if let Some(c) = config
            .carriers
            .iter()
            .find(|c| c.fallback_carriers.iter().any(|f| f == name))
        {
            return Err(FleetError::InUse(format!(
                "carrier {name:?} is a pre-authorised fallback of carrier {:?}",
                c.name
            )));
        }
        if let Some(g) = config.groups.iter().find(|g| {
            g.primary.carrier == name || g.fallback.as_ref().is_some_and(|f| f.carrier == name)
        }) {
            return Err(FleetError::InUse(format!(
                "group {:?} uses a profile type of carrier {name:?}",
                g.name
            )));
        }
        config.carriers.retain(|c| c.name != name);
        self.reconfigure(config, now)
    }

    /// Creates or replaces the group named `group.name`. Answers whether it
    /// was created.
    pub fn put_group(&mut self, group: GroupConfig, now: Timestamp) -> Result<bool, FleetError> {
        let mut config = self.catalog.config().clone();
        let created = put(&mut config.groups, group, |g| &g.name);
        self.reconfigure(config, now)?;
        Ok(created)
    }

    /// Deletes a group: refused while it has devices or an unfinished
    /// rollout selects it.
    pub fn delete_group(&mut self, name: &str, now: Timestamp) -> Result<(), FleetError> {
        let id = self
            .catalog
            .group_id(name)
            .ok_or_else(|| unknown("group", name))?;
        let members = self.devices.iter().filter(|d| d.group == id).count();
        if members > 0 {
            return Err(FleetError::InUse(format!(
                "group {name:?} has {members} device(s); remove them or register them elsewhere first"
            )));
        }
        let mut config = self.catalog.config().clone();
        config.groups.retain(|g| g.name != name);
        self.reconfigure(config, now)
    }

    /// Creates or replaces the failover rule named `rule.name`. Answers
    /// whether it was created.
    pub fn put_rule(&mut self, rule: RuleConfig, now: Timestamp) -> Result<bool, FleetError> {
        let mut config = self.catalog.config().clone();
        let created = put(&mut config.rules, rule, |r| &r.name);
        self.reconfigure(config, now)?;
        Ok(created)
    }

    /// Deletes a failover rule: refused while a group names it, a rule
    /// rollout gave it to devices, or an unfinished rollout rolls it out.
    pub fn delete_rule(&mut self, name: &str, now: Timestamp) -> Result<(), FleetError> {
        let id = self
            .catalog
            .rule_id(name)
            .ok_or_else(|| unknown("rule", name))?;
        let mut config = self.catalog.config().clone();
        if let Some(g) = config.groups.iter().find(|g| g.rule == name) {
            return Err(FleetError::InUse(format!(
                "rule {name:?} is the rule of group {:?}",
                g.name
            )));
        }
        let devices = self
            .devices
            .iter()
            .filter(|d| d.desired.rule == Some(id))
            .count();
        if devices > 0 {
            return Err(FleetError::InUse(format!(
                "rule {name:?} is in force on {devices} device(s) (given by a rule rollout)"
            )));
        }
        if let Some(r) = self.rollouts.values().find(|r| {
            !r.state.is_final()
                && matches!(&r.spec.change, ChangeSpec::Rule { rule } if rule == name)
        }) {
            return Err(FleetError::InUse(format!(
                "rule {name:?} is rolled out by rollout {} ({})",
                r.id,
                r.state.name()
            )));
        }
        config.rules.retain(|r| r.name != name);
        self.reconfigure(config, now)
    }
}

fn unknown(kind: &'static str, name: &str) -> FleetError {
    FleetError::UnknownItem {
        kind,
        name: name.to_owned(),
    }
}

/// Replaces the item of the same name in place (its position, and so its
/// id, kept) or appends it; whether it was appended.
fn put<T>(items: &mut Vec<T>, item: T, name: impl Fn(&T) -> &String) -> bool {
    match items.iter().position(|x| name(x) == name(&item)) {
        Some(i) => {
            items[i] = item;
            false
        }
        None => {
            items.push(item);
            true
        }
    }
}

fn remap_desired(d: &Desired, map: &Remap) -> Result<Desired, String> {
    let t = |t: ProfileTypeId| map.profile_type(t).ok_or(t);
    let mut n = *d;
    let gone = |what: &str, _t: ProfileTypeId| format!("its {what} profile type is removed");
    n.primary = t(d.primary).map_err(|x| gone("primary", x))?;
    n.fallback = d
        .fallback
        .map(t)
        .transpose()
        .map_err(|x| gone("fallback", x))?;
    n.spare = d.spare.map(t).transpose().map_err(|x| gone("spare", x))?;
    n.primary_apn = d
        .primary_apn
        .map(|a| map.apn(a).ok_or(()))
        .transpose()
        .map_err(|()| "its primary's APN setting is removed".to_owned())?;
    n.rule = d
        .rule
        .map(|r| map.rule(r).ok_or(()))
        .transpose()
        .map_err(|()| "its failover rule is removed".to_owned())?;
    Ok(n)
}

fn remap_device(
    d: &DeviceState,
    map: &Remap,
    old: &Catalog,
    labels: &Labels<'_>,
) -> Result<DeviceState, String> {
    let eid = d.eid;
    let mut n = *d;
    n.group = map.group(d.group).ok_or_else(|| {
        format!(
            "group {:?} has devices (device {eid})",
            old.group(d.group).name
        )
    })?;
    n.region = match d.region {
        Some(r) => Some(map.region(r).ok_or_else(|| {
            format!(
                "region {:?} has devices (device {eid})",
                old.regions[r.index()]
            )
        })?),
        None => None,
    };
    let mut tags = 0u64;
    for bit in 0..64u8 {
        if d.tags & (1 << bit) != 0 {
            let nb = map
                .tags
                .get(usize::from(bit))
                .copied()
                .flatten()
                .ok_or_else(|| {
                    format!(
                        "tag {:?} is on device {eid}",
                        old.tags.get(usize::from(bit)).cloned().unwrap_or_default()
                    )
                })?;
            tags |= 1 << nb;
        }
    }
    n.tags = tags;
    let t = |t: ProfileTypeId, what: &str| {
        map.profile_type(t)
            .ok_or_else(|| format!("{} is the {what} of device {eid}", labels.profile_type(t)))
    };
    n.desired.primary = t(d.desired.primary, "desired primary")?;
    if let Some(f) = d.desired.fallback {
        n.desired.fallback = Some(t(f, "desired fallback")?);
    }
    if let Some(s) = d.desired.spare {
        n.desired.spare = Some(t(s, "desired spare")?);
    }
    if let Some(a) = d.desired.primary_apn {
        n.desired.primary_apn = Some(
            map.apn(a)
                .ok_or_else(|| format!("{} is the desired APN of device {eid}", labels.apn(a)))?,
        );
    }
    if let Some(r) = d.desired.rule {
        n.desired.rule =
            Some(map.rule(r).ok_or_else(|| {
                format!("rule {:?} is in force on device {eid}", old.rule(r).name)
            })?);
    }
    for p in n.observed.profiles.iter_mut().flatten() {
        if let Some(pt) = p.profile_type {
            p.profile_type = Some(t(pt, "type of a profile on")?);
        }
    }
    // An APN setting delivered for a type or setting that is gone is
    // delivered again (the current one).
    n.observed.apn_delivered = d
        .observed
        .apn_delivered
        .and_then(|(t, a)| Some((map.profile_type(t)?, map.apn(a)?)));
    Ok(n)
}

fn remap_action(a: &Action, map: &Remap) -> Result<Action, String> {
    let gone = || {
        format!(
            "action {} for device {} ({}) is in flight with it",
            a.id,
            a.device,
            a.command.name()
        )
    };
    let mut n = a.clone();
    match &mut n.command {
        Command::Es2DownloadOrder {
            carrier,
            smdp,
            profile_type,
        } => {
            *carrier = map.carrier(*carrier).ok_or_else(gone)?;
            *smdp = map.smdp(*smdp).ok_or_else(gone)?;
            *profile_type = map.profile_type(*profile_type).ok_or_else(gone)?;
        }
        Command::Es2ConfirmOrder { carrier, smdp, .. } => {
            *carrier = map.carrier(*carrier).ok_or_else(gone)?;
            *smdp = map.smdp(*smdp).ok_or_else(gone)?;
        }
        Command::EimDownloadTrigger {
            profile_type,
            activation_code,
            ..
        } => {
            *profile_type = map.profile_type(*profile_type).ok_or_else(gone)?;
            activation_code.smdp = map.smdp(activation_code.smdp).ok_or_else(gone)?;
        }
        Command::AgentApnConfig { apn, .. } => {
            *apn = map.apn(*apn).ok_or_else(gone)?;
        }
        _ => {}
    }
    Ok(n)
}
