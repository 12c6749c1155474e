//! The fleet API's JSON: requests (unknown fields refused) and answers.
//!
//! EIDs and ICCIDs are typed ([`Eid`], [`Iccid`]): they travel as their
//! digits, as before, and a request carrying one that is not valid is
//! refused with `400` naming the field and what is wrong with it.

use ferrosim_ids::{Eid, Iccid};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/fleet/devices` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Start after this EID.
    #[param(value_type = Option<String>)]
    pub after: Option<Eid>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// `GET /api/v1/fleet/decisions` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DecisionsQuery {
    /// Only about this device (EID).
    #[param(value_type = Option<String>)]
    pub device: Option<Eid>,
    /// Only about this rollout.
    pub rollout: Option<u32>,
    /// Only with a sequence number above this.
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// A profile on a device as the fleet last observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileView {
    /// ICCID.
    #[schema(value_type = String)]
    pub iccid: Iccid,
    /// `carrier/profile-type@version`, when it is one of the catalog's.
    pub profile_type: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// Carries the fallback attribute.
    pub fallback_attribute: bool,
    /// The eUICC refused the fallback attribute on it
    /// (`fallbackNotAllowed`: its metadata lacks SGP.32's
    /// `fallbackAllowed`); the fleet no longer asks for it.
    #[serde(default)]
    pub fallback_refused: bool,
    /// Registered and passed a data-path check.
    pub works: bool,
    /// Revoked by its operator: being replaced and deleted.
    #[serde(default)]
    pub revoked: bool,
}

/// A device: what it is, what it should have, what it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// EID.
    #[schema(value_type = String)]
    pub eid: Eid,
    /// Group.
    pub group: String,
    /// Region.
    pub region: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Vendor, model, firmware.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// `primary` or `fallback`: which profile it should be using.
    pub mode: String,
    /// Desired primary profile type.
    pub desired_primary: String,
    /// Desired staged fallback.
    pub desired_fallback: Option<String>,
    /// Desired spare on a third carrier (after a failover).
    pub desired_spare: Option<String>,
    /// Profiles observed.
    pub profiles: Vec<ProfileView>,
    /// The action in flight, if any (`a<id>`).
    pub in_flight: Option<String>,
    /// Whether observed state matches desired.
    pub converged: bool,
    /// Switches in the last hour.
    pub switches_last_hour: u8,
    /// The rollout that touched it, if any.
    pub rollout: Option<u32>,
    /// The failover rule in force (its group's, or one a rule rollout
    /// gave it).
    #[serde(default)]
    pub rule: String,
    /// What the device can do, as its decisions use it.
    #[serde(default)]
    pub capabilities: Option<CapabilitiesView>,
    /// The network (MCC-MNC) of its last accepted registration, when its
    /// reports named one.
    #[serde(default)]
    pub registered_plmn: Option<String>,
    /// Registered on a network that is not its profile's carrier's
    /// (roaming): such registrations do not count as that carrier's
    /// health, and a rule's `roaming` trigger counts from the first.
    #[serde(default)]
    pub roaming: bool,
    /// The access point name last delivered to the device's agent and
    /// acknowledged (`agent.apnConfig`), for the profile type it was
    /// delivered for; `None` before any.
    #[serde(default)]
    pub apn: Option<String>,
}

/// A device's capabilities and where they come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapabilitiesView {
    /// `ipa` (read through the device's IPA: EUICCInfo2, IpaCapabilities;
    /// they replaced the registered ones), `registered` (as given when the
    /// device was registered, or the defaults when the IPA could not
    /// tell), or `pending` (being read; the registration gave none).
    pub source: String,
    /// Highest SGP.32 version of the eUICC (`1.2.0`).
    pub sgp32_version: String,
    /// The eUICC has the Fallback Mechanism.
    pub fallback_supported: bool,
    /// The IPA honours the enable's rollback flag.
    pub rollback_supported: bool,
    /// `ipaFeatures` bits set (bit 0 first).
    pub ipa_features: Vec<u8>,
    /// `ipaSupportedProtocols` bits set.
    pub ipa_protocols: Vec<u8>,
}

/// A page of devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    /// The devices, by EID.
    pub devices: Vec<DeviceView>,
    /// Pass as `after` for the next page.
    #[schema(value_type = Option<String>)]
    pub next_after: Option<Eid>,
}

/// A rollout and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    /// Id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// `awaiting_approval`, `running`, `paused`, `completed`, `halted`,
    /// `aborted`...
    pub state: String,
    /// Current wave (0-based).
    pub wave: Option<u8>,
    /// Cumulative percentages per wave.
    pub waves: Vec<u8>,
    /// Devices selected and fit.
    pub eligible: u64,
    /// Devices skipped by compatibility filters.
    pub skipped: u64,
    /// Devices per wave so far.
    pub wave_sizes: Vec<usize>,
    /// Gate reports so far (measurements, checks and verdicts).
    #[schema(value_type = Vec<Object>)]
    pub gates: Vec<serde_json::Value>,
    /// The definition.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// Created (ms since the Unix epoch).
    pub created_ms: i64,
}

/// Decision records, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionList {
    /// Each with `seq`, `at`, `device`, `rollout`, `what` and `reason`.
    #[schema(value_type = Vec<Object>)]
    pub decisions: Vec<serde_json::Value>,
}

/// A batch of device reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    /// Reports: `{"device": EID, "kind": {"type": "registration", "outcome":
    /// {"result": "registered"|"rejected"|"no_response", "cause"?}, "plmn"?},
    /// {"type": "data_path", "latency_ms", "loss_permille"}, {"type":
    /// "handover_failure", "cause"}, {"type": "profile_switch", "enabled":
    /// ICCID, "cause": "fallback_executed"|"returned_from_fallback"|
    /// "rolled_back"|"other"}}`. At most 10 000.
    #[schema(value_type = Vec<Object>)]
    pub reports: Vec<ferrosim_fleet::DeviceReport>,
}

/// What an ingest took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// Inputs taken.
    pub accepted: usize,
    /// Inputs ignored (a carrier event that maps to no report).
    pub ignored: usize,
}

