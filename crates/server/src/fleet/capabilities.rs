//! A device's capabilities as its IPA reported them to the eIM
//! (IpaEuiccData: EUICCInfo2 `iotSpecificInfo`, IpaCapabilities), in the
//! fleet's terms, and the sweep that hands the fleet the ones an IPA
//! reports later (to a data request someone else queued, after a firmware
//! update).

use ferrosim_asn1::codec::decode_der;
use ferrosim_asn1::generated::sgp32;
use ferrosim_eim::EimStore;
use ferrosim_eim::record::EuiccData;
use ferrosim_fleet::device::{Capabilities, Version};
use ferrosim_fleet::store::FleetStore;
use tracing::{info, warn};

use super::FleetDriver;

/// Devices whose eIM record one round of the sweep reads.
const SWEEP_PAGE: usize = 128;
/// Least real time between two rounds of the sweep.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl<F: FleetStore, E: EimStore> FleetDriver<F, E> {
    /// One round of the capabilities sweep: reads the eIM records of the
    /// next [`SWEEP_PAGE`] devices of the fleet (going round), and hands
    /// the fleet the capabilities of each whose IpaEuiccData was reported
    /// since the sweep last saw it. The fleet replaces the ones it uses
    /// when they differ (logged as a `capabilities` decision) and uses them
    /// from then on: rollout compatibility filters, the fallback attribute,
    /// device-local switching. A record without readable EUICCInfo2 is
    /// passed over. After a restart the first round of each device hands
    /// over what the eIM holds; unchanged capabilities change nothing.
    pub(super) async fn sweep_capabilities(&self) {
        let Some(eim) = &self.inner.eim else {
            return;
        };
        let page: Vec<ferrosim_ids::Eid> = {
            let mut st = self.inner.state.lock().await;
            let n = st.fleet.len();
            if n == 0 || st.caps_swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return;
            }
            st.caps_swept = Some(std::time::Instant::now());
            if st.caps_cursor >= n {
                st.caps_cursor = 0;
            }
            let from = st.caps_cursor;
            let page: Vec<_> = st
                .fleet
                .devices()
                .skip(from)
                .take(SWEEP_PAGE)
                .map(|d| d.eid)
                .collect();
            st.caps_cursor = from + page.len();
            page
        };
        let mut fresh = Vec::new();
        for eid in page {
            let Ok(record) = eim.device(&eid).await else {
                continue; // not associated with this eIM (yet)
            };
            let Some(at) = record.euicc.reported_at else {
                continue;
            };
            {
                let st = self.inner.state.lock().await;
                if st.caps_seen.get(&eid) == Some(&at) {
                    continue;
                }
            }
            if let Some(caps) = read(&record.euicc) {
                fresh.push((eid, at, caps));
            } else {
                self.inner.state.lock().await.caps_seen.insert(eid, at);
            }
        }
        if fresh.is_empty() {
            return;
        }
        let outcome = self
            .transact(|tx| {
                let mut changed = Vec::new();
                for (eid, _, caps) in &fresh {
                    // A device removed meanwhile is passed over.
                    if let Ok(true) = tx.fleet.refresh_capabilities(eid, caps, tx.now) {
                        changed.push(*eid);
                    }
                }
                Ok(changed)
            })
            .await;
        match outcome {
            Ok(changed) => {
                for eid in &changed {
                    info!(eid = %eid, "fleet: capabilities reported by the IPA taken");
                }
                let mut st = self.inner.state.lock().await;
                for (eid, at, _) in fresh {
                    st.caps_seen.insert(eid, at);
                }
            }
            // Read again in the next round that reaches them.
            Err(e) => warn!(error = %e, "fleet: capabilities not taken"),
        }
    }
}

/// The capabilities in `data`, or `None` when it holds no readable
/// EUICCInfo2 with an SGP.32 version (IpaCapabilities alone do not say
/// what the eUICC can do). Rollback support is not reported by the IPA:
/// it is left `true` (the fleet keeps the registered value).
pub(super) fn read(data: &EuiccData) -> Option<Capabilities> {
    let info2: sgp32::EUICCInfo2 = decode_der(data.info2.as_deref()?).ok()?;
    let iot = info2.iot_specific_info?;
    let sgp32_version = iot
        .iot_version
        .iter()
        .filter_map(|v| version(v.0.as_slice()))
        .max()?;
    let (ipa_features, ipa_protocols) = data
        .ipa_capabilities
        .as_deref()
        .and_then(|der| decode_der::<sgp32::IpaCapabilities>(der).ok())
        .map(|c| {
            (
                first_bits(c.ipa_features.iter()),
                c.ipa_supported_protocols
                    .as_ref()
                    .map_or(0, |p| first_bits(p.iter())),
            )
        })
        .unwrap_or((0, 0));
    Some(Capabilities {
        sgp32_version,
        fallback_supported: iot.fallback_supported.is_some(),
        rollback_supported: true,
        ipa_features,
        ipa_protocols,
    })
}

/// A VersionType (three octets: major, minor, revision).
fn version(bytes: &[u8]) -> Option<Version> {
    match bytes {
        [a, b, c] => Some(Version([u16::from(*a), u16::from(*b), u16::from(*c)])),
        _ => None,
    }
}

/// The first eight bits of a named-bit BIT STRING, bit `i` as `1 << i`.
fn first_bits<B: std::ops::Deref<Target = bool>>(bits: impl Iterator<Item = B>) -> u8 {
    bits.take(8)
        .enumerate()
        .filter(|(_, b)| **b)
        .fold(0, |acc, (i, _)| acc | (1 << i))
}
