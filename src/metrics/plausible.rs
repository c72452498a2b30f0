//! Metrics step, before any figure: what the tick file claims, held against what the host
//! could have done. Every number in the file is untrusted (anyone with the check's uid can
//! write it, and a disk can garble it); the parser only knows they are numbers. A total the
//! CPUs could not have reached, or a counter that went backwards, would otherwise become a
//! CPU figure of billions of percent (or a silent zero) on every run until it ages out.
//!
//! The rule is one: clock ticks over a span of time are at most what all the host's CPUs give
//! in that span, `seconds x hz x cpus`, with room for the rounding of whole ticks and of
//! uptimes to the hundredth; and a process's counters never go down. A baseline that breaks
//! it makes the whole file unusable (the history's totals count on from it); a history sample
//! that breaks it is dropped alone, and the file is rewritten without it.
//!
//! [`within_ceiling`] is the last guard, on the figures themselves: a CPU figure above what
//! every usable CPU can give is never reported.

use crate::catalog::{Max, MetricName};
use crate::counter::{Counters, TICKS};
use crate::history::{Cum, History, Sample};
use crate::sample::{ProcSample, Snapshot};
use crate::state::{ProcTicks, TickState};

use super::NoInterval;

/// The tick file, with the history samples it may keep, and how many it may not.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub stored: TickState,
    /// history samples dropped for totals no host could have reached
    pub dropped_samples: usize,
}

/// What the host's CPUs can give, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct Host {
    hz: f64,
    cpus: f64,
}

impl Host {
    fn of(now: &Snapshot) -> Host {
        Host {
            hz: now.clock_ticks.max(1) as f64,
            cpus: now.cpus.max(1) as f64,
        }
    }

    /// The most ticks `processes` processes can count in `seconds`: all CPUs for the span,
    /// widened by the two uptimes' hundredths, and one whole tick per process at each end.
    fn most(self, seconds: f64, processes: usize) -> u128 {
        let span = (seconds.max(0.0) + 0.02) * self.hz * self.cpus;
        span.ceil() as u128 + 2 * processes as u128 + 2
    }

    /// The most a running total since the history began can be at `uptime`: a total counts
    /// only ticks of this boot, but sums many runs' roundings, so it gets 1 % more.
    fn most_since_boot(self, uptime: f64, processes: usize) -> u128 {
        let most = self.most(uptime, processes);
        most + most / 100
    }
}

fn ticks(cum: Cum) -> u128 {
    u128::from(cum.user) + u128::from(cum.system)
}

/// Checks a tick file that [`super::check_file`] found to be of this boot and clock against
/// this reading: its baseline against the host and against the same processes now
/// (`workers`, `masters`), its history samples against the baseline.
pub fn check_physics(
    stored: TickState,
    now: &Snapshot,
    workers: &[ProcSample],
    masters: &[ProcSample],
) -> Result<Checked, NoInterval> {
    let host = Host::of(now);
    let impossible = |why: String| Err(NoInterval::Impossible(why));
    let lines = stored.workers.len() + stored.masters.len();
    if ticks(stored.base) > host.most_since_boot(stored.uptime, lines) {
        return impossible(format!(
            "base of {} ticks in {:.2} s of uptime",
            ticks(stored.base),
            stored.uptime
        ));
    }
    for line in stored.workers.iter().chain(&stored.masters) {
        if let Some(why) = line_impossible(line, stored.uptime, host) {
            return impossible(why);
        }
    }
    let seconds = now.uptime - stored.uptime;
    let before = |pid: i32, starttime: u64, lines: &[ProcTicks]| {
        lines
            .iter()
            .find(|b| b.pid == pid && b.starttime == starttime)
            .copied()
    };
    for (now_p, lines, own_io) in workers
        .iter()
        .map(|w| (w, &stored.workers, true))
        .chain(masters.iter().map(|m| (m, &stored.masters, false)))
    {
        if let Some(b) = before(now_p.pid, now_p.starttime, lines) {
            if let Some(why) = growth_impossible((&b, now_p), own_io, seconds, host) {
                return impossible(why);
            }
        }
    }
    let (history, dropped_samples) = plausible_history(&stored, host, now.mem_total);
    Ok(Checked {
        stored: TickState { history, ..stored },
        dropped_samples,
    })
}