/// A carrier's connectivity event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarrierEvent {
    /// The subscription (ICCID) it concerns; or `eid`.
    #[schema(value_type = Option<String>)]
    pub iccid: Option<Iccid>,
    /// The device (EID), when the carrier knows it.
    #[schema(value_type = Option<String>)]
    pub eid: Option<Eid>,
    /// `attach_accepted`, `attach_rejected`, `data_session_start`,
    /// `data_session_end`.
    pub event: String,
    /// Reject cause (attach_rejected).
    pub cause: Option<u16>,
    /// Network (`310-410`).
    pub plmn: Option<String>,
    /// A data session that ended abnormally (no data path).
    #[serde(default)]
    pub abnormal: bool,
}

/// A batch of carrier events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarrierEvents {
    /// The events (at most 10 000).
    pub events: Vec<CarrierEvent>,
}

/// Declares a carrier outage, or declares it over.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageRequest {
    /// The carrier.
    pub carrier: String,
    /// A region (none: everywhere).
    pub region: Option<String>,
    /// `true` declares the outage, `false` ends it.
    pub declared: bool,
}

/// A command for a device agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentCommand {
    /// The action id to answer with.
    pub action: String,
    /// `agent.apnConfig`, `agent.executeFallbackMechanism`,
    /// `agent.returnFromFallback`.
    pub command: String,
    /// The profile concerned.
    #[schema(value_type = String)]
    pub iccid: Iccid,
    /// The APN settings (apnConfig).
    #[schema(value_type = Option<Object>)]
    pub apn: Option<serde_json::Value>,
}

/// Commands waiting for a device agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentCommands {
    /// Oldest first.
    pub commands: Vec<AgentCommand>,
}

/// A device agent's result for one command.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentResult {
    /// The command's action id (`a<id>`).
    pub action: String,
    /// `true` if it was carried out.
    pub ok: bool,
    /// For a failure: the device could not (`not_found`, `wrong_state`,
    /// `not_allowed`) or may retry (`unreachable`).
    pub error: Option<String>,
}

