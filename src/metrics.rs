//! Metrics step: this sample and the previous ones become numbers. Pure: no file system, no
//! clock; time is the uptime each sample recorded. Which earlier reading CPU is measured
//! against, and what the history adds, is [`past`]'s.

mod cgroup;
mod exited;
mod gauges;
mod interval;
mod io;
mod past;
mod per_second;
mod plausible;
mod queue;

use std::fmt;

use crate::catalog::MetricName::{self, *};
use crate::catalog::MetricSet;
use crate::counter::Counter::{Stime, Utime};
use crate::note::Note;
use crate::sample::{ProcSample, SmapsCut, Snapshot};
use crate::state::TickState;
use crate::text;

use exited::{exited_workers, prev_hz};
pub use gauges::TotalFrom;
use gauges::{
    ages, counts, fds, memory, pss_unreadable, rss_pct_source, states, wanted_unreadable,
};
use io::{io_since, io_values, IoCounters};
pub use io::{IoFigures, IoGap, IoRate, Unrecovered};
pub use past::{error_bound, min_interval, too_recent, Average, Previous, Since, Tally};
use per_second::per_second;
use plausible::within_ceiling;
pub use plausible::{check_physics, Checked};
pub use queue::{held_by, listen_unmet, sockets as queue_sockets};
use queue::{queue_notes, queue_values};

/// Why an earlier reading gives this one no CPU interval, for a reason of measuring. The tick
/// file's own reasons (none yet, corrupt, held by a peer) are `state::NoBaseline`'s.
#[derive(Debug, Clone, PartialEq)]
pub enum NoInterval {
    /// the boot time changed: the ticks belong to another boot
    Rebooted,
    /// the uptime is not later than the saved one (clock or file from the future)
    TimeWentBackwards,
    /// the baseline claims what the host could not have done (see [`check_physics`])
    Impossible(String),
    /// less than two clock ticks passed: too short to divide by
    TooShort,
    /// no sample is old enough for the workers' clock ticks (see [`min_interval`]): seconds
    /// since the last run, and seconds needed
    TooRecent { age: f64, needed: f64 },
}

impl fmt::Display for NoInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoInterval::Rebooted => write!(f, "host rebooted since the last run"),
            NoInterval::TimeWentBackwards => write!(f, "tick file is from the future"),
            NoInterval::Impossible(why) => {
                write!(f, "tick file discarded: impossible baseline ({why})")
            }
            NoInterval::TooShort => write!(f, "last run less than 2 clock ticks ago"),
            NoInterval::TooRecent { age, needed } => write!(
                f,
                "last run {age:.2} s ago, no sample {needed:.2} s old for the workers' clock ticks"
            ),
        }
    }
}

/// Decides whether the tick file belongs to this reading's boot and clock: the same boot time
/// and tick rate, and none of its samples (baseline or history) later than now. It may be as
/// recent as now: how old a sample must be to measure CPU against is [`min_interval`]'s.
pub fn check_file(previous: TickState, now: &Snapshot) -> Result<TickState, NoInterval> {
    // /proc/stat's btime is computed as "now minus uptime" on every read and can flicker by
    // a second; a real reboot moves it by far more (and resets the uptime too).
    if previous.btime.abs_diff(now.btime) > 1 || previous.clock_ticks != now.clock_ticks {
        return Err(NoInterval::Rebooted);
    }
    let newest = previous
        .history
        .newest()
        .map_or(previous.uptime, |s| s.uptime.max(previous.uptime));
    if now.uptime < newest {
        return Err(NoInterval::TimeWentBackwards);
    }
    Ok(previous)
}

/// Decides whether a first reading taken within this run can serve as the start of the CPU
/// interval: [`check_file`]'s rules, and at least two clock ticks since.
pub fn check_baseline(previous: TickState, now: &Snapshot) -> Result<TickState, NoInterval> {
    let previous = check_file(previous, now)?;
    let elapsed = now.uptime - previous.uptime;
    // uptime has 1/100 s resolution: allow for its rounding at exactly two ticks
    if elapsed * (now.clock_ticks as f64) < 2.0 - 1e-6 {
        return Err(NoInterval::TooShort);
    }
    Ok(previous)
}

/// How CPU time of one worker was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuBasis {
    /// the same process (pid and starttime) was in the previous sample
    Delta,
    /// started after the previous sample: all its ticks fell inside the interval
    New,
    /// existed before the previous sample but was not a worker then (it exec'd or changed
    /// user since): its share of the interval is unknown, so it counts as zero
    Unknown,
}

/// CPU figures of one worker over the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerCpu {
    /// user ticks in the interval
    pub user_ticks: u64,
    /// system ticks in the interval
    pub system_ticks: u64,
    pub basis: CpuBasis,
}

/// Figures of one worker, for the long output.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerFigures {
    pub pid: i32,
    /// its command name, made printable: with `-u www-data` alone, nginx, apache2 and php-fpm
    /// workers are told apart only by it
    pub comm: String,
    pub uid: u32,
    /// percent of one core over the interval; None without a baseline
    pub cpu: Option<f64>,
    /// resident set size, bytes
    pub rss: u64,
    /// virtual size, bytes
    pub vms: u64,
    /// seconds since the process started
    pub age: f64,
    /// state letter (R, S, D, Z, ...)
    pub state: char,
    /// proportional set size, bytes, where readable
    pub pss: Option<u64>,
    /// its I/O over the interval, where known
    pub io: Option<IoRate>,
}

/// How the CPU of all workers over the interval was measured: the ticks behind the CPU metrics
/// and what the notes say about them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuFigures {
    /// user ticks of all workers in the interval, exited ones included
    pub user_ticks: u64,
    /// system ticks of all workers in the interval, exited ones included
    pub system_ticks: u64,
    /// seconds between the two samples
    pub interval: f64,
    /// workers that started inside the interval and count fully
    pub new_workers: usize,
    /// workers whose share could not be known (counted as zero)
    pub unknown_workers: usize,
    /// CPU of workers that exited within the interval, recovered from their master
    pub exited: Option<ExitedWorkers>,
    /// the reading the interval starts at
    pub since: Since,
    /// how far the figures may be off, in their own points: whole ticks per worker at each
    /// end (see [`error_bound`])
    pub error_bound: f64,
}

