//! Profile packages of the TCA (formerly SIMalliance) eUICC Profile Package
//! Interoperable Format Technical Specification, "SAIP": parse, inspect,
//! personalise and hand on the bytes.
//!
//! An *unprotected profile package* (UPP) is the concatenation of the DER
//! `ProfileElement` values of the `PEDefinitions` ASN.1 module: a
//! `ProfileHeader`, the file system (`mf`, `usim`, ... built from SAIP
//! templates, plus `genericFileManagement`), PINs and PUKs, AKA parameters,
//! security domains and applets, and `end`. The SM-DP+ imports packages as
//! profile types, personalises one per order and wraps it into a bound
//! profile package; the virtual eUICC installs it.
//!
//! - [`ProfilePackage::parse`] validates a package and locates its elements
//!   ([`ProfilePackage::elements`], [`ElementKind`]); the header is decoded
//!   into [`ProfileHeader`].
//! - [`ProfilePackage::summary`] decodes what it provisions
//!   ([`ProfileSummary`]: ICCID, IMSI, AKA algorithm, K, OPc, PINs, PUKs,
//!   service provider name, APNs).
//! - [`ProfilePackage::personalise`] writes a [`Personalisation`] (ICCID,
//!   IMSI, K, OPc, PIN1/2, PUK1/2, ADM1) at TLV level, keeping every other
//!   byte as imported; [`parse_batch`] reads an operator batch file.
//! - [`ProfilePackage::metadata_defaults`] gives the StoreMetadata defaults.
//! - [`ProfilePackage::validate_schema`] / [`ProfilePackage::decode_elements`]
//!   check every element against `PEDefinitions` with the generated types of
//!   `ferrosim_asn1::pe`, for import and for callers that want typed values.
//!
//! Identities and secrets are newtypes that validate on construction:
//! [`Iccid`] (Luhn check digit), [`Imsi`], [`Key128`], [`Pin`], [`Puk`],
//! [`AdmKey`]. The crate does no I/O and no cryptography beyond drawing
//! random keys from a caller's generator.
//!
//! # Batch files
//!
//! An operator delivers subscriptions as CSV (RFC 4180, UTF-8) with a
//! header row naming the columns, in any order, case-insensitive:
//!
//! | column | required | content |
//! |---|---|---|
//! | `iccid` | yes | 19 or 20 digits, the last the Luhn check digit (checked) |
//! | `imsi` | yes | 6 to 15 digits, or `MCC-MNC-MSIN` (e.g. `001-01-0123456063`) to also set the MNC length in EF.AD |
//! | `ki` (or `k`) | yes | K, 32 hex digits |
//! | `opc` | yes | OPc, 32 hex digits |
//! | `pin1`, `pin2` | no | 4 to 8 digits |
//! | `puk1`, `puk2` | no | 8 digits |
//! | `adm1` | no | 4 to 8 digits (stored as ASCII) or 16 hex digits (raw key) |
//!
//! Empty optional cells keep the profile type's value. Spaces around values
//! are ignored, lines starting with `#` are comments. Unknown columns,
//! rows of the wrong width, invalid values and ICCIDs or IMSIs repeated
//! within the file are refused with the line number:
//!
//! ```text
//! iccid,imsi,ki,opc,pin1,puk1
//! 8949449999999990049,001010123456063,000102030405060708090a0b0c0d0e0f,00112233445566778899aabbccddeeff,1234,12345678
//! ```

#![forbid(unsafe_code)]

mod aka;
mod batch;
mod codes;
mod element;
mod error;
mod file;
mod header;
mod identity;
mod metadata;
mod node;
mod package;
mod patch;
mod personalise;
mod schema;
mod secrets;
mod summary;
mod text;

pub use aka::{AkaAlgorithm, AkaParameters};
pub use batch::parse_batch;
pub use codes::{KEY_REF_ADM1, KEY_REF_PIN1, KEY_REF_PIN2, PinEntry, PukEntry};
pub use element::{ElementKind, ProfileElement};
pub use error::Error;
pub use header::{KnownService, MandatoryAid, ProfileHeader, Service};
pub use identity::{Iccid, Imsi, bcd, luhn_digit};
pub use metadata::{MetadataDefaults, ProfileClass};
pub use package::ProfilePackage;
pub use personalise::Personalisation;
pub use secrets::{AdmKey, Key128, Pin, Puk, decode_code_digits};
pub use summary::ProfileSummary;
