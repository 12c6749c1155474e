//! Errors of the fleet's interfaces: configuration, device registration,
//! operator commands.

use ferrosim_ids::Eid;
use thiserror::Error;

/// Why a configuration was refused. Each variant names the item and field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// Not valid TOML, a wrong type, or an unknown field.
    #[error("configuration syntax: {0}")]
    Syntax(String),
    /// Two items of one kind share a name.
    #[error("duplicate {kind} {name:?}")]
    Duplicate {
        /// Carrier, group, rule, APN...
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A reference to something that is not declared.
    #[error("{from} refers to unknown {kind} {name:?}")]
    Unknown {
        /// Who refers (`group "meters" primary`).
        from: String,
        /// Carrier, rule, profile type...
        kind: &'static str,
        /// The name referred to.
        name: String,
    },
    /// A value out of its allowed range or malformed.
    #[error("{item}: {field} {problem}")]
    Invalid {
        /// The item (`carrier "a"`, `rule "default"`).
        item: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// More items of a kind than the compact device state can index.
    #[error("too many {kind}: {count} (at most {max})")]
    TooMany {
        /// Carriers, tags, regions...
        kind: &'static str,
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        item: impl Into<String>,
        field: &'static str,
        problem: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            item: item.into(),
            field,
            problem: problem.into(),
        }
    }
}

/// Why a device, report or operator command was refused. Nothing changes
/// when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FleetError {
    /// The device is already registered.
    #[error("device {0} is already registered")]
    DuplicateDevice(Eid),
    /// No device with this EID.
    #[error("unknown device {0}")]
    UnknownDevice(Eid),
    /// A field of a device description names nothing known or is malformed.
    #[error("device {eid}: {problem}")]
    InvalidDevice {
        /// The device's EID.
        eid: Eid,
        /// What is wrong.
        problem: String,
    },
    /// No rollout with this id.
    #[error("unknown rollout {0}")]
    UnknownRollout(u32),
    /// A rollout command that its current state does not allow.
    #[error("rollout {id}: cannot {command} while {state}")]
    RolloutState {
        /// The rollout.
        id: u32,
        /// The command refused.
        command: &'static str,
        /// Its state.
        state: &'static str,
    },
    /// A rollout definition is not valid.
    #[error("rollout: {0}")]
    InvalidRollout(String),
    /// A carrier or region named by an operator command is unknown.
    #[error("unknown {kind} {name:?}")]
    UnknownName {
        /// Carrier, region, group...
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A state snapshot could not be restored.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A failover rule of that name exists already.
    #[error("rule {0:?} exists already")]
    DuplicateRule(String),
    /// A new failover rule is not valid.
    #[error("{0}")]
    InvalidRule(String),
    /// A carrier, group or rule named by an operator's change does not
    /// exist.
    #[error("unknown {kind} {name:?}")]
    UnknownItem {
        /// `carrier`, `group` or `rule`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A changed catalog is not a valid configuration (nothing changed).
    #[error("{0}")]
    InvalidConfig(String),
    /// A change would strand devices or a rollout: what it removes is
    /// still in use (nothing changed).
    #[error("{0}")]
    InUse(String),
    /// The item changed since the operator read it (compare-and-set of
    /// its version failed; nothing changed).
    #[error("{0}")]
    Stale(String),
}
