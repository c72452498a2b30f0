//! The whole check: [`evaluate`] is the pure core (sample + previous ticks + config -> figures,
//! verdicts + new ticks); [`run`] does the I/O around it in the order that keeps state safe and
//! returns the [`Report`] that `main` renders.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use nagiosplugin::ServiceState;

use crate::catalog::MetricName::{self, FdPctMax, Fds, IoRead, IoWrite};
use crate::catalog::{MetricSet, Source};
use crate::cli::{self, Config, CpuScale};
use crate::deadline::Deadline;
use crate::filter::SelectionPart;
use crate::metrics::{self, listen_unmet, Capacity, Checked, Figures, NoInterval, Previous};
use crate::note::{Fallback, Note};
use crate::report::{MetricResult, Report};
use crate::sample::{self, CgroupReading, DetailReads, OwnProcesses, Snapshot};
use crate::select::{self, Master, Selection};
use crate::state::{self, NoBaseline, Saved, TickState, TickStore};
use crate::thresholds::Thresholds;

mod named;
use named::{check_parent, named_parent, NamedParent};

/// Longest wait for a peer's lock on the tick file.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// What the pure core makes of one sample: the figures, each metric judged, the worst state.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: ServiceState,
    pub figures: Figures,
    /// measured metrics, in perfdata order
    pub results: Vec<MetricResult>,
    /// thresholds left unevaluated and how far the figures can be trusted
    pub notes: Vec<Note>,
}

/// The pure core: figures, thresholds and the ticks to save for the next run (the tick file's
/// history with this run's sample, and the baseline the next run measures against).
pub fn evaluate(
    snapshot: &Snapshot,
    selection: &Selection,
    previous: Previous,
    config: &Config,
) -> (Evaluation, TickState) {
    let capacity = capacity(snapshot, selection, config.cpu_scale);
    let figures = metrics::compute(
        &selection.workers,
        &selection.masters,
        snapshot,
        previous,
        &capacity,
        config.average,
        config.metrics,
    );
    let ticks = TickState::next(
        previous.stored,
        (snapshot, (&selection.workers, &selection.masters)),
        figures.tally.sample.clone(),
        figures.tally.keep_baseline,
        config.average,
    );
    let results: Vec<MetricResult> = measured(&figures)
        .into_iter()
        .map(|(name, value, max)| MetricResult {
            name,
            value,
            max,
            pair: config.thresholds.pair(name),
            verdict: config.thresholds.evaluate(name, value),
        })
        .collect();
    let state = results
        .iter()
        .map(|r| r.verdict.state)
        .max()
        .unwrap_or(ServiceState::Ok);
    // with no workers, "0 workers" says why: no note on thresholds no figure could meet
    let mut notes = match selection.workers.is_empty() {
        true => Vec::new(),
        false => unevaluated_thresholds(&config.thresholds, &results),
    };
    notes.extend(
        figures
            .notes()
            .into_iter()
            .map(|n| quiet_unless_asked(n, config.asked)),
    );
    let evaluation = Evaluation {
        state,
        figures,
        results,
        notes,
    };
    (evaluation, ticks)
}

/// What the running user may not read by design (other users' `io` and `fd/`) is noted from
/// `-v` on, unless a threshold or `--metrics` asked for those metrics.
fn quiet_unless_asked(note: Note, asked: MetricSet) -> Note {
    let about: &[MetricName] = match &note {
        Note::IoUnreadable { .. } | Note::IoMasterUnreadable => &[IoRead, IoWrite],
        Note::FdsUnreadable { .. } => &[Fds, FdPctMax],
        _ => return note,
    };
    match about.iter().any(|&m| asked.contains(m)) {
        true => note,
        false => Note::Quiet(Box::new(note)),
    }
}

