//! The crate's error type: every failure of the LPA, for callers that handle
//! them together (the `ferrosim lpa` command). Each module also returns its
//! own precise error, wrapped here.

use thiserror::Error;

use crate::activation_code::ActivationCodeError;
use crate::download::DownloadError;
use crate::es9::Es9ClientError;
use crate::es10::Es10Error;
use crate::transport::TransportError;

/// Any failure of the LPA.
#[derive(Debug, Error)]
pub enum Error {
    /// The activation code or an SM-DP+ address is invalid.
    #[error(transparent)]
    ActivationCode(#[from] ActivationCodeError),
    /// APDUs could not be exchanged with the card.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An ES10 function failed.
    #[error(transparent)]
    Es10(#[from] Es10Error),
    /// An ES9+ call failed.
    #[error(transparent)]
    Es9(#[from] Es9ClientError),
    /// A profile download failed.
    #[error(transparent)]
    Download(#[from] Box<DownloadError>),
}

impl From<DownloadError> for Error {
    fn from(e: DownloadError) -> Self {
        Self::Download(Box::new(e))
    }
}
