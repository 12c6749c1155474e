//! Activation codes (SGP.22 section 4.1): what an end user scans or types to
//! start a profile download.
//!
//! Text form: `1$<SM-DP+ address>$<matching id>[$<SM-DP+ OID>[$<1>]]`, with an
//! `LPA:` prefix in the QR code form. The last field is the confirmation code
//! required flag; an empty OID field keeps its place when the flag follows
//! (`1$ADDR$MID$$1`). An empty matching id means "none" (the default SM-DP+
//! or SM-DS flows). [`ActivationCode::parse`] accepts both forms;
//! [`ActivationCode`]'s `Display` writes the form without prefix and
//! [`ActivationCode::to_qr_text`] the QR form. Every value that parses
//! is written back byte for byte, as long as it was written canonically (no
//! empty trailing field).
//!
//! [`SmdpAddress`] is the validated SM-DP+ address (host name or IP literal,
//! optional port) that the ES9+ client connects to; notification addresses
//! read from an eUICC go through the same check.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The only activation code format defined by SGP.22 v2.
const FORMAT: &str = "1";
/// Field delimiter.
const DELIMITER: char = '$';
/// Prefix of the QR code form.
const QR_PREFIX: &str = "LPA:";
/// Longest host name (RFC 1035).
const MAX_HOST_LEN: usize = 253;

/// Why a text is not an activation code (or not an SM-DP+ address).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActivationCodeError {
    /// Nothing but whitespace (or only the `LPA:` prefix).
    #[error("the activation code is empty")]
    Empty,
    /// The first field is not `1`, the only format SGP.22 defines.
    #[error("unsupported activation code format `{0}` (only format 1 is defined)")]
    UnsupportedFormat(String),
    /// Fewer fields than `1$ADDRESS$MATCHING_ID`.
    #[error("the activation code has no {0} field")]
    MissingField(&'static str),
    /// More than five `$`-separated fields.
    #[error("the activation code has {0} fields, at most 5 are defined")]
    TooManyFields(usize),
    /// The SM-DP+ address is not a host name or IP literal with an optional port.
    #[error("invalid SM-DP+ address `{address}`: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The matching id has characters an activation code cannot carry.
    #[error("invalid matching id: {0}")]
    InvalidMatchingId(&'static str),
    /// The SM-DP+ OID is not a dotted object identifier.
    #[error("invalid SM-DP+ OID `{0}`")]
    InvalidOid(String),
    /// The confirmation code required flag is neither `1` nor absent.
    #[error("invalid confirmation code required flag `{0}` (must be `1` or absent)")]
    InvalidConfirmationFlag(String),
}

/// A validated SM-DP+ address: a host name (letters, digits, `-`, `_`,
/// dots), an IPv4 literal or a bracketed IPv6 literal, with an optional
/// `:port`. Case is kept as given (addresses compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmdpAddress(String);

impl SmdpAddress {
    /// Validates an address.
    pub fn new(address: &str) -> Result<Self, ActivationCodeError> {
        let invalid = |reason| ActivationCodeError::InvalidAddress {
            address: address.to_owned(),
            reason,
        };
        if address.is_empty() {
            return Err(invalid("empty"));
        }
        let (host, port) = split_host_port(address).map_err(invalid)?;
        if let Some(port) = port {
            let ok = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
            if !ok {
                return Err(invalid("the port must be a number from 1 to 65535"));
            }
        }
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| invalid("unclosed `[`"))?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| invalid("not an IPv6 address inside `[]`"))?;
        } else {
            check_host_name(host).map_err(invalid)?;
        }
        Ok(Self(address.to_owned()))
    }

    /// The address as given (`host` or `host:port`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether two addresses name the same SM-DP+ (case-insensitive).
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.trim())
    }
}

impl fmt::Display for SmdpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SmdpAddress {
    type Err = ActivationCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// An activation code: where to download from and which order to ask for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivationCode {
    smdp_address: SmdpAddress,
    matching_id: Option<String>,
    smdp_oid: Option<String>,
    confirmation_code_required: bool,
}

