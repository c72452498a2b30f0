//! Metrics step, the I/O: bytes the workers made the storage layer read and write over the
//! CPU's interval, measured by the CPU's rules (the same workers are new, unknown or exited),
//! with exited workers' bytes recovered from their master, or why there are none.

use crate::catalog::MetricName::{IoRead, IoWrite};
use crate::counter::Counter::{ReadBytes, WriteBytes};
use crate::counter::{Counter, Counters};
use crate::note::Note;
use crate::sample::{IoStatus, ProcSample};
use crate::state::TickState;

use super::exited::{gone_workers, reaped_since, same_masters, Reaped};
use super::interval::growth;
use super::{ExitedWorkers, Measured, Rate, WorkerCpu};

/// Bytes a process made the storage layer read and write (`read_bytes`, `write_bytes` of
/// `/proc/PID/io`): not page-cache hits, not tmpfs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// bytes
    pub read_bytes: u64,
    /// bytes
    pub write_bytes: u64,
}

impl IoCounters {
    /// The bytes of `counters`, where both are known.
    pub fn of(counters: &Counters) -> Option<IoCounters> {
        Some(IoCounters {
            read_bytes: counters.get(Counter::ReadBytes)?,
            write_bytes: counters.get(Counter::WriteBytes)?,
        })
    }

    /// `self - earlier`, field by field, never below zero.
    pub fn since(self, earlier: IoCounters) -> IoCounters {
        IoCounters {
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
        }
    }

    /// Both fields added, saturating.
    pub fn plus(self, other: IoCounters) -> IoCounters {
        IoCounters {
            read_bytes: self.read_bytes.saturating_add(other.read_bytes),
            write_bytes: self.write_bytes.saturating_add(other.write_bytes),
        }
    }
}

/// Bytes per second read and written at the storage layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoRate {
    pub read: f64,
    pub write: f64,
}

/// How the I/O of all workers over the interval was measured. The interval is the CPU's: the
/// same baseline (whatever rule picked it) serves both, so there is one precision rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoFigures {
    /// bytes of all workers in the interval, exited ones included
    pub bytes: IoCounters,
    /// of those, bytes of workers that exited within the interval, recovered from their
    /// master's reaped-children I/O; None without a master to recover them from
    pub exited: Option<IoCounters>,
    /// why exited workers could not be recovered although there is a master: the figures
    /// then count the live workers only, and a note says so
    pub unrecovered: Option<Unrecovered>,
}

/// Why the I/O of exited workers was not recovered from their master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecovered {
    /// the master's `/proc/PID/io` may not be read (another user's)
    MasterUnreadable,
    /// its reaped-children I/O, or a gone worker's counters, not known at both samples
    NotKnown,
    /// its reaped children burnt more CPU than the exited workers could have (see
    /// [`ExitedWorkers::at_most`]): what it reaped was not only workers, and bytes cannot be
    /// capped as ticks can
    NotWorkers,
}

/// Why a run with an interval has no I/O figures: the metrics are left out, never a 0 or a
/// sum over the workers that could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoGap {
    /// no process has `/proc/PID/io` (a kernel without task I/O accounting): no note
    NoAccounting,
    /// workers whose `/proc/PID/io` may not be read (it needs ptrace access)
    Unreadable(usize),
    /// workers whose `/proc/PID/io` was gone when read (they exited meanwhile)
    Missing(usize),
    /// workers with no I/O counters in the previous sample (an older tick file, or they were
    /// not readable then)
    NoBaseline(usize),
}

impl IoGap {
    /// Why the I/O metrics are left out of `workers` workers' figures, whenever they are but
    /// for a kernel that has no I/O accounting.
    pub(super) fn note(self, workers: usize) -> Option<Note> {
        match self {
            IoGap::NoAccounting => None,
            IoGap::Unreadable(n) => Some(Note::IoUnreadable {
                unreadable: n,
                of: workers,
            }),
            IoGap::Missing(count) => Some(Note::IoGone { count }),
            IoGap::NoBaseline(count) => Some(Note::IoNoBaseline { count }),
        }
    }
}

impl IoFigures {
    /// Why exited workers are not in the I/O figures, or what was recovered of them.
    pub(super) fn recovery_note(self) -> Option<Note> {
        match (self.unrecovered, self.exited) {
            (Some(Unrecovered::MasterUnreadable), _) => Some(Note::IoMasterUnreadable),
            (Some(Unrecovered::NotKnown), _) => Some(Note::IoReapedUnknown),
            (Some(Unrecovered::NotWorkers), _) => Some(Note::IoReapedNotWorkers),
            (None, Some(e)) => Some(Note::IoRecovered {
                read: e.read_bytes,
                written: e.write_bytes,
            }),
            (None, None) => None,
        }
    }
}

/// Each worker's I/O bytes and the workers' I/O over the interval. I/O is measured against the
/// same per-worker readings as CPU (the in-run reading, or the stored baseline when it was old
/// enough), so the same precision rule decides whether its interval is usable; the history
/// keeps no I/O totals, so a CPU figure taken from it has no I/O figure beside it.
type IoSince = (
    Option<Vec<Option<IoCounters>>>,
    Option<Result<IoFigures, IoGap>>,
);

pub(super) fn io_since(
    per_worker: Option<(&TickState, &[WorkerCpu])>,
    (workers, masters): (&[ProcSample], &[ProcSample]),
    exited_cpu: Option<ExitedWorkers>,
) -> IoSince {
    let Some((base, ticks)) = per_worker else {
        return (None, None);
    };
    let bytes = worker_io_bytes(workers, base, ticks);
    let io = io_interval(base, (workers, masters), &bytes, exited_cpu);
    (Some(bytes), Some(io))
}

