//! Wire formats of GSMA Remote SIM Provisioning.
//!
//! This crate is the one place that knows how SGP.22 / SGP.32 messages look on
//! the wire:
//!
//! - [`tlv`]: a zero-copy BER-TLV reader and writer, used wherever bytes must be
//!   taken exactly as received (signed parts, BPP segments, APDU payloads).
//!
//! It must not do cryptography, I/O or protocol decisions: it only turns bytes
//! into values and back.

pub mod tlv;
