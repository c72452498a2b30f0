//! The whole check: [`evaluate`] is the pure core (sample + previous ticks + config -> report +
//! new ticks); [`run`] does the I/O around it in the order that keeps state safe.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use anyhow::Result;
use nagiosplugin::ServiceState;

use crate::cli::{self, Config};
use crate::metrics::{self, Figures};
use crate::sample::{self, Snapshot};
use crate::select::{self, Selection};
use crate::state::{self, NoBaseline, TickState};
use crate::thresholds::{MetricName, Pair, Thresholds, Verdict};

/// Longest wait for a peer's lock on the tick file.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// One measured metric with its thresholds and verdict; perfdata and the status line are both
/// rendered from this one value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub name: MetricName,
    /// in the metric's unit (count, percent, bytes)
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
    let figures = metrics::compute(&selection.workers, &selection.masters, snapshot, previous);
    let cpu_max = Some(100.0 * figures.cpus as f64);
    let mut measured: Vec<(MetricName, f64, Option<f64>)> =
        vec![(MetricName::Workers, figures.workers as f64, None)];
    if let Some(cpu) = &figures.cpu {
        measured.push((MetricName::Cpu, cpu.total, cpu_max));
        measured.push((MetricName::CpuUser, cpu.user, cpu_max));
        measured.push((MetricName::CpuSystem, cpu.system, cpu_max));
    }
    if let (Some(rss), Some(vms), Some(rss_max)) =
        (figures.rss_avg, figures.vms_avg, figures.rss_max)
    {
        measured.push((MetricName::Rss, rss.round(), None));
        measured.push((MetricName::Vms, vms.round(), None));
        measured.push((MetricName::RssMax, rss_max as f64, None));
    }
    measured.push((MetricName::RssTotal, figures.rss_total as f64, None));

    let results: Vec<MetricResult> = measured
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
    if let Some(cpu) = &figures.cpu {
        if cpu.unknown_workers > 0 {
            notes.push(format!(
                "cpu: {} workers were running but not workers at the previous sample; \
                 counted as 0 for this interval",
                cpu.unknown_workers
            ));
        }
        if let (Some(exited), true) = (&cpu.exited, config.verbosity > 1) {
            notes.push(format!(
                "cpu: {} workers exited within the interval; {} ticks recovered from the \
                 master's reaped-children time",
                exited.count,
                exited.user_ticks + exited.system_ticks
            ));
        }
        if cpu.new_workers > 0 && config.verbosity > 0 {
            notes.push(format!(
                "cpu: {} workers started within the {:.0} s interval and count fully",
                cpu.new_workers, cpu.interval
            ));
        }
    }

    let report = Report {
        state,
        label: config.label.clone(),
        figures,
        results,
        masters: selection.masters.iter().map(|m| m.pid).collect(),
        include_master: config.selector.include_master,
        notes,
        user_names: BTreeMap::new(),
    };
    (report, TickState::new(snapshot, selection))
}

/// Thresholds on metrics this run could not measure (CPU with no baseline, memory with no
/// workers) stay OK, and the output says so rather than staying silent.
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

/// Output and exit code of one run.
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub code: i32,
}

/// One check: sample, measure against the previous ticks (or over `--interval`), save the new
/// ticks, render. The tick file is written before anything is printed: a run that cannot save
/// its state says so as UNKNOWN instead of silently losing the next baseline.
pub fn run(config: &Config) -> Result<Outcome> {
    let root = config.proc_root.as_path();
    config.state_dir.ensure(config.euid)?;
    let tick_path = config
        .state_dir
        .path
        .join(state::tick_file_name(&config.selector));
    // Bounded well inside the timeout: a stuck peer must not turn this run into a timeout.
    let lock_wait = (config.timeout / 4).min(LOCK_WAIT);
    let lock = state::lock(&tick_path, lock_wait)?;
    let loaded = match lock {
        Some(_) => state::load(&tick_path),
        None => Err(NoBaseline::Busy),
    };

    let own = sample::own_processes(root);
    let take_sample = || -> Result<(Snapshot, Selection)> {
        let mut snapshot = sample::scan(root, config.selector.name.as_ref())?;
        let candidates = std::mem::take(&mut snapshot.procs);
        Ok((snapshot, select::select(candidates, &config.selector, own)))
    };
    let (mut snapshot, mut selection) = take_sample()?;
    let mut notes = Vec::new();
    let previous = match loaded.and_then(|prev| metrics::check_baseline(prev, &snapshot)) {
        Ok(prev) => Some(prev),
        Err(reason) if !config.interval.is_zero() => {
            let first = TickState::new(&snapshot, &selection);
            thread::sleep(config.interval);
            (snapshot, selection) = take_sample()?;
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

    let (mut report, new_state) = evaluate(&snapshot, &selection, previous.as_ref(), config);
    report.notes.splice(0..0, notes);
    if snapshot.skipped.unreadable > 0 {
        report.notes.push(format!(
            "{} processes could not be read (permission or malformed /proc files)",
            snapshot.skipped.unreadable
        ));
    }
    if config.verbosity > 0 {
        for w in &report.figures.per_worker {
            report
                .user_names
                .entry(w.uid)
                .or_insert_with(|| cli::user_name(w.uid));
        }
    }
    if lock.is_some() {
        state::save(&tick_path, &new_state)?;
    } else {
        // the peer holding the lock writes a fresh file; writing ours would race with it
        report
            .notes
            .push("tick file not updated: another check of the same workers holds it".into());
    }
    drop(lock);
    state::remove_stale(&config.state_dir.path, std::time::SystemTime::now());
    Ok(Outcome {
        text: crate::output::render(&report, config.verbosity),
        code: report.state.exit_code(),
    })
}
