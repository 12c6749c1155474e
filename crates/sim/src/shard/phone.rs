//! A shard's consumer phones: the QR code scanned, the profile downloaded
//! from the SM-DP+ and enabled by the LPA, then the registration with it.

use ferrosim_telemetry::{ActivationKind, EuiccOutcome, EventKind, ProfileChange, ProfileKey};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Ctx, Ev, OutKind, Shard};
use crate::consumer::Downloaded;
use crate::error::SimError;

/// Telemetry correlation ids of consumer activations: this bit set, the
/// device index below it (fleet activations count up from 1).
const CONSUMER_ACTIVATION: u64 = 1 << 62;

impl Shard {
    /// The consumer scans the QR code: the activation starts, and the
    /// download (the phone's eUICC made, the download through the SM-DP+,
    /// the enable) is queued for this window's downloads
    /// ([`Shard::take_downloads`]); the phone's events wait until it ends
    /// ([`Shard::finish_downloads`], then a registration on the new
    /// profile's network when the download ended).
    pub(super) fn download(&mut self, t: i64, local: usize, ctx: &Ctx<'_>) -> Result<(), SimError> {
        let global = self.global(local);
        let Some(downloads) = ctx.downloads else {
            return Ok(());
        };
        if downloads.code(global).is_none() {
            return Ok(());
        }
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
        // The download itself (the phone's eUICC made, the SGP.22 exchange
        // with the SM-DP+) reads nothing of the shard: it runs with the
        // window's other downloads, on any thread, and its end is applied
        // by `finish_download`. Its randomness is drawn here, in event order.
        let (carrier, area) = {
            let d = &self.devices[local];
            (d.profiles[0].1, d.seed.area)
        };
        self.devices[local].downloading = true;
        let job = DownloadJob {
            shard: self.index,
            local: local as u32,
            global,
            eid: self.devices[local].seed.eid,
            t,
            carrier,
            area,
            card_seed: self.rng.random(),
            path_seed: self.rng.random(),
            activation,
        };
        self.downloads_due.push(job);
        Ok(())
    }

    /// The downloads this window's events started since the last call, to
    /// be run ([`DownloadJob::run`]) and handed back in order
    /// ([`Shard::finish_downloads`]).
    pub fn take_downloads(&mut self) -> Vec<DownloadJob> {
        std::mem::take(&mut self.downloads_due)
    }

    /// The ends of `jobs` (this shard's, as [`Shard::take_downloads`] gave
    /// them) with what each download did; then the events of their devices
    /// that waited for them go back to the queue.
    pub fn finish_downloads(&mut self, done: Vec<DownloadEnd>) -> Result<(), SimError> {
        let mut result = Ok(());
        for (job, d) in done {
            self.devices[job.local as usize].downloading = false;
            match d {
                Ok(d) => self.finish_download(&job, d),
                Err(e) => result = Err(e),
            }
        }
        for item in std::mem::take(&mut self.waiting) {
            self.queue(item);
        }
        result
    }

    /// A download's end: its ES9+ steps and outcome to telemetry, and on
    /// success the new profile enabled and a registration check when the
    /// download ended.
    fn finish_download(&mut self, job: &DownloadJob, done: Downloaded) {
        let (t, local, activation) = (job.t, job.local as usize, job.activation);
        self.cards_made += 1;
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
    }
}

/// A download and what it did (or the error that stopped the run).
pub type DownloadEnd = (DownloadJob, Result<Downloaded, SimError>);

/// A consumer phone's download as its scan started it: everything it
/// needs besides the window's context, so that it can run on any thread.
#[derive(Debug, Clone)]
pub struct DownloadJob {
    /// The shard of the phone.
    pub shard: usize,
    local: u32,
    global: u32,
    eid: ferrosim_ids::Eid,
    /// When the QR code was scanned (ms).
    t: i64,
    carrier: crate::network::CarrierIx,
    area: u16,
    /// Seeds of the eUICC's randomness and of the data path's round trips.
    card_seed: u64,
    path_seed: u64,
    activation: u64,
}

impl DownloadJob {
    /// The download: the phone's eUICC made, then the LPA's SGP.22
    /// download from the SM-DP+ and the enable, in virtual time from the
    /// scan (the data path's round trips as the window's load gives them).
    pub fn run(&self, ctx: &Ctx<'_>) -> Result<Downloaded, SimError> {
        let downloads = ctx
            .downloads
            .ok_or_else(|| SimError::Device("a download without an SM-DP+".into()))?;
        let code = downloads
            .code(self.global)
            .ok_or_else(|| SimError::Device("a download without an order".into()))?;
        let mut card = ctx.factory.phone(self.eid)?;
        let mut card_rng = StdRng::seed_from_u64(self.card_seed);
        let mut path_rng = StdRng::seed_from_u64(self.path_seed);
        let mut round_trip = |at: i64| {
            i64::from(
                ctx.network
                    .data_path(self.carrier, self.area, at, ctx.load, &mut path_rng)
                    .0,
            )
        };
        let done = downloads.run(
            &mut card,
            code,
            ctx.t0,
            self.t,
            ctx.population.apdu_ms,
            ctx.population.es9_server_ms,
            &mut round_trip,
            &mut card_rng,
            true,
        )?;
        if done.outcome.is_ok() {
            let (s, v, k, a) = crate::consumer::EC_PER_DOWNLOAD;
            ctx.factory.ec.add_download(s, v, k, a);
        }
        Ok(done)
    }
}
