//! Cryptography for GSMA Remote SIM Provisioning (SGP.22 / SGP.32).
//!
//! - [`ecdsa`]: ECDSA P-256 with SHA-256; raw `r||s`, DER and the `5F37`
//!   wrapper, with conversions.
//!
//! The elliptic-curve and hash work is done by `aws-lc-rs` (the backend rustls
//! already links); see `BENCHMARKS.md` for the comparison that chose it.
#![forbid(unsafe_code)]

pub mod ecdsa;
pub mod error;

pub use error::{Error, Result};
