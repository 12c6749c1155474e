//! The SM-DP+ of GSMA SGP.22: ES2+ orders for operators, ES9+ download
//! sessions for devices, and the Bound Profile Packages they deliver.
//!
//! This crate is sans-IO. Each ES2+ and ES9+ function is a pure step: a
//! function of the request, the records it needs, the current time, a
//! `rand::CryptoRng` and the instance's keys, returning the records to write,
//! the events for the operator and the answer ([`step`]). The async methods
//! of [`Smdp`] only load, step and commit, through the store traits
//! ([`store`]), so a store transaction never waits on a signature. The HTTP
//! binding lives in `ferrosim-server`; the databases in `ferrosim-store`;
//! [`memstore::MemStore`] keeps everything in memory.
//!
//! Rooms:
//! - [`ids`], [`time`], [`status`]: protocol identifiers, time, status codes.
//! - [`order`]: the profile/order state machine (ES2+ and the download steps).
//! - [`session`]: the ES9+ session record and its phases.
//! - [`metadata`]: profile metadata per profile type (BF25).
//! - [`bpp`]: the Bound Profile Package builder.
//! - [`es2`], [`es9`]: the interface functions, as steps and as methods of [`Smdp`].
//! - [`step`]: the step/driver shape they share.
//! - [`store`]: the persistence traits; [`memstore`]: all of them in memory.
//! - [`randomness`]: where random numbers come from.
//! - [`config`]: certificates, keys and limits of an instance.
//! - [`inventory`], [`housekeeping`]: importing what is sold, expiring orders.
//!
//! # Reproducibility
//!
//! Every random value the SM-DP+ chooses comes from its [`Randomness`]:
//! transaction ids, server challenges, generated matching ids, the choice
//! among available profiles, the one-time ECDH key of a Bound Profile
//! Package (otSK.DP.ECKA, made from 32 random bytes) and its profile
//! protection keys. With [`Randomness::seeded`] and the same `now` values,
//! two runs that make the same calls in the same order produce the same
//! bytes, except the ECDSA signatures: aws-lc-rs (and a PKCS#11 token) signs
//! with a nonce it draws itself and takes no seed. Those bytes are
//! serverSignature1 (initiateAuthentication), smdpSignature2
//! (authenticateClient) and smdpSign inside the package's
//! InitialiseSecureChannel (BF23 / 5F37); and whatever a device signs over
//! them (euiccSignature2 covers smdpSignature2). Everything else, including
//! the encrypted and MACed segments of the package, repeats.

pub mod bpp;
pub mod config;
pub mod end_of_life;
pub mod es2;
pub mod es9;
pub mod housekeeping;
pub mod ids;
pub mod inventory;
pub mod memstore;
pub mod metadata;
pub mod order;
pub mod randomness;
mod service;
pub mod session;
pub mod status;
pub mod step;
pub mod store;
pub mod time;

pub use config::{ConfigError, Credential, SmdpConfig};
pub use es2::Es2Error;
pub use es9::Es9Error;
pub use randomness::Randomness;
pub use service::{ProfileTemplate, Smdp};
