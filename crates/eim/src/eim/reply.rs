//! [`EsipaReply`]: the eIM's answer before a binding puts it on the wire,
//! and the error answer of a message it could not serve.

use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::sgp32;

use super::{EsipaAnswer, encoded};
use crate::error::EimError;
use crate::relay;

/// The eIM's answer to one ESipa message, before it is put on the wire of
/// a binding.
#[derive(Debug, Clone, PartialEq)]
pub enum EsipaReply {
    /// An answer of the eIM itself, to write in `version`.
    Message {
        /// The message (boxed: it is much larger than the other variants).
        message: Box<sgp32::EsipaMessageFromEimToIpa>,
        /// The IPA's version.
        version: Sgp32Version,
    },
    /// The answer to a relayed ES9+ step, for both bindings.
    Relayed {
        /// The answer (boxed, as the message above).
        answer: Box<relay::RelayAnswer>,
        /// The IPA's version.
        version: Sgp32Version,
    },
    /// No answer body (HandleNotification).
    NoContent,
}

impl EsipaReply {
    /// The ASN.1 binding's answer.
    pub fn into_asn1(self) -> Result<EsipaAnswer, EimError> {
        match self {
            Self::Message { message, version } => encoded(&message, version),
            Self::Relayed { answer, version } => Ok(match answer.der {
                Some(der) => EsipaAnswer::Message { der, version },
                None => EsipaAnswer::NoContent,
            }),
            Self::NoContent => Ok(EsipaAnswer::NoContent),
        }
    }

    /// The answer to a message the eIM could not read or does not serve
    /// (`Malformed`, `UnexpectedMessage`) or failed to serve: the error
    /// answer of the function its outer tag names, `undefinedError`; a
    /// GetEimPackage error for anything unrecognisable, so that an IPA that
    /// reads only the body still gets a well-formed
    /// `EsipaMessageFromEimToIpa`. HandleNotification and
    /// TransferEimPackageResponse have no answer.
    pub fn error_for(der: &[u8]) -> Self {
        let version = Sgp32Version::V1_2;
        let tag = ferrosim_asn1::tlv::Tlv::parse(der).ok().map(|(t, _)| t.tag);
        let undefined = || Integer::from(127);
        match tag {
            Some(0xBF3D | 0xBF4E) => Self::NoContent,
            Some(0xBF50) => Self::Message {
                message: Box::new(
                    sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
                        sgp32::ProvideEimPackageResultResponse::provideEimPackageResultError(
                            undefined(),
                        ),
                    ),
                ),
                version,
            },
            Some(tag) if relay::RelayFunction::from_tag(tag).is_some() => {
                let function = relay::RelayFunction::from_tag(tag)
                    .unwrap_or(relay::RelayFunction::InitiateAuthentication);
                Self::Relayed {
                    answer: Box::new(relay::error_answer(function, 127, None, version)),
                    version,
                }
            }
            _ => Self::Message {
                message: Box::new(sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                    sgp32::GetEimPackageResponse::eimPackageError(undefined()),
                )),
                version,
            },
        }
    }
}
