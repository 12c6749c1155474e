//! AT commands for the UICC (3GPP TS 27.007 8.17, 8.43-8.45) and the
//! reading of a modem's answers.
//!
//! An answer is the lines a modem sends up to a final result code: `OK`,
//! `ERROR`, `+CME ERROR: <err>` or `+CMS ERROR: <err>`. Information lines
//! come before it (`+CCHO: <channel>` or a bare `<channel>`, `+CGLA:
//! <length>,"<hex>"`, `+CSIM: <length>,"<hex>"`); an echo of the command
//! and unsolicited result codes (`+CREG: ...`, `RING`) are skipped.
//! Anything else where an answer is expected is garbage, reported with
//! what was received.

use thiserror::Error;

/// Longest line accepted from the modem (a 256-byte response APDU is 512
/// hex digits plus the prefix).
pub const MAX_LINE: usize = 4096;

/// Why an AT exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AtError {
    /// The modem answered with an error result code.
    #[error("the modem answered `{answer}` to {command}")]
    Error {
        /// The command (without its data).
        command: String,
        /// `ERROR`, `+CME ERROR: ...`.
        answer: String,
    },
    /// The modem sent something that is not an answer to the command.
    #[error("the modem sent garbage in answer to {command}: {received:?}")]
    Garbage {
        /// The command (without its data).
        command: String,
        /// What came (truncated).
        received: String,
    },
    /// The modem did not finish its answer in time.
    #[error("the modem did not answer {command} in time")]
    Timeout {
        /// The command.
        command: String,
    },
    /// The serial device failed.
    #[error("serial device: {0}")]
    Io(String),
}

/// `AT+CCHO="<aid>"`.
pub fn ccho(aid: &[u8]) -> String {
    format!("AT+CCHO=\"{}\"\r", hex::encode_upper(aid))
}

/// `AT+CGLA=<channel>,<length>,"<apdu>"` (the length counts hex digits).
pub fn cgla(channel: u8, apdu: &[u8]) -> String {
    format!(
        "AT+CGLA={channel},{},\"{}\"\r",
        apdu.len() * 2,
        hex::encode_upper(apdu)
    )
}

/// `AT+CSIM=<length>,"<apdu>"` (the length counts hex digits).
pub fn csim(apdu: &[u8]) -> String {
    format!(
        "AT+CSIM={},\"{}\"\r",
        apdu.len() * 2,
        hex::encode_upper(apdu)
    )
}

/// `AT+CCHC=<channel>`.
pub fn cchc(channel: u8) -> String {
    format!("AT+CCHC={channel}\r")
}

/// The command's name for errors: `AT+CGLA` of `AT+CGLA=1,...`.
pub fn command_name(command: &str) -> String {
    command
        .trim_end()
        .split(['=', '?'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A modem's complete answer: its information lines (final code excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Information lines, in order.
    pub lines: Vec<String>,
}

/// Collects the modem's bytes into lines until a final result code.
#[derive(Debug, Default)]
pub struct AnswerReader {
    partial: Vec<u8>,
    lines: Vec<String>,
}

impl AnswerReader {
    /// A reader for the answer to `command`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds received bytes. `Ok(Some(answer))` once the final `OK` came,
    /// `Err` at an error result code or garbage, `Ok(None)` while more is
    /// needed.
    pub fn feed(&mut self, command: &str, bytes: &[u8]) -> Result<Option<Answer>, AtError> {
        let name = command_name(command);
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.partial.is_empty() {
                    continue;
                }
                let line = std::mem::take(&mut self.partial);
                let Ok(line) = String::from_utf8(line) else {
                    return Err(AtError::Garbage {
                        command: name,
                        received: "bytes that are not text".into(),
                    });
                };
                let line = line.trim().to_owned();
                match line.as_str() {
                    "OK" => {
                        return Ok(Some(Answer {
                            lines: std::mem::take(&mut self.lines),
                        }));
                    }
                    "ERROR" | "NO CARRIER" => {
                        return Err(AtError::Error {
                            command: name,
                            answer: line,
                        });
                    }
                    l if l.starts_with("+CME ERROR") || l.starts_with("+CMS ERROR") => {
                        return Err(AtError::Error {
                            command: name,
                            answer: line,
                        });
                    }
                    // The echo of the command (ATE1).
                    l if l == command.trim() => {}
                    "" => {}
                    _ => self.lines.push(line),
                }
            } else {
                if self.partial.len() >= MAX_LINE {
                    return Err(AtError::Garbage {
                        command: name,
                        received: format!("a line longer than {MAX_LINE} bytes"),
                    });
                }
                self.partial.push(b);
            }
        }
        Ok(None)
    }
}

/// Whether a line is an unsolicited result code the IPA ignores.
fn unsolicited(line: &str) -> bool {
    const CODES: [&str; 8] = [
        "+CREG:", "+CEREG:", "+CGREG:", "+C5GREG:", "RING", "+CMTI:", "+CUSATP:", "+QIND:",
    ];
    CODES.iter().any(|c| line.starts_with(c))
}

/// The information lines that are not unsolicited result codes.
fn answer_lines(answer: &Answer) -> impl Iterator<Item = &str> {
    answer
        .lines
        .iter()
        .map(String::as_str)
        .filter(|l| !unsolicited(l))
}

