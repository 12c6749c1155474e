//! A virtual eUICC that behaves like a real one at the APDU level.
//!
//! [`VirtualEuicc`] is an ISD-R answering GSMA SGP.22 ES10a/b/c: an LPA
//! opens a logical channel (MANAGE CHANNEL), selects the ISD-R by AID and
//! sends each ES10 command as STORE DATA blocks; long answers come back in
//! `61xx` pieces fetched with GET RESPONSE. Behind that the card runs the
//! eUICC side of common mutual authentication (it verifies the SM-DP+
//! certificate chain to a CI it trusts, every signature, its challenge and
//! the transaction id), binds the download (PrepareDownload), loads the
//! Bound Profile Package segment by segment (ECKA, session keys, C-MAC and
//! decryption of every segment in order) and installs the profile package,
//! answering every failure with the error SGP.22 defines for it. Profiles
//! are then listed, enabled, disabled and deleted under their policy rules,
//! each operation leaving a signed notification for the LPA to deliver.
//!
//! Rooms:
//! - [`apdu`]: ISO/IEC 7816-4 framing and status words.
//! - `channels` / `card`: logical channels, SELECT, STORE DATA reassembly,
//!   GET RESPONSE; [`VirtualEuicc`].
//! - `es10`: the ES10 functions, dispatched by the command's outer tag.
//! - `bpp`: the Bound Profile Package loader.
//! - [`profile`]: installed profiles, kept decoded (ICCID, IMSI, K, OPc,
//!   PINs, PUKs, SPN, APN, metadata); of the package only its length and
//!   SHA-256.
//! - [`state`]: [`EuiccState`], the persistent part, saved atomically as
//!   versioned JSON (older files are migrated when loaded).
//! - [`identity`]: [`EuiccIdentity`]: EID, eUICC key and certificate, and
//!   the [`SharedIdentity`] many eUICCs share (EUM and CI certificates,
//!   SM-DP+ certificates verified so far), from `ferrosim pki init` output
//!   or any PEM/DER files.
//! - [`footprint`]: the heap one device takes, measured.
//! - [`codes`]: the SGP.22 result and error codes, named.
//!
//! The crate is sans-IO: the caller passes the time and a random generator
//! with each command ([`VirtualEuicc::handle_apdu_with_rng`]) and saves
//! [`VirtualEuicc::state`] when it wants (the revision counter says when it
//! changed). With a seeded generator and a fixed time a session replays
//! byte for byte except the eUICC's ECDSA signatures (euiccSignature1 and 2,
//! the installation result's and notifications' signatures, the signed
//! CancelSession answer), which aws-lc draws from its own randomness.
//! [`VirtualEuicc::handle_apdu`] never panics, whatever the bytes.
//!
//! Memory: a device is slim so that a simulation holds a million. What
//! many eUICCs share is behind an `Arc`; logical channels and the RSP
//! session exist only while used; an installed profile keeps its decoded
//! values, not the package; stored notifications keep what was signed, not
//! the certificates. [`footprint`] measures the result.
//!
//! What it does not do: run the profile's file system or applets (no USIM
//! commands, no AUTHENTICATE), SGP.22 v3 functions, SGP.32 IoT functions,
//! or CRL handling.

#![forbid(unsafe_code)]

pub mod apdu;
mod bpp;
mod card;
mod channels;
pub mod codes;
mod error;
mod es10;
pub mod footprint;
pub mod identity;
mod migrate;
pub mod profile;
pub mod state;

pub use bpp::MAX_PROFILE_PACKAGE_LEN;
pub use card::{ATR, ISD_R_AID, VirtualEuicc};
pub use channels::{MAX_CHANNELS, MAX_COMMAND_LEN};
pub use error::Error;
pub use identity::{EuiccIdentity, SharedIdentity};
pub use profile::{InstalledProfile, NotificationOperation, ProfileClass, ProfileState};
pub use state::{DEFAULT_ROOT_SMDS_ADDRESS, EuiccState, STATE_VERSION, StoredNotification};
