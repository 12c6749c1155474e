//! Live activation outcomes: which activations just finished, and how long
//! they took, as events arrive (for the Prometheus histogram of activation
//! time and the SLO counters).
//!
//! Sans-IO in the quinn-proto manner: [`ActivationTracker::handle_event`]
//! takes each event; [`ActivationTracker::poll_timeout`] hands out the
//! activations that reached the horizon without success, given `now`. The
//! exact, retrospective metrics are [`crate::metrics::compute`]'s; this is
//! their streaming approximation for dashboards and alerts (same success
//! rule; an activation counts once, when it succeeds or times out).

use std::collections::{HashMap, VecDeque};

use crate::dims::Sym;
use crate::event::{
    ActivationKind, CorrelationId, EuiccOutcome, Event, EventKind, ProfileKey, RegistrationOutcome,
};
use crate::time::Timestamp;

/// How an activation ended, as far as live metrics are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationOutcome {
    /// The activation.
    pub id: CorrelationId,
    /// Its kind (order download when it had no `activation_started`).
    pub kind: ActivationKind,
    /// Its carrier, when known.
    pub carrier: Option<Sym>,
    /// Time from its first event to success; `None` when it timed out.
    pub took_ms: Option<u64>,
}

#[derive(Debug)]
struct Open {
    start: Timestamp,
    kind: ActivationKind,
    iot: bool,
    carrier: Option<Sym>,
    installed: Option<(Timestamp, Option<ProfileKey>)>,
}

/// Follows open activations until they succeed or reach the horizon.
#[derive(Debug)]
pub struct ActivationTracker {
    horizon_ms: u64,
    open: HashMap<CorrelationId, Open>,
    /// Open activations in order of their first event, for timeouts.
    by_start: VecDeque<(Timestamp, CorrelationId)>,
}

impl ActivationTracker {
    /// A tracker that gives up on an activation `horizon_ms` after its first
    /// event (e.g. 10 minutes: well past the 60-second target).
    pub fn new(horizon_ms: u64) -> Self {
        Self {
            horizon_ms,
            open: HashMap::new(),
            by_start: VecDeque::new(),
        }
    }

    /// Activations open now.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Takes one event; returns the activation's outcome if it just
    /// succeeded.
    pub fn handle_event(&mut self, e: &Event) -> Option<ActivationOutcome> {
        let id = e.activation?;
        let open = match self.open.entry(id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.by_start.push_back((e.at, id));
                v.insert(Open {
                    start: e.at,
                    kind: ActivationKind::OrderDownload,
                    iot: false,
                    carrier: None,
                    installed: None,
                })
            }
        };
        open.carrier = open.carrier.or(e.dims.carrier);
        open.start = open.start.min(e.at);
        let success_at = match e.kind {
            EventKind::ActivationStarted { kind, iot } => {
                open.kind = kind;
                open.iot |= iot;
                None
            }
            EventKind::Euicc {
                profile,
                outcome: EuiccOutcome::Installed,
            } => {
                open.installed.get_or_insert((e.at, profile));
                (!open.iot).then_some(e.at)
            }
            EventKind::Registration {
                profile,
                outcome: RegistrationOutcome::Registered,
            } if open.iot => match (open.installed, profile) {
                (Some((at, Some(p))), Some(r)) if p == r => Some(at.max(e.at)),
                (Some((at, _)), None) if e.at >= at => Some(e.at),
                (Some((at, None)), Some(_)) if e.at >= at => Some(e.at),
                _ => None,
            },
            _ => None,
        };
        let at = success_at?;
        let open = self.open.remove(&id)?;
        Some(ActivationOutcome {
            id,
            kind: open.kind,
            carrier: open.carrier,
            took_ms: Some(crate::time::elapsed_ms(open.start, at)),
        })
    }

    /// The next activation that reached the horizon by `now` without
    /// success, if any. Call until `None`.
    pub fn poll_timeout(&mut self, now: Timestamp) -> Option<ActivationOutcome> {
        while let Some(&(start, id)) = self.by_start.front() {
            if crate::time::elapsed_ms(start, now) < self.horizon_ms {
                return None;
            }
            self.by_start.pop_front();
            if let Some(open) = self.open.remove(&id) {
                return Some(ActivationOutcome {
                    id,
                    kind: open.kind,
                    carrier: open.carrier,
                    took_ms: None,
                });
            }
        }
        None
    }
}
