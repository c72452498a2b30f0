//! The whole check: [`evaluate`] is the pure core (sample + previous ticks + config -> report +
//! new ticks); [`run`] does the I/O around it in the order that keeps state safe.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use nagiosplugin::ServiceState;

use crate::cli::{self, Config, CpuScale};
use crate::deadline::Deadline;
use crate::filter::{ParentSpec, Part};
use crate::metrics::{self, Capacity, Figures};
use crate::sample::{self, Pidfile, Snapshot};
use crate::select::{self, Master, Selection};
use crate::state::{self, NoBaseline, Saved, TickState};
use crate::thresholds::{MetricName, Pair, Thresholds, Verdict};

/// Longest wait for a peer's lock on the tick file.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// One measured metric with its thresholds and verdict; perfdata and the status line are both
/// rendered from this one value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub name: MetricName,
    /// in the metric's unit (count, percent, bytes, seconds)
    pub value: f64,
    /// upper bound for perfdata, where one exists
    pub max: Option<f64>,
    pub pair: Pair,
    pub verdict: Verdict,
}

/// What the check found, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub state: ServiceState,
    pub label: String,
    pub figures: Figures,
    /// measured metrics, in perfdata order
    pub results: Vec<MetricResult>,
    pub masters: Vec<i32>,
    pub include_master: bool,
    /// why the named master is missing (stale pidfile, ...), shown in the status line
    pub problem: Option<String>,
    /// lines printed after the status line
    pub notes: Vec<String>,
    /// user names of the uids in the long output
    pub user_names: BTreeMap<u32, String>,
}

impl Report {
    pub fn result(&self, name: MetricName) -> Option<&MetricResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// The pure core: figures, thresholds and the ticks to save for the next run.
pub fn evaluate(
    snapshot: &Snapshot,
    selection: &Selection,
    previous: Option<&TickState>,
    config: &Config,
) -> (Report, TickState) {
    let capacity = capacity(snapshot, selection, config.cpu_scale);
    let figures = metrics::compute(
        &selection.workers,
        &selection.masters,
        snapshot,
        previous,
        &capacity,
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
    let mut notes = unevaluated_thresholds(&config.thresholds, &results);
    notes.extend(measurement_notes(&figures, config.verbosity));

    let report = Report {
        state,
        label: config.label.clone(),
        figures,
        results,
        masters: selection.masters.iter().map(|m| m.pid).collect(),
        include_master: config.selector.include_master,
        problem: None,
        notes,
        user_names: BTreeMap::new(),
    };
    (report, TickState::new(snapshot, selection))
}

/// What 100 % CPU and 100 % memory mean for these workers.
fn capacity(snapshot: &Snapshot, selection: &Selection, scale: CpuScale) -> Capacity {
    let limits = snapshot.cgroup_limits.unwrap_or_default();
    let mut capacity = match scale {
        CpuScale::Core => Capacity::per_core(snapshot.cpus),
        CpuScale::Host => {
            let affinity = selection
                .workers
                .iter()
                .filter_map(|w| w.cpus_allowed)
                .max();
            Capacity::per_host(snapshot.cpus, affinity, limits.cpu_cores)
        }
    };
    capacity.memory = limits.memory_max.or(snapshot.mem_total);
    capacity
}

/// Every metric this run could measure, with its perfdata maximum. Metrics that could not be
/// measured are left out rather than reported as a misleading 0.
fn measured(f: &Figures) -> Vec<(MetricName, f64, Option<f64>)> {
    use MetricName::*;
    let count = |n: usize| n as f64;
    let mut out = vec![(Workers, count(f.workers), None)];
    if let Some(cpu) = &f.cpu {
        let ceiling = Some(f.cpu_ceiling);
        out.push((Cpu, cpu.total, ceiling));
        out.push((CpuUser, cpu.user, ceiling));
        out.push((CpuSystem, cpu.system, ceiling));
        if f.workers > 0 {
            out.push((CpuMax, cpu.max, ceiling));
        }
    }
    let bytes = |b: Option<f64>| b.map(f64::round);
    let optional: [(MetricName, Option<f64>, Option<f64>); 14] = [
        (Rss, bytes(f.rss_avg), None),
        (Vms, bytes(f.vms_avg), None),
        (Pss, bytes(f.pss_avg), None),
        (Uss, bytes(f.uss_avg), None),
        (RssMax, f.rss_max.map(|b| b as f64), None),
        (VmsMax, f.vms_max.map(|b| b as f64), None),
        (RssTotal, Some(f.rss_total as f64), None),
        (RssPct, f.rss_pct, Some(100.0)),
        (Threads, Some(f.threads as f64), None),
        (Fds, f.fds.map(|n| n as f64), None),
        (FdPctMax, f.fd_pct_max, Some(100.0)),
        (AgeMin, f.age_min.map(f64::floor), None),
        (AgeMax, f.age_max.map(f64::floor), None),
        (Zombies, Some(count(f.zombies)), None),
    ];
    out.extend(
        optional
            .into_iter()
            .filter_map(|(name, value, max)| Some((name, value?, max))),
    );
    out.push((Uninterruptible, count(f.uninterruptible), None));
    out
}

/// Thresholds on metrics this run could not measure (CPU with no baseline, memory with no
/// workers, PSS without permission) stay OK, and the output says so rather than staying silent.
fn unevaluated_thresholds(thresholds: &Thresholds, results: &[MetricResult]) -> Vec<String> {
    thresholds
        .metrics()
        .filter(|m| results.iter().all(|r| r.name != *m))
        .map(|m| {
            format!(
                "{}: not measured in this run, thresholds not evaluated",
                m.label()
            )
        })
        .collect()
}

/// Notes on how far the figures can be trusted.
fn measurement_notes(figures: &Figures, verbosity: u8) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(cpu) = &figures.cpu {
        if cpu.unknown_workers > 0 {
            notes.push(format!(
                "cpu: {} workers were running but not workers at the previous sample; \
                 counted as 0 for this interval",
                cpu.unknown_workers
            ));
        }
        if let (Some(exited), true) = (&cpu.exited, verbosity > 1) {
            notes.push(format!(
                "cpu: {} workers exited within the interval; {} ticks recovered from the \
                 master's reaped-children time",
                exited.count,
                exited.user_ticks + exited.system_ticks
            ));
        }
        if cpu.new_workers > 0 && verbosity > 0 {
            notes.push(format!(
                "cpu: {} workers started within the {:.0} s interval and count fully",
                cpu.new_workers, cpu.interval
            ));
        }
    }
    if figures.pss_unreadable > 0 {
        notes.push(format!(
            "pss, uss: smaps_rollup of {} of {} workers not readable (needs root or the \
             workers' user); left out",
            figures.pss_unreadable, figures.workers
        ));
    }
    if figures.fds_unreadable > 0 {
        notes.push(format!(
            "fds: open files of {} of {} workers not readable (needs root or the workers' \
             user); left out",
            figures.fds_unreadable, figures.workers
        ));
    }
    notes
}

/// Output and exit code of one run.
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub code: i32,
}

