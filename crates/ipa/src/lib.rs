//! The IPA (IoT Profile Assistant) of ferrosim, GSMA SGP.32: the device-side
//! agent that polls its eIM over ESipa, runs the eIM's eUICC packages on the
//! eUICC, carries out profile download triggers (straight from the SM-DP+
//! or through the eIM), returns results and delivers notifications.
//!
//! - [`Ipa`] ([`machine`]): the sans-IO state machine. APDU responses, eIM
//!   and SM-DP+ answers and `now` go in; actions come out (send an APDU,
//!   make an ESipa or ES9+ call, persist the state, session done). It reuses
//!   the LPA's sans-IO [`ferrosim_lpa::Download`] and
//!   [`ferrosim_lpa::NotificationDelivery`] for downloads and notifications.
//! - [`esipa`]: the IPA's ESipa messages and the eIM's answers, in both
//!   bindings (ASN.1 `POST /gsma/rsp2/asn1`, JSON `POST
//!   /gsma/rsp2/esipa/<function>`); [`relay`]: the ES9+ steps of an
//!   indirect download as ESipa messages.
//! - [`PendingState`]: what must survive a power cut (unacknowledged
//!   results, `notifyStateChange`, the backoff count), persisted by the
//!   driver whenever the machine says so, before a result goes out.
//! - Drivers: `driver` (feature `https`: tokio, ESipa over HTTPS with
//!   either binding, direct ES9+ over HTTPS, the state in a file; feature
//!   `inprocess`: an eIM in the same process), `modem` (feature `modem`: the
//!   eUICC inside a cellular modem over AT commands on a serial device;
//!   `modem-sim`: a simulated modem on a pseudo-terminal). The eUICC may
//!   also be a virtual eUICC in the same process or a card in a PC/SC
//!   reader, through [`ferrosim_lpa::Transport`].

#![forbid(unsafe_code)]

pub mod config;
pub mod data;
pub mod es10;
pub mod esipa;
pub mod machine;
pub mod pending;
pub mod relay;

#[cfg(feature = "https")]
pub mod driver;
#[cfg(feature = "modem")]
pub mod modem;

pub use config::{Backoff, DownloadPath, IpaConfig};
pub use esipa::{Binding, EimReply, EsipaError, EsipaRequest};
pub use machine::{
    Action, EsipaCall, Ipa, ItemReport, LocalOperation, NotificationSummary, PackageOutcome,
    SessionError, SessionReport,
};
pub use pending::{PendingResult, PendingState, ResultKind};
