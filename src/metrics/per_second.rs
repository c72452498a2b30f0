//! Metrics step, the counters of [`crate::counter`]: how fast each grew over the CPU's interval,
//! per second, summed over the workers. One computation serves every `PerSecond` metric of the
//! catalog, by the CPU's rules: the same process counts its growth, a process born inside the
//! interval all of its count, one whose share is unknown nothing.

use crate::catalog::{Part, CATALOG};
use crate::counter::Counter;
use crate::note::Note;
use crate::sample::ProcSample;
use crate::state::TickState;

use super::interval::growth;
use super::{Measured, WorkerCpu};

/// Every `PerSecond` metric of the catalog over `seconds`, against the per-worker baseline with
/// each worker's CPU basis (`per_worker`, None without one); and a note for each
/// left out because some worker's counter is not known at both samples: a sum over the others
/// would describe other workers than the check reports on.
pub(super) fn per_second(
    workers: &[ProcSample],
    per_worker: Option<(&TickState, &[WorkerCpu])>,
    seconds: f64,
) -> (Vec<Measured>, Vec<Note>) {
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for entry in CATALOG {
        let Part::PerSecond(counter) = entry.part else {
            continue;
        };
        let growth = per_worker.map(|per_worker| sum_of_growth(workers, per_worker, counter));
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

/// How much `counter` of all workers grew inside the interval, each worker by its CPU basis
/// (see [`growth`](super::interval::growth)); or how many workers' growth is not known.
fn sum_of_growth(
    workers: &[ProcSample],
    per_worker: (&TickState, &[WorkerCpu]),
    counter: Counter,
) -> Result<u64, usize> {
    let mut sum = 0u64;
    let mut unknown = 0;
    for grown in growth(workers, per_worker, counter) {
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
