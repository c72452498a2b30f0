//! Metrics step, looking back: which earlier reading this run's CPU is measured against (the
//! precision rule), what the run adds to the history, and what the history says over a window
//! (`cpu_avg`, `rss_growth`, `restarts`).
//!
//! Per-process tick counters are whole ticks, so a CPU figure over Δt seconds for n workers
//! may be off by up to n ticks: `n / (Δt × hz) × 100` points. Runs a fraction of a second
//! apart (a re-run by hand, "check now", a retry) would report that noise. So a run never
//! measures over less than [`min_interval`]: when the per-worker baseline is younger, the
//! baseline stays (it never creeps forward) and CPU comes from the newest sample of the
//! history old enough; with none, the run measures within itself as a first run does.

use crate::catalog::MetricName::{CpuAvg, Restarts, RssGrowth};
use crate::history::{self, Cum, History, Identity, Sample, DEFAULT_KEEP};
use crate::note::Note;
pub use crate::note::Since;
use crate::sample::{ProcSample, Snapshot};
use crate::state::TickState;

use super::{cpu_interval, worker_ticks, CpuFigures, Measured, NoInterval, Rate, WorkerCpu};

/// The error a CPU figure may carry from whole ticks, points of one core, when its interval
/// is long enough.
const MAX_ERROR_POINTS: f64 = 5.0;

/// The shortest interval is never below this, seconds: tiny services need no less.
const SHORTEST: f64 = 1.0;

/// Nor above this, seconds: a check a minute apart always measures since its last run, and a
/// service of thousands of workers settles for a wider bound rather than no figure.
const LONGEST: f64 = 30.0;

/// The shortest interval CPU of `workers` workers is measured over, seconds: where
/// [`error_bound`] is 5 points (`20 × n / hz`), within 1..30 s.
pub fn min_interval(workers: usize, hz: f64) -> f64 {
    (workers.max(1) as f64 * 100.0 / (MAX_ERROR_POINTS * hz)).clamp(SHORTEST, LONGEST)
}

/// How far CPU over `seconds` of `workers` workers may be off, points of one core: one tick
/// per worker, `n / (Δt × hz) × 100`. Over a span of the history, a worker that lived through
/// it is off only by the rounding at the two ends, as its counts in between telescope away.
pub fn error_bound(workers: usize, seconds: f64, hz: f64) -> f64 {
    workers as f64 / (seconds * hz) * 100.0
}

/// The share of its window `cpu_avg` must span to be said to cover it: checks a minute apart
/// leave the sample nearest the window's start up to half a minute off it.
const COVERED: f64 = 0.9;

/// What this run measures against: what earlier runs left, and a reading of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous<'a> {
    /// the tick file, when [`super::check_file`] found it fits this reading: the per-worker
    /// baseline and the history
    pub stored: Option<&'a TickState>,
    /// a first reading taken `--interval` earlier in this run, when the file had no sample
    /// old enough (or there was no file)
    pub in_run: Option<&'a TickState>,
}

impl<'a> Previous<'a> {
    /// Only the tick file.
    pub fn stored(stored: &'a TickState) -> Previous<'a> {
        Previous {
            stored: Some(stored),
            in_run: None,
        }
    }
}

/// What this run adds to the history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    /// this run's sample, its running totals counted on from the stored baseline's
    pub sample: Sample,
    /// the stored per-worker baseline is too young to replace: the next run measures against
    /// it again
    pub keep_baseline: bool,
}

/// How `cpu_avg` was measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Average {
    /// seconds the figure spans
    pub span: f64,
    /// `--average`, seconds
    pub window: u64,
    /// the figure spans less than the window: no sample is as old as it (`history_short`),
    /// or the one nearest its start is much younger (a gap in the checks)
    pub short: bool,
    /// no sample is as old as the window
    pub history_short: bool,
    /// not even one sample old enough: the figure is this run's own
    pub within_run: bool,
}

impl Average {
    /// What `cpu_avg` spans: a short history always says so, a whole window only in detail.
    pub(super) fn note(self) -> Note {
        let (span, window) = (self.span, self.window);
        if self.within_run {
            Note::AverageWithinRun { span, window }
        } else if self.short {
            let gap = !self.history_short;
            Note::AverageShort { span, window, gap }
        } else {
            Note::AverageOver { span, window }
        }
    }
}

