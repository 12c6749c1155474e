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
//!   PINs, PUKs, SPN, APN, metadata) with the package bytes.
//! - [`state`]: [`EuiccState`], the persistent part, saved atomically as JSON.
//! - [`identity`]: [`EuiccIdentity`]: EID, eUICC key and certificate, EUM
//!   and CI certificates, from `ferrosim pki init` output or any PEM/DER files.
//! - [`codes`]: the SGP.22 result and error codes, named.
//!
//! The crate is sans-IO: the caller passes the time with each command and
//! saves [`VirtualEuicc::state`] when it wants (the revision counter says
//! when it changed); randomness (challenges, one-time keys) comes from the
//! operating system's generator. [`VirtualEuicc::handle_apdu`] never panics,
//! whatever the bytes.
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
pub mod identity;
pub mod profile;
pub mod state;

pub use bpp::MAX_PROFILE_PACKAGE_LEN;
pub use card::{ATR, ISD_R_AID, VirtualEuicc};
pub use channels::{MAX_CHANNELS, MAX_COMMAND_LEN};
pub use error::Error;
pub use identity::EuiccIdentity;
pub use profile::{InstalledProfile, NotificationOperation, ProfileClass, ProfileState};
pub use state::{DEFAULT_ROOT_SMDS_ADDRESS, EuiccState, StoredNotification};
