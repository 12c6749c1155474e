//! `ferrosim ipa memory-reset`: the device side of a sanitized hand-over.
//! The IPA sends the eUICC SGP.32's ES10b EuiccMemoryReset (`BF64`) with the
//! chosen reset options and reports the eUICC's answer for each part
//! (profiles and default SM-DP+ address, eIM configuration, immediate-enable
//! configuration) as JSON: what was wiped, what there was nothing of.

use anyhow::{Context, bail};
use clap::ValueEnum;
use ferrosim_asn1::rasn::types::{BitString, Integer};
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use serde_json::{Value, json};

/// One SGP.32 ResetOptions bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResetOption {
    /// deleteOperationalProfiles (bit 0).
    OperationalProfiles,
    /// deleteFieldLoadedTestProfiles (bit 1).
    TestProfiles,
    /// resetDefaultSmdpAddress (bit 2).
    DefaultSmdpAddress,
    /// deleteProvisioningProfiles (bit 4).
    ProvisioningProfiles,
    /// resetEimConfigData (bit 5): every eIM the eUICC knows is forgotten.
    EimConfig,
    /// resetImmediateEnableConfig (bit 6).
    ImmediateEnableConfig,
}

impl ResetOption {
    fn bit(self) -> usize {
        match self {
            Self::OperationalProfiles => 0,
            Self::TestProfiles => 1,
            Self::DefaultSmdpAddress => 2,
            Self::ProvisioningProfiles => 4,
            Self::EimConfig => 5,
            Self::ImmediateEnableConfig => 6,
        }
    }
}

/// The EuiccMemoryResetRequest (`BF64`) for `options` (at least one).
pub fn request(options: &[ResetOption]) -> anyhow::Result<Vec<u8>> {
    if options.is_empty() {
        bail!("--reset needs at least one option");
    }
    let mut bits = BitString::repeat(false, 7);
    for o in options {
        bits.set(o.bit(), true);
    }
    encode_der(&sgp32::EuiccMemoryResetRequest::new(bits)).context("encoding EuiccMemoryReset")
}

/// The eUICC's EuiccMemoryResetResponse as a report; a refusal of the
/// profile part (anything but ok / nothing to delete) is an error.
pub fn report(options: &[ResetOption], answer: &[u8]) -> anyhow::Result<Value> {
    let answer: sgp32::EuiccMemoryResetResponse =
        decode_der(answer).context("the eUICC's EuiccMemoryReset answer")?;
    let profiles = named(&answer.reset_result, &["ok", "nothing-to-delete"]);
    let asked = |o: ResetOption| options.contains(&o);
    let part = |asked: bool, code: Option<&Integer>, names: &[&str]| -> Value {
        match (asked, code) {
            (false, _) => Value::Null,
            (true, Some(c)) => named(c, names),
            (true, None) => json!("not answered"),
        }
    };
    let report = json!({
        "options": options
            .iter()
            .filter_map(|o| o.to_possible_value().map(|v| v.get_name().to_owned()))
            .collect::<Vec<_>>(),
        "profiles_and_address": profiles,
        "eim_config": part(asked(ResetOption::EimConfig), answer.reset_eim_result.as_ref(),
            &["ok", "nothing-to-reset"]),
        "immediate_enable_config": part(asked(ResetOption::ImmediateEnableConfig),
            answer.reset_immediate_enable_config_result.as_ref(), &["ok", "not-supported"]),
    });
    if !matches!(
        report["profiles_and_address"].as_str(),
        Some("ok" | "nothing-to-delete")
    ) {
        bail!("the eUICC refused the memory reset: {report}");
    }
    Ok(report)
}

/// `names[code]`, or `error <code>` (127 is undefinedError).
fn named(code: &Integer, names: &[&str]) -> Value {
    let n = usize::try_from(code).ok();
    match n.and_then(|i| names.get(i)) {
        Some(name) => json!(name),
        None => json!(format!("error {code}")),
    }
}