/// What the CPU figures were measured over, and how far off they may be.
pub(super) fn interval_note(cpu: &CpuFigures, workers: usize) -> Note {
    Note::CpuInterval {
        seconds: cpu.interval,
        since: cpu.since,
        error_bound: cpu.error_bound,
        workers,
    }
}

/// Why the tick file gives this reading no CPU interval, if it gives none: neither its
/// baseline nor any sample of its history is [`min_interval`] old for `workers` workers. The
/// run then measures within itself.
pub fn too_recent(stored: &TickState, now: &Snapshot, workers: usize) -> Option<NoInterval> {
    let needed = min_interval(workers, now.clock_ticks.max(1) as f64);
    let usable = history::aged(now.uptime, stored.uptime, needed)
        || stored.history.newest_at_least(now.uptime, needed).is_some();
    let last = stored.history.newest().map_or(stored.uptime, |s| s.uptime);
    (!usable).then_some(NoInterval::TooRecent {
        age: now.uptime - last,
        needed,
    })
}

/// This run's reading, as the parts looking back need it.
pub(super) struct Run<'a> {
    workers: &'a [ProcSample],
    masters: &'a [ProcSample],
    uptime: f64,
    /// clock ticks per second
    pub(super) hz: f64,
    /// [`min_interval`] for these workers
    needed: f64,
}

/// The CPU interval a run measured, each worker's ticks in it where they are known, and
/// what the run adds to the history.
pub(super) struct Measurement<'a> {
    pub(super) cpu: Option<CpuFigures>,
    /// the per-worker reading the interval starts at, with each worker's ticks since: chosen
    /// here once, for the CPU and for every other counter (I/O, `PerSecond`); None when the
    /// CPU comes from the history's totals, which keep no per-worker counters
    pub(super) base: Option<(&'a TickState, Vec<WorkerCpu>)>,
    pub(super) tally: Tally,
}

