//! Metrics step, one worker over the interval: how its share of the interval is known (its
//! CPU basis), and how much any counter of [`crate::counter`] grew inside it by that basis.
//! One rule for the CPU ticks, the I/O bytes and every `PerSecond` counter.

use std::collections::HashMap;

use crate::counter::Counter;
use crate::sample::ProcSample;
use crate::state::{ProcTicks, TickState};

use super::{CpuBasis, WorkerCpu};

/// How `now`'s share of the interval since the reading at `prev_uptime` is known, given its
/// line of that reading (`before`, by pid), at `hz` ticks a second.
///
/// Only pid *and* starttime show it is the same process; a reused pid is a new process and
/// must never have another process's counters subtracted from it.
pub(super) fn basis(
    now: &ProcSample,
    before: Option<&ProcTicks>,
    prev_uptime: f64,
    hz: f64,
) -> CpuBasis {
    match before {
        Some(b) if b.starttime == now.starttime => CpuBasis::Delta,
        _ if now.starttime as f64 >= (prev_uptime * hz).floor() => CpuBasis::New,
        _ => CpuBasis::Unknown,
    }
}

/// How much `counter` of worker `now` (its own: a master counted as a worker less what it
/// reaped) grew inside the interval, by its `basis`: the same process its growth since its
/// line `before`, a new one all of its count, one whose share is unknown nothing. None when
/// not known at both readings.
pub(super) fn grown(
    counter: Counter,
    now: &ProcSample,
    before: Option<&ProcTicks>,
    basis: CpuBasis,
) -> Option<u64> {
    let now = now.own().get(counter)?;
    match basis {
        // same process: its counters only grow, so saturation never hides anything real
        CpuBasis::Delta => Some(now.saturating_sub(before?.counters.get(counter)?)),
        CpuBasis::New => Some(now),
        CpuBasis::Unknown => Some(0),
    }
}

/// The workers' lines of `prev`, by pid.
pub(super) fn lines_by_pid(prev: &TickState) -> HashMap<i32, &ProcTicks> {
    prev.workers.iter().map(|t| (t.pid, t)).collect()
}

/// [`grown`] for each of `workers`, in their order, against the per-worker reading `base` with
/// each worker's basis (`ticks`).
pub(super) fn growth(
    workers: &[ProcSample],
    (base, ticks): (&TickState, &[WorkerCpu]),
    counter: Counter,
) -> Vec<Option<u64>> {
    let before = lines_by_pid(base);
    workers
        .iter()
        .zip(ticks)
        .map(|(w, t)| grown(counter, w, before.get(&w.pid).copied(), t.basis))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::Counters;

    fn process(starttime: u64, counters: Counters) -> ProcSample {
        ProcSample {
            pid: 10,
            starttime,
            counters,
            ..ProcSample::default()
        }
    }

    fn line(starttime: u64, counters: Counters) -> ProcTicks {
        ProcTicks {
            pid: 10,
            starttime,
            counters,
        }
    }

    // One rule for every counter: ticks and bytes alike.
    #[test]
    fn every_counter_grows_by_the_workers_basis() {
        let now = process(500, Counters::ticks([900, 90, 0, 0]).bytes(7000, 70));
        let before = line(500, Counters::ticks([100, 10, 0, 0]).bytes(1000, 10));
        // the baseline at 10 s (1000 ticks): started at 500 it is the same process, or old
        let basis = basis(&now, Some(&before), 10.0, 100.0);
        assert_eq!(basis, CpuBasis::Delta);
        let grew = |c, b| grown(c, &now, Some(&before), b);
        assert_eq!(grew(Counter::Utime, basis), Some(800));
        assert_eq!(grew(Counter::ReadBytes, basis), Some(6000));
        assert_eq!(grew(Counter::Nvcsw, basis), None, "not read");
        assert_eq!(grew(Counter::Utime, CpuBasis::New), Some(900));
        assert_eq!(grew(Counter::WriteBytes, CpuBasis::Unknown), Some(0));
        // a reused pid is not the same process: new if it started after the baseline
        let reused = line(400, before.counters);
        assert_eq!(basis_of(&now, &reused, 4.0), CpuBasis::New);
        assert_eq!(basis_of(&now, &reused, 10.0), CpuBasis::Unknown);
        // a counter missing from the baseline's line is not known over the interval
        let no_bytes = line(500, Counters::ticks([100, 10, 0, 0]));
        assert_eq!(
            grown(Counter::ReadBytes, &now, Some(&no_bytes), basis),
            None
        );
    }

    fn basis_of(now: &ProcSample, before: &ProcTicks, prev_uptime: f64) -> CpuBasis {
        basis(now, Some(before), prev_uptime, 100.0)
    }
}