/// Bytes each worker read and wrote inside the interval, in the order of `workers`, by the
/// rules of its CPU (see [`growth`]). None where not known: its `/proc/PID/io` unreadable now,
/// or missing from the previous sample of the same process.
fn worker_io_bytes(
    workers: &[ProcSample],
    prev: &TickState,
    ticks: &[WorkerCpu],
) -> Vec<Option<IoCounters>> {
    let read = growth(workers, (prev, ticks), Counter::ReadBytes);
    let written = growth(workers, (prev, ticks), Counter::WriteBytes);
    read.into_iter()
        .zip(written)
        .map(|(read, written)| {
            Some(IoCounters {
                read_bytes: read?,
                write_bytes: written?,
            })
        })
        .collect()
}

/// All workers' I/O over the interval, exited ones recovered from their master, or why it
/// cannot be known: every worker's counters are needed, as a sum over the readable ones would
/// describe other workers than the check reports on.
fn io_interval(
    prev: &TickState,
    (workers, masters): (&[ProcSample], &[ProcSample]),
    bytes: &[Option<IoCounters>],
    exited_cpu: Option<ExitedWorkers>,
) -> Result<IoFigures, IoGap> {
    io_readable(workers)?;
    match bytes.iter().filter(|b| b.is_none()).count() {
        0 => {}
        n => return Err(IoGap::NoBaseline(n)),
    }
    let live = bytes
        .iter()
        .flatten()
        .fold(IoCounters::default(), |sum, b| sum.plus(*b));
    let recovery = match exited_io(prev, workers, masters) {
        Recovery::Recovered(_) if !workers_alone(exited_cpu) => {
            Recovery::Not(Unrecovered::NotWorkers)
        }
        recovery => recovery,
    };
    let exited = match recovery {
        Recovery::Recovered(bytes) => Some(bytes),
        Recovery::NoMaster | Recovery::Not(_) => None,
    };
    Ok(IoFigures {
        bytes: exited.map_or(live, |e| live.plus(e)),
        exited,
        unrecovered: match recovery {
            Recovery::Not(why) => Some(why),
            _ => None,
        },
    })
}

/// Whether the master's reaped-children I/O in the interval can be the exited workers' alone:
/// none of its reaped CPU was left out as beyond what they could have burnt. Ticks have a
/// physical bound and bytes have none, so a master whose reaped CPU broke it (it reaped more
/// than workers) is not trusted for bytes either.
fn workers_alone(exited_cpu: Option<ExitedWorkers>) -> bool {
    exited_cpu.is_some_and(|e| e.beyond == 0)
}

/// Whether every worker's `/proc/PID/io` was read.
fn io_readable(workers: &[ProcSample]) -> Result<(), IoGap> {
    let count = |io: IoStatus| workers.iter().filter(|p| p.io == io).count();
    match (count(IoStatus::Unreadable), count(IoStatus::Absent)) {
        (0, 0) => Ok(()),
        (0, absent) if absent == workers.len() => Err(IoGap::NoAccounting),
        (0, absent) => Err(IoGap::Missing(absent)),
        (unreadable, _) => Err(IoGap::Unreadable(unreadable)),
    }
}

/// What became of the I/O of workers that exited within the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    Recovered(IoCounters),
    /// no master, or not the same one in both samples: nothing to recover from, as for CPU
    NoMaster,
    /// the master is there but its reaped-children I/O is not known at both samples
    Not(Unrecovered),
}

/// I/O that workers gone since the previous sample did inside the interval, recovered from
/// their master by the rule that recovers their CPU ([`reaped_since`]). When the master reaps a child,
/// the kernel adds the child's whole `/proc/PID/io` (its own and its reaped children's) to
/// the master's, apart from the master's own threads' (see [`ProcSample::reaped`]):
///
/// ```text
/// exited = delta(masters' reaped-children I/O) - I/O the gone workers had at the previous sample
/// ```
///
/// clamped at zero. The master's own I/O is never in it, so this holds whether or not a
/// worker of the previous sample exited (a worker born and gone between two samples is
/// counted too).
fn exited_io(prev: &TickState, workers: &[ProcSample], masters: &[ProcSample]) -> Recovery {
    let Some(pairs) = same_masters(prev, masters) else {
        return Recovery::NoMaster;
    };
    if masters.iter().any(|m| m.io == IoStatus::Unreadable) {
        return Recovery::Not(Unrecovered::MasterUnreadable);
    }
    let gone = gone_workers(prev, workers);
    // a gone worker's io holds its own bytes and its reaped children's, as the master's will
    let recovered = |c| reaped_since(&pairs, &gone, Reaped::Bytes(c), |line| line.counters.get(c));
    match (recovered(ReadBytes), recovered(WriteBytes)) {
        (Some(read_bytes), Some(write_bytes)) => Recovery::Recovered(IoCounters {
            read_bytes,
            write_bytes,
        }),
        _ => Recovery::Not(Unrecovered::NotKnown),
    }
}

/// [`Part::Io`](crate::catalog::Part): bytes per second all workers made the storage layer
/// read and write, unmeasured without an interval or without every worker's counters.
pub(super) fn io_values(io: Option<&IoFigures>, rate: Rate) -> Vec<Measured> {
    let per_second = |bytes: fn(&IoCounters) -> u64| io.map(|f| rate.per_second(bytes(&f.bytes)));
    vec![
        (IoRead, per_second(|b| b.read_bytes)),
        (IoWrite, per_second(|b| b.write_bytes)),
    ]
}
