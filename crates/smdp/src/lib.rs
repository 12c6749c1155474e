//! The SM-DP+ of GSMA SGP.22: ES2+ orders for operators, ES9+ download
//! sessions for devices, and the Bound Profile Packages they deliver.
//!
//! This crate is sans-IO: it receives requests as values, the current time
//! as an argument, and persistence as a [`store::Store`]. The HTTP binding
//! lives in `ferrosim-server`; the database in `ferrosim-store`.
//!
//! Rooms:
//! - [`ids`], [`time`], [`status`]: protocol identifiers, time, status codes.
//! - [`order`]: the profile/order state machine (ES2+ and the download steps).
//! - [`session`]: the ES9+ session record.
//! - [`metadata`]: profile metadata per profile type (BF25).
//! - [`bpp`]: the Bound Profile Package builder.
//! - [`es2`], [`es9`]: the interface functions, as methods of [`Smdp`].
//! - [`store`]: the persistence trait.
//! - [`config`]: certificates, keys and limits of an instance.

pub mod bpp;
pub mod config;
pub mod es2;
pub mod es9;
pub mod ids;
pub mod inventory;
pub mod metadata;
pub mod order;
mod service;
pub mod session;
pub mod status;
pub mod store;
pub mod time;

pub use config::{ConfigError, Credential, SmdpConfig};
pub use es2::Es2Error;
pub use es9::Es9Error;
pub use service::Smdp;
