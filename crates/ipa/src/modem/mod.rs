//! The eUICC inside a cellular modem, reached with the AT commands of 3GPP
//! TS 27.007 on the modem's serial device: `AT+CCHO="<ISD-R AID>"` opens a
//! logical channel to the ISD-R, `AT+CGLA=<channel>,<length>,"<APDU>"`
//! sends an APDU on it and `AT+CCHC=<channel>` closes it. Modems without
//! logical-channel commands are driven with `AT+CSIM=<length>,"<APDU>"` on
//! the basic channel (the IPA then opens the channel and selects the ISD-R
//! with APDUs of its own).
//!
//! - [`at`]: the commands and the reading of the modem's answers (pure
//!   code: fed with bytes, it hands out complete answers or a typed error).
//! - [`serial`]: [`ModemTransport`], a [`ferrosim_lpa::Transport`] over a
//!   serial device (raw mode, read timeouts), and [`connect`], which picks
//!   the mode and gives the link the IPA talks over.
//! - `simulated` (feature `modem-sim`): a modem on a pseudo-terminal whose
//!   SIM is a virtual eUICC, answering like a real one, and able to
//!   misbehave (ERROR, garbage) for tests.

pub mod at;
pub mod serial;
#[cfg(feature = "modem-sim")]
pub mod simulated;

pub use at::AtError;
pub use serial::{ModemMode, ModemTransport, connect};