impl Run<'_> {
    pub(super) fn new<'a>(
        workers: &'a [ProcSample],
        masters: &'a [ProcSample],
        now: &Snapshot,
    ) -> Run<'a> {
        let hz = now.clock_ticks.max(1) as f64;
        Run {
            workers,
            masters,
            uptime: now.uptime,
            hz,
            needed: min_interval(workers.len(), hz),
        }
    }

    /// The CPU interval, by the precision rule: the in-run reading when the run took one (the
    /// file had no sample old enough); else the stored baseline when old enough; else the
    /// newest sample of the history that is. The totals always count on from the stored
    /// baseline, whichever the CPU is measured against.
    pub(super) fn measure<'p>(&self, previous: Previous<'p>) -> Measurement<'p> {
        let stored = previous
            .stored
            .map(|s| (s, self.against(s, Since::Baseline)));
        let tally = self.tally(stored.as_ref().map(|(s, (cpu, _))| (*s, cpu)));
        let (cpu, base) = match (previous.in_run, stored) {
            (Some(first), _) => {
                let (cpu, ticks) = self.against(first, Since::WithinRun);
                (Some(cpu), Some((first, ticks)))
            }
            (None, Some((stored, (cpu, ticks)))) if !tally.keep_baseline => {
                (Some(cpu), Some((stored, ticks)))
            }
            (None, Some((stored, (cpu, _)))) => (self.older(stored, &tally, cpu), None),
            (None, None) => (None, None),
        };
        Measurement { cpu, base, tally }
    }

    /// CPU since the per-worker readings of `base`, and each worker's ticks.
    fn against(&self, base: &TickState, since: Since) -> (CpuFigures, Vec<WorkerCpu>) {
        let ticks = worker_ticks(self.workers, base, self.hz);
        let seconds = self.uptime - base.uptime;
        let cpu = cpu_interval(base, self.workers, self.masters, &ticks, seconds, since);
        (cpu, ticks)
    }

    /// This run's sample: the stored running totals plus the ticks since the stored baseline,
    /// the workers, their average RSS, the master. The baseline stays while it is younger
    /// than [`min_interval`].
    fn tally(&self, stored: Option<(&TickState, &CpuFigures)>) -> Tally {
        let cum = stored.map_or(Cum::default(), |(s, cpu)| {
            s.base.plus(cpu.user_ticks, cpu.system_ticks)
        });
        let count = self.workers.len() as u64;
        let rss: u128 = self.workers.iter().map(|w| u128::from(w.rss)).sum();
        let rss_avg = if count == 0 {
            0
        } else {
            (rss as f64 / count as f64).round() as u64
        };
        Tally {
            sample: Sample {
                uptime: self.uptime,
                cum,
                workers: count,
                rss_avg,
                master: Identity::new(self.masters.iter().map(|m| (m.pid, m.starttime))),
            },
            keep_baseline: stored
                .is_some_and(|(s, _)| !history::aged(self.uptime, s.uptime, self.needed)),
        }
    }

    /// CPU since the newest sample of the history old enough, from the running totals, so
    /// with no per-worker figures. What the workers did since the baseline (new, unknown and
    /// exited ones) still describes the interval, which starts before the baseline.
    fn older(
        &self,
        stored: &TickState,
        tally: &Tally,
        since_baseline: CpuFigures,
    ) -> Option<CpuFigures> {
        let start = stored.history.newest_at_least(self.uptime, self.needed)?;
        let (user_ticks, system_ticks) = tally.sample.cum.since(start.cum);
        let last = stored.history.newest().map_or(stored.uptime, |s| s.uptime);
        Some(CpuFigures {
            user_ticks,
            system_ticks,
            interval: self.uptime - start.uptime,
            since: Since::Older {
                last_run: self.uptime - last,
            },
            ..since_baseline
        })
    }

    /// [`Part::History`](crate::catalog::Part): `cpu_avg` over `--average` (`window`),
    /// `rss_growth` over it (15 minutes without), `restarts` over it (since the last run
    /// without). Each window starts at the sample whose age is closest to it.
    pub(super) fn history_values(
        &self,
        previous: Previous,
        tally: &Tally,
        window: Option<u64>,
        rate: Rate,
        cpu: Option<&CpuFigures>,
    ) -> (Vec<Measured>, Option<Average>) {
        let history = previous.stored.map(|s| &s.history);
        let sample = &tally.sample;
        let start = |w: u64| Some((history?, history?.window_start(self.uptime, w as f64, 0.0)?));
        let (cpu_avg, average) = match window {
            Some(w) => self.cpu_average(history, sample, w, rate, cpu),
            None => (None, None),
        };
        let rss_growth =
            start(window.unwrap_or(DEFAULT_KEEP)).and_then(|(h, i)| h.rss_growth(i, sample));
        let restarts = start(window.unwrap_or(0)).and_then(|(h, i)| h.restarts(i, &sample.master));
        let values = vec![
            (CpuAvg, cpu_avg),
            (RssGrowth, rss_growth),
            (Restarts, restarts.map(|n| n as f64)),
        ];
        (values, average)
    }

    /// CPU from the sample closest to `window` ago among those [`min_interval`] old; with
    /// none, this run's own CPU figure over its own interval.
    fn cpu_average(
        &self,
        history: Option<&History>,
        sample: &Sample,
        window: u64,
        rate: Rate,
        cpu: Option<&CpuFigures>,
    ) -> (Option<f64>, Option<Average>) {
        let w = window as f64;
        let short = history.is_none_or(|h| h.shorter_than(self.uptime, w));
        let start = history.and_then(|h| {
            let i = h.window_start(self.uptime, w, self.needed)?;
            Some(&h.samples()[i])
        });
        let (ticks, span, within_run) = match (start, cpu) {
            (Some(start), _) => {
                let (user, system) = sample.cum.since(start.cum);
                (
                    user.saturating_add(system),
                    self.uptime - start.uptime,
                    false,
                )
            }
            (None, Some(cpu)) => (
                cpu.user_ticks.saturating_add(cpu.system_ticks),
                cpu.interval,
                cpu.since == Since::WithinRun,
            ),
            (None, None) => return (None, None),
        };
        let rate = Rate {
            seconds: span,
            ..rate
        };
        let average = Average {
            span,
            window,
            short: short || start.is_none() || span < w * COVERED,
            history_short: short,
            within_run,
        };
        (Some(rate.percent(ticks)), Some(average))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::snapshot;
    use super::super::{compute, Capacity, Figures};
    use super::*;
    use crate::catalog::MetricName::{self, Cpu, CpuMax, CpuUser};
    use crate::catalog::MetricSet;
    use crate::counter::Counters;
    use crate::state::ProcTicks;

    /// `note` as printed at `-v` given `level` times, if it is shown there.
    fn shown(note: Note, level: u8) -> Option<String> {
        crate::output::note_lines(&[note], level).pop()
    }

    fn worker(pid: i32, utime: u64) -> ProcSample {
        ProcSample {
            pid,
            starttime: 500,
            counters: Counters::ticks([utime, 0, 0, 0]),
            rss: 4 << 20,
            ..ProcSample::default()
        }
    }

    /// A baseline of workers 10, 11, 12 at `uptime` with `utime` each, after `history`.
    fn stored(uptime: f64, utime: u64, base: u64, history: &[(f64, u64)]) -> TickState {
        let samples = history
            .iter()
            .map(|&(uptime, user)| Sample {
                uptime,
                cum: Cum { user, system: 0 },
                workers: 3,
                ..Sample::default()
            })
            .collect();
        TickState {
            uptime,
            btime: 1_700_000_000,
            clock_ticks: 100,
            workers: (10..13)
                .map(|pid| ProcTicks {
                    pid,
                    starttime: 500,
                    counters: Counters::ticks([utime, 0, 0, 0]),
                })
                .collect(),
            base: Cum {
                user: base,
                system: 0,
            },
            history: History::new(900, samples).unwrap(),
            ..TickState::default()
        }
    }

    fn figures(now: f64, utime: u64, previous: Previous, window: Option<u64>) -> Figures {
        let workers: Vec<ProcSample> = (10..13).map(|pid| worker(pid, utime)).collect();
        let capacity = Capacity::per_core(4);
        compute(
            &workers,
            &[],
            &snapshot(now),
            previous,
            &capacity,
            window,
            MetricSet::all(),
        )
    }

    fn value(f: &Figures, metric: MetricName) -> Option<f64> {
        f.value(metric)
    }

    #[test]
    fn shortest_interval_and_error_bound() {
        assert_eq!(min_interval(0, 100.0), 1.0);
        assert_eq!(min_interval(3, 100.0), 1.0);
        assert_eq!(min_interval(25, 100.0), 5.0);
        assert_eq!(min_interval(10_000, 100.0), 30.0);
        assert_eq!(min_interval(25, 1000.0), 1.0);
        // 5 points at the shortest interval, until it is clamped
        assert_eq!(error_bound(25, min_interval(25, 100.0), 100.0), 5.0);
        assert_eq!(error_bound(3, 60.0, 100.0), 0.05);
    }

    /// Runs 0.1 s apart: the per-worker baseline is too young, so CPU comes from the history,
    /// exactly, and the baseline stays for the next run.
    #[test]
    fn a_young_baseline_gives_way_to_an_older_sample() {
        // baseline at 1059.9 with 400 ticks per worker (running total 1188); the history has
        // the run at 1000 (total 0) and the baseline's own
        let prev = stored(1059.9, 400, 1188, &[(1000.0, 0), (1059.9, 1188)]);
        // 4 more ticks per worker in 0.1 s: 1200 ticks over 60 s since the run at 1000
        let f = figures(1060.0, 404, Previous::stored(&prev), None);
        assert_eq!(value(&f, Cpu), Some(20.0));
        assert_eq!(value(&f, CpuUser), Some(20.0));
        assert_eq!(
            value(&f, CpuMax),
            None,
            "no per-worker ticks over that span"
        );
        assert!(f.per_worker.iter().all(|w| w.cpu.is_none()));
        let cpu = f.cpu.unwrap();
        assert_eq!(cpu.interval, 60.0);
        assert_eq!(cpu.error_bound, 0.05);
        assert!(matches!(cpu.since, Since::Older { last_run } if (last_run - 0.1).abs() < 1e-9));
        assert!(f.tally.keep_baseline);
        assert_eq!(
            f.tally.sample.cum,
            Cum {
                user: 1200,
                system: 0
            }
        );
        assert_eq!(
            shown(interval_note(&cpu, 3), 2).unwrap(),
            "cpu: measured over 60.00 s from the history: the last run, 0.10 s ago, is too \
             recent for 3 workers' ticks; error bound ±0.05 points (3 workers, 1 tick each)"
        );
        // a second later the baseline is old enough: per worker again, and replaced
        let f = figures(1061.0, 440, Previous::stored(&prev), None);
        assert_eq!(f.cpu.unwrap().since, Since::Baseline);
        assert!((f.cpu.unwrap().interval - 1.1).abs() < 1e-9);
        assert!(!f.tally.keep_baseline);
        assert!(value(&f, CpuMax).is_some());
    }

    #[test]
    fn no_sample_old_enough_is_too_recent() {
        let prev = stored(1000.0, 400, 0, &[(1000.0, 0)]);
        assert_eq!(
            too_recent(&prev, &snapshot(1000.5), 3),
            Some(NoInterval::TooRecent {
                age: 0.5,
                needed: 1.0
            })
        );
        assert_eq!(too_recent(&prev, &snapshot(1001.0), 3), None);
        // 100 workers need 20 s
        assert!(too_recent(&prev, &snapshot(1010.0), 100).is_some());
        // without the in-run reading the run has no CPU, but the sample still counts on
        let f = figures(1000.5, 410, Previous::stored(&prev), None);
        assert_eq!(f.cpu, None);
        assert!(f.tally.keep_baseline);
        assert_eq!(f.tally.sample.cum.user, 30);
    }

    #[test]
    fn an_in_run_reading_measures_cpu_and_the_file_keeps_counting() {
        let prev = stored(1000.0, 400, 0, &[(1000.0, 0)]);
        let first = stored(1000.5, 405, 0, &[]);
        let previous = Previous {
            stored: Some(&prev),
            in_run: Some(&first),
        };
        // 5 ticks each within the run's 1 s: 15 %
        let f = figures(1001.5, 410, previous, Some(300));
        assert_eq!(value(&f, Cpu), Some(15.0));
        assert_eq!(f.cpu.unwrap().since, Since::WithinRun);
        // the totals count from the file's baseline, which is old enough by now: replaced
        assert_eq!(f.tally.sample.cum.user, 30);
        assert!(!f.tally.keep_baseline);
        // and its sample is 1.5 s old by now: cpu_avg spans it, 30 ticks over 1.5 s
        assert_eq!(value(&f, CpuAvg), Some(20.0));
        assert!(f.average.unwrap().short);
        // with no file at all, cpu_avg is the run's own figure
        let first_run = Previous {
            stored: None,
            in_run: Some(&first),
        };
        let f = figures(1001.5, 410, first_run, Some(300));
        assert_eq!(value(&f, CpuAvg), Some(15.0));
        let average = f.average.unwrap();
        assert!(average.within_run && average.short);
        assert_eq!(
            shown(average.note(), 0).unwrap(),
            "cpu_avg: over 1.00 s within this run, of the 300 s window (no history yet)"
        );
        assert_eq!(f.tally.sample.cum, Cum::default());
    }

    #[test]
    fn cpu_avg_from_the_sample_closest_to_the_window() {
        let history = [(1000.0, 0), (1060.0, 600), (1120.0, 1200), (1180.0, 1800)];
        let prev = stored(1240.0, 1000, 2400, &history);
        // the last minute: 3 × 1000 ticks = 50 %; since 1000 (240 s): 5400 ticks = 22.5 %
        let f = figures(1240.0 + 60.0, 2000, Previous::stored(&prev), Some(240));
        assert_eq!(value(&f, Cpu), Some(50.0));
        // window 240 s from 1300: closest is 1060 (240 s)
        assert_eq!(value(&f, CpuAvg), Some((5400.0 - 600.0) / 24_000.0 * 100.0));
        let average = f.average.unwrap();
        assert!(!average.short && !average.within_run);
        assert_eq!(shown(average.note(), 1), None);
        assert_eq!(
            shown(average.note(), 2).unwrap(),
            "cpu_avg: over 240 s for the 240 s window"
        );
        // a window longer than the history: over all of it, and said so
        let f = figures(1300.0, 2000, Previous::stored(&prev), Some(600));
        assert_eq!(value(&f, CpuAvg), Some(5400.0 / 30_000.0 * 100.0));
        assert_eq!(
            shown(f.average.unwrap().note(), 0).unwrap(),
            "cpu_avg: over 300 s of the 600 s window (history is short)"
        );
        // no --average, no cpu_avg
        let f = figures(1300.0, 2000, Previous::stored(&prev), None);
        assert_eq!((value(&f, CpuAvg), f.average), (None, None));
    }
}
