//! The LPA (Local Profile Assistant) of ferrosim: what a device runs to get
//! eSIM profiles onto its eUICC (GSMA SGP.22).
//!
//! - [`activation_code`]: activation codes (`LPA:1$ADDRESS$MATCHING_ID...`)
//!   and validated SM-DP+ addresses.
//! - [`transport`]: how APDUs reach an eUICC: any closure (in-process
//!   virtual eUICC), PC/SC readers, and the card side of vsmartcard's vpcd.
//! - [`es10`]: the ES10a/b/c driver: logical channel, ISD-R selection,
//!   STORE DATA chaining, and one typed method per eUICC function.
//! - [`es9`]: the ES9+ client trait, over HTTPS or (feature `inprocess`)
//!   directly into an in-process SM-DP+.
//! - [`download`]: the whole profile download with cancellation on failure
//!   and per-step timings.
//! - [`notifications`]: delivery of pending notifications with retries;
//!   nothing leaves the eUICC before its SM-DP+ acknowledged it.
//!
//! The protocol parts are plain functions over a [`transport::Transport`]
//! and an [`es9::Es9Client`]: no global state, no clock but the one used to
//! time steps. ES10 calls block (an APDU exchange is synchronous); ES9+ calls
//! are async.

pub mod activation_code;
pub mod download;
mod error;
pub mod es10;
pub mod es9;
pub mod notifications;
pub mod transport;

pub use activation_code::{ActivationCode, ActivationCodeError, SmdpAddress};
pub use download::{DownloadError, DownloadOutcome, DownloadRequest, download_profile};
pub use error::Error;
pub use es9::{Es9Client, Es9ClientError};
pub use es10::{Es10, Es10Error, Es10Options};
pub use notifications::{NotificationReport, RetryPolicy, process_notifications};
pub use transport::{Transport, TransportError};
