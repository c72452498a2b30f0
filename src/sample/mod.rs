//! Acquisition step: read a proc tree (the real `/proc` or a fixture shaped like it) into
//! plain [`ProcSample`] values. This is the only module that reads `/proc` or uses `procfs`.
//!
//! In a full scan every process costs one read of its `comm` by path (with `-n`); only a process
//! whose name can match has its directory opened, once, and its `stat`, `status`, `io` and the
//! rest read through that descriptor, so that one row never mixes two processes that had the
//! same pid. The filters go cheapest first (see `filters::Plan`): a command line, which any
//! user can make megabytes long, is read last and to 64 KiB at most, and every read is bounded.
//! After selection, the masters' `io` is read again with their threads' (see [`master_io`]).
//! Names, command lines and links are bytes, not UTF-8: `stat` and `status` are parsed by hand.
//! Time and boot time come from the tree's own `uptime` and `stat`, so a fixture tree fixes
//! them and tests can assert exact CPU figures.
//!
//! [`scan`] is here; its parts, each using only those listed after it:
//! `details` (what is read for the selected workers and masters only), `filters` (the scan's
//! filter steps), `pids` (which pids are read), `proc_dir` (the bounded reads through a
//! process's directory), `parse` (each proc file's bytes into figures), `values` (what a
//! reading gives), `cgroup` (the workers' cgroup, read from `/sys`) and `sockets` (which
//! listening sockets are the service's).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use procfs::{FromRead, Uptime};

use crate::deadline::Deadline;
use crate::filter::Selector;

mod cgroup;
mod details;
mod filters;
mod parse;
mod pids;
mod proc_dir;
mod sockets;
mod values;

pub use cgroup::{CgCounter, CgroupReading, CounterReading, Hierarchy, Place};
pub use details::{enrich, master_io, DetailReads};
pub use pids::{own_processes, OwnProcesses};
pub use sockets::queues;
pub use values::{Comm, Details, IoStatus, ProcSample, ScanTimedOut, Skipped, SmapsCut, Snapshot};

use filters::{Plan, Sieve, Visit};
use parse::{kernel_stat, kib_field};
use pids::{cgroup_procs, children_of, each_pid};
use proc_dir::{vanished, ProcReader};

/// Reads the proc tree at `root`. Fails only when the tree itself is unusable (no `uptime`
/// or `stat`, or the directory cannot be listed), or when `deadline` is overdue before the
/// scan is done ([`ScanTimedOut`]): it is looked at before each process, and a scan cut short
/// is an error, never a partial list of workers. Single processes are skipped and counted.
///
/// When the selection allows it, only some pids are read, so the cost does not grow with the
/// host's process count: a named master's children from `/proc/PID/task/*/children`, or a
/// unit's processes from its cgroup's `cgroup.procs` under `sys_root`. Every filter still
/// applies to them; where those files are missing, the whole of /proc is scanned. Each
/// process is filtered cheapest first (see `filters::Plan`); the processes set aside on the
/// way are looked at again once the candidates are known.
pub fn scan(
    root: &Path,
    sys_root: &Path,
    selector: &Selector,
    parent: Option<i32>,
    trace: bool,
    deadline: Deadline,
) -> Result<Snapshot> {
    let mut snapshot = host(root)?;
    let mut reader = ProcReader::new(root);
    if let Some(parent) = parent {
        match reader.whole(parent) {
            Ok(p) => snapshot.parent = Some(p),
            Err(e) if vanished(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("reading process {parent}")),
        }
    }
    let plan = Plan::new(selector, parent);
    let shortlist = match (parent, &selector.cgroup) {
        (Some(parent), _) => children_of(root, parent),
        (None, Some(filter)) => cgroup_procs(sys_root, filter),
        (None, None) => None,
    };
    let mut clock = ScanClock {
        deadline,
        root,
        visited: 0,
    };
    let mut sieve = Sieve::new(reader, trace);
    let mut visit = |pid, how| -> Result<()> {
        clock.tick()?;
        sieve.visit(pid, &plan, how, &mut snapshot);
        Ok(())
    };
    match shortlist {
        // these are mostly ours: straight to their directories
        Some(pids) => pids
            .into_iter()
            .try_for_each(|pid| visit(pid, Visit::Shortlisted))?,
        None => each_pid(root, |pid| visit(pid, Visit::Listed))?,
    }
    let parents: HashSet<i32> = snapshot.procs.iter().map(|p| p.ppid).collect();
    for pid in std::mem::take(&mut sieve.set_aside) {
        if parents.contains(&pid) {
            clock.tick()?;
            sieve.visit(pid, &plan, Visit::Parent, &mut snapshot);
        }
    }
    snapshot.trace = sieve.trace;
    undecided(&snapshot, selector)?;
    Ok(snapshot)
}