/// Why one process's line of the baseline is impossible, if it is: started after the reading,
/// or more ticks (its own and its reaped children's, who all lived within its life) than the
/// host had since it started.
fn line_impossible(line: &ProcTicks, uptime: f64, host: Host) -> Option<String> {
    let started = line.starttime as f64 / host.hz;
    if started > uptime + 0.02 {
        return Some(format!(
            "process {} started {started:.2} s after boot, after the reading at {uptime:.2} s",
            line.pid
        ));
    }
    let total = TICKS
        .iter()
        .map(|&c| u128::from(line.counters.get(c).unwrap_or(0)))
        .sum::<u128>();
    (total > host.most(uptime - started, 2)).then(|| {
        format!(
            "process {} has {total} ticks in the {:.2} s it had run",
            line.pid,
            uptime - started
        )
    })
}

/// Why the same process's counters from the baseline to now are impossible, if they are:
/// one went down (ticks, own I/O, or any counter of [`crate::counter`]), or CPU grew more
/// than the host had in `seconds`. `own_io`: the line holds the process's own I/O (a
/// worker's), which only grows; a master's line holds its reaped children's, taken as a
/// difference of two reads that may race a thread's exit.
fn growth_impossible(
    (before, now): (&ProcTicks, &ProcSample),
    own_io: bool,
    seconds: f64,
    host: Host,
) -> Option<String> {
    // a worker's line holds its own counters; a master's its reaped children's bytes, which
    // are skipped
    let now_counters = if own_io { now.own() } else { now.counters };
    let down = now_counters
        .known()
        .filter(|&(c, _)| own_io || !c.is_io())
        .find(|&(c, n)| before.counters.get(c).is_some_and(|b| b > n));
    if let Some((counter, _)) = down {
        let what = if TICKS.contains(&counter) {
            "ticks"
        } else if counter.is_io() {
            "I/O"
        } else {
            counter.key()
        };
        return Some(format!(
            "process {}'s {what} went down since the baseline",
            now.pid
        ));
    }
    let ticks = |counters: &Counters, c| u128::from(counters.get(c).unwrap_or(0));
    let grown: u128 = TICKS
        .iter()
        .map(|&c| ticks(&now.counters, c) - ticks(&before.counters, c))
        .sum();
    (grown > host.most(seconds, 2)).then(|| {
        format!(
            "process {} grew by {grown} ticks in {seconds:.2} s",
            now.pid
        )
    })
}

/// The history without the samples whose totals no host could have reached: above what the
/// CPUs gave since boot, or further from the baseline's total than the CPUs gave between the
/// two (a sample newer than the baseline counts on from it, so it is never below it); or an
/// average worker RSS above the host's memory (`mem_total`), which would make `rss_growth`
/// any number at all.
fn plausible_history(stored: &TickState, host: Host, mem_total: Option<u64>) -> (History, usize) {
    let processes = stored.workers.len() + 1;
    let fits = |s: &Sample| {
        let (at, base) = (ticks(s.cum), ticks(stored.base));
        let apart = (stored.uptime - s.uptime).abs();
        let between = if s.uptime <= stored.uptime {
            base.saturating_sub(at)
        } else if at < base {
            return false;
        } else {
            at - base
        };
        at <= host.most_since_boot(s.uptime, processes)
            && between <= host.most(apart, processes)
            && mem_total.is_none_or(|m| s.rss_avg <= m)
    };
    let samples = stored.history.samples();
    let kept: Vec<Sample> = samples.iter().filter(|s| fits(s)).cloned().collect();
    let dropped = samples.len() - kept.len();
    // the kept samples are a subset of a valid history, so they are one too
    let history = History::new(stored.history.keep(), kept).unwrap_or_default();
    (history, dropped)
}

/// Measured metrics with their values, in perfdata order.
pub(super) type Values = Vec<(MetricName, f64)>;