/// Workers that were in the previous sample and are gone now, and what their master's
/// reaped-children time says they burnt inside the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitedWorkers {
    /// workers of the previous sample that are gone
    pub count: usize,
    /// user ticks recovered
    pub user_ticks: u64,
    /// system ticks recovered
    pub system_ticks: u64,
    /// reaped-children ticks beyond what `count` workers could have used in the interval
    /// (one core each): not theirs, so left out of the figures
    pub beyond: u64,
}

/// Everything the check measured. The metrics' values are keyed by catalog entry, so
/// evaluation and perfdata need no list of their own; the rest is what the notes and the long
/// output say about them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub workers: usize,
    /// None when there is no baseline and no in-run interval
    pub cpu: Option<CpuFigures>,
    /// upper bound of the CPU figures (100 x CPUs, or 100 with `--cpu-scale host`)
    pub cpu_ceiling: f64,
    /// every metric this run could measure, in the metric's unit, in perfdata order. One that
    /// could not be measured (CPU with no baseline, memory with no workers, PSS without
    /// permission) is missing rather than a misleading 0; where some worker's detail could not
    /// be read, the metric is missing too (never an average of a subset).
    pub values: Vec<(MetricName, f64)>,
    /// CPU figures beyond what every usable CPU could give, left out: a bug or a tick file
    /// that slipped past [`check_physics`] must never page anyone with 10^17 %
    pub impossible: Vec<(MetricName, f64)>,
    /// workers whose smaps_rollup could not be read
    pub pss_unreadable: usize,
    /// how far the smaps_rollup reads got when the deadline cut them short
    pub smaps_cut: Option<SmapsCut>,
    /// where `rss_pct`'s total came from; None when there was none to take
    pub rss_pct_from: Option<TotalFrom>,
    /// the metrics the run set out to measure
    pub wanted: MetricSet,
    /// workers whose fds could not be counted
    pub fds_unreadable: usize,
    /// I/O over the interval; None with no interval, or for the reason in `io_gap`
    pub io: Option<IoFigures>,
    pub io_gap: Option<IoGap>,
    /// per worker, busiest first
    pub per_worker: Vec<WorkerFigures>,
    /// how `cpu_avg` was measured, with `--average`
    pub average: Option<Average>,
    /// what this run adds to the history
    pub tally: Tally,
    /// why `PerSecond` metrics and cgroup figures were left out, and which cgroup the latter
    /// are from
    pub counter_notes: Vec<Note>,
    /// the accept queues of the service's listening sockets, where asked for
    pub queues: Option<crate::listen::Queues>,
}

impl Figures {
    /// The value of `metric`, where this run measured it.
    pub fn value(&self, metric: MetricName) -> Option<f64> {
        self.values
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|&(_, v)| v)
    }

    /// Every measured metric with its perfdata maximum, in perfdata order.
    pub fn measured(&self) -> Vec<(MetricName, f64, Option<f64>)> {
        self.values
            .iter()
            .map(|&(m, value)| (m, value, m.max().value(self.cpu_ceiling)))
            .collect()
    }

    /// Notes on how far the figures can be trusted: workers whose CPU share is unknown or
    /// counted whole, how the figures were made, and details some workers would not let us
    /// read. Each note carries the level it is shown from.
    pub fn notes(&self) -> Vec<Note> {
        let mut notes = Vec::new();
        if let Some(cpu) = &self.cpu {
            // I/O follows CPU's rules: the same workers are unknown, new or exited
            notes.extend(cpu_notes(cpu, self.io.is_some()));
            notes.push(past::interval_note(cpu, self.workers));
        }
        notes.extend(self.io_gap.and_then(|gap| gap.note(self.workers)));
        notes.extend(self.io.and_then(|io| io.recovery_note()));
        notes.extend(self.counter_notes.iter().cloned());
        notes.extend(self.average.map(Average::note));
        if !self.impossible.is_empty() {
            notes.push(Note::BeyondCeiling {
                figures: self.impossible.clone(),
                ceiling: self.cpu_ceiling,
            });
        }
        notes.extend(self.memory_notes());
        if self.pss_unreadable > 0 {
            notes.push(Note::PssUnreadable {
                unreadable: self.pss_unreadable,
                of: self.workers,
            });
        }
        if self.fds_unreadable > 0 {
            notes.push(Note::FdsUnreadable {
                unreadable: self.fds_unreadable,
                of: self.workers,
            });
        }
        notes.extend(queue_notes(self.queues.as_ref()));
        notes
    }

    /// Why PSS or `rss_pct` are missing, and what `rss_pct` was taken from.
    fn memory_notes(&self) -> Vec<Note> {
        let mut notes = Vec::new();
        if let Some(cut) = self.smaps_cut {
            notes.push(Note::SmapsCut {
                read: cut.read,
                of: cut.of,
            });
        }
        notes.extend(match self.rss_pct_from {
            None if self.wanted.contains(RssPct) && self.workers > 0 => Some(Note::RssPctNoTotal),
            Some(TotalFrom::CgroupCharge) => Some(Note::RssPctFromCharge),
            Some(TotalFrom::PssSum) => Some(Note::RssPctFromPss),
            None => None,
        });
        notes
    }
}

/// The CPU notes: an unknown share (the figure is low by it), reaped time left out, exited
/// workers recovered, new workers counted whole. `with_io`: the I/O figures follow the same
/// rules, so the notes name them too.
fn cpu_notes(cpu: &CpuFigures, with_io: bool) -> Vec<Note> {
    let mut notes = Vec::new();
    if cpu.unknown_workers > 0 {
        notes.push(Note::UnknownShare {
            count: cpu.unknown_workers,
            with_io,
        });
    }
    if let Some(exited) = cpu.exited.filter(|e| e.beyond > 0) {
        notes.push(Note::ReapedBeyond {
            exited: exited.count,
            interval: cpu.interval,
            ticks: exited.beyond,
        });
    }
    if let Some(exited) = &cpu.exited {
        notes.push(Note::ExitedRecovered {
            count: exited.count,
            ticks: exited.user_ticks + exited.system_ticks,
        });
    }
    if cpu.new_workers > 0 {
        notes.push(Note::NewWorkers {
            count: cpu.new_workers,
            interval: cpu.interval,
            with_io,
        });
    }
    notes
}