/// A scan that could not check `--exe` for processes that passed every other filter cannot
/// say how many workers there are: counting them out would read as "service down" while it
/// runs. Only root, or the processes' own user, may read their executable.
fn undecided(snapshot: &Snapshot, selector: &Selector) -> Result<()> {
    let count = snapshot.skipped.undecided;
    if count == 0 {
        return Ok(());
    }
    let exe = selector.exe.as_deref().unwrap_or_default();
    let processes = match count {
        1 => "1 process that passes the other filters".to_string(),
        n => format!("{n} processes that pass the other filters"),
    };
    bail!(
        "--exe {}: {processes} could not be checked, as only root or their own user may read \
         /proc/PID/exe; run the check as root, or through sudo (contrib/sudoers)",
        crate::text::shown(exe)
    )
}

/// Reads the cgroup that holds `workers` (the level named `unit`, with `--unit`) under
/// `sys_root`, with the hierarchies the check's own mount table at `root` shows; first the
/// `/proc/PID/cgroup` of every worker not read yet. None without workers, and for a tree
/// without `self/mountinfo` (a fixture's: a real `/proc` always has one), which has no
/// cgroups to tell of.
pub fn workers_cgroup(
    root: &Path,
    sys_root: &Path,
    workers: &mut [ProcSample],
    unit: Option<&str>,
    scanned_at: f64,
) -> Option<CgroupReading> {
    if workers.is_empty() || !root.join("self/mountinfo").exists() {
        return None;
    }
    details::cgroup_files(root, workers);
    let files: Vec<Option<&str>> = workers.iter().map(|w| w.cgroup.as_deref()).collect();
    let uptime = || read_uptime(root).unwrap_or(scanned_at);
    Some(cgroup::read(root, sys_root, &files, unit, uptime))
}

/// What a reading knows of the host before any process: uptime, boot time, clock, CPUs and
/// memory.
fn host(root: &Path) -> Result<Snapshot> {
    let uptime = read_uptime(root)?;
    let (btime, cpus) = read_kernel_stat(root)?;
    Ok(Snapshot {
        uptime,
        btime,
        clock_ticks: procfs::ticks_per_second(),
        cpus,
        mem_total: read_mem_total(root),
        ..Snapshot::default()
    })
}

/// The scan's look at the deadline before each process it visits.
struct ScanClock<'a> {
    deadline: Deadline,
    root: &'a Path,
    /// processes visited so far
    visited: usize,
}

impl ScanClock<'_> {
    /// Ok while there is time for one more process; the error says how far the scan got.
    fn tick(&mut self) -> Result<(), ScanTimedOut> {
        if self.deadline.overdue() {
            return Err(ScanTimedOut {
                root: self.root.to_path_buf(),
                visited: self.visited,
            });
        }
        self.visited += 1;
        Ok(())
    }
}

fn read_uptime(root: &Path) -> Result<f64> {
    let path = root.join("uptime");
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let uptime =
        Uptime::from_read(&bytes[..]).with_context(|| format!("parsing {}", path.display()))?;
    if !uptime.uptime.is_finite() || uptime.uptime < 0.0 {
        bail!("{}: impossible uptime {}", path.display(), uptime.uptime);
    }
    Ok(uptime.uptime)
}

/// Boot time and CPU count from `stat`.
fn read_kernel_stat(root: &Path) -> Result<(u64, usize)> {
    let path = root.join("stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (btime, cpus) = kernel_stat(&text);
    let btime = btime.with_context(|| format!("{}: no btime line", path.display()))?;
    Ok((btime, cpus))
}

/// MemTotal from `meminfo`, bytes; None when the tree has none.
fn read_mem_total(root: &Path) -> Option<u64> {
    let text = fs::read_to_string(root.join("meminfo")).ok()?;
    kib_field(&text, "MemTotal:")
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::CmdlineFilter;
    use fake::{fake_tree, in_ten_seconds};

    // Issue 16.3: a scan slowed down by other users' processes went on past -t, and the run
    // answered the watchdog's bare "timed out" instead of its result or a reason.
    #[test]
    fn a_scan_past_its_deadline_fails_instead_of_reporting_part_of_the_processes() {
        let root = fake_tree();
        let selector = Selector {
            cmdline: Some(CmdlineFilter::new("gunicorn").unwrap()),
            ..Selector::default()
        };
        let scan_by = |deadline| scan(root.path(), root.path(), &selector, None, false, deadline);
        assert_eq!(scan_by(in_ten_seconds()).unwrap().procs.len(), 3);
        let passed = Deadline::new(std::time::Instant::now(), std::time::Duration::ZERO);
        let e = scan_by(passed).unwrap_err();
        assert!(e.downcast_ref::<ScanTimedOut>().is_some(), "{e:#}");
        assert_eq!(
            e.to_string(),
            format!(
                "timed out scanning {} after 0 processes",
                root.path().display()
            )
        );
    }
}
