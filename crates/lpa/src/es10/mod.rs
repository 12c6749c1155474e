//! ES10a/b/c: the LPA's interface to the eUICC's ISD-R, over APDUs.
//!
//! Two layers: sans-IO pieces that the LPA's state machines use
//! ([`exchange`]: one command as a conversation of APDUs; [`function`]: the
//! requests and decoders of the ES10 functions), and [`Es10`], a blocking
//! driver over a [`Transport`] built from them.
//!
//! [`Es10::open`] opens a logical channel (MANAGE CHANNEL) and selects the
//! ISD-R on it; [`Es10::transmit_es10`] sends one ES10 command (a BER-TLV
//! such as `BF2E ...`) as a chain of STORE DATA commands (CLA `80` with the
//! channel, INS `E2`, P1 `11` for more blocks and `91` for the last, P2 the
//! block number), following `61xx` with GET RESPONSE, and returns the
//! response TLV. The typed functions ([`commands`], [`bpp`]) build each
//! request, check the answer and decode it into [`types`].
//!
//! Responses are read with the zero-copy TLV reader, picking the elements
//! SGP.22 defines and skipping unknown ones, so eUICCs of later versions
//! (with extension fields) are understood too.

pub mod bpp;
pub mod commands;
pub(crate) mod decode;
pub mod exchange;
pub mod function;
pub mod types;

pub use exchange::{Es10Link, Exchange, Next};
pub use function::Es10Function;

use thiserror::Error;

use crate::transport::{CommandApdu, ResponseApdu, StatusWord, Transport, TransportError};

/// AID of the ISD-R (SGP.02/SGP.22).
pub const ISD_R_AID: [u8; 16] = [
    0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x00, 0x00, 0x01, 0x00,
];
/// STORE DATA block size used by common LPAs.
pub const DEFAULT_BLOCK_SIZE: usize = 120;
/// Largest STORE DATA block (short APDU).
pub const MAX_BLOCK_SIZE: usize = 255;

/// Why an ES10 function failed.
#[derive(Debug, Error)]
pub enum Es10Error {
    /// The APDU exchange itself failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card answered an APDU with an unexpected status word.
    #[error("{command} failed with status word {sw}")]
    Status {
        /// Which APDU (MANAGE CHANNEL, SELECT, STORE DATA, GET RESPONSE).
        command: &'static str,
        /// Its status word.
        sw: StatusWord,
    },
    /// The card has no free logical channel, or returned an invalid channel number.
    #[error("no logical channel available ({0})")]
    NoChannel(String),
    /// The ISD-R could not be selected: not an eUICC, or not this AID.
    #[error("the ISD-R cannot be selected (status word {0}): is this an eUICC?")]
    IsdRNotFound(StatusWord),
    /// The eUICC's answer is not the structure SGP.22 defines.
    #[error("malformed {function} response: {reason}")]
    BadResponse {
        /// The ES10 function.
        function: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The eUICC executed the function and reported an error code.
    #[error("the eUICC refused {function}: {} ({code})", result_name(function, *code))]
    Refused {
        /// The ES10 function.
        function: &'static str,
        /// The result or error code of SGP.22.
        code: i64,
    },
    /// The request cannot be sent (empty, too large, invalid argument).
    #[error("invalid {function} request: {reason}")]
    InvalidRequest {
        /// The ES10 function.
        function: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The STORE DATA block size is outside 1..=255.
    #[error("STORE DATA block size must be 1 to 255 bytes, not {0}")]
    InvalidBlockSize(usize),
}

impl Es10Error {
    /// A [`Es10Error::BadResponse`] for `function`.
    pub(crate) fn bad(function: &'static str, reason: impl ToString) -> Self {
        Self::BadResponse {
            function,
            reason: reason.to_string(),
        }
    }
}

/// How [`Es10::open`] talks to the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Es10Options {
    /// Data bytes per STORE DATA block (1 to 255; 120 by default).
    pub block_size: usize,
    /// Open a logical channel for the ISD-R (the default), or use the basic
    /// channel when the card or the modem does not allow MANAGE CHANNEL.
    pub logical_channel: bool,
    /// AID to select (the ISD-R's by default).
    pub aid: Vec<u8>,
}

impl Default for Es10Options {
    fn default() -> Self {
        Self {
            block_size: DEFAULT_BLOCK_SIZE,
            logical_channel: true,
            aid: ISD_R_AID.to_vec(),
        }
    }
}

/// An ES10 session with the ISD-R of one eUICC.
#[derive(Debug)]
pub struct Es10<T> {
    transport: T,
    link: Es10Link,
}

impl<T: Transport> Es10<T> {
    /// Opens a logical channel (unless disabled) and selects the ISD-R.
    pub fn open(transport: T, options: &Es10Options) -> Result<Self, Es10Error> {
        let mut es10 = Self {
            transport,
            link: Es10Link::new(0, options.block_size)?,
        };
        if options.logical_channel {
            es10.link = Es10Link::new(es10.open_channel()?, options.block_size)?;
        }
        if let Err(e) = es10.select(&options.aid) {
            // Give the channel back before reporting; the select error matters more.
            let _ = es10.close_channel();
            return Err(e);
        }
        Ok(es10)
    }

    /// Closes the logical channel and returns the transport.
    pub fn close(mut self) -> Result<T, Es10Error> {
        self.close_channel()?;
        Ok(self.transport)
    }

    /// Returns the transport without closing the channel (after
    /// [`Es10::close_channel`], or when the card is reset anyway).
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The logical channel in use (0 = basic channel).
    pub fn channel(&self) -> u8 {
        self.link.channel()
    }

    /// The channel and block size, for a state machine that takes over the
    /// conversation (see [`crate::download::Download`]).
    pub fn link(&self) -> Es10Link {
        self.link
    }