/// The channel number of an `AT+CCHO` answer.
pub fn channel_of(command: &str, answer: &Answer) -> Result<u8, AtError> {
    let garbage = |received: &str| AtError::Garbage {
        command: command_name(command),
        received: received.chars().take(80).collect(),
    };
    let mut lines = answer_lines(answer);
    let line = lines.next().ok_or_else(|| garbage("no channel number"))?;
    let number = line.strip_prefix("+CCHO:").unwrap_or(line).trim();
    match number.parse::<u8>() {
        Ok(n) if (1..=19).contains(&n) && lines.next().is_none() => Ok(n),
        _ => Err(garbage(line)),
    }
}

/// The response APDU of an `AT+CGLA` or `AT+CSIM` answer
/// (`+CGLA: <length>,"<hex>"`).
pub fn response_of(command: &str, answer: &Answer) -> Result<Vec<u8>, AtError> {
    let name = command_name(command);
    let prefix = format!("{}:", name.trim_start_matches("AT"));
    let garbage = |received: &str| AtError::Garbage {
        command: name.clone(),
        received: received.chars().take(80).collect(),
    };
    let mut lines = answer_lines(answer);
    let line = lines.next().ok_or_else(|| garbage("no response"))?;
    if lines.next().is_some() {
        return Err(garbage(line));
    }
    let rest = line.strip_prefix(&prefix).ok_or_else(|| garbage(line))?;
    let (length, data) = rest.split_once(',').ok_or_else(|| garbage(line))?;
    let length: usize = length.trim().parse().map_err(|_| garbage(line))?;
    let data = data.trim().trim_matches('"');
    if data.len() != length || data.len() < 4 {
        return Err(garbage(line));
    }
    hex::decode(data).map_err(|_| garbage(line))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(command: &str, text: &str) -> Result<Option<Answer>, AtError> {
        AnswerReader::new().feed(command, text.as_bytes())
    }

    #[test]
    fn commands_are_formatted_as_27007_says() {
        assert_eq!(ccho(&[0xA0, 0x01]), "AT+CCHO=\"A001\"\r");
        assert_eq!(cgla(2, &[0x81, 0xE2]), "AT+CGLA=2,4,\"81E2\"\r");
        assert_eq!(csim(&[0x00, 0x70]), "AT+CSIM=4,\"0070\"\r");
        assert_eq!(cchc(3), "AT+CCHC=3\r");
        assert_eq!(command_name("AT+CGLA=1,4,\"0000\"\r"), "AT+CGLA");
    }

    #[test]
    fn answers_are_read() {
        let cmd = cgla(1, &[0x81, 0xCA, 0, 0]);
        let answer = read(&cmd, "\r\n+CGLA: 4,\"9000\"\r\n\r\nOK\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(response_of(&cmd, &answer).unwrap(), [0x90, 0x00]);
        // With an echo and an unsolicited code in between.
        let echoed = format!("{}\r\n+CREG: 1\r\n+CGLA: 4,\"6A88\"\r\nOK\r\n", cmd.trim());
        let answer = read(&cmd, &echoed).unwrap().unwrap();
        assert_eq!(response_of(&cmd, &answer).unwrap(), [0x6A, 0x88]);
        let answer = read("AT+CCHO", "+CCHO: 2\r\nOK\r\n").unwrap().unwrap();
        assert_eq!(channel_of("AT+CCHO", &answer).unwrap(), 2);
        let answer = read("AT+CCHO", "3\r\nOK\r\n").unwrap().unwrap();
        assert_eq!(channel_of("AT+CCHO", &answer).unwrap(), 3);
        // Partial input waits for more.
        let mut reader = AnswerReader::new();
        assert_eq!(reader.feed(&cmd, b"+CGLA: 4,\"90").unwrap(), None);
        assert!(reader.feed(&cmd, b"00\"\r\nOK\r\n").unwrap().is_some());
    }

    #[test]
    fn errors_and_garbage_are_typed() {
        let cmd = cgla(1, &[0, 0, 0, 0]);
        assert!(matches!(
            read(&cmd, "ERROR\r\n"),
            Err(AtError::Error { .. })
        ));
        match read(&cmd, "+CME ERROR: 4\r\n") {
            Err(AtError::Error { answer, command }) => {
                assert_eq!(answer, "+CME ERROR: 4");
                assert_eq!(command, "AT+CGLA");
            }
            other => panic!("{other:?}"),
        }
        for garbage in [
            "+CGLA: 4,\"zz00\"\r\nOK\r\n",
            "+CGLA: 6,\"9000\"\r\nOK\r\n",
            "+CGLA: 2,\"90\"\r\nOK\r\n",
            "hello\r\nOK\r\n",
            "OK\r\n",
            "+CGLA: 4,\"9000\"\r\n+CGLA: 4,\"9000\"\r\nOK\r\n",
        ] {
            let answer = read(&cmd, garbage).unwrap().unwrap();
            assert!(
                matches!(response_of(&cmd, &answer), Err(AtError::Garbage { .. })),
                "{garbage:?}"
            );
        }
        for garbage in [
            "+CCHO: 0\r\nOK\r\n",
            "x\r\nOK\r\n",
            "OK\r\n",
            "+CCHO: 99\r\nOK\r\n",
        ] {
            let answer = read("AT+CCHO", garbage).unwrap().unwrap();
            assert!(channel_of("AT+CCHO", &answer).is_err(), "{garbage:?}");
        }
        assert!(matches!(
            AnswerReader::new().feed(&cmd, &[0xFF, 0xFE, b'\r']),
            Err(AtError::Garbage { .. })
        ));
        assert!(matches!(
            AnswerReader::new().feed(&cmd, &vec![b'A'; MAX_LINE + 1]),
            Err(AtError::Garbage { .. })
        ));
    }
}
