//! Fleet control for ferrosim: keeps IoT fleets connected through carrier
//! failures and changes them without taking them down.
//!
//! The decision core of the fleet control plane, sans-IO: every decision
//! is a function of state, inputs and `now` (and an injected random number
//! generator for jitter), and produces actions, decision records and
//! telemetry events for drivers to carry out. The server and the
//! city-scale simulator drive the same code.
//!
//! - [`config`] / [`Catalog`]: carriers (networks, SM-DP+, ES2+ credentials
//!   reference, profile types with their APNs, rate limits, pre-authorised
//!   fallback carriers), groups, failover rules; TOML, validated.
//! - [`device`]: devices (EID, vendor, model, firmware, capabilities read
//!   through the IPA), their desired and observed state, compactly.
//! - [`Fleet`]: the reconciler (ES2+ orders, eIM download triggers, PSMOs,
//!   device-agent commands; rate-limited, retried with jittered backoff,
//!   idempotent, resumable), failover and return per group rule, staged
//!   rollouts with gates and automatic rollback, snapshots.
//! - [`action`], [`report`], [`decision`]: what goes out and comes in.
//! - [`store`]: the `FleetStore` trait, its in-memory implementation and
//!   its test suite.
//!
//! Nothing here opens a socket, reads a clock or touches a database.

#![forbid(unsafe_code)]

pub mod action;
pub mod catalog;
pub mod config;
pub mod decision;
pub mod device;
pub mod duration;
mod engine;
pub mod error;
pub mod gate;
pub mod limit;
pub mod report;
pub mod rollout;
pub mod rules;
pub mod store;

pub use action::{Action, ActionId, ActionResult, Command, Outcome};
pub use catalog::Catalog;
pub use config::FleetConfig;
pub use decision::{Decision, Reason, What};
pub use device::{DeviceSpec, DeviceState};
pub use duration::Span;
pub use engine::reconcile_step::{Step, next_step};
pub use engine::{Fleet, Names, PendingDownload, RegionHealth, RegionState, Snapshot};
pub use error::{ConfigError, FleetError};
pub use report::DeviceReport;
pub use rollout::{RolloutSpec, RolloutState};
