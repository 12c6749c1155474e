//! Staged rollouts as data: what changes, for which devices, in which
//! waves, gated how; and where a rollout stands. The engine
//! ([`crate::Fleet`]) moves them on; everything here serialises, so a
//! rollout survives a restart exactly where it was.

use std::collections::BTreeMap;

use ferrosim_ids::{Eid, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalog::{ApnId, Catalog, GroupId, ProfileTypeId, RuleId};
use crate::config::ProfileRef;
use crate::device::{Desired, DeviceState, Version};
use crate::duration::Span;
use crate::gate::{GateReport, GateSpec};

/// A rollout as an operator defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// A name for people.
    pub name: String,
    /// Groups selected (empty: every group).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Only devices with at least one of these tags (empty: no condition).
    #[serde(default)]
    pub tags_any: Vec<String>,
    /// The change.
    pub change: ChangeSpec,
    /// Cumulative percentages of the selection per wave.
    #[serde(default = "default_waves")]
    pub waves: Vec<u8>,
    /// How long a wave's devices are watched before its gate.
    #[serde(default = "default_soak")]
    pub soak: Span,
    /// A wave whose devices have not converged or not reported enough by
    /// this long after its start fails its gate.
    #[serde(default = "default_max_wait")]
    pub max_wait: Span,
    /// The gate.
    #[serde(default)]
    pub gate: GateSpec,
    /// Devices that cannot take the change are skipped (and say why).
    #[serde(default)]
    pub compat: Compat,
    /// Wait for an operator's approval before each wave after the first.
    #[serde(default)]
    pub manual_approval: bool,
    /// Orders devices into waves (the same seed gives the same waves).
    #[serde(default)]
    pub seed: u64,
}

fn default_waves() -> Vec<u8> {
    vec![1, 10, 50, 100]
}
fn default_soak() -> Span {
    Span::mins(10)
}
fn default_max_wait() -> Span {
    Span::mins(60)
}

/// Compatibility filters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compat {
    /// Minimum device firmware version.
    #[serde(default)]
    pub min_firmware: Option<String>,
    /// Minimum SGP.32 version of the eUICC.
    #[serde(default)]
    pub min_sgp32: Option<String>,
    /// Only devices whose eUICC has the Fallback Mechanism.
    #[serde(default)]
    pub requires_fallback_support: bool,
}

/// What a rollout changes on each device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeSpec {
    /// A new profile type or version of the primary's carrier.
    ProfileType {
        /// The new primary profile type.
        to: ProfileRef,
    },
    /// A different APN setting for the primary (same carrier).
    Apn {
        /// APN setting name (of the primary's carrier).
        apn: String,
    },
    /// The primary moves to another carrier.
    CarrierMigration {
        /// The new primary profile type.
        to: ProfileRef,
    },
    /// The staged fallback moves to another profile or carrier.
    RestageFallback {
        /// The new fallback profile type.
        to: ProfileRef,
    },
    /// Another failover rule.
    Rule {
        /// Rule name.
        rule: String,
    },
}

/// A [`ChangeSpec`] resolved against the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New primary.
    Primary(ProfileTypeId),
    /// New APN for the primary.
    Apn(ApnId),
    /// New fallback.
    Fallback(ProfileTypeId),
    /// New rule.
    Rule(RuleId),
}

impl Change {
    /// Resolves names.
    pub fn resolve(spec: &ChangeSpec, catalog: &Catalog) -> Result<Self, String> {
        let pt = |r: &ProfileRef| {
            catalog.profile_type_id(r).ok_or_else(|| {
                format!(
                    "unknown profile type {}/{}@{}",
                    r.carrier, r.profile_type, r.version
                )
            })
        };
        Ok(match spec {
            ChangeSpec::ProfileType { to } | ChangeSpec::CarrierMigration { to } => {
                Self::Primary(pt(to)?)
            }
            ChangeSpec::RestageFallback { to } => {
                let id = pt(to)?;
                if !catalog.profile_type(id).fallback_allowed {
                    return Err(
                        "the new fallback's profile type does not allow the fallback attribute"
                            .into(),
                    );
                }
                Self::Fallback(id)
            }
            ChangeSpec::Apn { apn } => {
                // Resolved per device (the primary's carrier); check it exists somewhere.
                let found = (0..catalog.carriers.len())
                    .filter_map(|c| catalog.apn_id(crate::catalog::CarrierId(c as u16), apn))
                    .next()
                    .ok_or_else(|| format!("unknown APN setting {apn:?}"))?;
                Self::Apn(found)
            }
            ChangeSpec::Rule { rule } => Self::Rule(
                catalog
                    .rule_id(rule)
                    .ok_or_else(|| format!("unknown rule {rule:?}"))?,
            ),
        })
    }

    /// The desired state after the change, or why this device cannot take it.
    pub fn apply(&self, d: &Desired, catalog: &Catalog) -> Result<Desired, String> {
        let mut out = *d;
        match *self {
            Self::Primary(t) => {
                if d.primary == t {
                    return Err("already has this primary".into());
                }
                if d.fallback
                    .is_some_and(|f| catalog.carrier_of(f) == catalog.carrier_of(t))
                {
                    return Err("the new primary's carrier is the device's fallback carrier".into());
                }
                out.primary = t;
                out.primary_apn = None;
            }
            Self::Apn(a) => {
                let carrier = catalog.carrier_of(d.primary);
                if catalog.apns[a.index()].carrier != carrier {
                    return Err(
                        "the APN setting belongs to another carrier than the primary's".into(),
                    );
                }
                if d.primary_apn == Some(a)
                    || (d.primary_apn.is_none() && catalog.profile_type(d.primary).apn == a)
                {
                    return Err("already uses this APN".into());
                }
                out.primary_apn = Some(a);
            }
            Self::Fallback(t) => {
                if d.fallback == Some(t) {
                    return Err("already has this fallback".into());
                }
                if catalog.carrier_of(t) == catalog.carrier_of(d.primary) {
                    return Err("the fallback would be on the primary's carrier".into());
                }
                out.fallback = Some(t);
            }
            Self::Rule(r) => {
                if d.rule == Some(r) {
                    return Err("already has this rule".into());
                }
                out.rule = Some(r);
            }
        }
        Ok(out)
    }
}

