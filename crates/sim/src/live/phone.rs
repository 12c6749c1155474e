//! One phone of a full-fidelity run: wait for its scan time, get its
//! eUICC, download the profile through the LPA's download machine over
//! HTTPS, enable it, deliver the notifications, register on the carrier.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrosim_euicc::VirtualEuicc;
use ferrosim_ids::{Eid, Timestamp};
use ferrosim_lpa::download::{Action, Consent, Download, DownloadFailure, DownloadRequest};
use ferrosim_lpa::es10::types::ProfileId;
use ferrosim_lpa::notifications::{RetryPolicy, process_notifications};
use ferrosim_lpa::{ActivationCode, Es10, Es10Options, Transport};
use ferrosim_telemetry::{
    ActivationKind, Dims, EuiccOutcome, EventKind, ProfileChange, ProfileKey, RegistrationOutcome,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::Ctx;
use super::identity::EumIssuer;
use super::link::{Link, ms};
use crate::network::{ATTACH_TIMEOUT_MS, AreaIx, Attach, CarrierIx};

/// Most actions of one download machine (a guard against a machine that
/// never ends).
const MAX_TURNS: u32 = 10_000;

/// Who a phone is and when it scans (scenario clock).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Device index in the population.
    pub n: u32,
    /// Its EID (in the target's EUM range).
    pub eid: Eid,
    /// Its area.
    pub area: AreaIx,
    /// Its vendor.
    pub vendor: u8,
    /// Its population mix.
    pub mix: u8,
    /// The carrier of the profile it downloads.
    pub carrier: CarrierIx,
    /// When it arrives (ms).
    pub arrival_ms: i64,
    /// When it scans its QR code (ms).
    pub scan_ms: i64,
    /// Seed of its own random draws (network model, eUICC).
    pub rng_seed: u64,
}

/// How far a phone got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Its scan time came after the run's bound.
    NotStarted,
    /// It was busy when the run's bound came.
    CutOff,
    /// It ran to its end (success or failure).
    Ended,
}

/// What one phone did. Times are ms from its scan on the real clock.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Its plan.
    pub plan: Plan,
    /// Its telemetry dimensions.
    pub dims: Dims,
    /// How far it got.
    pub stage: Stage,
    /// Wall ms it waited for a download slot after its scan time.
    pub start_delay_ms: Option<i64>,
    /// Its telemetry events (ms, what), ES9+ steps aside.
    pub events: Vec<(i64, EventKind)>,
    /// Its ES9+ calls.
    pub calls: Vec<super::link::Call>,
    /// The download and enable: the ICCID, or why not (`None`: not ended).
    pub outcome: Option<Result<String, String>>,
    /// When its profile was enabled.
    pub enabled_ms: Option<i64>,
    /// When it registered with it.
    pub registered_ms: Option<i64>,
    /// Its registration attempts: when, and whether the core's attach
    /// limit refused it.
    pub registrations: Vec<(i64, RegistrationOutcome, bool)>,
    /// Notifications left undelivered on its eUICC.
    pub undelivered: u64,
    /// Download attempts (the user scans again after a transient failure).
    pub attempts: u32,
    /// When the run's bound cut it off (ms from its scan).
    pub cut_at_ms: Option<i64>,
}

/// Runs one phone until it ends or `deadline`.
pub(crate) async fn run(
    plan: Plan,
    code: Result<ActivationCode, String>,
    dims: Dims,
    ctx: &Arc<Ctx>,
    issuer: &EumIssuer,
    slots: &Semaphore,
    deadline: tokio::time::Instant,
) -> Record {
    let mut rec = Record {
        plan,
        dims,
        stage: Stage::NotStarted,
        start_delay_ms: None,
        events: Vec::new(),
        calls: Vec::new(),
        outcome: None,
        enabled_ms: None,
        registered_ms: None,
        registrations: Vec::new(),
        undelivered: 0,
        attempts: 0,
        cut_at_ms: None,
    };
    let code = match code {
        Ok(code) => code,
        Err(why) => {
            // No order, no QR code: the phone has nothing to scan.
            rec.stage = Stage::Ended;
            rec.outcome = Some(Err(why));
            ctx.failed.fetch_add(1, Ordering::Relaxed);
            return rec;
        }
    };
    let scan_at = tokio::time::Instant::from_std(ctx.wall(rec.plan.scan_ms));
    if scan_at >= deadline {
        return rec;
    }
    tokio::time::sleep_until(scan_at).await;
    // Scanned: from now on the bound cuts the phone off (while it waits
    // for a download slot too).
    rec.stage = Stage::CutOff;
    let slot = tokio::time::timeout_at(deadline, slots.acquire()).await;
    let Ok(Ok(slot)) = slot else {
        return rec;
    };
    rec.start_delay_ms = Some(ms(scan_at.elapsed()));
    ctx.started.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(rec.plan.rng_seed);
    let link_rng = StdRng::seed_from_u64(rand::RngExt::random(&mut rng));
    let link = Link::new(ctx, rec.plan.carrier, rec.plan.area, started, link_rng);
    let ended = tokio::time::timeout_at(
        deadline,
        activate(
            &mut rec,
            &link,
            &mut rng,
            &code,
            ctx,
            issuer,
            (slots, Some(slot)),
            started,
        ),
    )
    .await;
    // The calls are kept when the run's bound cut the phone off too.
    rec.calls = link.take_calls();
    match ended {
        Ok(()) => rec.stage = Stage::Ended,
        Err(_) => rec.cut_at_ms = Some(ms(started.elapsed())),
    }
    rec
}

