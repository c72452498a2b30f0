//! Metrics step: this sample and the previous one become numbers. Pure: no file system, no
//! clock; time is the uptime each sample recorded.

use std::collections::{HashMap, HashSet};

use crate::sample::{ProcSample, Snapshot};
use crate::state::{NoBaseline, ProcTicks, TickState};

/// Decides whether the previous sample can serve as the start of the CPU interval.
pub fn check_baseline(previous: TickState, now: &Snapshot) -> Result<TickState, NoBaseline> {
    // /proc/stat's btime is computed as "now minus uptime" on every read and can flicker by
    // a second; a real reboot moves it by far more (and resets the uptime too).
    if previous.btime.abs_diff(now.btime) > 1 || previous.clock_ticks != now.clock_ticks {
        return Err(NoBaseline::Rebooted);
    }
    let elapsed = now.uptime - previous.uptime;
    if elapsed < 0.0 {
        return Err(NoBaseline::TimeWentBackwards);
    }
    // uptime has 1/100 s resolution: allow for its rounding at exactly two ticks
    if elapsed * (now.clock_ticks as f64) < 2.0 - 1e-6 {
        return Err(NoBaseline::TooShort);
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
}

/// CPU of all workers together over the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuFigures {
    /// percent of one core (user + system)
    pub total: f64,
    /// percent of one core
    pub user: f64,
    /// percent of one core
    pub system: f64,
    /// seconds between the two samples
    pub interval: f64,
    /// workers that started inside the interval and count fully
    pub new_workers: usize,
    /// workers whose share could not be known (counted as zero)
    pub unknown_workers: usize,
    /// CPU of workers that exited within the interval, recovered from their master
    pub exited: Option<ExitedWorkers>,
    /// the busiest worker's CPU, the one runaway an average hides
    pub max: f64,
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
}

/// Everything the check measured. Memory figures are None with no workers; per-worker
/// details are None when some worker's could not be read (never an average of a subset).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub workers: usize,
    /// None when there is no baseline and no in-run interval
    pub cpu: Option<CpuFigures>,
    /// upper bound of the CPU figures (100 x CPUs, or 100 with `--cpu-scale host`)
    pub cpu_ceiling: f64,
    /// average resident set size per worker, bytes
    pub rss_avg: Option<f64>,
    /// average virtual size per worker, bytes
    pub vms_avg: Option<f64>,
    /// average proportional set size per worker, bytes
    pub pss_avg: Option<f64>,
    /// average unique set size per worker, bytes
    pub uss_avg: Option<f64>,
    /// workers whose smaps_rollup could not be read
    pub pss_unreadable: usize,
    /// the largest worker's resident set size, bytes
    pub rss_max: Option<u64>,
    /// the largest worker's virtual size, bytes
    pub vms_max: Option<u64>,
    /// resident set size of all workers, bytes
    pub rss_total: u64,
    /// rss_total as percent of the memory the workers may use (cgroup limit or host)
    pub rss_pct: Option<f64>,
    /// threads of all workers
    pub threads: u64,
    /// open file descriptors of all workers
    pub fds: Option<u64>,
    /// workers whose fds could not be counted
    pub fds_unreadable: usize,
    /// the highest ratio of a worker's fds to its soft RLIMIT_NOFILE, percent
    pub fd_pct_max: Option<f64>,
    /// seconds since the youngest worker started
    pub age_min: Option<f64>,
    /// seconds since the oldest worker started
    pub age_max: Option<f64>,
    /// workers in state Z
    pub zombies: usize,
    /// workers in state D
    pub uninterruptible: usize,
    /// per worker, busiest first
    pub per_worker: Vec<WorkerFigures>,
}

/// What the workers may use, for the relative figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// CPU percentages are divided by this: 1 for "100 % = one core", the usable cores for
    /// `--cpu-scale host`
    pub cpu_divisor: f64,
    /// upper bound of the CPU figures for perfdata
    pub cpu_ceiling: f64,
    /// memory the workers may use (cgroup memory.max, else the host's), bytes
    pub memory: Option<u64>,
}