/// What 100 % CPU and 100 % memory mean for these workers.
fn capacity(snapshot: &Snapshot, selection: &Selection, scale: CpuScale) -> Capacity {
    let cgroup = snapshot.cgroup.as_ref();
    let mut capacity = match scale {
        CpuScale::Core => Capacity::per_core(snapshot.cpus),
        CpuScale::Host => {
            let affinity = selection
                .workers
                .iter()
                .filter_map(|w| w.cpus_allowed)
                .max();
            Capacity::per_host(snapshot.cpus, affinity, cgroup.and_then(|c| c.cpu_cores))
        }
    };
    capacity.memory = cgroup.and_then(|c| c.limit).or(snapshot.mem_total);
    capacity.memory_charge = cgroup.and_then(CgroupReading::own_charge);
    capacity
}

/// Every metric this run could measure, with its perfdata maximum, in perfdata order; the
/// metrics step keys its values by catalog entry.
fn measured(f: &Figures) -> Vec<(MetricName, f64, Option<f64>)> {
    f.measured()
}

/// Thresholds on metrics this run could not measure stay OK, and the output says so.
fn unevaluated_thresholds(thresholds: &Thresholds, results: &[MetricResult]) -> Vec<Note> {
    let measured: Vec<MetricName> = results.iter().map(|r| r.name).collect();
    thresholds.not_evaluated(&measured)
}

/// What a run found around the figures, which its report carries next to them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    /// why the named master is missing (stale pidfile, ...)
    pub problem: Option<String>,
    /// notes before the evaluation's: the state and the baseline
    pub first: Vec<Note>,
    /// notes after them: what could not be read, the selection, the trace
    pub last: Vec<Note>,
    /// user names of the uids in the long output
    pub user_names: BTreeMap<u32, String>,
    /// the run could not do all it was asked (tick file unsaved, a --listen unmet): at least UNKNOWN
    pub unknown: bool,
}

/// The report of one run, built once from its evaluation and what the run found around it.
pub fn report(
    config: &Config,
    selection: &Selection,
    evaluation: Evaluation,
    annotations: Annotations,
) -> Report {
    let Annotations {
        problem,
        first,
        last,
        user_names,
        unknown,
    } = annotations;
    let floor = if unknown {
        ServiceState::Unknown
    } else {
        ServiceState::Ok
    };
    Report {
        state: evaluation.state.max(floor),
        label: config.label.clone(),
        figures: evaluation.figures,
        results: evaluation.results,
        masters: selection.masters.iter().map(|m| m.pid).collect(),
        include_master: config.selector.include_master,
        problem,
        notes: first
            .into_iter()
            .chain(evaluation.notes)
            .chain(last)
            .collect(),
        user_names,
    }
}

/// One check: open the state, sample and select against a baseline, evaluate, save the new
/// ticks, annotate. The tick file is written before anything is printed: a run that cannot use
/// or save its state still reports its figures, at least UNKNOWN and saying why, so a broken
/// state dir neither hides a CRITICAL nor silently loses the next baseline. The lock wait and
/// the in-run interval are cut to what is left before `deadline`.
pub fn run(config: &Config, deadline: Deadline) -> Result<Report> {
    crate::visibility::ensure_visible(&config.proc_root, config.selector.uid)?;
    let tick_name =
        state::tick_file_name(&config.selector.state_key(), &config.selector.state_label());
    let state_dir = config.state_dir.resolve(config.euid);
    let tick_path = state_dir.path.join(&tick_name);
    // Bounded well inside the timeout: a stuck peer must not turn this run into a timeout.
    let lock_wait = (config.timeout / 4)
        .min(LOCK_WAIT)
        .min(deadline.remaining());
    let store = TickStore::open(&state_dir, config.euid, tick_name, lock_wait);
    let sampled = sample_with_baseline(config, deadline, store.load())?;
    let Reading {
        snapshot,
        selection,
        ..
    } = &sampled.reading;
    let previous = Previous {
        stored: sampled.stored.as_ref(),
        in_run: sampled.in_run.as_ref(),
    };
    let (evaluation, ticks) = evaluate(snapshot, selection, previous, config);
    let saved = store.finish(&ticks, SystemTime::now());
    let annotations = annotate(config, &sampled, &evaluation.figures, saved, &tick_path);
    Ok(report(config, selection, evaluation, annotations))
}

