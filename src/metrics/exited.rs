//! Metrics step, workers gone since the previous sample: what they did inside the interval,
//! recovered from their master's reaped-children counts by one rule ([`reaped_since`]) for
//! their CPU ticks and their bytes alike; the ticks within what they could have burnt.

use std::collections::HashSet;

use crate::counter::Counter::{self, Cstime, Cutime, Stime, Utime};
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
    let pairs = same_masters(prev, masters)?;
    let gone = gone_workers(prev, workers);
    // a gone worker's lifetime in its master's reaped time: its own ticks and its children's
    let recovered = |own, reaped| {
        reaped_since(&pairs, &gone, Reaped::Ticks(reaped), |line| {
            Some(line.counters.get(own)? + line.counters.get(reaped)?)
        })
    };
    Some(ExitedWorkers {
        count: gone.len(),
        // ticks are read with every process and on every line: known at both readings
        user_ticks: recovered(Utime, Cutime).unwrap_or(0),
        system_ticks: recovered(Stime, Cstime).unwrap_or(0),
        beyond: 0,
    })
}

/// Each master with its line of the previous sample: the same processes (pid and starttime),
/// all of them. None when there is no master, or the set changed (a master restarted, one
/// more or one less): what a new master reaped is not the interval's.
pub(super) fn same_masters<'a, 'p>(
    prev: &'p TickState,
    masters: &'a [ProcSample],
) -> Option<Vec<(&'a ProcSample, &'p ProcTicks)>> {
    if masters.is_empty() || masters.len() != prev.masters.len() {
        return None;
    }
    masters
        .iter()
        .map(|m| {
            let line = prev
                .masters
                .iter()
                .find(|b| b.pid == m.pid && b.starttime == m.starttime)?;
            Some((m, line))
        })
        .collect()
}

/// Where a master keeps what it reaped of a counter: its children's CPU ticks are counters
/// of its own (`cutime`, `cstime`); its children's bytes are the part of its `io` its live
/// threads did not do ([`ProcSample::reaped`]). Its line of the previous sample holds either
/// under the counter's own key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reaped {
    Ticks(Counter),
    Bytes(Counter),
}

/// The one recovery rule: how much the masters' reaped count grew since their lines
/// (`pairs`), less what the `gone` workers had counted at the previous sample (`counted`,
/// from a gone worker's line), clamped at zero. That is what workers gone since did inside
/// the interval, those born and gone in between included. None when a count is unknown.
pub(super) fn reaped_since(
    pairs: &[(&ProcSample, &ProcTicks)],
    gone: &[&ProcTicks],
    reaped: Reaped,
    counted: impl Fn(&ProcTicks) -> Option<u64>,
) -> Option<u64> {
    let mut grown: u64 = 0;
    for (master, line) in pairs {
        let (now, counter) = match reaped {
            Reaped::Ticks(c) => (master.counters.get(c), c),
            Reaped::Bytes(c) => (master.reaped.get(c), c),
        };
        grown = grown.saturating_add(now?.saturating_sub(line.counters.get(counter)?));
    }
    let mut before: u64 = 0;
    for line in gone {
        before = before.saturating_add(counted(line)?);
    }
    Some(grown.saturating_sub(before))
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