    /// Runs one ES10 function and decodes its answer.
    pub fn call<F: Es10Function>(&mut self, function: &F) -> Result<F::Output, Es10Error> {
        F::decode(self.transmit_es10(&function.request()?)?)
    }

    /// The transport, for APDUs outside ES10.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Sends one ES10 command (a complete BER-TLV) with STORE DATA and
    /// returns the response data (the response TLV; empty when the command
    /// has none).
    pub fn transmit_es10(&mut self, request: &[u8]) -> Result<Vec<u8>, Es10Error> {
        let (exchange, first) = Exchange::store_data(self.link, request)?;
        self.run(exchange, first)
    }

    /// Drives `exchange` over the transport, starting with `first`.
    fn run(&mut self, mut exchange: Exchange, first: Vec<u8>) -> Result<Vec<u8>, Es10Error> {
        let mut apdu = first;
        loop {
            let response = self.transport.transmit(&apdu)?;
            match exchange.handle_response(response)? {
                Next::Transmit(next) => apdu = next,
                Next::Done(data) => return Ok(data),
            }
        }
    }

    /// MANAGE CHANNEL open: the card picks the channel.
    fn open_channel(&mut self) -> Result<u8, Es10Error> {
        let apdu = CommandApdu {
            cla: 0x00,
            ins: 0x70,
            p1: 0x00,
            p2: 0x00,
            data: Vec::new(),
            le: Some(1),
        };
        let response = ResponseApdu::parse(self.transport.transmit(&apdu.to_bytes()?)?)?;
        if !response.sw.is_success() {
            return Err(Es10Error::NoChannel(format!(
                "MANAGE CHANNEL status word {}",
                response.sw
            )));
        }
        match response.data.as_slice() {
            [channel @ 1..=19] => Ok(*channel),
            other => Err(Es10Error::NoChannel(format!(
                "MANAGE CHANNEL returned `{}`",
                hex::encode(other)
            ))),
        }
    }

    /// MANAGE CHANNEL close of our logical channel; nothing for the basic
    /// channel or when already closed. No ES10 command can follow.
    pub fn close_channel(&mut self) -> Result<(), Es10Error> {
        if self.link.channel() == 0 {
            return Ok(());
        }
        let apdu = CommandApdu {
            cla: self.link.cla(0x00),
            ins: 0x70,
            p1: 0x80,
            p2: self.link.channel(),
            data: Vec::new(),
            le: None,
        };
        let (exchange, first) = Exchange::single("MANAGE CHANNEL", self.link, apdu)?;
        self.run(exchange, first)?;
        self.link = Es10Link::new(0, self.link.block_size())?;
        Ok(())
    }

    /// SELECT by AID on our channel.
    fn select(&mut self, aid: &[u8]) -> Result<(), Es10Error> {
        let apdu = CommandApdu {
            cla: self.link.cla(0x00),
            ins: 0xA4,
            p1: 0x04,
            p2: 0x00,
            data: aid.to_vec(),
            le: Some(0),
        };
        let (exchange, first) = Exchange::single("SELECT", self.link, apdu)?;
        match self.run(exchange, first) {
            Ok(_) => Ok(()),
            Err(Es10Error::Status { sw, .. }) => Err(Es10Error::IsdRNotFound(sw)),
            Err(e) => Err(e),
        }
    }
}

/// CLA for `base` (`00` interindustry or `80` proprietary) on `channel`.
pub fn class_byte(base: u8, channel: u8) -> u8 {
    if channel <= 3 {
        base | channel
    } else {
        let further = if base & 0x80 != 0 { 0xC0 } else { 0x40 };
        further | (channel.saturating_sub(4) & 0x0F)
    }
}

/// The name SGP.22 gives to a result or error code of an ES10 function.
pub fn result_name(function: &str, code: i64) -> &'static str {
    match (function, code) {
        (_, 0) => "ok",
        (_, 127) => "undefinedError",
        ("AuthenticateServer", 1) | ("PrepareDownload", 1) => "invalidCertificate",
        ("AuthenticateServer", 2) | ("PrepareDownload", 2) => "invalidSignature",
        ("AuthenticateServer", 3) | ("PrepareDownload", 3) => "unsupportedCurve",
        ("AuthenticateServer", 4) | ("PrepareDownload", 4) => "noSessionContext",
        ("AuthenticateServer", 5) => "invalidOid",
        ("AuthenticateServer", 6) => "euiccChallengeMismatch",
        ("AuthenticateServer", 7) => "ciPKUnknown",
        ("PrepareDownload", 5) | ("CancelSession", 5) => "invalidTransactionId",
        ("EnableProfile" | "DisableProfile" | "DeleteProfile", 1) => "iccidOrAidNotFound",
        ("EnableProfile" | "DeleteProfile", 2) => "profileNotInDisabledState",
        ("DisableProfile", 2) => "profileNotInEnabledState",
        ("EnableProfile" | "DisableProfile" | "DeleteProfile", 3) => "disallowedByPolicy",
        ("EnableProfile", 4) => "wrongProfileReenabling",
        ("EnableProfile" | "DisableProfile" | "EuiccMemoryReset", 5) => "catBusy",
        ("SetNickname", 1) => "iccidNotFound",
        ("EuiccMemoryReset" | "RemoveNotificationFromList", 1) => "nothingToDelete",
        ("RetrieveNotificationsList", 1) => "noResultAvailable",
        ("GetProfilesInfo", 1) => "incorrectInputValues",
        ("LoadCRL", 1) => "invalidSignature",
        ("LoadCRL", 2) => "invalidCRLFormat",
        ("LoadCRL", 3) => "notEnoughMemorySpace",
        ("LoadCRL", 4) => "verificationKeyNotFound",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests;