impl Compat {
    /// Why `device` fails a filter, if it does.
    pub fn check(&self, device: &DeviceState) -> Result<Option<String>, String> {
        if let Some(min) = &self.min_firmware {
            let min = Version::parse(min)
                .ok_or_else(|| format!("min_firmware {min:?} is not a version"))?;
            if device.firmware_version < min {
                return Ok(Some(format!(
                    "firmware {} < {min}",
                    device.firmware_version
                )));
            }
        }
        let caps = device.caps;
        let caps_unknown = device.work.read_caps;
        if caps_unknown && (self.min_sgp32.is_some() || self.requires_fallback_support) {
            return Ok(Some("capabilities not read through the IPA yet".into()));
        }
        if let Some(min) = &self.min_sgp32 {
            let min =
                Version::parse(min).ok_or_else(|| format!("min_sgp32 {min:?} is not a version"))?;
            if caps.sgp32_version < min {
                return Ok(Some(format!("SGP.32 {} < {min}", caps.sgp32_version)));
            }
        }
        if self.requires_fallback_support && !caps.fallback_supported {
            return Ok(Some("no fallback mechanism".into()));
        }
        Ok(None)
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Applying or soaking its current wave.
    Running,
    /// Stopped by an operator; ongoing device work continues, no new wave
    /// starts and no gate is judged.
    Paused,
    /// A wave passed; the next waits for an operator's approval.
    AwaitingApproval,
    /// Every wave passed.
    Completed,
    /// A gate failed; the failed wave was rolled back.
    Halted,
    /// An operator aborted it; every device it changed was rolled back.
    Aborted,
}

impl RolloutState {
    /// Name for errors and decisions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Completed => "completed",
            Self::Halted => "halted",
            Self::Aborted => "aborted",
        }
    }

    /// Whether it is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Halted | Self::Aborted)
    }
}

/// A rollout and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Its id.
    pub id: u32,
    /// Its definition.
    pub spec: RolloutSpec,
    /// Where it stands.
    pub state: RolloutState,
    /// The current wave (0-based); `None` before the first starts.
    pub wave: Option<u8>,
    /// When the current wave started.
    pub wave_started: Option<Timestamp>,
    /// A gate query for the current wave is out.
    pub gate_pending: bool,
    /// Devices in the selection that can take the change.
    pub eligible: u64,
    /// Devices skipped as incompatible.
    pub skipped: u64,
    /// Devices per wave.
    pub members: Vec<Vec<Eid>>,
    /// Each changed device's desired state before the change.
    pub previous: BTreeMap<Eid, Desired>,
    /// Gate reports per wave judged.
    pub gates: Vec<GateReport>,
    /// When it was created.
    pub created: Timestamp,
    /// The selected groups, resolved (empty: every group).
    pub groups: Vec<GroupId>,
    /// The selecting tags as a mask (0: no condition).
    pub tag_mask: u64,
}

impl Rollout {
    /// Checks a spec.
    pub fn validate(spec: &RolloutSpec) -> Result<(), String> {
        if spec.name.is_empty() || spec.name.len() > 64 || spec.name.chars().any(char::is_control) {
            return Err("name must be 1..=64 characters without control characters".into());
        }
        if spec.waves.is_empty() || spec.waves.len() > 20 {
            return Err("waves: 1 to 20 cumulative percentages".into());
        }
        if !spec.waves.windows(2).all(|w| w[0] < w[1])
            || spec.waves[0] == 0
            || spec.waves.last() != Some(&100)
        {
            return Err("waves must rise strictly from above 0 to 100".into());
        }
        if spec.soak.millis() == 0 || spec.max_wait < spec.soak {
            return Err("soak must be above 0 and max_wait at least soak".into());
        }
        spec.gate.validate()?;
        for v in [&spec.compat.min_firmware, &spec.compat.min_sgp32]
            .into_iter()
            .flatten()
        {
            if Version::parse(v).is_none() {
                return Err(format!("compat version {v:?} is not a version"));
            }
        }
        Ok(())
    }

    /// Whether the rollout's selection includes `d`.
    pub fn selects(&self, d: &DeviceState) -> bool {
        (self.groups.is_empty() || self.groups.contains(&d.group))
            && (self.tag_mask == 0 || d.tags & self.tag_mask != 0)
    }

    /// Devices to reach by the end of wave `w`: its cumulative percentage
    /// of the eligible devices, rounded up.
    pub fn target(&self, w: u8) -> u64 {
        let pct = u64::from(self.spec.waves.get(usize::from(w)).copied().unwrap_or(100));
        (self.eligible * pct).div_ceil(100)
    }

    /// The position of `eid` in this rollout's order (a keyed hash, so the
    /// order is stable, spread over the fleet, and differs per seed).
    pub fn rank(&self, eid: &Eid) -> u64 {
        rank(self.spec.seed ^ u64::from(self.id).rotate_left(32), eid)
    }
}

/// SplitMix64 over the EID's bytes and a key.
fn rank(key: u64, eid: &Eid) -> u64 {
    let mut h = key ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in eid.to_bcd().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h ^= u64::from_le_bytes(b);
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}