impl Capacity {
    /// "100 % = one core", the default.
    pub fn per_core(cpus: usize) -> Capacity {
        Capacity {
            cpu_divisor: 1.0,
            cpu_ceiling: 100.0 * cpus as f64,
            memory: None,
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
        }
    }
}

/// Computes all figures of `workers` (and their `masters`) sampled in `now`, against
/// `previous` when there is one.
pub fn compute(
    workers: &[ProcSample],
    masters: &[ProcSample],
    now: &Snapshot,
    previous: Option<&TickState>,
    capacity: &Capacity,
) -> Figures {
    let hz = now.clock_ticks.max(1) as f64;
    let cpu_of_each: Vec<Option<WorkerCpu>> = match previous {
        Some(prev) => {
            let before: HashMap<i32, &ProcTicks> =
                prev.workers.iter().map(|t| (t.pid, t)).collect();
            workers
                .iter()
                .map(|w| Some(worker_cpu(w, before.get(&w.pid).copied(), prev.uptime, hz)))
                .collect()
        }
        None => vec![None; workers.len()],
    };
    let interval = previous.map(|prev| now.uptime - prev.uptime);
    let percent = |ticks: u64| {
        let interval = interval.unwrap_or(f64::INFINITY);
        ticks as f64 / (interval * hz) * 100.0 / capacity.cpu_divisor
    };
    let mut per_worker: Vec<WorkerFigures> = workers
        .iter()
        .zip(&cpu_of_each)
        .map(|(w, c)| WorkerFigures {
            pid: w.pid,
            uid: w.uid,
            cpu: c.map(|c| percent(c.user_ticks + c.system_ticks)),
            rss: w.rss,
            vms: w.vms,
            age: (now.uptime - w.starttime as f64 / hz).max(0.0),
            state: w.state,
            pss: w.details.as_ref().and_then(|d| d.pss),
        })
        .collect();
    per_worker.sort_by(|a, b| {
        let cpu = |w: &WorkerFigures| w.cpu.unwrap_or(0.0);
        cpu(b)
            .total_cmp(&cpu(a))
            .then(b.rss.cmp(&a.rss))
            .then(a.pid.cmp(&b.pid))
    });

    let cpu = previous.map(|prev| {
        let measured = cpu_of_each.iter().flatten();
        let exited = exited_workers(prev, workers, masters);
        let recovered = |ticks: fn(&ExitedWorkers) -> u64| exited.as_ref().map_or(0, ticks);
        let user: u64 =
            measured.clone().map(|c| c.user_ticks).sum::<u64>() + recovered(|e| e.user_ticks);
        let system: u64 =
            measured.clone().map(|c| c.system_ticks).sum::<u64>() + recovered(|e| e.system_ticks);
        let count = |basis| measured.clone().filter(|c| c.basis == basis).count();
        CpuFigures {
            total: percent(user + system),
            user: percent(user),
            system: percent(system),
            interval: now.uptime - prev.uptime,
            new_workers: count(CpuBasis::New),
            unknown_workers: count(CpuBasis::Unknown),
            exited,
            max: per_worker.first().and_then(|w| w.cpu).unwrap_or(0.0),
        }
    });

    let n = workers.len();
    let average = |total: u64| (n > 0).then(|| total as f64 / n as f64);
    let rss_total: u64 = workers.iter().map(|w| w.rss).sum();
    // a detail counts only when every worker's could be read: an average of the readable
    // ones would silently describe other workers than the check reports on
    let all_details = |get: fn(&crate::sample::Details) -> Option<u64>| -> Option<Vec<u64>> {
        workers
            .iter()
            .map(|w| w.details.as_ref().and_then(get))
            .collect()
    };
    let missing = |get: fn(&crate::sample::Details) -> Option<u64>| {
        workers
            .iter()
            .filter(|w| w.details.is_some() && w.details.as_ref().and_then(get).is_none())
            .count()
    };
    let pss = all_details(|d| d.pss).filter(|v| !v.is_empty());
    let uss = all_details(|d| d.uss).filter(|v| !v.is_empty());
    let fds = all_details(|d| d.fds).filter(|v| !v.is_empty());
    let fd_pct_max = workers
        .iter()
        .filter_map(|w| {
            let d = w.details.as_ref()?;
            Some(d.fds? as f64 / d.fd_limit.filter(|&l| l > 0)? as f64 * 100.0)
        })
        .max_by(f64::total_cmp);
    let ages = per_worker.iter().map(|w| w.age);
    Figures {
        workers: n,
        cpu,
        cpu_ceiling: capacity.cpu_ceiling,
        rss_avg: average(rss_total),
        vms_avg: average(workers.iter().map(|w| w.vms).sum()),
        pss_avg: pss.map(|v| v.iter().sum::<u64>() as f64 / v.len() as f64),
        uss_avg: uss.map(|v| v.iter().sum::<u64>() as f64 / v.len() as f64),
        pss_unreadable: missing(|d| d.pss),
        rss_max: workers.iter().map(|w| w.rss).max(),
        vms_max: workers.iter().map(|w| w.vms).max(),
        rss_total,
        rss_pct: capacity
            .memory
            .filter(|&m| m > 0)
            .map(|m| rss_total as f64 / m as f64 * 100.0),
        threads: workers.iter().map(|w| w.threads).sum(),
        fds: fds.map(|v| v.iter().sum()),
        fds_unreadable: missing(|d| d.fds),
        fd_pct_max,
        age_min: ages.clone().min_by(f64::total_cmp),
        age_max: ages.max_by(f64::total_cmp),
        zombies: workers.iter().filter(|w| w.state == 'Z').count(),
        uninterruptible: workers.iter().filter(|w| w.state == 'D').count(),
        per_worker,
    }
}

