//! The threads that run the shards' windows: started once per run, each
//! window's shards split over them in fixed chunks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crate::consumer::{Downloaded, Downloads};
use crate::error::SimError;
use crate::iot::Factory;
use crate::network::{Load, Network};
use crate::population::Population;
use crate::shard::{Ctx, DownloadEnd, DownloadJob, Shard};

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

/// Work for a worker.
enum Job {
    /// The window `[start, end)` of some shards (`resume`: only the events
    /// left before `end`, [`Shard::run_events`]): the shards move to the
    /// worker and back ([`Done`]).
    Window {
        shards: Vec<Shard>,
        start: i64,
        end: i64,
        resume: bool,
        load: Load,
    },
    /// A share of a window's downloads.
    Downloads { batch: Arc<Batch>, load: Load },
}

/// A worker's answer: its shards back (none for downloads), and how their
/// window went.
struct Done {
    shards: Vec<Shard>,
    result: Result<(), SimError>,
}

/// A window's downloads, taken one at a time by whichever thread is free
/// (each is a whole SGP.22 download, about a millisecond of CPU), their
/// results kept by position.
struct Batch {
    jobs: Vec<DownloadJob>,
    next: AtomicUsize,
    results: Mutex<Vec<(usize, Result<Downloaded, SimError>)>>,
}

impl Batch {
    /// Runs downloads of the batch until none is left.
    fn work(&self, ctx: &Ctx<'_>) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = self.jobs.get(i) else {
                break;
            };
            let result = job.run(ctx);
            self.results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((i, result));
        }
    }
}

/// Runs the window `[start, end)` of `shards` (or resumes it), each
/// shard's output then put in order on this thread ([`Shard::sort_out`]),
/// for the control plane to merge.
fn run_shards(
    shards: &mut [Shard],
    start: i64,
    end: i64,
    resume: bool,
    ctx: &Ctx<'_>,
) -> Result<(), SimError> {
    shards.iter_mut().try_for_each(|s| {
        if resume {
            s.run_events(end, ctx)?;
        } else {
            s.run_window(start, end, ctx)?;
        }
        s.sort_out();
        Ok(())
    })
}