/// One reading of the proc tree with the workers picked out of it.
#[derive(Debug)]
struct Reading {
    snapshot: Snapshot,
    selection: Selection,
    /// why the master named by `--ppid`/`--pidfile` is missing
    problem: Option<String>,
}

/// The last reading of a run, complete with the workers' details, and what its CPU is
/// measured against.
#[derive(Debug)]
struct Sampled {
    reading: Reading,
    /// the tick file, when it fits this reading: the baseline and the history
    stored: Option<TickState>,
    /// a first reading within the run, when the file had no sample old enough
    in_run: Option<TickState>,
    /// how the baseline was found, or why there is none; what was dropped from the file
    notes: Vec<Note>,
}

impl Sampled {
    /// A reading with no baseline, and why.
    fn without_cpu(reading: Reading, note: Note) -> Sampled {
        Sampled {
            reading,
            stored: None,
            in_run: None,
            notes: vec![note],
        }
    }
}

/// Why this run has no earlier reading to measure CPU against: the tick file's reason, or
/// the measurement's.
#[derive(Debug)]
enum Unmeasured {
    File(NoBaseline),
    Measuring(NoInterval),
}

impl From<NoInterval> for Unmeasured {
    fn from(why: NoInterval) -> Unmeasured {
        Unmeasured::Measuring(why)
    }
}

impl fmt::Display for Unmeasured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmeasured::File(why) => why.fmt(f),
            Unmeasured::Measuring(why) => why.fmt(f),
        }
    }
}

/// Takes readings: the master's pid is read from `--pidfile` once per run, the tree at every
/// reading.
struct Sampler<'a> {
    config: &'a Config,
    named: NamedParent,
    /// why the named master is missing before any reading (no pidfile)
    problem: Option<String>,
    own: OwnProcesses,
    /// a reading not done by then fails rather than report the processes it got to
    deadline: Deadline,
}

impl Sampler<'_> {
    fn take(&self) -> Result<Reading> {
        let config = self.config;
        let parent_pid = self.named.map(|(pid, _)| pid);
        let trace = config.verbosity >= 3;
        let mut snapshot = sample::scan(
            &config.proc_root,
            &config.sys_root,
            &config.selector,
            parent_pid,
            trace,
            self.deadline,
        )?;
        let (master, problem) = match (&config.selector.parent, self.named) {
            (None, _) => (Master::Detect, None),
            (Some(spec), Some((pid, written))) => check_parent(spec, pid, written, &snapshot),
            (Some(_), None) => (Master::Missing, None),
        };
        let candidates = std::mem::take(&mut snapshot.procs);
        let mut selection = select::select(candidates, &config.selector, self.own, &master);
        split_master_io(&config.proc_root, &mut selection);
        Ok(Reading {
            snapshot,
            selection,
            problem: self.problem.clone().or(problem),
        })
    }
}

/// Samples and selects the workers and finds what their CPU is measured against (see
/// [`against_the_file`]). Then reads the details of the workers finally chosen.
fn sample_with_baseline(
    config: &Config,
    deadline: Deadline,
    loaded: Result<TickState, NoBaseline>,
) -> Result<Sampled> {
    let (named, problem) = named_parent(config)?;
    let sampler = Sampler {
        config,
        named,
        problem,
        own: sample::own_processes(&config.proc_root),
        deadline,
    };
    let scan_started = Instant::now();
    let reading = sampler.take()?;
    let scan_cost = scan_started.elapsed();
    let mut sampled = against_the_file(&sampler, reading, loaded, deadline, scan_cost)?;
    let Reading {
        snapshot,
        selection,
        ..
    } = &mut sampled.reading;
    let reads = DetailReads::of(config.metrics);
    snapshot.smaps_cut = sample::enrich(&config.proc_root, &mut selection.workers, reads, deadline);
    let held = (&selection.masters[..], &selection.workers[..]);
    snapshot.queues = sample::queues(&config.proc_root, held, &config.listen, reads, deadline);
    read_cgroup(config, &mut sampled.reading);
    Ok(sampled)
}