/// CPU that workers gone since the previous sample burnt inside the interval.
///
/// Prefork servers recycle workers all the time, so at a 1-5 minute check interval most CPU
/// may be burnt by workers that no sample ever sees again. When a parent reaps a child the
/// kernel adds the child's whole lifetime (its own and its reaped children's ticks) to the
/// parent's `cutime`/`cstime`. So, with the same master(s) in both samples:
///
/// ```text
/// exited = delta(masters' cutime + cstime) - ticks the gone workers had at the previous sample
/// ```
///
/// (that second part was counted in an earlier interval). Clamped at zero. The master's
/// reaped-children time also holds any other child it reaps (a log helper, a CGI), which is
/// counted too: an approximation the README documents. With no master, or a master that is
/// not the same process (pid and starttime) as last time, nothing is recovered.
fn exited_workers(
    prev: &TickState,
    workers: &[ProcSample],
    masters: &[ProcSample],
) -> Option<ExitedWorkers> {
    if masters.is_empty() || masters.len() != prev.masters.len() {
        return None;
    }
    let same = |a: &ProcTicks, pid: i32, starttime: u64| a.pid == pid && a.starttime == starttime;
    let mut child_user_delta: i128 = 0;
    let mut child_system_delta: i128 = 0;
    for m in masters {
        let before = prev.masters.iter().find(|b| same(b, m.pid, m.starttime))?;
        child_user_delta += i128::from(m.cutime) - i128::from(before.cutime);
        child_system_delta += i128::from(m.cstime) - i128::from(before.cstime);
    }
    let alive: HashSet<(i32, u64)> = workers.iter().map(|w| (w.pid, w.starttime)).collect();
    let gone: Vec<&ProcTicks> = prev
        .workers
        .iter()
        .filter(|b| !alive.contains(&(b.pid, b.starttime)))
        .collect();
    let counted_user: i128 = gone
        .iter()
        .map(|b| i128::from(b.utime) + i128::from(b.cutime))
        .sum();
    let counted_system: i128 = gone
        .iter()
        .map(|b| i128::from(b.stime) + i128::from(b.cstime))
        .sum();
    let clamp = |ticks: i128| u64::try_from(ticks.max(0)).unwrap_or(u64::MAX);
    Some(ExitedWorkers {
        count: gone.len(),
        user_ticks: clamp(child_user_delta - counted_user),
        system_ticks: clamp(child_system_delta - counted_system),
    })
}

