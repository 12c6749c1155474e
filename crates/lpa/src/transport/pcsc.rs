//! A card in a PC/SC reader (pcsc-lite on Linux and macOS, WinSCard on
//! Windows), for driving a real eUICC, or the virtual one behind vpcd.
//!
//! The reader is chosen by index or by (part of) its name; T=1 is preferred,
//! T=0 accepted. The card is reset when the transport is dropped, so that
//! the next program finds the eUICC in a clean state.

use std::ffi::CString;

use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

use super::{Transport, TransportError};

/// Which reader to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderSelector {
    /// The first reader of the service's list.
    First,
    /// The reader at this position in the service's list (0-based).
    Index(usize),
    /// The first reader whose name contains this text (case-insensitive).
    Name(String),
}

impl ReaderSelector {
    /// `""` → first, digits → index, anything else → name.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.is_empty() {
            Self::First
        } else if let Ok(i) = text.parse::<usize>() {
            Self::Index(i)
        } else {
            Self::Name(text.to_owned())
        }
    }
}

/// An eUICC in a PC/SC reader.
pub struct PcscTransport {
    card: Option<Card>,
    reader: String,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// The names of the readers the PC/SC service knows.
pub fn list_readers() -> Result<Vec<String>, TransportError> {
    let context = establish()?;
    reader_names(&context)
}

impl PcscTransport {
    /// Connects to the card in the selected reader (shared access, T=1 or T=0).
    pub fn connect(selector: &ReaderSelector) -> Result<Self, TransportError> {
        let context = establish()?;
        let readers = reader_names(&context)?;
        if readers.is_empty() {
            return Err(TransportError::NoReader);
        }
        let not_found = || TransportError::ReaderNotFound {
            wanted: match selector {
                ReaderSelector::First => "first".into(),
                ReaderSelector::Index(i) => i.to_string(),
                ReaderSelector::Name(n) => n.clone(),
            },
            available: readers.join(", "),
        };
        let name = match selector {
            ReaderSelector::First => readers.first().cloned().ok_or_else(not_found)?,
            ReaderSelector::Index(i) => readers.get(*i).cloned().ok_or_else(not_found)?,
            ReaderSelector::Name(wanted) => {
                let wanted = wanted.to_lowercase();
                readers
                    .iter()
                    .find(|r| r.to_lowercase().contains(&wanted))
                    .cloned()
                    .ok_or_else(not_found)?
            }
        };
        let c_name = CString::new(name.clone())
            .map_err(|_| TransportError::InvalidReaderName(name.clone()))?;
        let card = context
            .connect(&c_name, ShareMode::Shared, Protocols::T1 | Protocols::T0)
            .map_err(pcsc_error("connecting to the card"))?;
        tracing::debug!(reader = %name, "connected to PC/SC card");
        Ok(Self {
            card: Some(card),
            reader: name,
            buffer: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        })
    }

    /// The name of the reader in use.
    pub fn reader(&self) -> &str {
        &self.reader
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let card = self.card.as_ref().ok_or(TransportError::Pcsc {
            operation: "transmitting",
            message: "the card is disconnected".into(),
        })?;
        let response = card
            .transmit(command, &mut self.buffer)
            .map_err(pcsc_error("transmitting an APDU"))?;
        Ok(response.to_vec())
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            // A failure to reset is not actionable here: the service resets
            // the card itself when the handle goes away.
            let _ = card.disconnect(Disposition::ResetCard);
        }
    }
}

fn establish() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(pcsc_error("connecting to the PC/SC service"))
}

fn reader_names(context: &Context) -> Result<Vec<String>, TransportError> {
    match context.list_readers_owned() {
        Ok(names) => Ok(names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(pcsc_error("listing readers")(e)),
    }
}

fn pcsc_error(operation: &'static str) -> impl Fn(pcsc::Error) -> TransportError {
    move |e| TransportError::Pcsc {
        operation,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parsing() {
        assert_eq!(ReaderSelector::parse(""), ReaderSelector::First);
        assert_eq!(ReaderSelector::parse(" 2 "), ReaderSelector::Index(2));
        assert_eq!(
            ReaderSelector::parse("Virtual PCD"),
            ReaderSelector::Name("Virtual PCD".into())
        );
    }
}