impl ActivationCode {
    /// An activation code for `address` and `matching_id` (no OID, no
    /// confirmation code).
    pub fn new(
        address: SmdpAddress,
        matching_id: Option<&str>,
    ) -> Result<Self, ActivationCodeError> {
        let matching_id = match matching_id {
            None | Some("") => None,
            Some(m) => Some(check_matching_id(m)?.to_owned()),
        };
        Ok(Self {
            smdp_address: address,
            matching_id,
            smdp_oid: None,
            confirmation_code_required: false,
        })
    }

    /// The same code carrying the SM-DP+ OID (checked against the SM-DP+'s
    /// certificate during the download).
    pub fn with_smdp_oid(mut self, oid: &str) -> Result<Self, ActivationCodeError> {
        self.smdp_oid = Some(check_oid(oid)?.to_owned());
        Ok(self)
    }

    /// The same code with the confirmation code required flag set or cleared.
    pub fn with_confirmation_code_required(mut self, required: bool) -> Self {
        self.confirmation_code_required = required;
        self
    }

    /// Parses the text form, with or without the `LPA:` prefix (any case);
    /// surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, ActivationCodeError> {
        let text = text.trim();
        let text = match text.get(..QR_PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(QR_PREFIX) => &text[QR_PREFIX.len()..],
            _ => text,
        };
        if text.is_empty() {
            return Err(ActivationCodeError::Empty);
        }
        let fields: Vec<&str> = text.split(DELIMITER).collect();
        if fields.len() > 5 {
            return Err(ActivationCodeError::TooManyFields(fields.len()));
        }
        let format = fields[0];
        if format != FORMAT {
            return Err(ActivationCodeError::UnsupportedFormat(truncate(format)));
        }
        let address = fields
            .get(1)
            .ok_or(ActivationCodeError::MissingField("SM-DP+ address"))?;
        let matching_id = fields
            .get(2)
            .ok_or(ActivationCodeError::MissingField("matching id"))?;
        let mut code = Self::new(SmdpAddress::new(address)?, Some(matching_id))?;
        if let Some(oid) = fields.get(3).filter(|o| !o.is_empty()) {
            code = code.with_smdp_oid(oid)?;
        }
        match fields.get(4) {
            None | Some(&"") => {}
            Some(&"1") => code.confirmation_code_required = true,
            Some(other) => {
                return Err(ActivationCodeError::InvalidConfirmationFlag(truncate(
                    other,
                )));
            }
        }
        Ok(code)
    }

    /// The SM-DP+ address.
    pub fn smdp_address(&self) -> &SmdpAddress {
        &self.smdp_address
    }

    /// The matching id, if the code carries one.
    pub fn matching_id(&self) -> Option<&str> {
        self.matching_id.as_deref()
    }

    /// The SM-DP+ OID, if the code carries one.
    pub fn smdp_oid(&self) -> Option<&str> {
        self.smdp_oid.as_deref()
    }

    /// Whether the end user must enter a confirmation code.
    pub fn confirmation_code_required(&self) -> bool {
        self.confirmation_code_required
    }

    /// The QR code form: `LPA:` followed by the text form.
    pub fn to_qr_text(&self) -> String {
        format!("{QR_PREFIX}{self}")
    }
}

impl fmt::Display for ActivationCode {
    /// The text form without the `LPA:` prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{FORMAT}${}${}",
            self.smdp_address,
            self.matching_id.as_deref().unwrap_or("")
        )?;
        match (&self.smdp_oid, self.confirmation_code_required) {
            (None, false) => Ok(()),
            (Some(oid), false) => write!(f, "${oid}"),
            (oid, true) => write!(f, "${}$1", oid.as_deref().unwrap_or("")),
        }
    }
}