/// Ticks one worker spent inside the interval.
///
/// Subtraction happens only once pid *and* starttime show it is the same process; a reused pid
/// is a new process and must never have another process's ticks subtracted from it.
fn worker_cpu(
    now: &ProcSample,
    before: Option<&ProcTicks>,
    prev_uptime: f64,
    hz: f64,
) -> WorkerCpu {
    match before {
        Some(b) if b.starttime == now.starttime => WorkerCpu {
            // same process: its counters only grow, so saturation never hides anything real
            user_ticks: now.utime.saturating_sub(b.utime),
            system_ticks: now.stime.saturating_sub(b.stime),
            basis: CpuBasis::Delta,
        },
        _ if now.starttime as f64 >= (prev_uptime * hz).floor() => WorkerCpu {
            user_ticks: now.utime,
            system_ticks: now.stime,
            basis: CpuBasis::New,
        },
        _ => WorkerCpu {
            user_ticks: 0,
            system_ticks: 0,
            basis: CpuBasis::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(pid: i32, starttime: u64, utime: u64, stime: u64) -> ProcSample {
        ProcSample {
            pid,
            starttime,
            utime,
            stime,
            rss: 4 << 20,
            vms: 100 << 20,
            ..ProcSample::default()
        }
    }

    fn ticks(pid: i32, starttime: u64, utime: u64, stime: u64) -> ProcTicks {
        ProcTicks {
            pid,
            starttime,
            utime,
            stime,
            cutime: 0,
            cstime: 0,
        }
    }

    fn snapshot(uptime: f64) -> Snapshot {
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
            masters: vec![],
        }
    }

    #[test]
    fn cpu_is_tick_delta_over_interval() {
        // 60 s apart at 100 Hz = 6000 ticks available per core
        let prev = previous(1000.0, vec![ticks(10, 500, 100, 50), ticks(11, 500, 0, 0)]);
        let now = [worker(10, 500, 1300, 350), worker(11, 500, 600, 0)];
        let f = compute(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        let cpu = f.cpu.unwrap();
        // (1200 + 300 + 600) / 6000 * 100 = 35 %
        assert!((cpu.total - 35.0).abs() < 1e-9, "{}", cpu.total);
        assert!((cpu.user - 30.0).abs() < 1e-9);
        assert!((cpu.system - 5.0).abs() < 1e-9);
        assert_eq!(cpu.interval, 60.0);
        assert_eq!(f.per_worker[0].pid, 10, "busiest first");
        assert!((f.per_worker[0].cpu.unwrap() - 25.0).abs() < 1e-9);
    }

    #[test]
    fn can_exceed_one_core() {
        let prev = previous(0.0 + 100.0, vec![ticks(1, 0, 0, 0), ticks(2, 0, 0, 0)]);
        let now = [worker(1, 0, 1000, 0), worker(2, 0, 1000, 0)];
        let f = compute(
            &now,
            &[],
            &snapshot(110.0),
            Some(&prev),
            &Capacity::per_core(4),
        );
        assert!((f.cpu.unwrap().total - 200.0).abs() < 1e-9);
    }

    #[test]
    fn reused_pid_is_not_subtracted() {
        // pid 10 had 5000 ticks; a new process with pid 10 started at 1030 s (tick 103000)
        let prev = previous(1000.0, vec![ticks(10, 500, 5000, 0)]);
        let now = [worker(10, 103_000, 300, 0)];
        let cpu = compute(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        )
        .cpu
        .unwrap();
        assert!(
            (cpu.total - 5.0).abs() < 1e-9,
            "300 ticks / 6000 = 5 %, got {}",
            cpu.total
        );
        assert_eq!(cpu.new_workers, 1);
    }

    #[test]
    fn new_worker_counts_fully() {
        let prev = previous(1000.0, vec![]);
        let now = [worker(20, 100_000, 120, 60)];
        let cpu = compute(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        )
        .cpu
        .unwrap();
        assert!((cpu.total - 3.0).abs() < 1e-9);
        assert_eq!(cpu.new_workers, 1);
    }

    #[test]
    fn old_process_without_baseline_counts_zero() {
        // started at 500 s, long before the previous sample, but not in it
        let prev = previous(1000.0, vec![]);
        let now = [worker(30, 50_000, 9999, 9999)];
        let cpu = compute(
            &now,
            &[],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        )
        .cpu
        .unwrap();
        assert_eq!(cpu.total, 0.0);
        assert_eq!(cpu.unknown_workers, 1);
    }

    fn master(cutime: u64, cstime: u64) -> ProcSample {
        ProcSample {
            pid: 1,
            starttime: 10,
            cutime,
            cstime,
            ..ProcSample::default()
        }
    }

    fn master_ticks(cutime: u64, cstime: u64) -> ProcTicks {
        ProcTicks {
            cutime,
            cstime,
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
        let cpu = compute(
            &now,
            &masters,
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        )
        .cpu
        .unwrap();
        let exited = cpu.exited.unwrap();
        assert_eq!(exited.count, 1);
        assert_eq!((exited.user_ticks, exited.system_ticks), (1700, 40));
        // (600 + 1700 + 40) / 6000 = 39 %
        assert!((cpu.total - 39.0).abs() < 1e-9, "{}", cpu.total);
    }

    #[test]
    fn no_recovery_when_the_master_changed() {
        let mut prev = previous(1000.0, vec![ticks(20, 500, 300, 60)]);
        prev.masters = vec![master_ticks(5000, 700)];
        let mut restarted = master(9000, 900);
        restarted.starttime = 99_000;
        let cpu = compute(
            &[],
            &[restarted],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        )
        .cpu
        .unwrap();
        assert_eq!(cpu.exited, None);
        assert_eq!(cpu.total, 0.0);
    }

    #[test]
    fn recovery_is_clamped_at_zero() {
        // a gone worker the master did not reap (yet): its old ticks must not go negative
        let mut prev = previous(1000.0, vec![ticks(20, 500, 300, 60)]);
        prev.masters = vec![master_ticks(5000, 700)];
        let cpu = compute(
            &[],
            &[master(5000, 700)],
            &snapshot(1060.0),
            Some(&prev),
            &Capacity::per_core(4),
        )
        .cpu
        .unwrap();
        assert_eq!(cpu.exited.unwrap().user_ticks, 0);
        assert_eq!(cpu.total, 0.0);
    }

    #[test]
    fn no_previous_means_no_cpu() {
        let f = compute(
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
        let f = compute(&[a, b], &[], &snapshot(10.0), None, &Capacity::per_core(4));
        assert_eq!(f.rss_avg, Some(2000.0));
        assert_eq!(f.vms_avg, Some(20_000.0));
        assert_eq!(f.rss_max, Some(3000));
        assert_eq!(f.rss_total, 4000);
        let empty = compute(&[], &[], &snapshot(10.0), None, &Capacity::per_core(4));
        assert_eq!(
            (empty.rss_avg, empty.rss_max, empty.rss_total),
            (None, None, 0)
        );
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
        assert_eq!(check_baseline(rebooted, &now), Err(NoBaseline::Rebooted));
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
            Err(NoBaseline::TimeWentBackwards)
        );
        let same = previous(1000.0, vec![]);
        assert_eq!(check_baseline(same, &now), Err(NoBaseline::TooShort));
        let short = previous(999.99, vec![]);
        assert_eq!(check_baseline(short, &now), Err(NoBaseline::TooShort));
        let two_ticks = previous(999.98, vec![]);
        assert!(check_baseline(two_ticks, &now).is_ok());
    }
}