/// The tick file when it fits this reading and has a sample old enough to measure the
/// workers' CPU against (see `metrics::too_recent`). Without one (no file, a reboot, a corrupt
/// file, or only samples a fraction of a second old), a first reading taken within this run;
/// a file that fits is still kept for its history and baseline.
fn against_the_file(
    sampler: &Sampler,
    reading: Reading,
    loaded: Result<TickState, NoBaseline>,
    deadline: Deadline,
    scan_cost: Duration,
) -> Result<Sampled> {
    let checked = loaded.map_err(Unmeasured::File).and_then(|prev| {
        let prev = metrics::check_file(prev, &reading.snapshot)?;
        let Selection { workers, masters } = &reading.selection;
        Ok(metrics::check_physics(
            prev,
            &reading.snapshot,
            workers,
            masters,
        )?)
    });
    let (stored, dropped) = match checked {
        Ok(Checked {
            stored,
            dropped_samples,
        }) => (stored, dropped_samples),
        Err(reason) => return without_previous(sampler, reading, reason, deadline, scan_cost),
    };
    let dropped = (dropped > 0).then_some(Note::DroppedHistory { count: dropped });
    let workers = reading.selection.workers.len();
    let mut sampled = match metrics::too_recent(&stored, &reading.snapshot, workers) {
        None => Sampled {
            reading,
            stored: Some(stored),
            in_run: None,
            notes: Vec::new(),
        },
        Some(reason) => Sampled {
            stored: Some(stored),
            ..without_previous(sampler, reading, reason.into(), deadline, scan_cost)?
        },
    };
    sampled.notes.extend(dropped);
    Ok(sampled)
}

/// Without usable previous ticks: with `--interval`, and when the deadline leaves time for it,
/// `first` becomes the baseline of a second reading; else this run does not measure CPU.
fn without_previous(
    sampler: &Sampler,
    first: Reading,
    reason: Unmeasured,
    deadline: Deadline,
    scan_cost: Duration,
) -> Result<Sampled> {
    // no workers: no CPU to measure, so no reason to wait for a second reading
    if first.selection.workers.is_empty() {
        let note = no_baseline(&reason, Fallback::NoWorkers);
        return Ok(Sampled::without_cpu(first, note));
    }
    let interval = sampler.config.interval;
    if interval.is_zero() {
        let note = no_baseline(&reason, Fallback::NoInterval);
        return Ok(Sampled::without_cpu(first, note));
    }
    match deadline.pause(interval, scan_cost) {
        Some(pause) => measure_within_run(sampler, first, pause, reason),
        None => {
            let note = no_baseline(&reason, Fallback::NoTime);
            Ok(Sampled::without_cpu(first, note))
        }
    }
}

/// `first` becomes the baseline of a second reading taken `pause` later.
fn measure_within_run(
    sampler: &Sampler,
    mut first: Reading,
    pause: Duration,
    reason: Unmeasured,
) -> Result<Sampled> {
    read_cgroup(sampler.config, &mut first);
    let Selection { workers, masters } = &first.selection;
    let baseline = TickState::new(&first.snapshot, (workers, masters));
    thread::sleep(pause);
    // the first reading is whole: a second one that runs out of time leaves it without cpu
    let reading = match sampler.take() {
        Ok(reading) => reading,
        Err(e) if e.downcast_ref::<sample::ScanTimedOut>().is_some() => {
            let note = no_baseline(&reason, Fallback::ScanTimedOut(e.to_string()));
            return Ok(Sampled::without_cpu(first, note));
        }
        Err(e) => return Err(e),
    };
    let (in_run, note) = match metrics::check_baseline(baseline, &reading.snapshot) {
        Ok(baseline) => {
            let seconds = reading.snapshot.uptime - baseline.uptime;
            let note = no_baseline(&reason, Fallback::WithinRun { seconds });
            (Some(baseline), note)
        }
        Err(too_short) => (
            None,
            no_baseline(&reason, Fallback::Unusable(too_short.to_string())),
        ),
    };
    Ok(Sampled {
        reading,
        stored: None,
        in_run,
        notes: vec![note],
    })
}

