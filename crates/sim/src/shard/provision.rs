//! A shard's IoT devices downloading a profile the fleet ordered: the
//! IPA's download after a profileDownloadTrigger, through the SM-DP+'s
//! ES9+ steps and the device's virtual eUICC (ES10b), the same machine as
//! the consumer phones' LPA.

use ferrosim_fleet::action::Failure;
use ferrosim_fleet::{ActionResult, Command, Outcome};
use ferrosim_telemetry::{EuiccOutcome, EventKind, ProfileKey};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Ctx, OutKind, Shard};
use crate::error::SimError;

impl Shard {
    /// The IPA runs the download trigger it fetched: the download through
    /// the SM-DP+ into the device's eUICC, its ES9+ steps and installation
    /// for telemetry, `Installed` (or the failure) for the fleet when it
    /// ends. The profile is added disabled; the fleet enables it.
    pub(super) fn download_triggered(
        &mut self,
        t: i64,
        local: usize,
        ctx: &Ctx<'_>,
    ) -> Result<(), SimError> {
        let Some(pending) = self.devices[local].pending.take() else {
            return Ok(());
        };
        let action = pending.action;
        let activation = action.activation;
        let fail = |failure| {
            OutKind::Result(ActionResult {
                id: action.id,
                device: action.device,
                outcome: Outcome::Failed {
                    failure,
                    retryable: true,
                },
            })
        };
        let Command::EimDownloadTrigger {
            profile_type,
            activation_code,
            ..
        } = &action.command
        else {
            return Ok(());
        };
        let (Some(downloads), Some(mut card)) = (ctx.downloads, self.devices[local].card.take())
        else {
            self.emit(t, local, fail(Failure::Unreachable));
            return Ok(());
        };
        let code = match downloads.code_for(activation_code.matching_id.as_str()) {
            Ok(code) => code,
            Err(_) => {
                self.devices[local].card = Some(card);
                self.emit(t, local, fail(Failure::Unreachable));
                return Ok(());
            }
        };
        let target = ctx
            .type_carrier
            .get(profile_type.index())
            .copied()
            .flatten();
        // The IPA reaches the SM-DP+ over the data path of the carrier it is
        // on (or its second bearer, at that carrier's round trip, when the
        // carrier is down).
        let (carrier, area) = {
            let d = &self.devices[local];
            (d.profiles[usize::from(d.enabled)].1, d.seed.area)
        };
        let mut card_rng = StdRng::seed_from_u64(self.rng.random());
        let rng = &mut self.rng;
        let mut round_trip =
            |at: i64| i64::from(ctx.network.data_path(carrier, area, at, ctx.load, rng).0);
        let done = downloads.run(
            card.euicc_mut(),
            &code,
            ctx.t0,
            t,
            ctx.population.apdu_ms,
            ctx.population.es9_server_ms,
            &mut round_trip,
            &mut card_rng,
            false,
        );
        self.devices[local].card = Some(card);
        let done = done?;
        let mut at = t;
        for step in &done.steps {
            at += i64::from(step.duration_ms);
            self.emit(
                at.min(done.end_ms),
                local,
                OutKind::Event(
                    EventKind::Step {
                        function: step.function,
                        status: step.status,
                        duration_ms: step.duration_ms,
                        signalling_bytes: step.signalling_bytes,
                        bpp_bytes: 0,
                    },
                    activation,
                ),
            );
        }
        self.fleet_download_steps += done.steps.len() as u64;
        match (done.outcome, target) {
            (Ok(iccid), Some(target)) => {
                let (s, v, k, a) = crate::consumer::EC_PER_DOWNLOAD;
                ctx.factory.ec.add_download(s, v, k, a);
                self.emit(
                    done.end_ms,
                    local,
                    OutKind::Event(
                        EventKind::Euicc {
                            profile: ProfileKey::from_digits(iccid.as_str()),
                            outcome: EuiccOutcome::Installed,
                        },
                        activation,
                    ),
                );
                self.devices[local].profiles.push((iccid.clone(), target));
                self.emit(
                    done.end_ms,
                    local,
                    OutKind::Result(ActionResult {
                        id: action.id,
                        device: action.device,
                        outcome: Outcome::Installed { iccid },
                    }),
                );
            }
            (Ok(_), None) | (Err(_), _) => {
                self.emit(done.end_ms, local, fail(Failure::Download { reason: 127 }));
            }
        }
        Ok(())
    }
}