/// What the workers may use, for the relative figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// CPU percentages are divided by this: 1 for "100 % = one core", the usable cores for
    /// `--cpu-scale host`
    pub cpu_divisor: f64,
    /// upper bound of the CPU figures for perfdata
    pub cpu_ceiling: f64,
    /// memory the workers may use (their cgroup's limit, else the host's), bytes
    pub memory: Option<u64>,
    /// memory charged to the workers' own cgroup (`cg_memory`), bytes
    pub memory_charge: Option<u64>,
}

impl Capacity {
    /// "100 % = one core", the default.
    pub fn per_core(cpus: usize) -> Capacity {
        Capacity {
            cpu_divisor: 1.0,
            cpu_ceiling: 100.0 * cpus as f64,
            memory: None,
            memory_charge: None,
        }
    }

    /// "100 % = all the CPUs the workers may run on": the host's CPUs, narrowed by the
    /// workers' affinity and by a cgroup quota (cpu.max, in cores) when set.
    pub fn per_host(cpus: usize, affinity: Option<u32>, cgroup_cores: Option<f64>) -> Capacity {
        let mut cores = cpus.max(1) as f64;
        if let Some(allowed) = affinity.filter(|&a| a > 0) {
            cores = cores.min(f64::from(allowed));
        }
        if let Some(quota) = cgroup_cores.filter(|&q| q > 0.0) {
            cores = cores.min(quota);
        }
        Capacity {
            cpu_divisor: cores,
            cpu_ceiling: 100.0,
            memory: None,
            memory_charge: None,
        }
    }
}

/// A metric's value, or None where this run could not measure it.
type Measured = (MetricName, Option<f64>);

/// Computes the figures of `workers` (and their `masters`) sampled in `now`, against what
/// earlier readings left (`previous`); `window` is `--average`, seconds. Only the metrics of
/// `wanted` are kept: perfdata lists exactly what the run set out to measure.
pub fn compute(
    workers: &[ProcSample],
    masters: &[ProcSample],
    now: &Snapshot,
    previous: Previous,
    capacity: &Capacity,
    window: Option<u64>,
    wanted: MetricSet,
) -> Figures {
    let run = past::Run::new(workers, masters, now);
    let past::Measurement { cpu, base, tally } = run.measure(previous);
    let rate = Rate::over(cpu.as_ref(), run.hz, capacity);
    let base = base.as_ref().map(|(base, ticks)| (*base, ticks.as_slice()));
    let (exited, ticks) = (cpu.as_ref().and_then(|c| c.exited), base.map(|b| b.1));
    let (io_bytes, io) = io_since(base, (workers, masters), exited);
    let (rates, counter_notes) = per_second(workers, base, rate.seconds);
    let per_worker = per_worker(workers, ticks, io_bytes.as_deref(), rate, now.uptime);
    let cpu = cpu.map(|cpu| CpuFigures {
        error_bound: rate.percent(workers.len() as u64),
        ..cpu
    });
    let (from_history, average) = run.history_values(previous, &tally, window, rate, cpu.as_ref());
    let memory_total = rss_pct_source(workers, capacity);
    let (from_cgroup, cgroup_notes) = cgroup::cgroup_values(now.cgroup.as_ref(), base, wanted);
    let values = [
        counts(workers),
        cpu_values(cpu.as_ref(), rate, &per_worker),
        io_values(io.and_then(Result::ok).as_ref(), rate),
        memory(workers, capacity, memory_total),
        [fds(workers), queue_values(now.queues.as_ref())].concat(),
        ages(&per_worker),
        states(workers),
        from_history,
        from_cgroup,
        rates,
    ]
    .concat();
    let tolerance = cpu.as_ref().map_or(0.0, |c| c.error_bound);
    let ordered = in_perfdata_order(values, wanted);
    let (values, impossible) = within_ceiling(ordered, capacity.cpu_ceiling, tolerance);
    Figures {
        workers: workers.len(),
        cpu,
        cpu_ceiling: capacity.cpu_ceiling,
        values,
        impossible,
        pss_unreadable: pss_unreadable(wanted, workers, now.smaps_cut),
        fds_unreadable: wanted_unreadable(wanted, Fds, workers, |d| d.fds),
        smaps_cut: now.smaps_cut,
        rss_pct_from: memory_total.map(|t| t.from),
        wanted,
        io: io.and_then(Result::ok),
        io_gap: io.and_then(Result::err),
        per_worker,
        average,
        tally,
        counter_notes: [counter_notes, cgroup_notes].concat(),
        queues: now.queues.clone(),
    }
}

/// The measured values of the `wanted` metrics, unmeasured ones dropped, in catalog order (the
/// groups compute them in their own order; `MetricName`'s order is the catalog's).
fn in_perfdata_order(values: Vec<Measured>, wanted: MetricSet) -> Vec<(MetricName, f64)> {
    let mut measured: Vec<(MetricName, f64)> = values
        .into_iter()
        .filter(|(metric, _)| wanted.contains(*metric))
        .filter_map(|(metric, value)| Some((metric, value?)))
        .collect();
    measured.sort_by_key(|&(metric, _)| metric);
    measured
}

/// Ticks as CPU percent of the interval, divided as `--cpu-scale` says.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// the interval; infinite with no previous sample
    seconds: f64,
    /// clock ticks per second
    hz: f64,
    /// see [`Capacity::cpu_divisor`]
    divisor: f64,
}

impl Rate {
    /// The rate of the interval `cpu` was measured over (infinite with none), `hz` ticks a
    /// second, divided as `capacity` says.
    fn over(cpu: Option<&CpuFigures>, hz: f64, capacity: &Capacity) -> Rate {
        Rate {
            seconds: cpu.map_or(f64::INFINITY, |c| c.interval),
            hz,
            divisor: capacity.cpu_divisor,
        }
    }

    fn percent(self, ticks: u64) -> f64 {
        ticks as f64 / (self.seconds * self.hz) * 100.0 / self.divisor
    }

    fn per_second(self, bytes: u64) -> f64 {
        bytes as f64 / self.seconds
    }

    fn io(self, bytes: IoCounters) -> IoRate {
        IoRate {
            read: self.per_second(bytes.read_bytes),
            write: self.per_second(bytes.write_bytes),
        }
    }
}

/// What each worker did since the previous sample, in the order of `workers`.
fn worker_ticks(workers: &[ProcSample], prev: &TickState, hz: f64) -> Vec<WorkerCpu> {
    let before = interval::lines_by_pid(prev);
    workers
        .iter()
        .map(|w| {
            let line = before.get(&w.pid).copied();
            let basis = interval::basis(w, line, prev.uptime, hz);
            // ticks are read with every process and on every line: known at both readings
            let ticks = |counter| interval::grown(counter, w, line, basis).unwrap_or(0);
            WorkerCpu {
                user_ticks: ticks(Utime),
                system_ticks: ticks(Stime),
                basis,
            }
        })
        .collect()
}

