//! A shard's consumer phones: the QR code scanned, the profile downloaded
//! from the SM-DP+ and enabled by the LPA, then the registration with it.

use ferrosim_telemetry::{ActivationKind, EuiccOutcome, EventKind, ProfileChange, ProfileKey};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Ctx, Ev, OutKind, Shard};
use crate::error::SimError;

/// Telemetry correlation ids of consumer activations: this bit set, the
/// device index below it (fleet activations count up from 1).
const CONSUMER_ACTIVATION: u64 = 1 << 62;

impl Shard {
    /// The consumer scans the QR code: the phone's eUICC (made now), the
    /// download through the SM-DP+, the enable, then a registration on the
    /// new profile's network when the download ends.
    pub(super) fn download(&mut self, t: i64, local: usize, ctx: &Ctx<'_>) -> Result<(), SimError> {
        let global = self.global(local);
        let Some(downloads) = ctx.downloads else {
            return Ok(());
        };
        let Some(code) = downloads.code(global) else {
            return Ok(());
        };
        let activation = CONSUMER_ACTIVATION | u64::from(global);
        self.devices[local].activation = Some(activation);
        self.emit(
            t,
            local,
            OutKind::Event(
                EventKind::ActivationStarted {
                    kind: ActivationKind::OrderDownload,
                    iot: true,
                },
                Some(activation),
            ),
        );
        let eid = self.devices[local].seed.eid;
        let mut card = ctx.factory.phone(eid)?;
        self.cards_made += 1;
        let (carrier, area) = {
            let d = &self.devices[local];
            (d.profiles[0].1, d.seed.area)
        };
        let mut card_rng = StdRng::seed_from_u64(self.rng.random());
        let rng = &mut self.rng;
        let mut round_trip =
            |at: i64| i64::from(ctx.network.data_path(carrier, area, at, ctx.load, rng).0);
        let done = downloads.run(
            &mut card,
            code,
            ctx.t0,
            t,
            ctx.population.apdu_ms,
            ctx.population.es9_server_ms,
            &mut round_trip,
            &mut card_rng,
            true,
        )?;
        let (s, v, k, a) = crate::consumer::EC_PER_DOWNLOAD;
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
                    Some(activation),
                ),
            );
        }
        match done.outcome {
            Ok(iccid) => {
                ctx.factory.ec.add_download(s, v, k, a);
                self.downloads_done += 1;
                self.download_ms.push(done.end_ms - t);
                let profile = ProfileKey::from_digits(iccid.as_str());
                self.emit(
                    done.end_ms,
                    local,
                    OutKind::Event(
                        EventKind::Euicc {
                            profile,
                            outcome: EuiccOutcome::Installed,
                        },
                        Some(activation),
                    ),
                );
                if let Some(profile) = profile {
                    self.emit(
                        done.end_ms,
                        local,
                        OutKind::Event(
                            EventKind::Profile {
                                profile,
                                change: ProfileChange::Enabled,
                            },
                            Some(activation),
                        ),
                    );
                }
                self.devices[local].profiles[0].0 = iccid;
                self.switch_to(local, 0);
                self.devices[local].check_queued = true;
                let generation = self.devices[local].generation;
                self.push(done.end_ms, local, Ev::Check(generation));
            }
            Err(cause) => {
                self.devices[local].activation = None;
                let cause = cause.chars().take(120).collect::<String>();
                match self.download_failures.iter_mut().find(|(c, _)| *c == cause) {
                    Some((_, n)) => *n += 1,
                    None => self.download_failures.push((cause, 1)),
                }
            }
        }
        Ok(())
    }
}
