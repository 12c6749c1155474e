//! The LPA (Local Profile Assistant) of ferrosim: what a device runs to get
//! eSIM profiles onto its eUICC (GSMA SGP.22).
//!
//! - [`activation_code`]: activation codes (`LPA:1$ADDRESS$MATCHING_ID...`)
//!   and validated SM-DP+ addresses.
//! - [`download`]: the profile download as a sans-IO state machine
//!   ([`Download`]), with cancellation on failure and per-step timings, and
//!   its tokio driver `download_profile`.
//! - [`notifications`]: delivery of pending notifications with retries and
//!   backoff, as a state machine ([`NotificationDelivery`]) and its driver
//!   `process_notifications`; nothing leaves the eUICC before its SM-DP+
//!   acknowledged it.
//! - [`es10`]: ES10a/b/c: an ES10 command as a sans-IO APDU conversation
//!   ([`es10::Exchange`]), the functions' requests and decoders
//!   ([`es10::function`]), and [`Es10`], a blocking driver over a
//!   [`Transport`] with one typed method per eUICC function.
//! - [`es9`]: ES9+ calls as values ([`es9::Es9Call`]), the [`Es9Client`]
//!   trait, and its clients: HTTPS (feature `https`) and an in-process
//!   SM-DP+ (feature `inprocess`).
//! - [`transport`]: how APDUs reach an eUICC: any closure (in-process
//!   virtual eUICC), PC/SC readers (feature `pcsc`), and the card side of
//!   vsmartcard's vpcd (feature `vpcd`).
//!
//! Principle: the protocol logic is sans-IO. The machines take APDU
//! responses, ES9+ answers and `now` and hand out actions; they hold no
//! socket, clock, runtime or transport, so the same code runs under tokio,
//! in a simulator's event loop with virtual time for a million devices, or
//! step by step in a test. Built without default features
//! (`cargo build -p ferrosim-lpa --no-default-features`) the crate has no
//! tokio, reqwest, rustls or pcsc. The features (on by default, as the
//! `ferrosim` binary uses them): `https`, `pcsc`, `vpcd`, `tokio` (the
//! async drivers), and `inprocess`.

#![forbid(unsafe_code)]

pub mod activation_code;
pub mod download;
mod error;
pub mod es10;
pub mod es9;
pub mod notifications;
pub mod transport;

pub use activation_code::{ActivationCode, ActivationCodeError, SmdpAddress};
#[cfg(feature = "tokio")]
pub use download::download_profile;
pub use download::{Download, DownloadError, DownloadOutcome, DownloadRequest};
pub use error::Error;
pub use es9::{Es9Client, Es9ClientError};
pub use es10::{Es10, Es10Error, Es10Options};
#[cfg(feature = "tokio")]
pub use notifications::process_notifications;
pub use notifications::{NotificationDelivery, NotificationReport, RetryPolicy};
pub use transport::{Transport, TransportError};
