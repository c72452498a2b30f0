//! Metrics, the workers' cgroup: what the kernel accounts for it, this reading's charge and
//! the counters' growth since the baseline the CPU interval starts at (`past` chooses it
//! once, for every counter). Pure.
//!
//! A counter is measured only against the same cgroup (its directory's inode, per hierarchy):
//! a unit restarted has a new cgroup whose counters began again at 0, and subtracting the old
//! one's would be a lie. A counter lower than at the baseline, or a figure beyond what the
//! interval allows (a stall longer than the interval, more throttled periods than periods), is
//! never reported: the tick file it came from is another user's to tamper with.

use crate::catalog::MetricName::{
    self, CgMemory, CgMemoryPct, CpuThrottled, OomKills, PsiCpu, PsiIo, PsiMemory,
};
use crate::catalog::MetricSet;
use crate::note::{CgroupGap, Note};
use crate::sample::{CgCounter, CgroupReading};
use crate::state::TickState;

use super::{Measured, WorkerCpu};

/// The slack a stall may have over the interval, seconds: each uptime is cut to hundredths.
const UPTIME_SLACK: f64 = 0.02;

/// [`Part::Cgroup`](crate::catalog::Part): the cgroup's figures, and the notes on those left
/// out (of the `wanted` ones). `now` is None when the cgroup was not read (no workers);
/// `base` is the reading the CPU interval starts at (with the workers' ticks, unused here).
pub(super) fn cgroup_values(
    now: Option<&CgroupReading>,
    base: Option<(&TickState, &[WorkerCpu])>,
    wanted: MetricSet,
) -> (Vec<Measured>, Vec<Note>) {
    let base = base.map(|(base, _)| base);
    let Some(now) = now else {
        let none = [
            CgMemory,
            CgMemoryPct,
            OomKills,
            CpuThrottled,
            PsiCpu,
            PsiMemory,
            PsiIo,
        ];
        return (none.map(|m| (m, None)).to_vec(), Vec::new());
    };
    let growth = |counter| grown(now, base, counter);
    let pct_of_interval = |counter| {
        let (stalled, seconds) = growth(counter)?;
        stall_percent(stalled, seconds)
    };
    let charge = now.charge.clone();
    let pct = charge.clone().and_then(|bytes| match now.limit {
        Some(limit) if limit > 0 => Ok(bytes as f64 / limit as f64 * 100.0),
        _ => Err(CgroupGap::NoLimit),
    });
    let figures: [(MetricName, Result<f64, CgroupGap>); 7] = [
        (CgMemory, charge.map(|b| b as f64)),
        (CgMemoryPct, pct),
        (
            OomKills,
            growth(CgCounter::OomKill).map(|(kills, _)| kills as f64),
        ),
        (
            CpuThrottled,
            throttled(growth(CgCounter::NrPeriods), growth(CgCounter::NrThrottled)),
        ),
        (PsiCpu, pct_of_interval(CgCounter::SomeCpu)),
        (PsiMemory, pct_of_interval(CgCounter::SomeMemory)),
        (PsiIo, pct_of_interval(CgCounter::SomeIo)),
    ];
    let mut notes = gap_notes(&figures, wanted);
    let places: Vec<(&'static str, String)> = now
        .places
        .iter()
        .map(|p| (p.hierarchy.key(), p.path.clone()))
        .collect();
    if !places.is_empty() {
        notes.push(Note::CgroupPlaces(places));
    }
    let values = figures.map(|(m, v)| (m, v.ok())).to_vec();
    (values, notes)
}

/// How much `counter` grew since `base`, and over how many seconds.
fn grown(
    now: &CgroupReading,
    base: Option<&TickState>,
    counter: CgCounter,
) -> Result<(u64, f64), CgroupGap> {
    let read = now
        .counters
        .iter()
        .find(|c| c.counter == counter)
        .ok_or(CgroupGap::NoBaseline)?;
    let value = read.value.clone()?;
    let hierarchy = read.hierarchy.ok_or(CgroupGap::NoBaseline)?;
    let place = now.place(hierarchy).ok_or(CgroupGap::NoBaseline)?;
    let before = base
        .and_then(|b| b.cgroup.iter().find(|c| c.hierarchy == hierarchy))
        .ok_or(CgroupGap::NoBaseline)?;
    if before.ino != place.ino {
        return Err(CgroupGap::NewCgroup(hierarchy.key()));
    }
    let earlier = before.get(counter).ok_or(CgroupGap::NoBaseline)?;
    let seconds = now.uptime - before.uptime;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(CgroupGap::Impossible(format!(
            "its baseline is {:.2} s later than this reading",
            -seconds
        )));
    }
    let grown = value
        .checked_sub(earlier)
        .ok_or(CgroupGap::Backwards(counter.key()))?;
    Ok((grown, seconds))
}

