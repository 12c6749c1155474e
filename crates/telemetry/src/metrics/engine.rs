//! The computation behind [`compute`]: two passes over time-ordered events.
//!
//! Pass 1 folds each activation's events into an [`Activation`] (start,
//! merged dimensions, installation, registrations, failures). Pass 2
//! attributes every event to a group (its activation's dimensions, or its
//! own outside activations), counts bytes and connectivity, and replays
//! profile changes. Activations are then classified at `as_of`.

use std::collections::HashMap;

use ferrosim_ids::Eid;

use super::{
    ActivationMetrics, BytesMetrics, Cause, CauseRecovery, ConnectivityMetrics, GroupMetrics,
    Incident, Metrics, MetricsQuery, MetricsReport, Percentiles, RecoveryMetrics, id_of, ratio,
};
use crate::dims::{Dictionary, Dims, GroupKey};
use crate::event::{
    ActivationKind, CorrelationId, EuiccOutcome, Event, EventKind, ProfileChange, ProfileKey,
    RegistrationOutcome, StepStatus,
};
use crate::time::Timestamp;

/// A hash map with foldhash's fixed-seed hasher.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Computes the metrics of `query` over `events` (any order; events after
/// `query.as_of` are ignored), naming groups with `dict`.
pub fn compute<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    query: &MetricsQuery,
    dict: &Dictionary,
) -> MetricsReport {
    let mut events: Vec<&Event> = events.into_iter().filter(|e| e.at <= query.as_of).collect();
    if !events.is_sorted_by_key(|e| e.at) {
        events.sort_by_key(|e| e.at); // stable: arrival order within an instant
    }

    // The engine's own keys (correlation ids, group and profile keys), in
    // maps with a fast fixed-seed hasher: a city run has millions of events.
    let mut activations: FastMap<CorrelationId, Activation> = FastMap::default();
    for e in &events {
        if let Some(id) = e.activation {
            activations
                .entry(id)
                .or_insert_with(|| Activation::new(e))
                .absorb(e);
        }
    }

    let mut groups: FastMap<GroupKey, Acc> = FastMap::default();
    let mut profiles: FastMap<ProfileKey, ProfileUse> = FastMap::default();
    let in_window = |t: Timestamp| t >= query.from && t < query.to;
    for e in &events {
        let dims = e
            .activation
            .and_then(|id| activations.get(&id))
            .map_or(e.dims, |a| a.dims);
        if !query.filter.matches_parts(&e.device, e.activation, &dims) {
            continue;
        }
        let key = query.group_by.map(|d| d.key(&dims)).unwrap_or_default();
        if let Some((profile, what)) = profile_fact(&e.kind) {
            profiles
                .entry(profile)
                .or_insert_with(|| ProfileUse::new(key))
                .apply(e.at, what, query);
        }
        if !in_window(e.at) {
            continue;
        }
        let acc = groups.entry(key).or_default();
        match e.kind {
            EventKind::Step {
                signalling_bytes,
                bpp_bytes,
                ..
            } => {
                acc.bytes.signalling_bytes += u64::from(signalling_bytes);
                acc.bytes.bpp_bytes += u64::from(bpp_bytes);
            }
            EventKind::Registration { outcome, .. } => {
                acc.conn.registration_attempts += 1;
                if outcome == RegistrationOutcome::Registered {
                    acc.conn.registrations_ok += 1;
                }
            }
            EventKind::DataPath {
                latency_ms,
                loss_permille,
            } => {
                acc.latency.push(u64::from(latency_ms));
                acc.loss_sum += u64::from(loss_permille);
                if loss_permille < 1000 {
                    acc.conn.data_path_ok += 1;
                }
            }
            EventKind::HandoverFailure { .. } => acc.conn.handover_failures += 1,
            EventKind::Euicc {
                outcome: EuiccOutcome::Installed,
                ..
            } => acc.bytes.downloads += 1,
            _ => {}
        }
    }

    for p in profiles.values() {
        let acc = groups.entry(p.group).or_default();
        if p.active || p.enabled_before_window {
            acc.bytes.active_profiles += 1;
        }
        if p.installed_in_window {
            acc.bytes.profiles_downloaded += 1;
            if !p.used_since_install {
                acc.bytes.downloaded_never_enabled += 1;
            }
        }
    }

    for (id, a) in &activations {
        if !in_window(a.start) || !query.filter.matches_parts(&a.device, Some(*id), &a.dims) {
            continue;
        }
        let key = query.group_by.map(|d| d.key(&a.dims)).unwrap_or_default();
        groups.entry(key).or_default().add_activation(*id, a, query);
    }

    let mut total = Acc::default();
    let mut out: Vec<GroupMetrics> = groups
        .into_iter()
        .map(|(key, acc)| {
            total.merge(&acc);
            GroupMetrics {
                key,
                label: match query.group_by {
                    Some(_) => key.label(dict),
                    None => "all".to_owned(),
                },
                metrics: acc.finish(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.label.cmp(&b.label));
    MetricsReport {
        from: query.from,
        to: query.to,
        as_of: query.as_of,
        group_by: query.group_by,
        total: total.finish(),
        groups: out,
    }
}

/// One activation's facts, folded from its time-ordered events.
struct Activation {
    start: Timestamp,
    device: Eid,
    /// The first value reported for each dimension by any of its events.
    dims: Dims,
    iot: bool,
    installed: Option<(Timestamp, Option<ProfileKey>)>,
    /// A failover or rollout step: switching to a profile already on the
    /// eUICC, whose `profile enabled` is the eUICC's successful result.
    switch: bool,
    /// The first `profile enabled` event of the activation.
    enabled: Option<(Timestamp, Option<ProfileKey>)>,
    /// Accepted registrations: when, and with which profile.
    registrations: Vec<(Timestamp, Option<ProfileKey>)>,
    /// Failures in time order.
    failures: Vec<(Timestamp, Cause)>,
}

impl Activation {
    fn new(first: &Event) -> Self {
        Self {
            start: first.at,
            device: first.device,
            dims: Dims::default(),
            iot: false,
            installed: None,
            switch: false,
            enabled: None,
            registrations: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn absorb(&mut self, e: &Event) {
        let (d, n) = (&mut self.dims, &e.dims);
        d.carrier = d.carrier.or(n.carrier);
        d.smdp = d.smdp.or(n.smdp);
        d.vendor = d.vendor.or(n.vendor);
        d.model = d.model.or(n.model);
        d.firmware = d.firmware.or(n.firmware);
        d.group = d.group.or(n.group);
        d.rollout = d.rollout.or(n.rollout);
        d.wave = d.wave.or(n.wave);
        match e.kind {
            EventKind::ActivationStarted { iot, kind } => {
                self.iot |= iot;
                self.switch |=
                    matches!(kind, ActivationKind::Failover | ActivationKind::RolloutStep);
            }
            EventKind::Profile {
                profile,
                change: ProfileChange::Enabled,
            } => {
                self.enabled.get_or_insert((e.at, Some(profile)));
            }
            EventKind::Step {
                function, status, ..
            } if status != StepStatus::Ok => {
                self.failures.push((e.at, Cause::Step { function, status }));
            }
            EventKind::Euicc { profile, outcome } => match outcome {
                EuiccOutcome::Installed => {
                    self.installed.get_or_insert((e.at, profile));
                }
                EuiccOutcome::Failed { stage, reason } => {
                    self.failures.push((e.at, Cause::Euicc { stage, reason }));
                }
            },
            EventKind::Registration { profile, outcome } => match outcome {
                RegistrationOutcome::Registered => self.registrations.push((e.at, profile)),
                failed => self.failures.push((e.at, Cause::Registration(failed))),
            },
            _ => {}
        }
    }

    /// When the activation succeeded: the installation, and for IoT the
    /// first accepted registration on the new profile (docs/METRICS.md).
    fn success(&self) -> Option<Timestamp> {
        let (installed_at, profile) =
            self.installed
                .or(if self.switch { self.enabled } else { None })?;
        if !self.iot {
            return Some(installed_at);
        }
        self.registrations
            .iter()
            .filter_map(|&(at, reg_profile)| match (reg_profile, profile) {
                // Named the new profile: counts even if stamped before the
                // installation (clock skew), as of the installation.
                (Some(r), Some(p)) if r == p => Some(at.max(installed_at)),
                (Some(_), Some(_)) => None,
                // Unnamed (or unknown new profile): only after installation.
                _ => (at >= installed_at).then_some(at),
            })
            .min()
    }
}

/// What an event says about a profile's use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProfileFact {
    InUse,
    Disabled,
    Deleted,
    Installed,
}

fn profile_fact(kind: &EventKind) -> Option<(ProfileKey, ProfileFact)> {
    match *kind {
        EventKind::Profile { profile, change } => Some((
            profile,
            match change {
                ProfileChange::Enabled => ProfileFact::InUse,
                ProfileChange::Disabled => ProfileFact::Disabled,
                ProfileChange::Deleted => ProfileFact::Deleted,
            },
        )),
        EventKind::Registration {
            profile: Some(profile),
            outcome: RegistrationOutcome::Registered,
        } => Some((profile, ProfileFact::InUse)),
        EventKind::Euicc {
            profile: Some(profile),
            outcome: EuiccOutcome::Installed,
        } => Some((profile, ProfileFact::Installed)),
        _ => None,
    }
}

/// A profile's use, replayed from the events about it.
struct ProfileUse {
    group: GroupKey,
    /// In use at the window's start (state after the events before it).
    enabled_before_window: bool,
    /// In use at some instant inside the window.
    active: bool,
    installed_in_window: bool,
    /// In use at some point since it was last deleted (or ever). Not reset
    /// by an installation: a use stamped just before the installation
    /// result is clock skew, not an older life of the profile.
    used_since_install: bool,
}

impl ProfileUse {
    fn new(group: GroupKey) -> Self {
        Self {
            group,
            enabled_before_window: false,
            active: false,
            installed_in_window: false,
            used_since_install: false,
        }
    }

    fn apply(&mut self, at: Timestamp, fact: ProfileFact, q: &MetricsQuery) {
        let before = at < q.from;
        let inside = !before && at < q.to;
        match fact {
            ProfileFact::InUse => {
                self.used_since_install = true;
                if before {
                    self.enabled_before_window = true;
                } else if inside {
                    self.active = true;
                }
            }
            ProfileFact::Disabled | ProfileFact::Deleted => {
                if before {
                    self.enabled_before_window = false;
                }
                if fact == ProfileFact::Deleted {
                    self.used_since_install = false;
                }
            }
            ProfileFact::Installed => self.installed_in_window |= inside,
        }
    }
}

/// Counts of one group while computing.
#[derive(Default)]
struct Acc {
    act: ActivationMetrics,
    time_to_success: Vec<u64>,
    rec: RecoveryMetrics,
    causes: HashMap<Cause, CauseRecovery>,
    bytes: BytesMetrics,
    conn: ConnectivityMetrics,
    latency: Vec<u64>,
    loss_sum: u64,
    incidents: Vec<Incident>,
}

impl Acc {
    fn add_activation(&mut self, id: CorrelationId, a: &Activation, q: &MetricsQuery) {
        self.act.started += 1;
        let success = a.success();
        match success {
            Some(at) => {
                let took = crate::time::elapsed_ms(a.start, at);
                self.time_to_success.push(took);
                if took <= q.target_ms {
                    self.act.within_target += 1;
                } else {
                    self.act.late += 1;
                }
            }
            None if crate::time::elapsed_ms(a.start, q.as_of) >= q.target_ms => {
                self.act.not_successful += 1
            }
            None => self.act.pending += 1,
        }
        let first_failure = a
            .failures
            .iter()
            .find(|(at, _)| success.is_none_or(|s| *at <= s));
        let Some(&(failed_at, cause)) = first_failure else {
            return;
        };
        self.rec.failed += 1;
        let recovery = success.map(|s| crate::time::elapsed_ms(failed_at, s));
        let per_cause = self.causes.entry(cause).or_insert_with(|| CauseRecovery {
            cause: cause.to_string(),
            failed: 0,
            recovered: 0,
            total_recovery_ms: 0,
            mttr_ms: None,
        });
        per_cause.failed += 1;
        match recovery {
            Some(ms) => {
                self.rec.recovered += 1;
                self.rec.total_recovery_ms += ms;
                per_cause.recovered += 1;
                per_cause.total_recovery_ms += ms;
            }
            None => self.rec.unrecovered += 1,
        }
        if q.incidents {
            self.incidents.push(Incident {
                activation: id_of(id),
                device: a.device.to_string(),
                cause: cause.to_string(),
                started_at: a.start,
                failed_at,
                recovered_at: success,
                recovery_ms: recovery,
            });
        }
    }

    fn merge(&mut self, o: &Acc) {
        let (a, b) = (&mut self.act, &o.act);
        a.started += b.started;
        a.pending += b.pending;
        a.within_target += b.within_target;
        a.late += b.late;
        a.not_successful += b.not_successful;
        self.time_to_success.extend_from_slice(&o.time_to_success);
        self.rec.failed += o.rec.failed;
        self.rec.recovered += o.rec.recovered;
        self.rec.unrecovered += o.rec.unrecovered;
        self.rec.total_recovery_ms += o.rec.total_recovery_ms;
        for (cause, c) in &o.causes {
            let mine = self.causes.entry(*cause).or_insert_with(|| CauseRecovery {
                failed: 0,
                recovered: 0,
                total_recovery_ms: 0,
                ..c.clone()
            });
            mine.failed += c.failed;
            mine.recovered += c.recovered;
            mine.total_recovery_ms += c.total_recovery_ms;
        }
        let (x, y) = (&mut self.bytes, &o.bytes);
        x.bpp_bytes += y.bpp_bytes;
        x.signalling_bytes += y.signalling_bytes;
        x.active_profiles += y.active_profiles;
        x.downloads += y.downloads;
        x.profiles_downloaded += y.profiles_downloaded;
        x.downloaded_never_enabled += y.downloaded_never_enabled;
        let (x, y) = (&mut self.conn, &o.conn);
        x.registration_attempts += y.registration_attempts;
        x.registrations_ok += y.registrations_ok;
        x.handover_failures += y.handover_failures;
        x.data_path_ok += y.data_path_ok;
        self.latency.extend_from_slice(&o.latency);
        self.loss_sum += o.loss_sum;
        self.incidents.extend(o.incidents.iter().cloned());
    }

    fn finish(mut self) -> Metrics {
        let mut act = self.act;
        act.decided = act.within_target + act.late + act.not_successful;
        act.success_ratio = ratio(act.within_target, act.decided);
        act.time_to_success_ms = Percentiles::of(&mut self.time_to_success);
        let mut rec = self.rec;
        rec.mttr_ms = ratio(rec.total_recovery_ms, rec.recovered);
        rec.by_cause = self
            .causes
            .into_values()
            .map(|mut c| {
                c.mttr_ms = ratio(c.total_recovery_ms, c.recovered);
                c
            })
            .collect();
        rec.by_cause.sort_by(|a, b| a.cause.cmp(&b.cause));
        let mut bytes = self.bytes;
        bytes.bytes_per_active_profile = ratio(
            bytes.bpp_bytes + bytes.signalling_bytes,
            bytes.active_profiles,
        );
        let mut conn = self.conn;
        conn.registration_success_rate = ratio(conn.registrations_ok, conn.registration_attempts);
        conn.data_path_checks = self.latency.len() as u64;
        conn.mean_loss_permille = ratio(self.loss_sum, conn.data_path_checks);
        conn.data_path_success_rate = ratio(conn.data_path_ok, conn.data_path_checks);
        conn.latency_ms = Percentiles::of(&mut self.latency);
        self.incidents.sort_by_key(|i| (i.failed_at, i.activation));
        Metrics {
            activations: act,
            recovery: rec,
            bytes,
            connectivity: conn,
            incidents: self.incidents,
        }
    }
}