/// The phone's activation from its scan on.
/// `slot` is the download slot the phone holds (and the slots to take one
/// again from): held while the phone works with the SM-DP+, given back
/// while its user waits to try again and for the registration.
#[allow(clippy::too_many_arguments)]
async fn activate<'s>(
    rec: &mut Record,
    link: &Link<'_>,
    rng: &mut StdRng,
    code: &ActivationCode,
    ctx: &Ctx,
    issuer: &EumIssuer,
    slot: (&'s Semaphore, Option<SemaphorePermit<'s>>),
    started: Instant,
) {
    let (slots, mut permit) = slot;
    let at = || ms(started.elapsed());
    rec.events.push((
        0,
        EventKind::ActivationStarted {
            kind: ActivationKind::OrderDownload,
            iot: true,
        },
    ));
    let mut card = match issuer.card(rec.plan.eid) {
        Ok(card) => card,
        Err(e) => {
            rec.outcome = Some(Err(e.to_string()));
            ctx.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut card_rng = StdRng::seed_from_u64(rand::RngExt::random(rng));
    // The user scans again after a failure the SM-DP+ may not repeat
    // (unreachable, time-out, 429, 5xx), with the population's backoff,
    // until the population's give-up count (0: never; the run's bound
    // ends it).
    let give_up = ctx.population.give_up_after();
    let mut attempt: u16 = 0;
    let (iccid, mut es10) = loop {
        attempt = attempt.saturating_add(1);
        rec.attempts = u32::from(attempt);
        if permit.is_none() {
            match slots.acquire().await {
                Ok(p) => permit = Some(p),
                Err(e) => {
                    rec.outcome = Some(Err(format!("no download slot: {e}")));
                    ctx.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        match download(link, code, ctx, &mut card, &mut card_rng).await {
            Ok(ok) => break ok,
            Err((why, transient)) => {
                if !transient || (give_up > 0 && u32::from(attempt) >= give_up) {
                    rec.outcome = Some(Err(why));
                    ctx.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                drop(permit.take());
                let backoff = ctx.population.retry_delay_ms(attempt, rng);
                tokio::time::sleep(Duration::from_millis(backoff.max(0) as u64)).await;
            }
        }
    };
    let profile = ProfileKey::from_digits(&iccid);
    rec.events.push((
        at(),
        EventKind::Euicc {
            profile,
            outcome: EuiccOutcome::Installed,
        },
    ));
    // The user enables the new profile in the LPA (ES10c.EnableProfile).
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(ctx.population.apdu_ms).unwrap_or(0),
    ))
    .await;
    let enabled = es10
        .enable_profile(&ProfileId::Iccid(iccid.clone()), false)
        .map_err(|e| format!("EnableProfile: {e}"));
    if let Err(why) = enabled {
        rec.outcome = Some(Err(why));
        ctx.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    rec.enabled_ms = Some(at());
    rec.outcome = Some(Ok(iccid.to_string()));
    ctx.done.fetch_add(1, Ordering::Relaxed);
    if let Some(profile) = profile {
        rec.events.push((
            at(),
            EventKind::Profile {
                profile,
                change: ProfileChange::Enabled,
            },
        ));
    }
    // The enable notification (and any left over) to the SM-DP+.
    rec.undelivered =
        match process_notifications(&mut es10, link, None, &RetryPolicy::immediate(3)).await {
            Ok(report) => report.undelivered.len() as u64,
            Err(_) => 1,
        };
    let _ = es10.close();
    drop(permit);
    register(rec, ctx, profile, rng, started).await;
}

/// One download attempt: the LPA's machine over APDUs to the phone's
/// eUICC and ES9+ to the SM-DP+. A failure says whether trying again may
/// help (the SM-DP+ was unreachable, timed out or refused for load).
async fn download<'c>(
    link: &Link<'_>,
    code: &ActivationCode,
    ctx: &Ctx,
    card: &'c mut VirtualEuicc,
    card_rng: &'c mut StdRng,
) -> Result<(ferrosim_saip::Iccid, Es10<impl Transport + Send + use<'c>>), (String, bool)> {
    let transport = move |apdu: &[u8]| card.handle_apdu_with_rng(apdu, Timestamp::now(), card_rng);
    let mut es10 = Es10::open(transport, &Es10Options::default())
        .map_err(|e| (format!("opening the ISD-R: {e}"), false))?;
    let apdu_delay = Duration::from_millis(u64::try_from(ctx.population.apdu_ms).unwrap_or(0));
    let request = DownloadRequest::new(code, None);
    let mut machine = Download::new(&request, es10.link(), Timestamp::now());
    let mut turns = 0u32;
    loop {
        turns += 1;
        if turns > MAX_TURNS {
            return Err(("the download did not end".into(), false));
        }
        let Some(action) = machine.poll() else {
            return Err(("the download stalled".into(), false));
        };
        match action {
            Action::Transmit(apdu) => {
                tokio::time::sleep(apdu_delay).await;
                let response = es10.transport_mut().transmit(&apdu);
                machine.handle_apdu_response(response, Timestamp::now());
            }
            Action::Es9(call) => {
                let response = call.request.send(link, &call.address).await;
                machine.handle_es9_response(call.id, response, Timestamp::now());
            }
            Action::Confirm(_) => machine.handle_consent(Consent::Accept, Timestamp::now()),
            Action::ConfirmationCode(_) => machine.handle_confirmation_code(None, Timestamp::now()),
            Action::WaitUntil(w) => {
                let wait = (w.0 - Timestamp::now().0).max(0);
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                machine.handle_timeout(Timestamp::now());
            }
            Action::Done(result) => {
                return match *result {
                    Ok(done) => Ok((done.iccid, es10)),
                    Err(e) => {
                        let transient = matches!(
                            &e.failure,
                            DownloadFailure::Smdp(call) if call.is_transient()
                        );
                        Err((format!("{}: {}", e.step, e.failure), transient))
                    }
                };
            }
        }
    }
}

/// Registration on the carrier with the new profile: the network model's
/// answers, real latencies, the population's backoff between attempts.
async fn register(
    rec: &mut Record,
    ctx: &Ctx,
    profile: Option<ProfileKey>,
    rng: &mut StdRng,
    started: Instant,
) {
    let at = || ms(started.elapsed());
    let modem = ctx.population.vendor(rec.plan.vendor).modem_failure;
    let give_up = ctx.population.give_up_after();
    let (carrier, area) = (rec.plan.carrier, rec.plan.area);
    let mut attempt: u16 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let (answer, refused) = ctx.register(carrier, area, modem, rng);
        let (wait, outcome) = match answer {
            Attach::Registered { latency_ms } => (latency_ms, RegistrationOutcome::Registered),
            Attach::Rejected { cause, latency_ms } => {
                (latency_ms, RegistrationOutcome::Rejected { cause })
            }
            Attach::NoResponse => (ATTACH_TIMEOUT_MS, RegistrationOutcome::NoResponse),
        };
        tokio::time::sleep(Duration::from_millis(u64::from(wait))).await;
        rec.registrations.push((at(), outcome, refused));
        rec.events
            .push((at(), EventKind::Registration { profile, outcome }));
        if outcome == RegistrationOutcome::Registered {
            rec.registered_ms = Some(at());
            ctx.registered.fetch_add(1, Ordering::Relaxed);
            let stay = ctx.population.stay_ms;
            ctx.attach(
                carrier,
                area,
                (stay > 0).then(|| rec.plan.arrival_ms + stay),
            );
            let (latency_ms, loss_permille) = ctx.data_path(carrier, area, rng);
            tokio::time::sleep(Duration::from_millis(u64::from(latency_ms))).await;
            rec.events.push((
                at(),
                EventKind::DataPath {
                    latency_ms,
                    loss_permille,
                },
            ));
            return;
        }
        if give_up > 0 && u32::from(attempt) >= give_up {
            return;
        }
        let backoff = ctx.population.retry_delay_ms(attempt, rng);
        tokio::time::sleep(Duration::from_millis(backoff.max(0) as u64)).await;
    }
}