/// The values with the CPU figures held to their ceiling (100 % of every CPU the workers may
/// use): one over it by no more than whole ticks' rounding (`tolerance`, points) reads as the
/// ceiling; one further over is impossible, left out and returned apart.
pub(super) fn within_ceiling(values: Values, ceiling: f64, tolerance: f64) -> (Values, Values) {
    let mut kept = Vec::with_capacity(values.len());
    let mut impossible = Vec::new();
    for (metric, value) in values {
        if metric.max() != Max::CpuCeiling || value <= ceiling {
            kept.push((metric, value));
        } else if value <= ceiling + tolerance + 1e-9 {
            kept.push((metric, ceiling));
        } else {
            impossible.push((metric, value));
        }
    }
    (kept, impossible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::snapshot;

    fn line(pid: i32, starttime: u64, utime: u64) -> ProcTicks {
        ProcTicks {
            pid,
            starttime,
            counters: Counters::ticks([utime, 0, 0, 0]),
        }
    }

    fn stored(base: u64, workers: Vec<ProcTicks>, samples: &[(f64, u64)]) -> TickState {
        let samples = samples
            .iter()
            .map(|&(uptime, user)| Sample {
                uptime,
                cum: Cum { user, system: 0 },
                ..Sample::default()
            })
            .collect();
        TickState {
            uptime: 1000.0,
            btime: 1_700_000_000,
            clock_ticks: 100,
            workers,
            base: Cum {
                user: base,
                system: 0,
            },
            history: History::new(900, samples).unwrap(),
            ..TickState::default()
        }
    }

    fn worker(pid: i32, starttime: u64, utime: u64) -> ProcSample {
        ProcSample {
            pid,
            starttime,
            counters: Counters::ticks([utime, 0, 0, 0]),
            ..ProcSample::default()
        }
    }

    #[test]
    fn the_host_bounds_every_total() {
        // 4 CPUs at 100 Hz for 1000 s: 400 000 ticks since boot, 1 % more for roundings
        let now = snapshot(1060.0);
        let fits = |base| check_physics(stored(base, vec![], &[]), &now, &[], &[]).is_ok();
        assert!(fits(404_000));
        assert!(!fits(410_000));
        assert!(!fits(u64::MAX));
    }

    #[test]
    fn a_process_counts_no_more_than_the_host_gave_it_nor_goes_down() {
        let now = snapshot(1060.0);
        let check = |base: ProcTicks, now_p: ProcSample| {
            check_physics(stored(0, vec![base], &[]), &now, &[now_p], &[])
        };
        // started at 900 s: 100 s x 4 CPUs = 40 000 ticks at most by the reading at 1000 s
        assert!(check(line(7, 90_000, 40_000), worker(7, 90_000, 40_000)).is_ok());
        assert!(check(line(7, 90_000, 41_000), worker(7, 90_000, 41_000)).is_err());
        // 60 s x 4 CPUs = 24 000 ticks at most in the interval
        assert!(check(line(7, 90_000, 0), worker(7, 90_000, 24_000)).is_ok());
        assert!(check(line(7, 90_000, 0), worker(7, 90_000, 25_000)).is_err());
        assert_eq!(
            check(line(7, 90_000, 10), worker(7, 90_000, 9)),
            Err(NoInterval::Impossible(
                "process 7's ticks went down since the baseline".into()
            ))
        );
        // a reused pid is another process: nothing to compare
        assert!(check(line(7, 90_000, 10), worker(7, 100_500, 0)).is_ok());
    }

    #[test]
    fn samples_further_from_the_base_than_the_cpus_allow_are_dropped() {
        let now = snapshot(1060.0);
        // 10 s before the base: 4 000 ticks at most in between
        let file = stored(
            50_000,
            vec![],
            &[(990.0, 46_000), (995.0, 40_000), (1000.0, 50_000)],
        );
        let checked = check_physics(file, &now, &[], &[]).unwrap();
        assert_eq!(checked.dropped_samples, 1);
        let kept: Vec<f64> = checked
            .stored
            .history
            .samples()
            .iter()
            .map(|s| s.uptime)
            .collect();
        assert_eq!(kept, [990.0, 1000.0]);
    }

    #[test]
    fn samples_whose_average_worker_outgrows_the_host_are_dropped() {
        let mut now = snapshot(1060.0);
        now.mem_total = Some(1 << 30);
        let mut file = stored(0, vec![], &[(990.0, 0), (1000.0, 0)]);
        let mut samples = file.history.samples().to_vec();
        samples[0].rss_avg = 1 << 30;
        samples[1].rss_avg = u64::MAX;
        file.history = History::new(900, samples).unwrap();
        let checked = check_physics(file, &now, &[], &[]).unwrap();
        assert_eq!(checked.dropped_samples, 1);
        assert_eq!(checked.stored.history.samples()[0].rss_avg, 1 << 30);
    }
}
