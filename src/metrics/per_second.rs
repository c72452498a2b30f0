//! Metrics step, the counters of [`crate::counter`]: how fast each grew over the CPU's interval,
//! per second, summed over the workers. One computation serves every `PerSecond` metric of the
//! catalog, by the CPU's rules: the same process counts its growth, a process born inside the
//! interval all of its count, one whose share is unknown nothing.

use std::collections::HashMap;

use crate::catalog::{Part, CATALOG};
use crate::counter::Counter;
use crate::note::Note;
use crate::sample::ProcSample;
use crate::state::{ProcTicks, TickState};

use super::{CpuBasis, Measured, WorkerCpu};

/// Every `PerSecond` metric of the catalog over `seconds`, against the per-worker baseline with
/// each worker's CPU basis (`per_worker`, None without one); and a note for each
/// left out because some worker's counter is not known at both samples: a sum over the others
/// would describe other workers than the check reports on.
pub(super) fn per_second(
    workers: &[ProcSample],
    per_worker: Option<(&TickState, &[WorkerCpu])>,
    seconds: f64,
) -> (Vec<Measured>, Vec<Note>) {
    let before: HashMap<i32, &ProcTicks> = per_worker
        .map(|(base, _)| base.workers.iter().map(|t| (t.pid, t)).collect())
        .unwrap_or_default();
    let ticks = per_worker.map(|(_, ticks)| ticks);
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for entry in CATALOG {
        let Part::PerSecond(counter) = entry.part else {
            continue;
        };
        let growth = ticks.map(|ticks| growth(workers, &before, ticks, counter));
        let value = match growth {
            Some(Ok(sum)) => Some(sum as f64 / seconds),
            Some(Err(count)) => {
                notes.push(Note::CounterUnknown {
                    metric: entry.metric,
                    count,
                });
                None
            }
            None => None,
        };
        values.push((entry.metric, value));
    }
    (values, notes)
}

/// How much `counter` of all workers grew inside the interval, each worker by its CPU basis;
/// or how many workers' growth is not known.
fn growth(
    workers: &[ProcSample],
    before: &HashMap<i32, &ProcTicks>,
    ticks: &[WorkerCpu],
    counter: Counter,
) -> Result<u64, usize> {
    let each = workers.iter().zip(ticks).map(|(w, t)| {
        let now = w.counters.get(counter)?;
        match t.basis {
            CpuBasis::Delta => Some(now.saturating_sub(before.get(&w.pid)?.counters.get(counter)?)),
            CpuBasis::New => Some(now),
            CpuBasis::Unknown => Some(0),
        }
    });
    let mut sum = 0u64;
    let mut unknown = 0;
    for grown in each {
        match grown {
            Some(n) => sum = sum.saturating_add(n),
            None => unknown += 1,
        }
    }
    match unknown {
        0 => Ok(sum),
        n => Err(n),
    }
}
