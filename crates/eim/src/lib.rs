//! The eIM of GSMA SGP.32 (IoT remote SIM provisioning), sans-IO.
//!
//! Per device (EID) the eIM keeps an association (its eIM id, the counter
//! value, the association token, the eUICC's verified certificate and key),
//! an ordered queue of signed eUICC packages, profile download triggers and
//! requests for eUICC data, the profiles as last reported, and the results
//! it received. The IPA in the device polls (GetEimPackage), runs what it is
//! given and returns the eUICC's signed results (ProvideEimPackageResult),
//! which the eIM verifies, stores and only then acknowledges.
//!
//! - [`steps`]: the functions as pure steps over records (`now`, a
//!   `CryptoRng` and the eIM key passed in): [`steps::associate`],
//!   [`steps::enqueue`], [`steps::poll`], [`steps::provide`], and
//!   [`steps::sanitize`] (wipe, verify from signed results, release).
//! - [`Eim`]: their drivers over an [`EimStore`] (load, step, commit with a
//!   compare-and-set, again on a lost race), and the ESipa ASN.1 binding
//!   ([`Eim::handle_asn1`]).
//! - [`store`]: the store trait; [`mem::MemEimStore`] keeps it in memory and
//!   [`suite`] is the behaviour every implementation must show.
//! - [`package`]: PSMOs and eCOs, and the signing of packages.
//!
//! What is signed and how v1.0 peers differ is in `ferrosim-asn1`
//! (`signed::sgp32`, `esipa`), shared with the eUICC side. The eIM does no
//! I/O: drivers (the HTTPS server, the simulator) move bytes and time.
#![forbid(unsafe_code)]

mod eim;
pub mod error;
pub mod ids;
pub mod mem;
pub mod package;
pub mod record;
pub mod relay;
pub mod steps;
pub mod store;
pub mod suite;

pub use eim::{ATTEMPTS, Eim, EimConfig, EsipaAnswer, EsipaReply};
pub use error::{EimError, ResultRefused};
pub use ids::{Counter, Eid, EimId, EimTransactionId, Iccid, MAX_COUNTER, Timestamp};
pub use mem::MemEimStore;
pub use package::{EimOperation, Operation, PackageContent};
pub use record::{
    Association, DeviceRecord, ItemKind, ItemOutcome, ItemState, NotificationRecord, ProfileEntry,
    ProfileSnapshot, QueueItem, Release, ResultRecord, RollbackGrant, Sanitization, Trust,
    WipeStep,
};
pub use steps::associate::AssociationRequest;
pub use steps::enqueue::{DataItem, DownloadTrigger, Queued};
pub use steps::sanitize::{SanitizeOptions, SanitizeReport, StepOutcome, Verdict};
pub use store::{EimChanges, EimStore, RelaySession, StoreError, Version, Versioned};