/// Each worker's figures for the long output, busiest first; equal CPU goes to the larger,
/// then to the lower pid, so the order does not flicker between runs.
fn per_worker(
    workers: &[ProcSample],
    ticks: Option<&[WorkerCpu]>,
    io_bytes: Option<&[Option<IoCounters>]>,
    rate: Rate,
    uptime: f64,
) -> Vec<WorkerFigures> {
    let mut figures: Vec<WorkerFigures> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| WorkerFigures {
            pid: w.pid,
            comm: text::shown_bytes(w.comm.as_bytes()),
            uid: w.uid,
            cpu: ticks.map(|t| rate.percent(t[i].user_ticks + t[i].system_ticks)),
            rss: w.rss,
            vms: w.vms,
            age: (uptime - w.starttime as f64 / rate.hz).max(0.0),
            state: w.state,
            pss: w.details.as_ref().and_then(|d| d.pss),
            io: io_bytes.and_then(|b| b[i]).map(|bytes| rate.io(bytes)),
        })
        .collect();
    figures.sort_by(|a, b| {
        let cpu = |w: &WorkerFigures| w.cpu.unwrap_or(0.0);
        cpu(b)
            .total_cmp(&cpu(a))
            .then(b.rss.cmp(&a.rss))
            .then(a.pid.cmp(&b.pid))
    });
    figures
}

/// All workers' ticks over the interval since `prev`, those of workers gone since recovered
/// from their master, and how each worker's share was known.
fn cpu_interval(
    prev: &TickState,
    workers: &[ProcSample],
    masters: &[ProcSample],
    ticks: &[WorkerCpu],
    seconds: f64,
    since: Since,
) -> CpuFigures {
    let exited = exited_workers(prev, workers, masters).map(|e| e.at_most(seconds * prev_hz(prev)));
    let recovered = |ticks: fn(&ExitedWorkers) -> u64| exited.as_ref().map_or(0, ticks);
    let count = |basis| ticks.iter().filter(|c| c.basis == basis).count();
    CpuFigures {
        user_ticks: ticks.iter().map(|c| c.user_ticks).sum::<u64>() + recovered(|e| e.user_ticks),
        system_ticks: ticks.iter().map(|c| c.system_ticks).sum::<u64>()
            + recovered(|e| e.system_ticks),
        interval: seconds,
        new_workers: count(CpuBasis::New),
        unknown_workers: count(CpuBasis::Unknown),
        exited,
        since,
        // set once the rate is known
        error_bound: 0.0,
    }
}

