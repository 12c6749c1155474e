//! Cryptography for GSMA Remote SIM Provisioning (SGP.22 / SGP.32).
//!
//! - [`ecdsa`]: ECDSA P-256 with SHA-256; raw `r||s`, DER and the `5F37`
//!   wrapper, with conversions and a parse-once [`ecdsa::VerifyingKey`].
//! - [`key`]: the [`KeySource`] abstraction (sign, ECDH) and [`SoftwareKey`]
//!   (PEM/DER files); [`pkcs11`] keeps keys in a PKCS#11 token.
//! - [`ecka`]: one-time key pairs and ECDH with peer point validation.
//! - [`kdf`]: the X9.63 KDF giving the BSP [`SessionKeys`].
//! - [`bsp`]: SCP03t segment protection of the Bound Profile Package.
//! - [`ec_cost`]: what the P-256 operations of a download cost on this
//!   machine (every batch of a timing), for the elliptic-curve lower bounds.
//!
//! Elliptic-curve work, hashing and random numbers come from `aws-lc-rs`
//! (the backend rustls already links). The BSP's AES-128 block cipher comes
//! from the `aes` crate, and its CBC and CMAC chains are written in `bsp`, in
//! one loop per segment. `BENCHMARKS.md` has the measurements behind these
//! choices.
#![forbid(unsafe_code)]

pub mod bsp;
pub mod ec_cost;
pub mod ecdsa;
pub mod ecka;
pub mod error;
pub mod kdf;
pub mod key;
pub mod pkcs11;
pub mod pkcs11_aes;

pub use error::{Error, Result};
pub use kdf::SessionKeys;
pub use key::{KeySource, SharedSecret, SoftwareKey};