/// The note of a run without a baseline: why, as the reason words it, and what it did instead.
fn no_baseline(reason: &Unmeasured, then: Fallback) -> Note {
    Note::NoBaseline {
        reason: reason.to_string(),
        then,
    }
}

/// What the run adds to the figures: the named master's problem, the baseline, the state, what
/// could not be read, and with `-v` and more the user names, the selection and the trace.
fn annotate(
    config: &Config,
    sampled: &Sampled,
    figures: &Figures,
    saved: Saved,
    tick_path: &Path,
) -> Annotations {
    let snapshot = &sampled.reading.snapshot;
    let mut first = Vec::new();
    let mut last = Vec::new();
    // a full disk or a squatted dir must not hide what the figures say: the worst of both
    if let Saved::Failed(why) = &saved {
        first.push(Note::NotSaved(why.clone()));
    }
    first.extend(sampled.notes.iter().cloned());
    if snapshot.skipped.unreadable > 0 {
        last.push(Note::UnreadableProcesses {
            count: snapshot.skipped.unreadable,
        });
    }
    last.extend(explain_selection(config, snapshot, tick_path));
    last.extend(snapshot.trace.iter().cloned().map(Note::Trace));
    // the peer holding the lock writes a fresh file; writing ours would race with it
    if saved == Saved::LeftToPeer {
        last.push(Note::LeftToPeer);
    }
    let mut user_names = BTreeMap::new();
    if config.verbosity > 0 {
        for w in &figures.per_worker {
            user_names
                .entry(w.uid)
                .or_insert_with(|| cli::user_name(w.uid));
        }
    }
    Annotations {
        problem: sampled.reading.problem.clone(),
        first,
        last,
        user_names,
        unknown: matches!(saved, Saved::Failed(_)) || listen_unmet(figures, &config.listen),
    }
}

/// Reads the masters' I/O split into their own and their reaped children's, which exited
/// workers' I/O is recovered from. Taken with every reading, so a baseline taken within the
/// run has it too. A master counted as a worker (`--include-master`) takes the split into its
/// worker row as well, so that its reaped children are counted once, as exited workers.
fn split_master_io(proc_root: &Path, selection: &mut Selection) {
    sample::master_io(proc_root, &mut selection.masters);
    for m in &selection.masters {
        let same = |w: &&mut sample::ProcSample| w.pid == m.pid && w.starttime == m.starttime;
        if let Some(w) = selection.workers.iter_mut().find(same) {
            w.io = m.io;
            w.counters.take_io(&m.counters);
            w.reaped = m.reaped;
        }
    }
}

/// The workers' cgroup, read with every reading a counter may be measured against (the last
/// one once its details, which read `/proc/PID/cgroup` too, are read).
fn read_cgroup(config: &Config, reading: &mut Reading) {
    if config.metrics.reads(Source::Cgroup) {
        let (root, sys, unit) = (&config.proc_root, &config.sys_root, config.selector.unit());
        let (snapshot, workers) = (&mut reading.snapshot, &mut reading.selection.workers);
        snapshot.cgroup = sample::workers_cgroup(root, sys, workers, unit, snapshot.uptime);
    }
}

/// What was selected and why, and where the state is (shown from `-vv`).
fn explain_selection(config: &Config, snapshot: &Snapshot, tick_path: &Path) -> Vec<Note> {
    let selector = &config.selector;
    let filters: Vec<String> = selector
        .parts()
        .iter()
        .filter(|p| !matches!(p, SelectionPart::Master(_)))
        .map(SelectionPart::phrase)
        .collect();
    let master = SelectionPart::Master(selector.include_master).phrase();
    vec![
        Note::Selection { filters, master },
        Note::Skipped {
            vanished: snapshot.skipped.vanished,
            unreadable: snapshot.skipped.unreadable,
        },
        Note::TickFile(tick_path.to_path_buf()),
    ]
}