/// `POST /api/v1/fleet/devices/{eid}/profiles/{iccid}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why (kept with the revocation at the SM-DP+).
    #[serde(default)]
    pub reason: Option<String>,
    /// `retire` or `quarantine`; the operator's policy at its SM-DP+ when
    /// absent.
    #[serde(default)]
    pub reuse_policy: Option<String>,
    /// The quarantine period in seconds (with `quarantine`).
    #[serde(default)]
    pub quarantine_seconds: Option<i64>,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevokeView {
    /// The device.
    #[schema(value_type = String)]
    pub eid: Eid,
    /// The revoked profile.
    #[schema(value_type = String)]
    pub iccid: Iccid,
    /// Its carrier.
    pub carrier: String,
    /// Its profile type (`carrier/profile-type@version`).
    pub profile_type: String,
    /// The ICCID's state at the carrier's SM-DP+ (`awaiting-device-delete`
    /// until the device's delete notification arrives).
    pub end_of_life_state: String,
    /// The reuse policy the SM-DP+ applied.
    pub reuse_policy: String,
    /// Its quarantine period in seconds.
    pub quarantine_seconds: i64,
    /// What the fleet does now.
    pub replacement: String,
}

/// A carrier, group or rule with its version (send it back as `If-Match`
/// to change or delete the item).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogItem {
    /// The item's version.
    pub version: String,
    /// The item (as in the fleet configuration, in JSON).
    #[schema(value_type = Object)]
    pub item: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use axum::extract::Query;
    use axum::http::Uri;
    use serde_json::json;

    use super::*;

    const EID: &str = "89049032123451234512345678901235";
    const ICCID: &str = "8944000000000000001";

    #[test]
    fn typed_ids_travel_as_their_digits() {
        let view = AgentCommand {
            action: "a1".into(),
            command: "agent.returnFromFallback".into(),
            iccid: Iccid::new(ICCID).unwrap(),
            apn: None,
        };
        assert_eq!(serde_json::to_value(&view).unwrap()["iccid"], json!(ICCID));
        let list = DeviceList {
            devices: Vec::new(),
            next_after: Some(EID.parse().unwrap()),
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"devices": [], "next_after": EID})
        );
        let events: CarrierEvents = serde_json::from_value(json!({"events": [
            {"eid": EID, "event": "attach_accepted"},
            {"iccid": ICCID, "event": "data_session_start"},
        ]}))
        .unwrap();
        assert_eq!(events.events[0].eid.unwrap().to_string(), EID);
        assert_eq!(events.events[1].iccid.as_ref().unwrap().as_str(), ICCID);
    }

    #[test]
    fn bad_ids_in_bodies_are_refused_naming_the_field() {
        for (event, field) in [
            (json!({"eid": "123", "event": "attach_accepted"}), "eid"),
            (json!({"eid": 5, "event": "attach_accepted"}), "eid"),
            (
                json!({"eid": "89049032123451234512345678901234", "event": "attach_accepted"}),
                "eid",
            ),
            (json!({"iccid": "89", "event": "attach_accepted"}), "iccid"),
            (
                json!({"iccid": "8944000000000000002", "event": "attach_accepted"}),
                "iccid",
            ),
            (
                json!({"iccid": "89/../x\u{0}", "event": "attach_accepted"}),
                "iccid",
            ),
        ] {
            let body = json!({"events": [{"event": "data_session_start", "eid": EID}, event]});
            let text = body.to_string();
            let mut de = serde_json::Deserializer::from_str(&text);
            let e = serde_path_to_error::deserialize::<_, CarrierEvents>(&mut de).unwrap_err();
            assert_eq!(e.path().to_string(), format!("events[1].{field}"), "{e}");
        }
    }

    #[test]
    fn bad_ids_in_queries_are_refused() {
        let uri = |q: &str| format!("http://h/x?{q}").parse::<Uri>().unwrap();
        let page = Query::<PageQuery>::try_from_uri(&uri(&format!("after={EID}&limit=5"))).unwrap();
        assert_eq!(page.0.after.unwrap().to_string(), EID);
        let decisions =
            Query::<DecisionsQuery>::try_from_uri(&uri(&format!("device={EID}"))).unwrap();
        assert_eq!(decisions.0.device.unwrap().to_string(), EID);
        for q in ["after=12", "after=", "after=%00", &format!("after={EID}0")] {
            assert!(Query::<PageQuery>::try_from_uri(&uri(q)).is_err(), "{q}");
        }
        for q in ["device=x", "device=89049032123451234512345678901234"] {
            assert!(
                Query::<DecisionsQuery>::try_from_uri(&uri(q)).is_err(),
                "{q}"
            );
        }
    }
}