impl FromStr for ActivationCode {
    type Err = ActivationCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits `host[:port]` (the host may be a bracketed IPv6 literal).
fn split_host_port(address: &str) -> Result<(&str, Option<&str>), &'static str> {
    if address.starts_with('[') {
        let end = address.find(']').ok_or("unclosed `[`")?;
        let (host, rest) = address.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => rest
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or("unexpected characters after `]`"),
        };
    }
    Ok(match address.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (address, None),
    })
}

/// A DNS host name or an IPv4 literal: dot-separated labels of letters,
/// digits, `-` and `_`, none empty, none starting or ending with `-`.
fn check_host_name(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("no host name");
    }
    if host.len() > MAX_HOST_LEN {
        return Err("host name longer than 253 characters");
    }
    for label in host.strip_suffix('.').unwrap_or(host).split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty or over-long label in the host name");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("host names may only hold letters, digits, `-`, `_` and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a host name label may not start or end with `-`");
        }
    }
    Ok(())
}

/// A matching id: printable ASCII without `$` and without spaces.
fn check_matching_id(id: &str) -> Result<&str, ActivationCodeError> {
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ActivationCodeError::InvalidMatchingId(
            "only printable ASCII without spaces is allowed",
        ));
    }
    if id.contains(DELIMITER) {
        return Err(ActivationCodeError::InvalidMatchingId(
            "`$` is the field delimiter",
        ));
    }
    Ok(id)
}

/// A dotted object identifier: at least two arcs, decimal without leading zeros,
/// the first arc 0, 1 or 2.
fn check_oid(oid: &str) -> Result<&str, ActivationCodeError> {
    let bad = || ActivationCodeError::InvalidOid(truncate(oid));
    let arcs: Vec<&str> = oid.split('.').collect();
    if arcs.len() < 2 {
        return Err(bad());
    }
    for arc in &arcs {
        let decimal = !arc.is_empty()
            && arc.bytes().all(|b| b.is_ascii_digit())
            && (arc.len() == 1 || !arc.starts_with('0'))
            && arc.parse::<u64>().is_ok();
        if !decimal {
            return Err(bad());
        }
    }
    if !matches!(arcs[0], "0" | "1" | "2") {
        return Err(bad());
    }
    Ok(oid)
}

