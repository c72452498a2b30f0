//! Metrics step, workers gone since the previous sample: the CPU they burnt inside the
//! interval, recovered from their master's reaped-children time, within what they could have
//! burnt.

use std::collections::HashSet;

use crate::counter::Counter::{Cstime, Cutime, Stime, Utime};
use crate::counter::Counters;
use crate::sample::ProcSample;
use crate::state::{ProcTicks, TickState};

use super::ExitedWorkers;

/// CPU that workers gone since the previous sample burnt inside the interval.
///
/// Prefork servers recycle workers all the time, so at a 1-5 minute check interval most CPU
/// may be burnt by workers that no sample ever sees again. When a parent reaps a child the
/// kernel adds the child's whole lifetime (its own and its reaped children's ticks) to the
/// parent's `cutime`/`cstime`. So, with the same master(s) in both samples:
///
/// ```text
/// exited = delta(masters' cutime + cstime) - ticks the gone workers had at the previous sample
/// ```
///
/// (that second part was counted in an earlier interval). Clamped at zero, and at what the gone
/// workers could have burnt ([`ExitedWorkers::at_most`]). The master's reaped-children time
/// also holds any other child it reaps (a log helper, a CGI), which is counted too within that
/// bound: an approximation the README documents. With no master, or a master that is not the
/// same process (pid and starttime) as last time, nothing is recovered.
pub(super) fn exited_workers(
    prev: &TickState,
    workers: &[ProcSample],
    masters: &[ProcSample],
) -> Option<ExitedWorkers> {
    if masters.is_empty() || masters.len() != prev.masters.len() {
        return None;
    }
    let same = |a: &ProcTicks, pid: i32, starttime: u64| a.pid == pid && a.starttime == starttime;
    let mut child_user_delta: i128 = 0;
    let mut child_system_delta: i128 = 0;
    // ticks are read with every process and on every line: known at both readings
    let ticks = |counters: &Counters, counter| i128::from(counters.get(counter).unwrap_or(0));
    for m in masters {
        let before = prev.masters.iter().find(|b| same(b, m.pid, m.starttime))?;
        child_user_delta += ticks(&m.counters, Cutime) - ticks(&before.counters, Cutime);
        child_system_delta += ticks(&m.counters, Cstime) - ticks(&before.counters, Cstime);
    }
    let gone = gone_workers(prev, workers);
    let counted_user: i128 = gone
        .iter()
        .map(|b| ticks(&b.counters, Utime) + ticks(&b.counters, Cutime))
        .sum();
    let counted_system: i128 = gone
        .iter()
        .map(|b| ticks(&b.counters, Stime) + ticks(&b.counters, Cstime))
        .sum();
    let clamp = |ticks: i128| u64::try_from(ticks.max(0)).unwrap_or(u64::MAX);
    Some(ExitedWorkers {
        count: gone.len(),
        user_ticks: clamp(child_user_delta - counted_user),
        system_ticks: clamp(child_system_delta - counted_system),
        beyond: 0,
    })
}

/// The workers of the previous sample that are not among `workers` (pid and starttime).
pub(super) fn gone_workers<'a>(prev: &'a TickState, workers: &[ProcSample]) -> Vec<&'a ProcTicks> {
    let alive: HashSet<(i32, u64)> = workers.iter().map(|w| (w.pid, w.starttime)).collect();
    prev.workers
        .iter()
        .filter(|b| !alive.contains(&(b.pid, b.starttime)))
        .collect()
}

/// Clock ticks per second of the tick file's readings (checked equal to this run's).
pub(super) fn prev_hz(prev: &TickState) -> f64 {
    prev.clock_ticks.max(1) as f64
}

impl ExitedWorkers {
    /// At most what `count` workers could have burnt in `interval_ticks` (the interval in
    /// clock ticks): one core each, for the whole interval. A master reaps whatever children it
    /// has, and a parent whose reaped time was never the workers' (a helper it runs, a
    /// long-lived child reaped at last) must not turn into hundreds of percent: the excess is
    /// left out, split between user and system as the recovered ticks are, and noted.
    pub(super) fn at_most(self, interval_ticks: f64) -> ExitedWorkers {
        let total = self.user_ticks.saturating_add(self.system_ticks);
        let limit = (self.count as f64 * interval_ticks).floor().max(0.0) as u64;
        if total <= limit {
            return self;
        }
        let user = (u128::from(self.user_ticks) * u128::from(limit) / u128::from(total)) as u64;
        ExitedWorkers {
            user_ticks: user,
            system_ticks: limit - user,
            beyond: total - limit,
            ..self
        }
    }
}