/// The worker threads that run shards' windows beside the calling thread,
/// started once per run (not a thread per shard per window). A window's
/// shards are split in the same chunks on any run, and their order is kept;
/// the downloads a window's events start run on every thread, and their
/// ends go back to their shards in the order the shards started them; so
/// the pool changes nothing in the result.
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
                    while let Ok(job) = job_rx.recv() {
                        let done = match job {
                            Job::Window {
                                mut shards,
                                start,
                                end,
                                resume,
                                load,
                            } => {
                                let ctx = env.ctx(&load);
                                let result = run_shards(&mut shards, start, end, resume, &ctx);
                                Done { shards, result }
                            }
                            Job::Downloads { batch, load } => {
                                batch.work(&env.ctx(&load));
                                Done {
                                    shards: Vec::new(),
                                    result: Ok(()),
                                }
                            }
                        };
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
                (jobs, done)
            })
            .collect();
        Self { workers }
    }

    /// Runs the window `[start, end)` of every shard: their events, then
    /// the downloads those started (on every thread), their ends handed
    /// back to the shards, and again while events before `end` remain.
    pub fn run(
        &self,
        shards: &mut Vec<Shard>,
        start: i64,
        end: i64,
        load: &Load,
        env: &Env<'_>,
    ) -> Result<(), SimError> {
        let ctx = env.ctx(load);
        let mut resume = false;
        loop {
            self.run_shards(shards, start, end, resume, load, env)?;
            let jobs: Vec<DownloadJob> =
                shards.iter_mut().flat_map(Shard::take_downloads).collect();
            if jobs.is_empty() {
                return Ok(());
            }
            let results = self.run_downloads(jobs, load, &ctx)?;
            let mut per_shard: Vec<Vec<_>> = (0..shards.len()).map(|_| Vec::new()).collect();
            for (job, result) in results {
                per_shard[job.shard].push((job, result));
            }
            let mut result = Ok(());
            for (s, done) in shards.iter_mut().zip(per_shard) {
                if let Err(e) = s.finish_downloads(done) {
                    result = Err(e);
                }
            }
            result?;
            if !shards.iter().any(|s| s.has_work_before(end)) {
                return Ok(());
            }
            resume = true;
        }
    }

    /// Runs `jobs` on this thread and the workers (each takes the next
    /// download when free); their results in the jobs' order.
    fn run_downloads(
        &self,
        jobs: Vec<DownloadJob>,
        load: &Load,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<DownloadEnd>, SimError> {
        let helpers = self.workers.len().min(jobs.len() - 1);
        let batch = Arc::new(Batch {
            jobs,
            next: AtomicUsize::new(0),
            results: Mutex::new(Vec::new()),
        });
        for (jobs, _) in &self.workers[..helpers] {
            jobs.send(Job::Downloads {
                batch: Arc::clone(&batch),
                load: load.clone(),
            })
            .map_err(|_| SimError::Device("a shard thread ended".into()))?;
        }
        batch.work(ctx);
        for (_, done) in &self.workers[..helpers] {
            done.recv()
                .map_err(|_| SimError::Device("a shard thread panicked".into()))?;
        }
        let batch = Arc::try_unwrap(batch)
            .map_err(|_| SimError::Device("a download batch is still shared".into()))?;
        let mut results = batch
            .results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        results.sort_unstable_by_key(|(i, _)| *i);
        Ok(batch
            .jobs
            .into_iter()
            .zip(results.into_iter().map(|(_, r)| r))
            .collect())
    }

    /// Runs (or resumes) the window `[start, end)` of every shard: the
    /// first chunk of shards on this thread, the others on the workers
    /// (all on this thread when at most one shard has work in it).
    fn run_shards(
        &self,
        shards: &mut Vec<Shard>,
        start: i64,
        end: i64,
        resume: bool,
        load: &Load,
        env: &Env<'_>,
    ) -> Result<(), SimError> {
        let ctx = env.ctx(load);
        let busy = shards.iter().filter(|s| s.has_work_before(end)).count();
        if self.workers.is_empty() || busy <= 1 {
            return run_shards(shards, start, end, resume, &ctx);
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
            jobs.send(Job::Window {
                shards: chunk,
                start,
                end,
                resume,
                load: load.clone(),
            })
            .map_err(|_| SimError::Device("a shard thread ended".into()))?;
            sent += 1;
        }
        let mut result = run_shards(shards, start, end, resume, &ctx);
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

/// A window for the [`Runner`]: the shards move to its thread and back
/// ([`Ran`]).
struct Window {
    shards: Vec<Shard>,
    start: i64,
    end: i64,
    load: Load,
}

/// The shards back from a window, how it went, and its wall time (s).
pub(super) struct Ran {
    pub shards: Vec<Shard>,
    pub result: Result<(), SimError>,
    pub took_s: f64,
}

/// The shards' windows on a thread of their own (with a [`Pool`]'s
/// workers), so that the control plane runs on the calling thread beside
/// them: [`Runner::send`] starts a window, [`Runner::recv`] waits for it.
pub(super) struct Runner {
    windows: mpsc::Sender<Window>,
    ran: mpsc::Receiver<Ran>,
}

impl Runner {
    /// The runner's thread in `scope`, with `workers` pool workers beside
    /// it, reading `env`.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        workers: usize,
        env: &'env Env<'env>,
    ) -> Self {
        let (windows, window_rx) = mpsc::channel::<Window>();
        let (ran_tx, ran) = mpsc::channel::<Ran>();
        scope.spawn(move || {
            let pool = Pool::start(scope, workers, env);
            while let Ok(Window {
                mut shards,
                start,
                end,
                load,
            }) = window_rx.recv()
            {
                let started = std::time::Instant::now();
                let result = pool.run(&mut shards, start, end, &load, env);
                let took_s = started.elapsed().as_secs_f64();
                if ran_tx
                    .send(Ran {
                        shards,
                        result,
                        took_s,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        Self { windows, ran }
    }

    /// Starts the window `[start, end)` of `shards` with `load`.
    pub fn send(
        &self,
        shards: Vec<Shard>,
        start: i64,
        end: i64,
        load: Load,
    ) -> Result<(), SimError> {
        self.windows
            .send(Window {
                shards,
                start,
                end,
                load,
            })
            .map_err(|_| SimError::Device("the shards' thread ended".into()))
    }

    /// Waits for the window started last.
    pub fn recv(&self) -> Result<Ran, SimError> {
        self.ran
            .recv()
            .map_err(|_| SimError::Device("the shards' thread panicked".into()))
    }
}
