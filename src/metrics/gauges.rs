//! Metrics step, this reading alone: the figures that need no earlier sample (counts,
//! memory, open files, ages, states), each worker's details taken whole or not at all.

use crate::catalog::MetricName::{self, *};
use crate::catalog::MetricSet;
use crate::sample::{Details, ProcSample, SmapsCut};

use super::{Capacity, Measured, WorkerFigures};

/// [`Part::Count`](crate::catalog::Part): workers and threads.
pub(super) fn counts(workers: &[ProcSample]) -> Vec<Measured> {
    vec![
        (Workers, Some(workers.len() as f64)),
        (
            Threads,
            Some(workers.iter().map(|w| w.threads).sum::<u64>() as f64),
        ),
    ]
}

/// [`Part::Memory`](crate::catalog::Part): sizes in whole bytes, averages unmeasured with no
/// workers; `rss_pct`, the workers' memory `total` ([`rss_pct_source`]), against the memory
/// they may use.
pub(super) fn memory(
    workers: &[ProcSample],
    capacity: &Capacity,
    total: Option<MemoryTotal>,
) -> Vec<Measured> {
    let n = workers.len() as f64;
    let average = |total: u64| (n > 0.0).then(|| (total as f64 / n).round());
    let detail_average = |get: fn(&Details) -> Option<u64>| {
        every_detail(workers, get).map(|v| (v.iter().sum::<u64>() as f64 / v.len() as f64).round())
    };
    let largest = |size: fn(&ProcSample) -> u64| workers.iter().map(size).max().map(|b| b as f64);
    let rss_total: u64 = workers.iter().map(|w| w.rss).sum();
    // no workers use no memory: 0 %, as rss_total is 0
    let total = match workers {
        [] => Some(0),
        _ => total.map(|t| t.bytes),
    };
    let rss_pct = total
        .zip(capacity.memory.filter(|&m| m > 0))
        .map(|(bytes, limit)| (bytes as f64 / limit as f64 * 100.0).min(100.0));
    vec![
        (Rss, average(rss_total)),
        (Vms, average(workers.iter().map(|w| w.vms).sum())),
        (Pss, detail_average(|d| d.pss)),
        (Uss, detail_average(|d| d.uss)),
        (RssMax, largest(|w| w.rss)),
        (VmsMax, largest(|w| w.vms)),
        (RssTotal, Some(rss_total as f64)),
        (RssPct, rss_pct),
    ]
}

/// The workers' memory with each page counted once, bytes, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MemoryTotal {
    pub(super) bytes: u64,
    pub(super) from: TotalFrom,
}

/// Where `rss_pct`'s memory, each page counted once, comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalFrom {
    /// the charge of the workers' own cgroup (`cg_memory`): their pages once, with whatever
    /// else is charged there (the master, page cache)
    CgroupCharge,
    /// the sum of the workers' PSS: each shared page split between its users
    PssSum,
}

/// The honest total behind `rss_pct`, bytes, and where it came from. A sum of RSS counts a
/// page shared by 50 workers 50 times (50 workers sharing 2 GiB read 424 %), so it is never
/// used: the cgroup's charge when the workers share one (cheap), else the PSS sum when it was
/// measured (`--metrics pss`); else there is none.
pub(super) fn rss_pct_source(workers: &[ProcSample], capacity: &Capacity) -> Option<MemoryTotal> {
    if let Some(bytes) = capacity.memory_charge.filter(|_| !workers.is_empty()) {
        return Some(MemoryTotal {
            bytes,
            from: TotalFrom::CgroupCharge,
        });
    }
    let pss = every_detail(workers, |d| d.pss).filter(|v| !v.is_empty())?;
    Some(MemoryTotal {
        bytes: pss.iter().sum(),
        from: TotalFrom::PssSum,
    })
}

/// [`Part::Fds`](crate::catalog::Part): open files of all workers, and the worker closest to
/// its limit (a sum cannot show one worker running out).
pub(super) fn fds(workers: &[ProcSample]) -> Vec<Measured> {
    let fd_pct_max = workers
        .iter()
        .filter_map(|w| {
            let d = w.details.as_ref()?;
            Some(d.fds? as f64 / d.fd_limit.filter(|&l| l > 0)? as f64 * 100.0)
        })
        .max_by(f64::total_cmp);
    vec![
        (
            Fds,
            every_detail(workers, |d| d.fds).map(|v| v.iter().sum::<u64>() as f64),
        ),
        (FdPctMax, fd_pct_max),
    ]
}

/// [`Part::Ages`](crate::catalog::Part): whole seconds since the youngest and the oldest
/// worker started.
pub(super) fn ages(per_worker: &[WorkerFigures]) -> Vec<Measured> {
    let ages = per_worker.iter().map(|w| w.age);
    vec![
        (AgeMin, ages.clone().min_by(f64::total_cmp).map(f64::floor)),
        (AgeMax, ages.max_by(f64::total_cmp).map(f64::floor)),
    ]
}

/// [`Part::States`](crate::catalog::Part): workers in the states that mean trouble.
pub(super) fn states(workers: &[ProcSample]) -> Vec<Measured> {
    let in_state = |state| Some(workers.iter().filter(|w| w.state == state).count() as f64);
    vec![(Zombies, in_state('Z')), (Uninterruptible, in_state('D'))]
}

/// One detail of every worker, or None when some worker's could not be read (or there are no
/// workers): an average of the readable ones would silently describe other workers than the
/// check reports on.
pub(super) fn every_detail(
    workers: &[ProcSample],
    get: fn(&Details) -> Option<u64>,
) -> Option<Vec<u64>> {
    let all: Option<Vec<u64>> = workers
        .iter()
        .map(|w| w.details.as_ref().and_then(get))
        .collect();
    all.filter(|v| !v.is_empty())
}

/// The workers whose `smaps_rollup` was read before the deadline cut the reads short.
fn read_smaps(workers: &[ProcSample], cut: Option<SmapsCut>) -> &[ProcSample] {
    &workers[..cut.map_or(workers.len(), |c| c.read.min(workers.len()))]
}

/// [`wanted_unreadable`] for `pss`, of the workers whose `smaps_rollup` was read before `cut`.
pub(super) fn pss_unreadable(
    wanted: MetricSet,
    workers: &[ProcSample],
    cut: Option<SmapsCut>,
) -> usize {
    wanted_unreadable(wanted, Pss, read_smaps(workers, cut), |d| d.pss)
}

/// [`unreadable`] for a metric the run measures; none for one it does not read.
pub(super) fn wanted_unreadable(
    wanted: MetricSet,
    metric: MetricName,
    workers: &[ProcSample],
    get: fn(&Details) -> Option<u64>,
) -> usize {
    if wanted.contains(metric) {
        unreadable(workers, get)
    } else {
        0
    }
}

/// Workers whose details were read but lack this one: the permission problem a note reports.
pub(super) fn unreadable(workers: &[ProcSample], get: fn(&Details) -> Option<u64>) -> usize {
    workers
        .iter()
        .filter(|w| w.details.is_some() && w.details.as_ref().and_then(get).is_none())
        .count()
}