/// One check: sample, measure against the previous ticks (or over `--interval`), save the new
/// ticks, render. The tick file is written before anything is printed: a run that cannot use or
/// save its state still reports its figures, at least UNKNOWN and saying why, so a broken state
/// dir neither hides a CRITICAL nor silently loses the next baseline. The lock wait and the
/// in-run interval are cut to what is left before `deadline`.
pub fn run(config: &Config, deadline: Deadline) -> Result<Outcome> {
    let root = config.proc_root.as_path();
    crate::visibility::ensure_visible(root, config.selector.uid)?;
    let tick_name = state::tick_file_name(&config.selector);
    let tick_path = config.state_dir.path.join(&tick_name);
    // Bounded well inside the timeout: a stuck peer must not turn this run into a timeout.
    let lock_wait = (config.timeout / 4)
        .min(LOCK_WAIT)
        .min(deadline.remaining());
    let store = state::TickStore::open(&config.state_dir, config.euid, tick_name, lock_wait);
    let loaded = store.load();

    let (named, mut problem) = named_parent(config)?;
    let parent_pid = named.map(|(pid, _)| pid);
    let own = sample::own_processes(root);
    let trace = config.verbosity >= 3;
    let take_sample = || -> Result<(Snapshot, Selection, Option<String>)> {
        let mut snapshot =
            sample::scan(root, &config.sys_root, &config.selector, parent_pid, trace)?;
        let (master, problem) = match (&config.selector.parent, parent_pid) {
            (None, _) => (Master::Detect, None),
            (Some(spec), Some(pid)) => check_parent(spec, pid, named.and_then(|n| n.1), &snapshot),
            (Some(_), None) => (Master::Missing, None),
        };
        let candidates = std::mem::take(&mut snapshot.procs);
        let selection = select::select(candidates, &config.selector, own, &master);
        Ok((snapshot, selection, problem))
    };
    let scan_started = Instant::now();
    let (mut snapshot, mut selection, mut parent_problem) = take_sample()?;
    let scan_cost = scan_started.elapsed();
    let mut notes = Vec::new();
    let previous = match loaded.and_then(|prev| metrics::check_baseline(prev, &snapshot)) {
        Ok(prev) => Some(prev),
        Err(reason) if !config.interval.is_zero() => 'measured: {
            let Some(pause) = deadline.pause(config.interval, scan_cost) else {
                notes.push(format!(
                    "no baseline ({reason}); cpu not measured: no time left within -t"
                ));
                break 'measured None;
            };
            let first = TickState::new(&snapshot, &selection);
            thread::sleep(pause);
            (snapshot, selection, parent_problem) = take_sample()?;
            match metrics::check_baseline(first, &snapshot) {
                Ok(first) => {
                    notes.push(format!(
                        "no baseline ({reason}): cpu measured over {:.2} s within this run",
                        snapshot.uptime - first.uptime
                    ));
                    Some(first)
                }
                Err(too_short) => {
                    notes.push(format!(
                        "no baseline ({reason}), and {too_short}: cpu not measured"
                    ));
                    None
                }
            }
        }
        Err(reason) => {
            let why = match reason {
                NoBaseline::FirstRun => "first run".to_string(),
                other => other.to_string(),
            };
            notes.push(format!(
                "no baseline ({why}) and --interval 0: cpu not measured in this run"
            ));
            None
        }
    };
    problem = problem.or(parent_problem);

    sample::enrich(root, &mut selection.workers);
    snapshot.cgroup_limits =
        shared_cgroup(&selection).and_then(|path| sample::cgroup_limits(&config.sys_root, path));
    let (mut report, new_state) = evaluate(&snapshot, &selection, previous.as_ref(), config);
    report.problem = problem;
    report.notes.splice(0..0, notes);
    if snapshot.skipped.unreadable > 0 {
        report.notes.push(format!(
            "{} processes could not be read (permission or malformed /proc files)",
            snapshot.skipped.unreadable
        ));
    }
    if config.verbosity > 1 {
        report
            .notes
            .extend(explain_selection(config, &snapshot, &tick_path));
    }
    report.notes.append(&mut snapshot.trace);
    if config.verbosity > 0 {
        for w in &report.figures.per_worker {
            report
                .user_names
                .entry(w.uid)
                .or_insert_with(|| cli::user_name(w.uid));
        }
    }
    match store.finish(&new_state, std::time::SystemTime::now()) {
        Saved::Written => {}
        // the peer holding the lock writes a fresh file; writing ours would race with it
        Saved::LeftToPeer => report
            .notes
            .push("tick file not updated: another check of the same workers holds it".into()),
        // a full disk or a squatted dir must not hide what the figures say: the worst of both
        Saved::Failed(why) => {
            report.state = report.state.max(ServiceState::Unknown);
            let why = crate::text::shown(&why);
            report
                .notes
                .insert(0, format!("UNKNOWN: tick file not saved: {why}"));
        }
    }
    Ok(Outcome {
        text: crate::output::render(&report, config.verbosity),
        code: report.state.exit_code(),
    })
}