/// A bounded copy of user input for error messages.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vectors() -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/vectors/bsp-kat.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["activation_codes_round_trip"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn vectors_round_trip_exactly() {
        let cases = vectors();
        assert!(cases.len() >= 5);
        for case in cases {
            let code = ActivationCode::parse(&case).unwrap();
            assert_eq!(code.to_string(), case);
            let qr = code.to_qr_text();
            assert_eq!(qr, format!("LPA:{case}"));
            assert_eq!(ActivationCode::parse(&qr).unwrap(), code);
        }
    }

    #[test]
    fn fields_are_read() {
        let c = ActivationCode::parse(
            "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815$1.3.6.1.4.1.31746$1",
        )
        .unwrap();
        assert_eq!(c.smdp_address().as_str(), "SMDP.GSMA.COM");
        assert_eq!(c.matching_id(), Some("04386-AGYFT-A74Y8-3F815"));
        assert_eq!(c.smdp_oid(), Some("1.3.6.1.4.1.31746"));
        assert!(c.confirmation_code_required());

        let c = ActivationCode::parse("1$SMDP.GSMA.COM$$1.3.6.1.4.1.31746").unwrap();
        assert_eq!(c.matching_id(), None);
        let c = ActivationCode::parse("  lpa:1$smdp.example.com:8443$ABC  ").unwrap();
        assert_eq!(c.smdp_address().as_str(), "smdp.example.com:8443");
        let c = ActivationCode::parse("1$[::1]:8443$X").unwrap();
        assert_eq!(c.smdp_address().as_str(), "[::1]:8443");
        let c = ActivationCode::parse("1$127.0.0.1$X").unwrap();
        assert_eq!(c.to_string(), "1$127.0.0.1$X");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        use ActivationCodeError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == E::Empty),
            ("LPA:", |e| *e == E::Empty),
            ("2$A$B", |e| matches!(e, E::UnsupportedFormat(_))),
            ("1", |e| matches!(e, E::MissingField(_))),
            ("1$smdp.example.com", |e| matches!(e, E::MissingField(_))),
            ("1$$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$bad host$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$host:0$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$host:99999$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$host:$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$[::1$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$[zz]$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$-a.com$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$a..com$X", |e| matches!(e, E::InvalidAddress { .. })),
            ("1$a.com$mid with space", |e| {
                matches!(e, E::InvalidMatchingId(_))
            }),
            ("1$a.com$mïd", |e| matches!(e, E::InvalidMatchingId(_))),
            ("1$a.com$X$1.2.x", |e| matches!(e, E::InvalidOid(_))),
            ("1$a.com$X$7.2", |e| matches!(e, E::InvalidOid(_))),
            ("1$a.com$X$1.02", |e| matches!(e, E::InvalidOid(_))),
            ("1$a.com$X$1", |e| matches!(e, E::InvalidOid(_))),
            ("1$a.com$X$1.2$0", |e| {
                matches!(e, E::InvalidConfirmationFlag(_))
            }),
            ("1$a.com$X$1.2$yes", |e| {
                matches!(e, E::InvalidConfirmationFlag(_))
            }),
            ("1$a.com$X$1.2$1$extra", |e| {
                matches!(e, E::TooManyFields(6))
            }),
        ];
        for (text, check) in cases {
            let e = ActivationCode::parse(text).unwrap_err();
            assert!(check(&e), "{text:?} gave {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn builder_validates() {
        let a = SmdpAddress::new("smdp.example.com").unwrap();
        assert!(ActivationCode::new(a.clone(), Some("a$b")).is_err());
        let c = ActivationCode::new(a, Some("ABC"))
            .unwrap()
            .with_confirmation_code_required(true);
        assert_eq!(c.to_string(), "1$smdp.example.com$ABC$$1");
        assert!(c.clone().with_smdp_oid("x").is_err());
        assert_eq!(
            c.with_smdp_oid("2.999.10").unwrap().to_string(),
            "1$smdp.example.com$ABC$2.999.10$1"
        );
    }

    fn address() -> impl Strategy<Value = String> {
        (
            prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", 1..4),
            prop::option::of(1u32..=65_535),
        )
            .prop_map(|(labels, port)| {
                let host = labels.join(".");
                match port {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                }
            })
    }

    fn oid() -> impl Strategy<Value = String> {
        (0u32..3, prop::collection::vec(0u64..100_000, 1..8)).prop_map(|(first, rest)| {
            let mut s = first.to_string();
            for arc in rest {
                s.push('.');
                s.push_str(&arc.to_string());
            }
            s
        })
    }

    proptest! {
        #[test]
        fn built_codes_round_trip(
            addr in address(),
            mid in prop::option::of("[!-#%-~]{1,40}"),
            oid in prop::option::of(oid()),
            cc in any::<bool>(),
        ) {
            let mut code = ActivationCode::new(SmdpAddress::new(&addr).unwrap(), mid.as_deref())
                .unwrap()
                .with_confirmation_code_required(cc);
            if let Some(o) = &oid {
                code = code.with_smdp_oid(o).unwrap();
            }
            let text = code.to_string();
            let back = ActivationCode::parse(&text).unwrap();
            prop_assert_eq!(&back, &code);
            prop_assert_eq!(back.to_string(), text);
            prop_assert_eq!(ActivationCode::parse(&code.to_qr_text()).unwrap(), code);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            if let Ok(code) = ActivationCode::parse(&text) {
                // Whatever parses is stable when written and read again.
                let again = ActivationCode::parse(&code.to_string()).unwrap();
                prop_assert_eq!(again, code);
            }
        }

        #[test]
        fn parse_never_panics_on_dollar_soup(text in "[1$a-z.:\\[\\]0-9]{0,40}") {
            let _ = ActivationCode::parse(&text);
        }
    }
}