/// [`Part::Cpu`](crate::catalog::Part): all workers' CPU and the busiest one's, unmeasured
/// without an interval.
fn cpu_values(cpu: Option<&CpuFigures>, rate: Rate, per_worker: &[WorkerFigures]) -> Vec<Measured> {
    let percent = |ticks: fn(&CpuFigures) -> u64| cpu.map(|c| rate.percent(ticks(c)));
    vec![
        (Cpu, percent(|c| c.user_ticks + c.system_ticks)),
        (CpuUser, percent(|c| c.user_ticks)),
        (CpuSystem, percent(|c| c.system_ticks)),
        // no workers, no busiest one: left out rather than a 0; and left out when the
        // interval starts at a sample of the history, which has no per-worker ticks
        (CpuMax, per_worker.first().and_then(|w| w.cpu)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::{Counter, Counters};
    use crate::sample::Details;
    use crate::sample::IoStatus;
    use crate::state::ProcTicks;

    /// The notes as printed at `-v` given `level` times.
    fn notes_at(f: &Figures, level: u8) -> Vec<String> {
        crate::output::note_lines(&f.notes(), level)
    }

    /// [`compute`] against a stored baseline (or none), without `--average`.
    fn compute_with(
        workers: &[ProcSample],
        masters: &[ProcSample],
        now: &Snapshot,
        stored: Option<&TickState>,
        capacity: &Capacity,
    ) -> Figures {
        let previous = Previous {
            stored,
            in_run: None,
        };
        compute(
            workers,
            masters,
            now,
            previous,
            capacity,
            None,
            MetricSet::all(),
        )
    }

    /// All workers' CPU, which every CPU test is about.
    fn total(f: &Figures) -> f64 {
        f.value(Cpu).expect("cpu measured")
    }

    fn worker(pid: i32, starttime: u64, utime: u64, stime: u64) -> ProcSample {
        ProcSample {
            pid,
            starttime,
            counters: Counters::ticks([utime, stime, 0, 0]),
            rss: 4 << 20,
            vms: 100 << 20,
            ..ProcSample::default()
        }
    }

    fn ticks(pid: i32, starttime: u64, utime: u64, stime: u64) -> ProcTicks {
        ProcTicks {
            pid,
            starttime,
            counters: Counters::ticks([utime, stime, 0, 0]),
        }
    }

    /// A reading of the fixture host at `uptime` (also for the tests of `past`).
    pub(super) fn snapshot(uptime: f64) -> Snapshot {
        Snapshot {
            uptime,
            btime: 1_700_000_000,
            clock_ticks: 100,
            cpus: 4,
            ..Snapshot::default()
        }
    }

    fn previous(uptime: f64, workers: Vec<ProcTicks>) -> TickState {
        TickState {
            uptime,
            btime: 1_700_000_000,
            clock_ticks: 100,
            workers,
            ..TickState::default()
        }
    }

    #[test]
    fn cpu_is_tick_delta_over_interval() {
        // 60 s apart at 100 Hz = 6000 ticks available per core
        let prev = previous(1000.0, vec![ticks(10, 500, 100, 50), ticks(11, 500, 0, 0)]);
        let now = [worker(10, 500, 1300, 350), worker(11, 500, 600, 0)];
        let f = compute_with(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        // (1200 + 300 + 600) / 6000 * 100 = 35 %
        assert!((total(&f) - 35.0).abs() < 1e-9, "{}", total(&f));
        assert!((f.value(CpuUser).unwrap() - 30.0).abs() < 1e-9);
        assert!((f.value(CpuSystem).unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(cpu.interval, 60.0);
        assert_eq!(f.per_worker[0].pid, 10, "busiest first");
        assert!((f.per_worker[0].cpu.unwrap() - 25.0).abs() < 1e-9);
    }

    #[test]
    fn can_exceed_one_core() {
        let prev = previous(0.0 + 100.0, vec![ticks(1, 0, 0, 0), ticks(2, 0, 0, 0)]);
        let now = [worker(1, 0, 1000, 0), worker(2, 0, 1000, 0)];
        let f = compute_with(
            &now,
            &[],
            &snapshot(110.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        assert!((total(&f) - 200.0).abs() < 1e-9);
    }

    #[test]
    fn reused_pid_is_not_subtracted() {
        // pid 10 had 5000 ticks; a new process with pid 10 started at 1030 s (tick 103000)
        let prev = previous(1000.0, vec![ticks(10, 500, 5000, 0)]);
        let now = [worker(10, 103_000, 300, 0)];
        let f = compute_with(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        assert!(
            (total(&f) - 5.0).abs() < 1e-9,
            "300 ticks / 6000 = 5 %, got {}",
            total(&f)
        );
        assert_eq!(cpu.new_workers, 1);
    }

    #[test]
    fn new_worker_counts_fully() {
        let prev = previous(1000.0, vec![]);
        let now = [worker(20, 100_000, 120, 60)];
        let f = compute_with(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        assert!((total(&f) - 3.0).abs() < 1e-9);
        assert_eq!(cpu.new_workers, 1);
    }

    #[test]
    fn old_process_without_baseline_counts_zero() {
        // started at 500 s, long before the previous sample, but not in it
        let prev = previous(1000.0, vec![]);
        let now = [worker(30, 50_000, 9999, 9999)];
        let f = compute_with(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        assert_eq!(total(&f), 0.0);
        assert_eq!(cpu.unknown_workers, 1);
    }

    fn master(cutime: u64, cstime: u64) -> ProcSample {
        ProcSample {
            pid: 1,
            starttime: 10,
            counters: Counters::ticks([0, 0, cutime, cstime]),
            ..ProcSample::default()
        }
    }

    fn master_ticks(cutime: u64, cstime: u64) -> ProcTicks {
        ProcTicks {
            counters: Counters::ticks([0, 0, cutime, cstime]),
            ..ticks(1, 10, 0, 0)
        }
    }

    #[test]
    fn exited_workers_are_recovered_from_the_master() {
        // worker 20 had 300/60 ticks at the previous sample and is gone; the master reaped it
        // (lifetime 800/100) and a short-lived worker (1200/0) in between
        let mut prev = previous(1000.0, vec![ticks(20, 500, 300, 60), ticks(21, 500, 0, 0)]);
        prev.masters = vec![master_ticks(5000, 700)];
        let now = [worker(21, 500, 600, 0)];
        let masters = [master(5000 + 2000, 700 + 100)];
        let f = compute_with(
            &now,
            &masters,
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        let exited = cpu.exited.unwrap();
        assert_eq!(exited.count, 1);
        assert_eq!((exited.user_ticks, exited.system_ticks), (1700, 40));
        // (600 + 1700 + 40) / 6000 = 39 %
        assert!((total(&f) - 39.0).abs() < 1e-9, "{}", total(&f));
    }

    // Regression (issue 16.1): a child the master ran for hours and reaped inside one interval
    // made thousands of percent of "exited workers".
    #[test]
    fn recovery_never_exceeds_what_the_exited_workers_could_have_burnt() {
        // one worker gone: at most 60 s x 100 Hz = 6000 ticks; the master reaped 30000 + 10000
        let mut prev = previous(
            1000.0,
            vec![io_ticks(20, 500, 0, 0), io_ticks(21, 500, 0, 0)],
        );
        prev.masters = vec![ProcTicks {
            counters: Counters::ticks([0, 0, 5000, 700]).bytes(0, 0),
            ..master_ticks(5000, 700)
        }];
        let now = [io_worker(21, 500, 0, 0)];
        let mut m = io_master(0, 1 << 30);
        m.counters.set(Counter::Cutime, 5000 + 30_000);
        m.counters.set(Counter::Cstime, 700 + 10_000);
        let f = at_1060(&now, &[m.clone()], &prev);
        let exited = f.cpu.unwrap().exited.unwrap();
        assert_eq!(
            (exited.user_ticks, exited.system_ticks, exited.beyond),
            (4500, 1500, 34_000)
        );
        // 6000 ticks over 6000: one core, never the 667 % the reaped time would say
        assert!((total(&f) - 100.0).abs() < 1e-9, "{}", total(&f));
        assert!(
            notes_at(&f, 0).contains(
                &"cpu: the master's reaped-children time exceeds what 1 exited workers could \
                  have used in the 60 s interval; 34000 ticks left out"
                    .to_string()
            ),
            "{:?}",
            notes_at(&f, 0)
        );
        // its reaped bytes are not the workers' either: left out, and said so
        assert_eq!(io_of(&f), (Some(0.0), Some(0.0)));
        assert_eq!(f.io.unwrap().unrecovered, Some(Unrecovered::NotWorkers));
        // with no worker gone, nothing at all can be recovered
        let f = at_1060(
            &[io_worker(20, 500, 0, 0), io_worker(21, 500, 0, 0)],
            &[m],
            &prev,
        );
        let exited = f.cpu.unwrap().exited.unwrap();
        assert_eq!((exited.user_ticks, exited.system_ticks), (0, 0));
        assert_eq!(total(&f), 0.0);
    }

    #[test]
    fn cpu_figures_beyond_every_cpu_are_never_reported() {
        let values = vec![(Cpu, 400.3), (CpuMax, 900.0), (Rss, 1e12)];
        let (kept, impossible) = within_ceiling(values, 400.0, 0.5);
        // within whole ticks' rounding of the ceiling: the ceiling; beyond: left out
        assert_eq!(kept, [(Cpu, 400.0), (Rss, 1e12)]);
        assert_eq!(impossible, [(CpuMax, 900.0)]);
    }

    #[test]
    fn no_recovery_when_the_master_changed() {
        let mut prev = previous(1000.0, vec![ticks(20, 500, 300, 60)]);
        prev.masters = vec![master_ticks(5000, 700)];
        let mut restarted = master(9000, 900);
        restarted.starttime = 99_000;
        let f = compute_with(
            &[],
            &[restarted],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        assert_eq!(cpu.exited, None);
        assert_eq!(total(&f), 0.0);
    }

    #[test]
    fn recovery_is_clamped_at_zero() {
        // a gone worker the master did not reap (yet): its old ticks must not go negative
        let mut prev = previous(1000.0, vec![ticks(20, 500, 300, 60)]);
        prev.masters = vec![master_ticks(5000, 700)];
        let f = compute_with(
            &[],
            &[master(5000, 700)],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        assert_eq!(cpu.exited.unwrap().user_ticks, 0);
        assert_eq!(total(&f), 0.0);
    }

    #[test]
    fn no_previous_means_no_cpu() {
        let f = compute_with(
            &[worker(1, 0, 5, 5)],
            &[],
            &snapshot(10.0),
            None,
            &Capacity::per_core(4),
        );
        assert_eq!(f.cpu, None);
        assert_eq!(f.per_worker[0].cpu, None);
    }

    #[test]
    fn memory_averages() {
        let mut a = worker(1, 0, 0, 0);
        a.rss = 1000;
        a.vms = 10_000;
        let mut b = worker(2, 0, 0, 0);
        b.rss = 3000;
        b.vms = 30_000;
        let f = compute_with(&[a, b], &[], &snapshot(10.0), None, &Capacity::per_core(4));
        assert_eq!(f.value(Rss), Some(2000.0));
        assert_eq!(f.value(Vms), Some(20_000.0));
        assert_eq!(f.value(RssMax), Some(3000.0));
        assert_eq!(f.value(RssTotal), Some(4000.0));
        let empty = compute_with(&[], &[], &snapshot(10.0), None, &Capacity::per_core(4));
        assert_eq!(
            (empty.value(Rss), empty.value(RssMax), empty.value(RssTotal)),
            (None, None, Some(0.0))
        );
    }

    // Regression (issue 17): 50 workers sharing 2 GiB read rss_pct=424.91%; a page is now
    // counted once, from the cgroup's charge or the PSS sum, and never from a sum of RSS.
    #[test]
    fn rss_pct_counts_each_page_once() {
        let shared = |pid| {
            let mut w = worker(pid, 0, 0, 0);
            w.rss = 2 << 30;
            w
        };
        let workers: Vec<ProcSample> = (1..=50).map(shared).collect();
        let mut capacity = Capacity::per_core(4);
        capacity.memory = Some(4 << 30);
        let rss_pct = |workers: &[ProcSample], capacity: &Capacity| {
            compute_with(workers, &[], &snapshot(10.0), None, capacity).value(RssPct)
        };
        // neither a charge nor PSS: left out, never 2500 %
        assert_eq!(rss_pct(&workers, &capacity), None);
        // the PSS sum: 50 x 41 MiB of 4 GiB
        let with_pss: Vec<ProcSample> = workers
            .iter()
            .cloned()
            .map(|mut w| {
                w.details = Some(Details {
                    pss: Some(41 << 20),
                    ..Details::default()
                });
                w
            })
            .collect();
        assert_eq!(
            rss_pct(&with_pss, &capacity),
            Some(50.0 * 41.0 / 4096.0 * 100.0)
        );
        // the cgroup's charge comes first: 2.5 GiB of 4 GiB
        capacity.memory_charge = Some(5 << 29);
        assert_eq!(rss_pct(&with_pss, &capacity), Some(62.5));
        // never above its max
        capacity.memory_charge = Some(8 << 30);
        assert_eq!(rss_pct(&workers, &capacity), Some(100.0));
        // no workers hold nothing
        assert_eq!(rss_pct(&[], &capacity), Some(0.0));
    }

    // A metric added to the catalog but not to its part's function (or to the wrong one)
    // would silently never reach perfdata.
    #[test]
    fn each_part_computes_its_catalog_entries() {
        use crate::catalog::{Part, CATALOG};
        let rate = Rate {
            seconds: 60.0,
            hz: 100.0,
            divisor: 1.0,
        };
        let parts = [
            (Part::Count, counts(&[])),
            (Part::Cpu, cpu_values(None, rate, &[])),
            (Part::Memory, memory(&[], &Capacity::per_core(1), None)),
            (Part::Fds, fds(&[])),
            (Part::Queue, queue_values(None)),
            (Part::Io, io_values(None, rate)),
            (Part::Ages, ages(&[])),
            (Part::States, states(&[])),
            (
                Part::History,
                past::Run::new(&[], &[], &snapshot(0.0))
                    .history_values(Previous::default(), &Tally::default(), None, rate, None)
                    .0,
            ),
            (
                Part::Cgroup,
                cgroup::cgroup_values(None, None, MetricSet::all()).0,
            ),
        ];
        for (part, measured) in &parts {
            let computed: Vec<MetricName> = measured.iter().map(|&(m, _)| m).collect();
            let defined: Vec<MetricName> = CATALOG
                .iter()
                .filter(|e| e.part == *part)
                .map(|e| e.metric)
                .collect();
            assert_eq!(computed, defined, "{part:?}");
        }
        // one computation serves every counter's rate
        let rates: Vec<MetricName> = per_second(&[], None, 60.0)
            .0
            .iter()
            .map(|&(m, _)| m)
            .collect();
        let defined: Vec<MetricName> = CATALOG
            .iter()
            .filter(|e| matches!(e.part, Part::PerSecond(_)))
            .map(|e| e.metric)
            .collect();
        assert_eq!(rates, defined);
        let covered: usize = parts.iter().map(|(_, m)| m.len()).sum::<usize>() + rates.len();
        assert_eq!(covered, CATALOG.len(), "a part is missing here");
    }

    #[test]
    fn every_metric_is_measured_once_in_perfdata_order() {
        let details = Details {
            fds: Some(16),
            fd_limit: Some(1024),
            pss: Some(2 << 20),
            uss: Some(1 << 20),
        };
        let mut w = worker(10, 500, 1300, 350);
        w.details = Some(details);
        let mut w = read_io(w, 6000, 12_000);
        let mut before = ticks(10, 500, 100, 50);
        before.counters = before.counters.bytes(0, 0);
        // every other counter, as the `PerSecond` metrics read them
        for &counter in Counter::ALL {
            if before.counters.get(counter).is_some() {
                continue;
            }
            before.counters.set(counter, 40);
            w.counters.set(counter, 100);
        }
        let mut prev = previous(1000.0, vec![before]);
        // the history metrics need earlier samples and a master
        let sample = |uptime| crate::history::Sample {
            uptime,
            workers: 1,
            rss_avg: 4 << 20,
            master: crate::history::Identity::new([(1, 10)]),
            ..Default::default()
        };
        prev.history =
            crate::history::History::new(900, vec![sample(940.0), sample(1000.0)]).unwrap();
        let mut capacity = Capacity::per_core(4);
        capacity.memory = Some(1 << 30);
        // the cgroup's counters at the baseline and now
        prev.cgroup = cgroup::tests::baseline(&cgroup::tests::reading(1000.0, 7, [0; 6])).cgroup;
        let previous = Previous::stored(&prev);
        let mut now = snapshot(1060.0);
        now.cgroup = Some(cgroup::tests::reading(1060.0, 7, [1; 6]));
        now.queues = Some(crate::listen::Queues::Read {
            sockets: vec![crate::listen::ListenSocket {
                local: crate::listen::Local::Unix(b"/run/a.sock".to_vec()),
                inode: 7,
                queue: 1,
                limit: 16,
                v6only: None,
            }],
            from: crate::listen::HeldBy::Listen,
            unmatched: Vec::new(),
        });
        let f = compute(
            &[w],
            &[master(0, 0)],
            &now,
            previous,
            &capacity,
            Some(120),
            MetricSet::all(),
        );
        let measured: Vec<MetricName> = f.values.iter().map(|&(m, _)| m).collect();
        assert_eq!(measured, MetricName::all().collect::<Vec<_>>());
        let max = |metric| f.measured().into_iter().find(|m| m.0 == metric).unwrap().2;
        assert_eq!(max(CpuMax), Some(400.0));
        assert_eq!(max(RssPct), Some(100.0));
        assert_eq!(max(Rss), None);
    }

    #[test]
    fn unmeasurable_metrics_are_left_out_not_zero() {
        let f = compute_with(&[], &[], &snapshot(10.0), None, &Capacity::per_core(4));
        assert_eq!(
            f.measured(),
            [
                (Workers, 0.0, None),
                (RssTotal, 0.0, None),
                (Threads, 0.0, None),
                (Zombies, 0.0, None),
                (Uninterruptible, 0.0, None),
            ]
        );
        // an interval but no workers: CPU of nobody is 0, but there is no busiest worker
        let f = compute_with(
            &[],
            &[],
            &snapshot(1060.0),
            Some(&previous(1000.0, vec![])),
            &Capacity::per_core(4),
        );
        assert_eq!(f.value(Cpu), Some(0.0));
        assert_eq!(f.value(CpuMax), None);
    }

    /// `p` with its `/proc/PID/io` read, saying `read`, `write`.
    fn read_io(p: ProcSample, read: u64, write: u64) -> ProcSample {
        ProcSample {
            io: IoStatus::Read,
            counters: p.counters.bytes(read, write),
            ..p
        }
    }

    /// `p` with its `/proc/PID/io` there but not readable.
    fn unreadable_io(p: ProcSample) -> ProcSample {
        let mut counters = p.counters;
        for counter in Counter::io() {
            counters.put(counter, None);
        }
        ProcSample {
            io: IoStatus::Unreadable,
            counters,
            reaped: Counters::default(),
            ..p
        }
    }

    /// A worker whose `/proc/PID/io` said `read`, `write`.
    fn io_worker(pid: i32, starttime: u64, read: u64, write: u64) -> ProcSample {
        read_io(worker(pid, starttime, 0, 0), read, write)
    }

    fn io_ticks(pid: i32, starttime: u64, read: u64, write: u64) -> ProcTicks {
        ProcTicks {
            counters: Counters::ticks([0; 4]).bytes(read, write),
            ..ticks(pid, starttime, 0, 0)
        }
    }

    /// A master whose reaped children did `read`, `write`; its own I/O is more.
    fn io_master(read: u64, write: u64) -> ProcSample {
        ProcSample {
            reaped: Counters::default().bytes(read, write),
            ..read_io(master(0, 0), read + 1_000_000, write + 1_000_000)
        }
    }

    fn io_of(f: &Figures) -> (Option<f64>, Option<f64>) {
        (f.value(IoRead), f.value(IoWrite))
    }

    fn at_1060(workers: &[ProcSample], masters: &[ProcSample], prev: &TickState) -> Figures {
        compute_with(
            workers,
            masters,
            &snapshot(1060.0),
            Some(prev),
            &Capacity::per_core(4),
        )
    }

    #[test]
    fn io_is_the_counters_growth_over_the_interval() {
        let prev = previous(1000.0, vec![io_ticks(10, 500, 6000, 60_000)]);
        // pid 11 was born at 1030 s: all of its bytes are the interval's
        let now = [
            io_worker(10, 500, 6000 + 600, 60_000 + 120_000),
            io_worker(11, 103_000, 0, 60),
        ];
        let f = at_1060(&now, &[], &prev);
        assert_eq!(io_of(&f), (Some(10.0), Some(2001.0)));
        assert_eq!(f.io.unwrap().exited, None, "no master to recover from");
        let by_pid = |pid| f.per_worker.iter().find(|w| w.pid == pid).unwrap().io;
        assert_eq!(
            by_pid(10),
            Some(IoRate {
                read: 10.0,
                write: 2000.0
            })
        );
        assert_eq!(
            by_pid(11),
            Some(IoRate {
                read: 0.0,
                write: 1.0
            })
        );
        // a reused pid is a new process: its predecessor's bytes are not subtracted
        let reused = [io_worker(10, 103_000, 600, 6000)];
        let f = at_1060(&reused, &[], &prev);
        assert_eq!(io_of(&f), (Some(10.0), Some(100.0)));
        // the same interval rule as CPU: no baseline, no figure
        let f = compute_with(&now, &[], &snapshot(1060.0), None, &Capacity::per_core(4));
        assert_eq!((io_of(&f), f.io_gap), ((None, None), None));
    }

    #[test]
    fn exited_workers_io_is_recovered_from_the_master() {
        // worker 20 had written 6000 bytes at the previous sample and is gone; the master
        // reaped it (lifetime 9000) and a worker born and gone in between (3000)
        let mut prev = previous(
            1000.0,
            vec![io_ticks(20, 500, 0, 6000), io_ticks(21, 500, 0, 0)],
        );
        prev.masters = vec![ProcTicks {
            counters: Counters::ticks([0; 4]).bytes(0, 50_000),
            ..master_ticks(0, 0)
        }];
        let now = [io_worker(21, 500, 0, 600)];
        let f = at_1060(&now, &[io_master(0, 50_000 + 12_000)], &prev);
        let io_figures = f.io.unwrap();
        let written = |write_bytes| IoCounters {
            read_bytes: 0,
            write_bytes,
        };
        assert_eq!(io_figures.exited, Some(written(6000)));
        // (600 + 12000 - 6000) / 60 s; the master's own I/O is not the workers'
        assert_eq!(io_of(&f), (Some(0.0), Some(110.0)));
        assert!(
            notes_at(&f, 2).iter().any(|n| n
                == "io_read, io_write: 0 bytes read and 6000 written by workers that exited \
                    within the interval, recovered from the master's reaped-children I/O"),
            "{:?}",
            notes_at(&f, 2)
        );
        // a restarted master recovers nothing, as for CPU
        let mut restarted = io_master(0, 90_000);
        restarted.starttime = 99_000;
        let f = at_1060(&now, &[restarted], &prev);
        assert_eq!(io_of(&f), (Some(0.0), Some(10.0)));
        assert_eq!(f.io.unwrap().unrecovered, None);
    }

    // The workers' own counters are all there but the master's may not be read: the live
    // workers' figure, and a note that exited ones are missing from it (as with no master).
    #[test]
    fn an_unreadable_master_leaves_exited_workers_out_with_a_note() {
        let mut prev = previous(1000.0, vec![io_ticks(21, 500, 0, 0)]);
        prev.masters = vec![master_ticks(0, 0)];
        let master = unreadable_io(io_master(0, 0));
        let f = at_1060(&[io_worker(21, 500, 0, 600)], &[master], &prev);
        assert_eq!(io_of(&f), (Some(0.0), Some(10.0)));
        assert_eq!(
            f.io.unwrap().unrecovered,
            Some(Unrecovered::MasterUnreadable)
        );
        assert!(
            notes_at(&f, 0).contains(
                &"io_read, io_write: /proc/PID/io of the master not readable (needs root or \
                  its user), so workers that exited within the interval are not counted"
                    .to_string()
            ),
            "{:?}",
            notes_at(&f, 0)
        );
        // readable, but not in the previous sample
        let master = ProcSample {
            reaped: Counters::default(),
            ..read_io(io_master(0, 0), 0, 0)
        };
        let f = at_1060(&[io_worker(21, 500, 0, 600)], &[master], &prev);
        assert_eq!(f.io.unwrap().unrecovered, Some(Unrecovered::NotKnown));
    }

    // A master counted as a worker: its reaped children are exited workers, counted once.
    #[test]
    fn a_master_counted_as_a_worker_counts_its_own_io() {
        let mut prev = previous(1000.0, vec![]);
        let master_row = io_master(0, 6000);
        prev.masters = vec![ProcTicks::of_master(&io_master(0, 0))];
        prev.workers = vec![ProcTicks::from(&io_master(0, 0))];
        let own_bytes = Counters::default().bytes(1_000_000, 1_000_000);
        assert_eq!(
            IoCounters::of(&prev.workers[0].counters),
            IoCounters::of(&own_bytes),
            "own"
        );
        let own = read_io(master_row.clone(), 1_000_000, 1_000_000 + 6000 + 600);
        let f = at_1060(&[own], &[master_row], &prev);
        // 600 of its own, 6000 of its reaped children
        assert_eq!(io_of(&f), (Some(0.0), Some(110.0)));
    }

    #[test]
    fn io_is_left_out_unless_every_counter_is_known() {
        let prev = previous(
            1000.0,
            vec![io_ticks(10, 500, 0, 0), io_ticks(11, 500, 0, 0)],
        );
        let denied = unreadable_io(io_worker(11, 500, 0, 0));
        let f = at_1060(&[io_worker(10, 500, 0, 60), denied], &[], &prev);
        assert_eq!(io_of(&f), (None, None));
        assert_eq!(f.io_gap, Some(IoGap::Unreadable(1)));
        assert!(notes_at(&f, 0).contains(
            &"io_read, io_write: /proc/PID/io of 1 of 2 workers not readable (needs root or \
              the workers' user); left out"
                .to_string()
        ));
        assert_eq!(f.per_worker.iter().filter(|w| w.io.is_some()).count(), 1);
        // a tick file from before the I/O columns
        let old = previous(1000.0, vec![ticks(10, 500, 0, 0)]);
        let f = at_1060(&[io_worker(10, 500, 0, 60)], &[], &old);
        assert_eq!(
            (io_of(&f), f.io_gap),
            ((None, None), Some(IoGap::NoBaseline(1)))
        );
        // no io file anywhere (no I/O accounting): left out without a note
        let f = at_1060(&[worker(10, 500, 0, 0)], &[], &prev);
        assert_eq!(f.io_gap, Some(IoGap::NoAccounting));
        assert!(
            notes_at(&f, 2).iter().all(|n| !n.contains("io_")),
            "{:?}",
            notes_at(&f, 2)
        );
        // one file gone among readable ones
        let f = at_1060(
            &[io_worker(10, 500, 0, 0), worker(11, 500, 0, 0)],
            &[],
            &prev,
        );
        assert_eq!(f.io_gap, Some(IoGap::Missing(1)));
    }

    #[test]
    fn baseline_rules() {
        let now = snapshot(1000.0);
        let ok = previous(940.0, vec![]);
        assert!(check_baseline(ok.clone(), &now).is_ok());
        let rebooted = TickState {
            btime: now.btime + 3600,
            ..ok.clone()
        };
        assert_eq!(check_baseline(rebooted, &now), Err(NoInterval::Rebooted));
        let flicker = TickState {
            btime: now.btime - 1,
            ..ok.clone()
        };
        assert!(
            check_baseline(flicker, &now).is_ok(),
            "btime may flicker by 1 s"
        );
        let future = previous(1000.5, vec![]);
        assert_eq!(
            check_baseline(future, &now),
            Err(NoInterval::TimeWentBackwards)
        );
        let same = previous(1000.0, vec![]);
        assert_eq!(check_baseline(same, &now), Err(NoInterval::TooShort));
        let short = previous(999.99, vec![]);
        assert_eq!(check_baseline(short, &now), Err(NoInterval::TooShort));
        let two_ticks = previous(999.98, vec![]);
        assert!(check_baseline(two_ticks, &now).is_ok());
    }
}
