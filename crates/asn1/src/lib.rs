//! Wire formats of GSMA Remote SIM Provisioning.
//!
//! This crate is the one place that knows how SGP.22 / SGP.32 messages look on
//! the wire:
//!
//! - [`rsp`]: SGP.22 v2.5 `RSPDefinitions` (ES8+, ES9+, ES10a/b/c, ES11 messages).
//! - [`sgp32`]: SGP.32 v1.2 `SGP32Definitions` (ESipa, eUICC packages, IoT ES10),
//!   the version accredited IoT eUICCs implement.
//! - [`sgp32_v1_0`]: SGP.32 v1.0 `SGP32Definitions`, for the messages whose
//!   wire form differs in v1.0 peers (see [`esipa`]).
//! - [`pe`]: TCA SAIP v3 `PEDefinitions` (profile elements of a profile package).
//! - [`pkix`]: the RFC 5280 types the others import (`Certificate`,
//!   `CertificateList`, `Time`, `SubjectKeyIdentifier`, ...).
//! - [`esipa`]: ESipa messages of SGP.32 v1.2 and v1.0 peers: which version a
//!   message was read as, v1.0 ↔ v1.2 conversion, package results as received.
//! - [`json`]: the ES9+, ES2+ and ESipa JSON bindings (request and response bodies).
//! - [`codec`]: [`encode_der`] / [`decode_der`] for all of the above, and
//!   [`named_bits`] for DER-minimal named BIT STRINGs.
//! - [`signed`]: the exact signed byte ranges (and their signatures) of received
//!   messages, cut out without re-encoding; for SGP.32 also the signature
//!   inputs and the signed structures assembled from their parts.
//! - [`values`]: the named SGP.22 values every side uses (profile class and
//!   state, notification operations, policy rules, CancelSession reasons).
//! - [`tlv`]: a zero-copy BER-TLV reader and writer, used wherever bytes must be
//!   taken exactly as received (signed parts, BPP segments, APDU payloads).
//!
//! The ASN.1 types are generated from the official modules in
//! `testdata/asn1/` (see [`generated`]); [`rasn`] is re-exported so users share
//! its version.
//!
//! It must not do cryptography, I/O or protocol decisions: it only turns bytes
//! into values and back.

pub mod codec;
mod error;
pub mod esipa;
pub mod generated;
pub mod json;
pub mod metadata;
pub mod signed;
pub mod tlv;
pub mod values;

pub use codec::{decode_der, decode_der_prefix, encode_der, named_bits};
pub use error::Error;
pub use generated::{pe, rsp, sgp32, sgp32_v1_0};
pub use rasn;

/// RFC 5280 types (PKIX1Explicit88 and PKIX1Implicit88 together).
pub mod pkix {
    pub use crate::generated::pkix_explicit88::*;
    pub use crate::generated::pkix_implicit88::*;
}
