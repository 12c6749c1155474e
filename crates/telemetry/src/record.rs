//! The portable form of an event: JSON with names instead of symbols, one
//! event per line in files (`ferrosim report sla --events FILE`), and the row
//! shape SQL stores will persist.
//!
//! ```json
//! {"at":1795478400000,"activation":42,"device":"89049032123451234512345678901235",
//!  "source":"smdp","carrier":"acme","smdp":"dp1",
//!  "event":{"type":"step","function":"es9plus.getBoundProfilePackage","status":"ok",
//!           "duration_ms":180,"signalling_bytes":900,"bpp_bytes":24000}}
//! ```
//!
//! Decoding validates every field and names the one that is wrong; a file's
//! line that fails is reported with its number and skipped by nobody.

use std::io::{BufRead, Write};

use ferrosim_ids::Eid;
use serde::{Deserialize, Serialize};

use crate::dims::{Dictionary, DimError, Dims, Sym};
use crate::event::{
    ActivationKind, CorrelationId, EuiccOutcome, EuiccStage, Event, EventKind, Function,
    ProfileChange, ProfileKey, RegistrationOutcome, Source, StepStatus,
};
use crate::time::Timestamp;

/// Why a record is not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of the record's shape.
    #[error("malformed record: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has a value outside its domain.
    #[error("invalid {field}: {value:?}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What was given (cut to 64 characters).
        value: String,
    },
    /// A field needed by this kind of event is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A dimension value was refused by the dictionary.
    #[error("dimension {field}: {source}")]
    Dimension {
        /// The dimension.
        field: &'static str,
        /// Why.
        source: DimError,
    },
    /// A line of a JSON-lines file is wrong.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: Box<RecordError>,
    },
    /// Reading or writing the file failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

fn invalid(field: &'static str, value: &str) -> RecordError {
    RecordError::Invalid {
        field,
        value: value.chars().take(64).collect(),
    }
}

/// An event with names instead of symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Correlation id of the activation (absent outside activations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<u64>,
    /// EID, 32 digits.
    pub device: String,
    /// `smdp`, `eim`, `fleet` or `device`.
    pub source: String,
    /// Carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// SM-DP+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smdp: Option<String>,
    /// Device vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Device model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Fleet group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// Rollout wave (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u16>,
    /// What happened.
    pub event: KindRecord,
}

/// [`EventKind`] with text values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)] // each field documents the EventKind field of the same name
pub enum KindRecord {
    ActivationStarted {
        /// `order_download`, `eim_download`, `failover` or `rollout_step`.
        kind: String,
        #[serde(default)]
        iot: bool,
    },
    Step {
        /// `es9plus.getBoundProfilePackage`.
        function: String,
        /// `ok`, `unreachable` or `subject/reason` (`8.2.6/3.8`).
        status: String,
        duration_ms: u32,
        #[serde(default)]
        signalling_bytes: u32,
        #[serde(default)]
        bpp_bytes: u32,
    },
    Euicc {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// `installed` or `failed`.
        outcome: String,
        /// For failures: `authenticate_server`, `prepare_download`,
        /// `load_bound_profile_package`, `profile_management`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bpp_command_id: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<u8>,
    },
    Profile {
        profile: String,
        /// `enabled`, `disabled` or `deleted`.
        change: String,
    },
    Registration {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// `registered`, `rejected` or `no_response`.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<u16>,
    },
    DataPath {
        latency_ms: u32,
        #[serde(default)]
        loss_permille: u16,
    },
    HandoverFailure {
        cause: u16,
    },
}

const SOURCES: [(Source, &str); 4] = [
    (Source::Smdp, "smdp"),
    (Source::Eim, "eim"),
    (Source::Fleet, "fleet"),
    (Source::Device, "device"),
];
const KINDS: [(ActivationKind, &str); 4] = [
    (ActivationKind::OrderDownload, "order_download"),
    (ActivationKind::EimDownload, "eim_download"),
    (ActivationKind::Failover, "failover"),
    (ActivationKind::RolloutStep, "rollout_step"),
];
const CHANGES: [(ProfileChange, &str); 3] = [
    (ProfileChange::Enabled, "enabled"),
    (ProfileChange::Disabled, "disabled"),
    (ProfileChange::Deleted, "deleted"),
];

