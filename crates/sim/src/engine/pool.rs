//! The threads that run the shards' windows: started once per run, each
//! window's shards split over them in fixed chunks.

use std::sync::mpsc;

use crate::consumer::Downloads;
use crate::error::SimError;
use crate::iot::Factory;
use crate::network::{Load, Network};
use crate::population::Population;
use crate::shard::{Ctx, Shard};

use super::T0;

/// What the shards read and do not change during the loop (all of
/// [`Ctx`] but the load, which changes between windows).
pub(super) struct Env<'a> {
    pub network: &'a Network,
    pub population: &'a Population,
    pub factory: &'a Factory,
    pub downloads: Option<&'a Downloads>,
    pub apn_served: &'a [bool],
    pub type_carrier: &'a [Option<u8>],
}

impl Env<'_> {
    /// The shards' context for a window that starts with `load`.
    fn ctx<'b>(&'b self, load: &'b Load) -> Ctx<'b> {
        Ctx {
            network: self.network,
            load,
            population: self.population,
            factory: self.factory,
            downloads: self.downloads,
            t0: T0,
            apn_served: self.apn_served,
            type_carrier: self.type_carrier,
        }
    }
}

/// One window of some shards, for a worker: the shards move to it and
/// back ([`Done`]).
struct Job {
    shards: Vec<Shard>,
    start: i64,
    end: i64,
    load: Load,
}

/// A worker's answer: its shards back, and how their window went.
struct Done {
    shards: Vec<Shard>,
    result: Result<(), SimError>,
}

/// The worker threads that run shards' windows beside the calling thread,
/// started once per run (not a thread per shard per window). A window's
/// shards are split in the same chunks on any run, and their order is kept,
/// so the pool changes nothing in the result.
pub(super) struct Pool {
    workers: Vec<(mpsc::Sender<Job>, mpsc::Receiver<Done>)>,
}

impl Pool {
    /// `n` workers in `scope`, reading `env`.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        n: usize,
        env: &'env Env<'env>,
    ) -> Self {
        let workers = (0..n)
            .map(|_| {
                let (jobs, job_rx) = mpsc::channel::<Job>();
                let (done_tx, done) = mpsc::channel::<Done>();
                scope.spawn(move || {
                    while let Ok(Job {
                        mut shards,
                        start,
                        end,
                        load,
                    }) = job_rx.recv()
                    {
                        let ctx = env.ctx(&load);
                        let result = shards
                            .iter_mut()
                            .try_for_each(|s| s.run_window(start, end, &ctx));
                        if done_tx.send(Done { shards, result }).is_err() {
                            break;
                        }
                    }
                });
                (jobs, done)
            })
            .collect();
        Self { workers }
    }

    /// Runs the window `[start, end)` of every shard: the first chunk of
    /// shards on this thread, the others on the workers (all on this
    /// thread when at most one shard has work in it).
    pub fn run(
        &self,
        shards: &mut Vec<Shard>,
        start: i64,
        end: i64,
        load: &Load,
        env: &Env<'_>,
    ) -> Result<(), SimError> {
        let ctx = env.ctx(load);
        let busy = shards.iter().filter(|s| s.has_work_before(end)).count();
        if self.workers.is_empty() || busy <= 1 {
            return shards
                .iter_mut()
                .try_for_each(|s| s.run_window(start, end, &ctx));
        }
        let per = shards.len().div_ceil(self.workers.len() + 1);
        let mut rest = shards.split_off(per.min(shards.len()));
        let mut sent = 0;
        for (jobs, _) in &self.workers {
            if rest.is_empty() {
                break;
            }
            let tail = rest.split_off(per.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            jobs.send(Job {
                shards: chunk,
                start,
                end,
                load: load.clone(),
            })
            .map_err(|_| SimError::Device("a shard thread ended".into()))?;
            sent += 1;
        }
        let mut result = Ok(());
        for s in shards.iter_mut() {
            if let Err(e) = s.run_window(start, end, &ctx) {
                result = Err(e);
            }
        }
        for (_, done) in &self.workers[..sent] {
            let Done {
                shards: back,
                result: r,
            } = done
                .recv()
                .map_err(|_| SimError::Device("a shard thread panicked".into()))?;
            shards.extend(back);
            if let Err(e) = r {
                result = Err(e);
            }
        }
        result
    }
}