/// The master's pid from `--ppid` or `--pidfile`, with the time the pidfile was written. A
/// missing pidfile means the service is not running (daemons remove it when they stop): no
/// master, so no workers, CRITICAL by default. A pidfile that cannot be read or holds no pid
/// is a broken setup: UNKNOWN.
type NamedParent = Option<(i32, Option<f64>)>;

fn named_parent(config: &Config) -> Result<(NamedParent, Option<String>)> {
    match &config.selector.parent {
        None => Ok((None, None)),
        Some(ParentSpec::Pid(pid)) => Ok((Some((*pid, None)), None)),
        Some(ParentSpec::Pidfile(path)) => match sample::read_pidfile(path)? {
            Pidfile::Pid { pid, written } => Ok((Some((pid, Some(written))), None)),
            Pidfile::Missing => Ok((None, Some(format!("pidfile {} is missing", path.display())))),
        },
    }
}

/// Whether the named master is running, and is the process the pidfile meant: a pid reused
/// by another program started after the pidfile was written.
fn check_parent(
    spec: &ParentSpec,
    pid: i32,
    pidfile_written: Option<f64>,
    snapshot: &Snapshot,
) -> (Master, Option<String>) {
    let what = match spec {
        ParentSpec::Pid(_) => format!("process {pid}"),
        ParentSpec::Pidfile(path) => format!("pid {pid} from {}", path.display()),
    };
    let Some(parent) = &snapshot.parent else {
        return (Master::Missing, Some(format!("{what} is not running")));
    };
    if let Some(written) = pidfile_written {
        let started =
            snapshot.btime as f64 + parent.starttime as f64 / snapshot.clock_ticks.max(1) as f64;
        // a second of slack for the clock resolution of both
        if started > written + 1.0 {
            return (
                Master::Missing,
                Some(format!(
                    "{what} is another process ({}), started after the pidfile was written",
                    parent.comm
                )),
            );
        }
    }
    (Master::Given(Box::new(parent.clone())), None)
}

/// The cgroup all workers share, whose limits then apply to them as a group.
fn shared_cgroup(selection: &Selection) -> Option<&str> {
    let first = selection.workers.first()?.cgroup.as_deref()?;
    selection
        .workers
        .iter()
        .all(|w| w.cgroup.as_deref() == Some(first))
        .then_some(first)
}

/// `-vv`: what was selected and why, and where the state is.
fn explain_selection(config: &Config, snapshot: &Snapshot, tick_path: &Path) -> Vec<String> {
    let selector = &config.selector;
    let filters: Vec<String> = selector
        .parts()
        .iter()
        .filter(|p| !matches!(p, Part::Master(_)))
        .map(Part::phrase)
        .collect();
    let master = Part::Master(selector.include_master).phrase();
    vec![
        format!("selection: {}; {master}", filters.join(", ")),
        format!(
            "skipped: {} exited while being read, {} unreadable",
            snapshot.skipped.vanished, snapshot.skipped.unreadable
        ),
        format!("tick file: {}", tick_path.display()),
    ]
}