/// Stall microseconds as a percentage of the interval: at most all of it, give or take the
/// uptimes' rounding; beyond that it is not a stall this cgroup had.
fn stall_percent(stalled_us: u64, seconds: f64) -> Result<f64, CgroupGap> {
    let stalled = stalled_us as f64 / 1e6;
    if stalled > seconds + UPTIME_SLACK {
        return Err(CgroupGap::Impossible(format!(
            "{stalled:.2} s of stall in a {seconds:.2} s interval"
        )));
    }
    Ok((stalled / seconds * 100.0).min(100.0))
}

/// The share of the CPU quota periods in which the cgroup was throttled. No period ran (no
/// quota, or nothing to run): none was throttled, 0 %.
fn throttled(
    periods: Result<(u64, f64), CgroupGap>,
    throttled: Result<(u64, f64), CgroupGap>,
) -> Result<f64, CgroupGap> {
    let ((periods, _), (throttled, _)) = (periods?, throttled?);
    if throttled > periods {
        return Err(CgroupGap::Impossible(format!(
            "{throttled} throttled periods of {periods}"
        )));
    }
    Ok(match periods {
        0 => 0.0,
        n => throttled as f64 / n as f64 * 100.0,
    })
}

/// One note per reason a wanted figure is left out, naming every metric it leaves out.
fn gap_notes(figures: &[(MetricName, Result<f64, CgroupGap>)], wanted: MetricSet) -> Vec<Note> {
    let mut notes: Vec<Note> = Vec::new();
    for (metric, figure) in figures {
        let Err(gap) = figure else { continue };
        if !wanted.contains(*metric) {
            continue;
        }
        let same = notes.iter_mut().find_map(|n| match n {
            Note::CgroupLeftOut { metrics, gap: g } if g == gap => Some(metrics),
            _ => None,
        });
        match same {
            Some(metrics) => metrics.push(*metric),
            None => notes.push(Note::CgroupLeftOut {
                metrics: vec![*metric],
                gap: gap.clone(),
            }),
        }
    }
    notes
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::output::note_lines;
    use crate::sample::{CounterReading, Hierarchy, Place};
    use std::path::PathBuf;

    /// A pure v2 host's reading of `/system.slice/nginx.service` (inode `ino`) at `uptime`,
    /// 512 MiB charged of a 1 GiB limit, with these counters in [`CgCounter::ALL`] order.
    pub(in crate::metrics) fn reading(uptime: f64, ino: u64, values: [u64; 6]) -> CgroupReading {
        CgroupReading {
            uptime,
            places: vec![Place {
                hierarchy: Hierarchy::Unified,
                path: "/system.slice/nginx.service".into(),
                ino,
            }],
            charge: Ok(512 << 20),
            limit: Some(1 << 30),
            cpu_cores: None,
            shared: true,
            counters: CgCounter::ALL
                .into_iter()
                .zip(values)
                .map(|(counter, v)| CounterReading {
                    counter,
                    hierarchy: Some(Hierarchy::Unified),
                    value: Ok(v),
                })
                .collect(),
        }
    }

    /// The tick file's baseline of `reading`.
    pub(in crate::metrics) fn baseline(reading: &CgroupReading) -> TickState {
        TickState {
            uptime: reading.uptime,
            cgroup: crate::state::cgroup_bases(reading),
            ..TickState::default()
        }
    }

    fn values(now: &CgroupReading, base: Option<&TickState>) -> Vec<(MetricName, Option<f64>)> {
        cgroup_values(Some(now), base.map(|b| (b, &[][..])), MetricSet::all()).0
    }

    fn notes(now: &CgroupReading, base: Option<&TickState>, level: u8) -> Vec<String> {
        let notes = cgroup_values(Some(now), base.map(|b| (b, &[][..])), MetricSet::all()).1;
        note_lines(&notes, level)
    }

    #[test]
    fn counters_grow_over_the_interval() {
        let before = baseline(&reading(1000.0, 7, [1, 100, 10, 0, 0, 0]));
        // 60 s later: 2 more kills, 600 periods of which 150 throttled, 6 s, 30 s and 60 s of
        // CPU, memory and I/O stalls
        let now = reading(1060.0, 7, [3, 700, 160, 6_000_000, 30_000_000, 60_000_000]);
        assert_eq!(
            values(&now, Some(&before)),
            [
                (CgMemory, Some((512u64 << 20) as f64)),
                (CgMemoryPct, Some(50.0)),
                (OomKills, Some(2.0)),
                (CpuThrottled, Some(25.0)),
                (PsiCpu, Some(10.0)),
                (PsiMemory, Some(50.0)),
                (PsiIo, Some(100.0)),
            ]
        );
        assert_eq!(notes(&now, Some(&before), 1), Vec::<String>::new());
        assert_eq!(
            notes(&now, Some(&before), 2),
            ["cgroup: unified /system.slice/nginx.service"]
        );
    }

    #[test]
    fn a_new_cgroup_or_no_baseline_leaves_the_counters_out_for_a_run() {
        let before = baseline(&reading(1000.0, 7, [5, 100, 10, 9, 9, 9]));
        let restarted = reading(1060.0, 8, [0, 10, 1, 1, 1, 1]);
        let got = values(&restarted, Some(&before));
        assert_eq!(
            got[0].1,
            Some((512u64 << 20) as f64),
            "the charge needs no baseline"
        );
        assert!(got[2..].iter().all(|(_, v)| v.is_none()), "{got:?}");
        // by design: from -v, one line
        assert_eq!(notes(&restarted, Some(&before), 0), Vec::<String>::new());
        assert_eq!(
            notes(&restarted, Some(&before), 1),
            [
                "oom_kills, cpu_throttled, psi_cpu, psi_memory, psi_io: the unified cgroup is \
                 a new one since the last run (the unit restarted?), measured from the next \
                 run; left out"
            ]
        );
        assert_eq!(
            notes(&restarted, None, 1),
            [
                "oom_kills, cpu_throttled, psi_cpu, psi_memory, psi_io: no earlier reading of \
                 the cgroup's counters yet; left out"
            ]
        );
    }

    #[test]
    fn backwards_or_impossible_counters_are_never_reported() {
        let before = baseline(&reading(1000.0, 7, [5, 100, 10, 0, 0, 0]));
        // oom_kill lower; 50 throttled of 40 periods; 61 s of stall in 60 s
        let now = reading(1060.0, 7, [4, 140, 60, 61_000_000, 60_010_000, 0]);
        let got = values(&now, Some(&before));
        assert_eq!(
            &got[2..],
            [
                (OomKills, None),
                (CpuThrottled, None),
                (PsiCpu, None),
                // within the uptimes' rounding: all of the interval
                (PsiMemory, Some(100.0)),
                (PsiIo, Some(0.0)),
            ]
        );
        assert_eq!(
            notes(&now, Some(&before), 0),
            [
                "oom_kills: oom_kill is lower than at the last run, measured from the next run; \
                 left out",
                "cpu_throttled: impossible figure (50 throttled periods of 40); left out",
                "psi_cpu: impossible figure (61.00 s of stall in a 60.00 s interval); left out",
            ]
        );
        // a baseline from the future
        let later = baseline(&reading(2000.0, 7, [0; 6]));
        assert!(values(&now, Some(&later))[2..]
            .iter()
            .all(|(_, v)| v.is_none()));
        // no period ran: none was throttled
        let idle = reading(1060.0, 7, [5, 100, 10, 0, 0, 0]);
        assert_eq!(values(&idle, Some(&before))[3], (CpuThrottled, Some(0.0)));
    }

    #[test]
    fn unread_files_leave_their_figure_out_and_say_which() {
        let before = baseline(&reading(1000.0, 7, [0; 6]));
        let mut now = reading(1060.0, 7, [0; 6]);
        let psi = |name: &str| PathBuf::from("/sys/fs/cgroup/x").join(name);
        now.counters[3].value = Err(CgroupGap::Missing(psi("cpu.pressure")));
        now.counters[4].value = Err(CgroupGap::Malformed(psi("memory.pressure")));
        now.limit = None;
        let got = values(&now, Some(&before));
        assert_eq!(got[1], (CgMemoryPct, None));
        assert_eq!(got[4..6], [(PsiCpu, None), (PsiMemory, None)]);
        assert_eq!(
            notes(&now, Some(&before), 0),
            ["psi_memory: /sys/fs/cgroup/x/memory.pressure is malformed; left out"]
        );
        assert_eq!(
            notes(&now, Some(&before), 1)[..2],
            [
                "cg_memory_pct: the cgroup has no memory limit; left out",
                "psi_cpu: /sys/fs/cgroup/x/cpu.pressure does not exist (a kernel without it, or \
                 PSI off: psi=0); left out",
            ]
        );
    }
}