fn lookup<T: Copy + PartialEq>(table: &[(T, &'static str)], s: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == s).map(|(v, _)| *v)
}

fn name_of<T: Copy + PartialEq>(table: &[(T, &'static str)], v: T) -> &'static str {
    table.iter().find(|(t, _)| *t == v).map_or("?", |(_, n)| n)
}

impl Source {
    /// `smdp`, `eim`, `fleet` or `device`.
    pub fn as_str(self) -> &'static str {
        name_of(&SOURCES, self)
    }
}

impl ActivationKind {
    /// `order_download`, `eim_download`, `failover` or `rollout_step`.
    pub fn as_str(self) -> &'static str {
        name_of(&KINDS, self)
    }
}

impl EventRecord {
    /// Parses one JSON record and converts it.
    pub fn parse_event(json: &str, dict: &Dictionary) -> Result<Event, RecordError> {
        serde_json::from_str::<EventRecord>(json)?.to_event(dict)
    }

    /// Validates the record and interns its dimensions in `dict`.
    pub fn to_event(&self, dict: &Dictionary) -> Result<Event, RecordError> {
        let device: Eid = self
            .device
            .parse()
            .map_err(|_| invalid("device", &self.device))?;
        let activation = match self.activation {
            None => None,
            Some(n) => Some(CorrelationId::new(n).ok_or(invalid("activation", "0"))?),
        };
        let source = lookup(&SOURCES, &self.source).ok_or(invalid("source", &self.source))?;
        let sym = |field: &'static str, v: &Option<String>| -> Result<Option<Sym>, RecordError> {
            v.as_deref()
                .map(|name| {
                    dict.intern(name)
                        .map_err(|source| RecordError::Dimension { field, source })
                })
                .transpose()
        };
        if self.wave == Some(0) {
            return Err(invalid("wave", "0"));
        }
        let dims = Dims {
            carrier: sym("carrier", &self.carrier)?,
            smdp: sym("smdp", &self.smdp)?,
            vendor: sym("vendor", &self.vendor)?,
            model: sym("model", &self.model)?,
            firmware: sym("firmware", &self.firmware)?,
            group: sym("group", &self.group)?,
            rollout: sym("rollout", &self.rollout)?,
            wave: self.wave,
        };
        Ok(Event {
            at: Timestamp(self.at),
            activation,
            device,
            source,
            dims,
            kind: self.event.to_kind()?,
        })
    }

    /// The record of `event`, with names from `dict`.
    pub fn from_event(event: &Event, dict: &Dictionary) -> Self {
        let name = |s: Option<Sym>| dict.name_of(s).map(|n| n.to_string());
        let d = &event.dims;
        Self {
            at: event.at.millis(),
            activation: event.activation.map(CorrelationId::get),
            device: event.device.to_string(),
            source: event.source.as_str().to_owned(),
            carrier: name(d.carrier),
            smdp: name(d.smdp),
            vendor: name(d.vendor),
            model: name(d.model),
            firmware: name(d.firmware),
            group: name(d.group),
            rollout: name(d.rollout),
            wave: d.wave,
            event: KindRecord::from_kind(&event.kind),
        }
    }
}

fn profile(field: &'static str, s: &str) -> Result<ProfileKey, RecordError> {
    ProfileKey::from_digits(s).ok_or_else(|| invalid(field, s))
}

impl KindRecord {
    fn to_kind(&self) -> Result<EventKind, RecordError> {
        Ok(match self {
            Self::ActivationStarted { kind, iot } => EventKind::ActivationStarted {
                kind: lookup(&KINDS, kind).ok_or_else(|| invalid("kind", kind))?,
                iot: *iot,
            },
            Self::Step {
                function,
                status,
                duration_ms,
                signalling_bytes,
                bpp_bytes,
            } => EventKind::Step {
                function: function
                    .parse::<Function>()
                    .map_err(|_| invalid("function", function))?,
                status: match status.as_str() {
                    "ok" => StepStatus::Ok,
                    "unreachable" => StepStatus::Unreachable,
                    code => StepStatus::Failed(code.parse().map_err(|_| invalid("status", code))?),
                },
                duration_ms: *duration_ms,
                signalling_bytes: *signalling_bytes,
                bpp_bytes: *bpp_bytes,
            },
            Self::Euicc {
                profile: p,
                outcome,
                stage,
                bpp_command_id,
                reason,
            } => EventKind::Euicc {
                profile: p.as_deref().map(|p| profile("profile", p)).transpose()?,
                outcome: match outcome.as_str() {
                    "installed" => EuiccOutcome::Installed,
                    "failed" => EuiccOutcome::Failed {
                        stage: parse_stage(stage.as_deref(), *bpp_command_id)?,
                        reason: reason.ok_or(RecordError::Missing("reason"))?,
                    },
                    other => return Err(invalid("outcome", other)),
                },
            },
            Self::Profile { profile: p, change } => EventKind::Profile {
                profile: profile("profile", p)?,
                change: lookup(&CHANGES, change).ok_or_else(|| invalid("change", change))?,
            },
            Self::Registration {
                profile: p,
                outcome,
                cause,
            } => EventKind::Registration {
                profile: p.as_deref().map(|p| profile("profile", p)).transpose()?,
                outcome: match outcome.as_str() {
                    "registered" => RegistrationOutcome::Registered,
                    "no_response" => RegistrationOutcome::NoResponse,
                    "rejected" => RegistrationOutcome::Rejected {
                        cause: cause.ok_or(RecordError::Missing("cause"))?,
                    },
                    other => return Err(invalid("outcome", other)),
                },
            },
            Self::DataPath {
                latency_ms,
                loss_permille,
            } => {
                if *loss_permille > 1000 {
                    return Err(invalid("loss_permille", &loss_permille.to_string()));
                }
                EventKind::DataPath {
                    latency_ms: *latency_ms,
                    loss_permille: *loss_permille,
                }
            }
            Self::HandoverFailure { cause } => EventKind::HandoverFailure { cause: *cause },
        })
    }

    fn from_kind(kind: &EventKind) -> Self {
        match *kind {
            EventKind::ActivationStarted { kind, iot } => Self::ActivationStarted {
                kind: kind.as_str().to_owned(),
                iot,
            },
            EventKind::Step {
                function,
                status,
                duration_ms,
                signalling_bytes,
                bpp_bytes,
            } => Self::Step {
                function: function.to_string(),
                status: match status {
                    StepStatus::Ok => "ok".to_owned(),
                    StepStatus::Unreachable => "unreachable".to_owned(),
                    StepStatus::Failed(code) => code.to_string(),
                },
                duration_ms,
                signalling_bytes,
                bpp_bytes,
            },
            EventKind::Euicc { profile, outcome } => {
                let (outcome, stage, bpp, reason) = match outcome {
                    EuiccOutcome::Installed => ("installed", None, None, None),
                    EuiccOutcome::Failed { stage, reason } => {
                        let (name, bpp) = stage_name(stage);
                        ("failed", Some(name.to_owned()), bpp, Some(reason))
                    }
                };
                Self::Euicc {
                    profile: profile.map(|p| p.to_string()),
                    outcome: outcome.to_owned(),
                    stage,
                    bpp_command_id: bpp,
                    reason,
                }
            }
            EventKind::Profile { profile, change } => Self::Profile {
                profile: profile.to_string(),
                change: name_of(&CHANGES, change).to_owned(),
            },
            EventKind::Registration { profile, outcome } => {
                let (outcome, cause) = match outcome {
                    RegistrationOutcome::Registered => ("registered", None),
                    RegistrationOutcome::NoResponse => ("no_response", None),
                    RegistrationOutcome::Rejected { cause } => ("rejected", Some(cause)),
                };
                Self::Registration {
                    profile: profile.map(|p| p.to_string()),
                    outcome: outcome.to_owned(),
                    cause,
                }
            }
            EventKind::DataPath {
                latency_ms,
                loss_permille,
            } => Self::DataPath {
                latency_ms,
                loss_permille,
            },
            EventKind::HandoverFailure { cause } => Self::HandoverFailure { cause },
        }
    }
}

fn parse_stage(stage: Option<&str>, bpp: Option<u8>) -> Result<EuiccStage, RecordError> {
    Ok(match stage.ok_or(RecordError::Missing("stage"))? {
        "authenticate_server" => EuiccStage::AuthenticateServer,
        "prepare_download" => EuiccStage::PrepareDownload,
        "profile_management" => EuiccStage::ProfileManagement,
        "load_bound_profile_package" => {
            let id = bpp.ok_or(RecordError::Missing("bpp_command_id"))?;
            if id > 3 {
                return Err(invalid("bpp_command_id", &id.to_string()));
            }
            EuiccStage::LoadBoundProfilePackage { bpp_command_id: id }
        }
        other => return Err(invalid("stage", other)),
    })
}

/// The name of a stage and, for BPP loading, its command id.
pub(crate) fn stage_name(stage: EuiccStage) -> (&'static str, Option<u8>) {
    match stage {
        EuiccStage::AuthenticateServer => ("authenticate_server", None),
        EuiccStage::PrepareDownload => ("prepare_download", None),
        EuiccStage::ProfileManagement => ("profile_management", None),
        EuiccStage::LoadBoundProfilePackage { bpp_command_id } => {
            ("load_bound_profile_package", Some(bpp_command_id))
        }
    }
}

/// Longest line accepted in a JSON-lines file.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Reads a JSON-lines event file (blank lines allowed), interning dimensions
/// in `dict`. Stops at the first bad line and says which.
pub fn read_jsonl(mut reader: impl BufRead, dict: &Dictionary) -> Result<Vec<Event>, RecordError> {
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        line += 1;
        let n = std::io::Read::take(reader.by_ref(), MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(events);
        }
        let wrap = |e: RecordError| RecordError::Line {
            line,
            source: Box::new(e),
        };
        if buf.len() > MAX_LINE_BYTES {
            return Err(wrap(invalid(
                "line length",
                &format!("> {MAX_LINE_BYTES} bytes"),
            )));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| wrap(invalid("encoding", "not UTF-8")))?;
        if text.trim().is_empty() {
            continue;
        }
        events.push(EventRecord::parse_event(text, dict).map_err(wrap)?);
    }
}

/// Writes events as JSON lines.
pub fn write_jsonl<'a>(
    mut out: impl Write,
    events: impl IntoIterator<Item = &'a Event>,
    dict: &Dictionary,
) -> Result<(), RecordError> {
    for event in events {
        serde_json::to_writer(&mut out, &EventRecord::from_event(event, dict))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
