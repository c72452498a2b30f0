//! Acquisition step: read a proc tree (the real `/proc` or a fixture shaped like it) into
//! plain [`ProcSample`] values. This is the only module that reads `/proc` or uses `procfs`.
//!
//! In a full scan every process costs one read of its `comm` by path (with `-n`); only a process
//! whose name can match has its directory opened, once, and its `stat`, `status`, `io` and the
//! rest read through that descriptor, so that one row never mixes two processes that had the
//! same pid. The filters go cheapest first (see [`Plan`]): a command line, which any user can
//! make megabytes long, is read last and to 64 KiB at most, and every read is bounded.
//! After selection, the masters' `io` is read again with their threads' (see [`master_io`]). Names,
//! command lines and links are bytes, not UTF-8: `stat` and `status` are parsed by hand.
//! Time and boot time come from the tree's own `uptime` and `stat`, so a fixture tree fixes
//! them and tests can assert exact CPU figures.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use procfs::{FromRead, Uptime};
use rustix::fs::{Mode, OFlags};

use crate::catalog::{MetricSet, Source};
use crate::deadline::Deadline;
use crate::filter::{exe_matches, CgroupFilter, CommMatch, NameFilter, Selector, CMDLINE_MATCHED};
use crate::text::shown_bytes;

mod parse;

use parse::{
    kernel_stat, kib_field, open_files_limit, parse_io, parse_stat, parse_status, smaps_rollup,
    v2_path, StatFields, StatusFields, PF_KTHREAD,
};

/// A process name as the kernel keeps it: at most 15 bytes, in no particular encoding (a long
/// UTF-8 name is cut inside a character as readily as between two). Compared as bytes;
/// displayed with anything unprintable or not UTF-8 escaped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Comm(Vec<u8>);

impl Comm {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Comm {
    fn from(bytes: &[u8]) -> Comm {
        Comm(bytes.to_vec())
    }
}

impl From<&str> for Comm {
    fn from(name: &str) -> Comm {
        Comm(name.as_bytes().to_vec())
    }
}

/// Escaped: a name is outside text, and `{}` is how it reaches the output.
impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown_bytes(&self.0))
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Comm({:?})", shown_bytes(&self.0))
    }
}

/// One process as the check needs it; no `procfs` handle is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcSample {
    pub pid: i32,
    pub ppid: i32,
    pub comm: Comm,
    /// state letter from `stat` (R, S, D, Z, ...)
    pub state: char,
    pub kernel_thread: bool,
    /// real uid
    pub uid: u32,
    /// start time after boot, clock ticks; with the pid it identifies the process
    pub starttime: u64,
    /// user CPU time, clock ticks
    pub utime: u64,
    /// system CPU time, clock ticks
    pub stime: u64,
    /// user CPU time of reaped children, clock ticks
    pub cutime: u64,
    /// system CPU time of reaped children, clock ticks
    pub cstime: u64,
    /// resident set size (VmRSS), bytes
    pub rss: u64,
    /// virtual size (VmSize), bytes
    pub vms: u64,
    /// threads of the process
    pub threads: u64,
    /// CPUs the process may run on (its affinity), where known
    pub cpus_allowed: Option<u32>,
    /// the process's cgroup v2 path (`/system.slice/nginx.service`), where known
    pub cgroup: Option<String>,
    /// what `/proc/PID/io` says: the whole process (its threads, dead and alive, and its
    /// reaped children)
    pub io: Io,
    /// for a master (see [`master_io`]): the part of `io` its reaped children (and exited
    /// threads) did, which the kernel keeps apart from its live threads' own; None otherwise
    pub reaped_io: Option<IoCounters>,
    /// the rest is read for workers only (see [`enrich`]), so None also means "not read"
    pub details: Option<Details>,
}

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

/// What `/proc/PID/io` of one process gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Io {
    /// not read, or no such file: a kernel without task I/O accounting, a fixture tree
    /// without it, a process that exited meanwhile
    #[default]
    Absent,
    /// there but not readable: it needs ptrace access (root or the process's user), or it
    /// did not parse
    Unreadable,
    Read(IoCounters),
}

impl Io {
    pub fn counters(self) -> Option<IoCounters> {
        match self {
            Io::Read(c) => Some(c),
            Io::Absent | Io::Unreadable => None,
        }
    }
}

impl ProcSample {
    /// The I/O the process did itself: `io` less what its reaped children did, where that is
    /// known (masters); for any other process its whole `io`.
    pub fn own_io(&self) -> Option<IoCounters> {
        let whole = self.io.counters()?;
        Some(self.reaped_io.map_or(whole, |reaped| whole.since(reaped)))
    }
}

/// Per-worker figures that cost a read or more each, taken only for the selected workers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// open file descriptors (None: not allowed to list them)
    pub fds: Option<u64>,
    /// soft RLIMIT_NOFILE (None: unlimited or unreadable)
    pub fd_limit: Option<u64>,
    /// proportional set size from smaps_rollup, bytes (None: not allowed to read it)
    pub pss: Option<u64>,
    /// unique set size (private clean + dirty) from smaps_rollup, bytes
    pub uss: Option<u64>,
}

/// Why some processes could not be read. A process that exits during the scan is normal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// processes that exited while being read
    pub vanished: usize,
    /// processes whose files we may not read (permission, or unparsable)
    pub unreadable: usize,
}

/// One reading of the system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// system uptime at the start of the scan, seconds
    pub uptime: f64,
    /// boot time, seconds since the epoch
    pub btime: u64,
    /// kernel clock ticks per second (USER_HZ)
    pub clock_ticks: u64,
    /// CPUs listed in the tree's `stat`
    pub cpus: usize,
    /// host memory (MemTotal), bytes
    pub mem_total: Option<u64>,
    /// processes that passed the filters read during the scan
    pub procs: Vec<ProcSample>,
    /// the master named by `--ppid`/`--pidfile`, read whatever the filters say
    pub parent: Option<ProcSample>,
    /// limits of the cgroup all workers share, when they share one
    pub cgroup_limits: Option<CgroupLimits>,
    pub skipped: Skipped,
    /// with `-vvv`: every process looked at and what became of it
    pub trace: Vec<String>,
    /// how far the workers' `smaps_rollup` reads got, when the deadline cut them short
    pub smaps_cut: Option<SmapsCut>,
}

/// A scan given up because the run's time was up: an error, never a partial reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanTimedOut {
    pub root: PathBuf,
    /// processes looked at before it was given up
    pub visited: usize,
}

impl fmt::Display for ScanTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out scanning {} after {} processes",
            self.root.display(),
            self.visited
        )
    }
}

impl std::error::Error for ScanTimedOut {}

/// Reads the proc tree at `root`. Fails only when the tree itself is unusable (no `uptime`
/// or `stat`, or the directory cannot be listed), or when `deadline` is overdue before the
/// scan is done ([`ScanTimedOut`]): it is looked at before each process, and a scan cut short
/// is an error, never a partial list of workers. Single processes are skipped and counted.
///
/// When the selection allows it, only some pids are read, so the cost does not grow with the
/// host's process count: a named master's children from `/proc/PID/task/*/children`, or a
/// unit's processes from its cgroup's `cgroup.procs` under `sys_root`. Every filter still
/// applies to them; where those files are missing, the whole of /proc is scanned. Each
/// process is filtered cheapest first (see [`Plan`]); the processes set aside on the way are
/// looked at again once the candidates are known.
pub fn scan(
    root: &Path,
    sys_root: &Path,
    selector: &Selector,
    parent: Option<i32>,
    trace: bool,
    deadline: Deadline,
) -> Result<Snapshot> {
    let mut snapshot = host(root)?;
    let mut reader = Reader::new(root, trace);
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
    let mut visit = |pid, how| -> Result<()> {
        clock.tick()?;
        reader.visit(pid, &plan, how, &mut snapshot);
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
    for pid in std::mem::take(&mut reader.set_aside) {
        if parents.contains(&pid) {
            clock.tick()?;
            reader.visit(pid, &plan, Visit::Parent, &mut snapshot);
        }
    }
    snapshot.trace = reader.trace;
    Ok(snapshot)
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

/// Calls `each` with every pid listed in the tree at `root`, stopping at its first error.
fn each_pid(root: &Path, mut each: impl FnMut(i32) -> Result<()>) -> Result<()> {
    // nix's Dir hands out borrowed names: std's read_dir allocates one per process
    let listing = || format!("listing {}", root.display());
    let mut dir = nix::dir::Dir::open(
        root,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(listing)?;
    for entry in dir.iter() {
        let entry = entry.with_context(listing)?;
        if let Some(pid) = pid_of(entry.file_name().to_bytes()) {
            each(pid)?;
        }
    }
    Ok(())
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

/// The order in which a process meets the filters, cheapest first, so that a process that
/// is not ours costs little whatever it holds: any user can start processes with megabytes of
/// arguments, and reading and matching them for every process made `-a` checks time out.
///
/// 1. The filters that say which service a process belongs to and cost one small file: the
///    name (`comm`, by path in a full scan, then from `stat`) and the cgroup. A process that
///    fails one is not ours, worker or master. Kernel threads (from `stat`) never are.
/// 2. The filters only workers must pass: their parent (`--ppid`/`--pidfile`), state (`-s`,
///    from `stat`) and user (`-u`, from `status`; by path first in a full scan without `-n`
///    or a cgroup).
/// 3. The costly filters: the command line (`-a`, and the argv[0] of a long `-n` name, read
///    to 64 KiB at most) and the executable (`--exe`).
///
/// Step 2 is no rejection when masters are to be found among the candidates (no
/// `--ppid`/`--pidfile`, and a filter that names the service): `select` finds a master
/// before `-u` and `-s`, so that the root nginx master of www-data workers is still named
/// with `-u www-data`. Such a process is set aside with nothing read but its pid. Once all
/// candidates (the processes that passed every filter) are known, the set-aside processes
/// that are the parent of one are read again, without step 2, and join the candidates if
/// they pass steps 1 and 3. So a master that fails `-u` or `-s` is always a candidate's
/// parent, as a master's workers are its children; a process that fails them and has no
/// candidate among its children is never read further, and is no master. Nor is a process
/// none of whose children is a candidate: with `-n nginx -u root`, the root master of
/// www-data workers is one worker. What the command lines cost is then bounded by the
/// candidates and their parents, 64 KiB each, however many processes other users start.
struct Plan<'a> {
    selector: &'a Selector,
    /// the pid of `--ppid`/`--pidfile`: the workers are its children
    parent: Option<i32>,
    /// step 2 sets aside rather than rejects (see above)
    masters_detected: bool,
}

impl Plan<'_> {
    fn new(selector: &Selector, parent: Option<i32>) -> Plan<'_> {
        Plan {
            selector,
            parent,
            masters_detected: selector.parent.is_none() && selector.names_the_service(),
        }
    }

    /// Step 2 on the parent and state in `stat`.
    fn stat_rejects(&self, stat: &StatFields) -> Option<&'static str> {
        if self.parent.is_some_and(|parent| stat.ppid != parent) {
            Some("parent")
        } else if !self
            .selector
            .states
            .as_ref()
            .is_none_or(|states| states.contains(stat.state))
        {
            Some("state")
        } else {
            None
        }
    }

    /// Step 2 on the real uid in `status`.
    fn uid_rejects(&self, uid: u32) -> Option<&'static str> {
        self.selector
            .uid
            .is_some_and(|want| uid != want)
            .then_some("user")
    }

    /// Step 2's verdict on a process that failed it.
    fn step_two(&self, why: &'static str) -> Verdict {
        if self.masters_detected {
            Verdict::SetAside(why)
        } else {
            Verdict::Rejected(why)
        }
    }

    /// True when there is no step 2: a full scan's one read by path may then be the command
    /// line or the executable.
    fn no_step_two(&self) -> bool {
        self.parent.is_none() && self.selector.uid.is_none() && self.selector.states.is_none()
    }
}

/// The pids in a unit's (or a literal cgroup path's) cgroup and its sub-cgroups, from
/// cgroup v2's `cgroup.procs`. None when the cgroup cannot be found there (v1, a glob, a unit
/// in an unusual slice): the caller then scans.
fn cgroup_procs(sys_root: &Path, filter: &CgroupFilter) -> Option<Vec<i32>> {
    // the unified (v2) hierarchy, or on hybrid hosts its `unified` mount and systemd's own
    // named v1 hierarchy, which both mirror the units
    let bases = ["fs/cgroup", "fs/cgroup/unified", "fs/cgroup/systemd"].map(|b| sys_root.join(b));
    let path = match filter {
        CgroupFilter::Unit(unit) => ["system.slice/", ""].map(|slice| format!("{slice}{unit}")),
        CgroupFilter::Glob(pattern) if !pattern.contains(['*', '?']) => {
            [pattern.trim_start_matches('/').to_string(), String::new()]
        }
        CgroupFilter::Glob(_) => return None,
    };
    let dir = bases
        .iter()
        .flat_map(|base| {
            path.iter()
                .filter(|p| !p.is_empty())
                .map(move |p| base.join(p))
        })
        .find(|dir| dir.join("cgroup.procs").is_file())?;
    let mut pids = Vec::new();
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        let text = fs::read_to_string(dir.join("cgroup.procs")).ok()?;
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
        if let Ok(entries) = fs::read_dir(&dir) {
            pending.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    Some(pids)
}

/// A directory name that is a pid (all digits, in range).
fn pid_of(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = name
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    i32::try_from(value).ok().filter(|&pid| pid > 0)
}

/// The children of `pid` from every thread's `children` file (a child belongs to the thread
/// that forked it). None when the kernel has no such files (CONFIG_PROC_CHILDREN) or the
/// process is gone.
fn children_of(root: &Path, pid: i32) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(root.join(pid.to_string()).join("task")).ok()?;
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let text = fs::read_to_string(task.path().join("children")).ok()?;
        children.extend(
            text.split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    Some(children)
}

/// What a cgroup (v2) allows its processes, the tightest along the path to the root.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupLimits {
    /// memory.max, bytes
    pub memory_max: Option<u64>,
    /// cpu.max quota / period, in cores
    pub cpu_cores: Option<f64>,
    /// memory.current of the cgroup itself: the memory charged to it, each page once
    /// (its processes' pages and the page cache they brought in), bytes
    pub memory_charge: Option<u64>,
}

/// Reads memory.max and cpu.max of `cgroup` (a v2 path like `/system.slice/nginx.service`)
/// and of its ancestors under `<sys_root>/fs/cgroup`. None when nothing is limited.
pub fn cgroup_limits(sys_root: &Path, cgroup: &str) -> Option<CgroupLimits> {
    let base = sys_root.join("fs/cgroup");
    let mut limits = CgroupLimits::default();
    let mut path = cgroup.trim_end_matches('/');
    limits.memory_charge = fs::read_to_string(
        base.join(path.trim_start_matches('/'))
            .join("memory.current"),
    )
    .ok()
    .and_then(|text| text.trim().parse::<u64>().ok())
    .filter(|_| !path.is_empty());
    loop {
        let dir = base.join(path.trim_start_matches('/'));
        if let Ok(text) = fs::read_to_string(dir.join("memory.max")) {
            if let Ok(bytes) = text.trim().parse::<u64>() {
                limits.memory_max = Some(limits.memory_max.map_or(bytes, |m| m.min(bytes)));
            }
        }
        if let Ok(text) = fs::read_to_string(dir.join("cpu.max")) {
            let mut parts = text.split_whitespace();
            if let (Some(Ok(quota)), Some(Ok(period))) = (
                parts.next().map(str::parse::<f64>),
                parts.next().map(str::parse::<f64>),
            ) {
                if quota > 0.0 && period > 0.0 {
                    let cores = quota / period;
                    limits.cpu_cores = Some(limits.cpu_cores.map_or(cores, |c| c.min(cores)));
                }
            }
        }
        match path.rfind('/') {
            Some(cut) if !path.is_empty() => path = &path[..cut],
            _ => break,
        }
    }
    (limits != CgroupLimits::default()).then_some(limits)
}

/// Which per-worker details a run reads: those of the metrics it reports (see
/// [`crate::catalog::Source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailReads {
    /// `fd/`
    pub fds: bool,
    /// `limits`
    pub limits: bool,
    /// `smaps_rollup`, whose cost grows with the memory a worker maps
    pub smaps: bool,
}

impl DetailReads {
    /// The files the metrics of `set` are computed from.
    pub fn of(set: MetricSet) -> DetailReads {
        DetailReads {
            fds: set.reads(Source::Fds),
            limits: set.reads(Source::Limits),
            smaps: set.reads(Source::SmapsRollup),
        }
    }
}

/// How far the `smaps_rollup` reads got before the deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmapsCut {
    /// workers whose smaps_rollup was read (or found unreadable)
    pub read: usize,
    /// workers it was to be read of
    pub of: usize,
}

/// A first guess at what `smaps_rollup` costs per byte of a worker's RSS (the kernel walks
/// each mapped page's entry: about 7 ms per GiB measured), until the run has timed its own.
const SMAPS_NS_PER_BYTE: f64 = 7e6 / (1u64 << 30) as f64;

/// Reads the per-worker details of the selected workers that `reads` asks for: fd count and
/// limit, PSS and USS. Permission problems leave a detail at None; a worker that exits
/// meanwhile keeps None too, and so does one whose pid now belongs to another process (its
/// start time differs): the details of that process would be another program's.
///
/// `smaps_rollup` costs about 7 ms per GiB a worker maps, so 100 postgres backends mapping
/// 8 GiB of shared buffers cost seconds: before each such read the time it would take is
/// predicted from the worker's RSS and the slowest rate seen so far, and once it would not
/// fit before `deadline` no more are read. Some(cut) then says how far they got.
///
/// Each worker's directory is opened again here rather than kept open since the scan: a scan
/// can pass over thousands of candidates, and holding a descriptor for each would run into
/// RLIMIT_NOFILE.
pub fn enrich(
    root: &Path,
    workers: &mut [ProcSample],
    reads: DetailReads,
    deadline: Deadline,
) -> Option<SmapsCut> {
    let mut reader = Reader::new(root, false);
    let mut smaps = reads.smaps.then_some(SmapsBudget {
        deadline,
        ns_per_byte: SMAPS_NS_PER_BYTE,
        cut: None,
    });
    let of = workers.len();
    for (i, w) in workers.iter_mut().enumerate() {
        let Some(dir) = reader.reopen(w) else {
            w.details = Some(Details::default());
            continue;
        };
        let mut details = reader.cheap_details(&dir, reads);
        if let Some(budget) = smaps.as_mut().filter(|b| b.cut.is_none()) {
            match budget.fits(w.rss) {
                true => (details.pss, details.uss) = budget.timed(|| reader.smaps(&dir), w.rss),
                false => budget.cut = Some(SmapsCut { read: i, of }),
            }
        }
        w.details = Some(details);
        if w.cgroup.is_none() {
            w.cgroup = reader
                .read_at(&dir, "cgroup")
                .ok()
                .and_then(|()| v2_path(reader.bytes()));
        }
    }
    smaps.and_then(|b| b.cut)
}

/// The time left for `smaps_rollup` reads, and what they have been seen to cost.
struct SmapsBudget {
    deadline: Deadline,
    /// the slowest rate seen (or the first guess), nanoseconds per byte of RSS
    ns_per_byte: f64,
    cut: Option<SmapsCut>,
}

impl SmapsBudget {
    /// Whether a read for a worker of `rss` bytes is predicted to end before the deadline,
    /// with room to spare for a misjudged one.
    fn fits(&self, rss: u64) -> bool {
        let predicted = Duration::from_nanos((rss as f64 * self.ns_per_byte * 2.0) as u64);
        self.deadline.remaining() > predicted + Duration::from_millis(5)
    }

    /// Runs one read and learns its rate.
    fn timed<T>(&mut self, read: impl FnOnce() -> T, rss: u64) -> T {
        let started = std::time::Instant::now();
        let value = read();
        let rate = started.elapsed().as_nanos() as f64 / rss.max(1 << 20) as f64;
        self.ns_per_byte = self.ns_per_byte.max(rate);
        value
    }
}

/// Reads the masters' I/O once more, now split: `/proc/PID/io` is the whole process, and each
/// `task/TID/io` one live thread's own, so what is left over is what the kernel added when the
/// master reaped its children (and when its own threads exited): the I/O of exited workers, as
/// `cutime`/`cstime` hold their CPU. The whole is read first, so I/O the master does between
/// the reads lowers the reaped part rather than raising it. A master that exited or whose pid
/// was reused keeps `reaped_io` at None; one whose files are not readable gets `Io::Unreadable`.
pub fn master_io(root: &Path, masters: &mut [ProcSample]) {
    let mut reader = Reader::new(root, false);
    for m in masters {
        m.reaped_io = None;
        let Some(dir) = reader.reopen(m) else {
            continue;
        };
        m.io = reader.io(&dir, "io");
        if let Io::Read(whole) = m.io {
            m.reaped_io = reader.threads_io(&dir).map(|own| whole.since(own));
        }
    }
}

/// The check's own process and its parent, which must never be counted: NRPE and Icinga often
/// wrap a check in `sh -c`, and `check_procs` counted that shell for years.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnProcesses {
    pub pid: Option<i32>,
    pub parent: Option<i32>,
}

impl OwnProcesses {
    /// True for the check, its parent and its children.
    pub fn contains(&self, p: &ProcSample) -> bool {
        let own = |pid: Option<i32>| pid == Some(p.pid);
        own(self.pid) || own(self.parent) || (self.pid.is_some() && self.pid == Some(p.ppid))
    }
}

/// The check's own pid and its parent's, from the tree's `self` link: in a fixture tree that
/// has none, nothing is excluded.
pub fn own_processes(root: &Path) -> OwnProcesses {
    let pid = fs::read_link(root.join("self"))
        .ok()
        .and_then(|target| target.to_str().and_then(|s| s.parse::<i32>().ok()));
    let parent = pid
        .and_then(|pid| fs::read(root.join(pid.to_string()).join("stat")).ok())
        .and_then(|bytes| parse_stat(&bytes).ok())
        .map(|stat| stat.ppid);
    OwnProcesses { pid, parent }
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

/// Proc files the kernel writes whole into its buffer before the first read returns (seq_file
/// with a single record): a read that comes back shorter than asked holds all of the file. Not
/// `cmdline`, which is copied from the process's memory a page at a time.
const ONE_READ: [&str; 7] = [
    "comm",
    "stat",
    "status",
    "limits",
    "smaps_rollup",
    "cgroup",
    "io",
];

/// The most of any other proc file read, bytes. The files read (`stat`, `status`, `io`,
/// `limits`, `smaps_rollup`, `cgroup`) are a few KiB at most; one larger than this is not what
/// the kernel writes and is taken as malformed, so that no file can make the reused buffer
/// grow without bound.
const FILE_LIMIT: usize = 64 * 1024;

/// How much of `file` is read, and what a longer one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// the first this many bytes are the file: `cmdline`, of which `-a` matches a prefix
    Truncate(usize),
    /// a longer file is malformed
    Refuse(usize),
}

impl Bound {
    fn of(file: &str) -> Bound {
        if file == "cmdline" {
            Bound::Truncate(CMDLINE_MATCHED)
        } else {
            Bound::Refuse(FILE_LIMIT)
        }
    }

    fn bytes(self) -> usize {
        match self {
            Bound::Truncate(bytes) | Bound::Refuse(bytes) => bytes,
        }
    }
}

/// `/proc/PID`, opened once. A file opened relative to it belongs to the process that had the
/// pid when the directory was opened: once that process has exited, opening fails (ENOENT or
/// ESRCH) even if the pid is already reused, where a path would lead to the new process. A
/// fixture directory renamed away and replaced behaves the same, as the descriptor follows the
/// directory and not its name. Relative opens also spare the kernel a pid lookup per file.
struct ProcDir(OwnedFd);

impl ProcDir {
    fn open(path: &str) -> io::Result<ProcDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(ProcDir(rustix::fs::open(path, flags, Mode::empty())?))
    }

    fn file(&self, name: &str) -> io::Result<fs::File> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&self.0, name, flags, Mode::empty())?.into())
    }

    fn link(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(rustix::fs::readlinkat(&self.0, name, Vec::new())?.into_bytes())
    }

    /// Calls `each` with the name of every entry of a subdirectory (`fd`, `task`), `.` and
    /// `..` left out, without allocating per entry: `fd/` can hold thousands.
    fn each_entry(&self, name: &str, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::Dir::new(rustix::fs::openat(&self.0, name, flags, Mode::empty())?)?;
        for entry in dir {
            let entry = entry?;
            let entry_name = entry.file_name().to_bytes();
            if !matches!(entry_name, b"." | b"..") {
                each(entry_name);
            }
        }
        Ok(())
    }

    /// The entries of a subdirectory (`task`), by name.
    fn entries(&self, name: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        self.each_entry(name, |entry| {
            names.push(String::from_utf8_lossy(entry).into_owned())
        })?;
        Ok(names)
    }

    /// How many entries a subdirectory (`fd`) has.
    fn count_entries(&self, name: &str) -> io::Result<u64> {
        let mut entries = 0;
        self.each_entry(name, |_| entries += 1)?;
        Ok(entries)
    }
}

/// Reads one process's files into reused buffers, so non-matching processes allocate nothing.
struct Reader {
    /// `<root>/<pid>/<file>`, rebuilt in place for each read
    path: String,
    root_len: usize,
    /// reused read buffer, always at its full (zeroed) size; never grown past the largest
    /// [`Bound`] of a file read
    space: Vec<u8>,
    /// bytes of `space` the last read filled
    len: usize,
    /// `-vvv`: record every process looked at
    tracing: bool,
    trace: Vec<String>,
    /// the pids set aside by the scan's step 2 (see [`Plan`])
    set_aside: Vec<i32>,
}

/// Why a process was not a candidate, for `-vvv`. A candidate is boxed: most processes are
/// rejected, and a rejection need not move a whole sample around.
enum Verdict {
    Candidate(Box<ProcSample>),
    Rejected(&'static str),
    /// failed a filter only workers must pass, and may still be a master: looked at again if
    /// it is a candidate's parent (see [`Plan`])
    SetAside(&'static str),
}

/// What one step of the filters decided: go on with what it read, or this verdict.
type Step<T> = Result<T, Verdict>;

/// How a process came to be looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// listed in a full scan, where most processes are not ours
    Listed,
    /// from a shortlist (a master's children, a unit's cgroup): mostly ours
    Shortlisted,
    /// set aside by step 2 and a candidate's parent: only the service's filters apply
    Parent,
}

impl Reader {
    fn new(root: &Path, tracing: bool) -> Reader {
        let path = root.to_string_lossy().trim_end_matches('/').to_string();
        Reader {
            root_len: path.len(),
            path,
            space: vec![0; 4096],
            len: 0,
            tracing,
            trace: Vec::new(),
            set_aside: Vec::new(),
        }
    }

    /// Reads one process into the snapshot, or counts why it could not be read.
    fn visit(&mut self, pid: i32, plan: &Plan, visit: Visit, snapshot: &mut Snapshot) {
        let outcome = self.process(pid, plan, visit);
        if self.tracing {
            let line = match &outcome {
                Ok(Verdict::Candidate(p)) if visit == Visit::Parent => {
                    format!("pid {pid} {}: candidate (as a candidate's parent)", p.comm)
                }
                Ok(Verdict::Candidate(p)) => format!("pid {pid} {}: candidate", p.comm),
                Ok(Verdict::Rejected(why)) => format!("pid {pid}: no match ({why})"),
                Ok(Verdict::SetAside(why)) => {
                    format!("pid {pid}: not a worker ({why}); looked at again if a parent")
                }
                Err(e) if vanished(e) => format!("pid {pid}: exited while being read"),
                Err(e) => format!("pid {pid}: unreadable ({e})"),
            };
            self.trace.push(line);
        }
        match outcome {
            Ok(Verdict::Candidate(p)) => snapshot.procs.push(*p),
            Ok(Verdict::Rejected(_)) => {}
            Ok(Verdict::SetAside(_)) => self.set_aside.push(pid),
            Err(e) if vanished(&e) => snapshot.skipped.vanished += 1,
            Err(_) => snapshot.skipped.unreadable += 1,
        }
    }

    /// The filters in [`Plan`]'s order. In a full scan the first one is tried on one file
    /// read by path, so a process that fails it costs that one read. Any other process has
    /// its directory opened, and every filter and every figure is taken through it: the row
    /// and the decision are about one process even if the pid was reused since the first
    /// read.
    fn process(&mut self, pid: i32, plan: &Plan, visit: Visit) -> io::Result<Verdict> {
        if visit == Visit::Listed {
            if let Some(verdict) = self.cheap_verdict(pid, plan)? {
                return Ok(verdict);
            }
        }
        let dir = self.open_dir(pid)?;
        self.read_at(&dir, "stat")?;
        let stat = parse_stat(self.bytes())?;
        let (full_name, cgroup) = match self.service_filters(&dir, &stat, plan.selector)? {
            Ok(passed) => passed,
            Err(verdict) => return Ok(verdict),
        };
        let status = match self.worker_filters(&dir, &stat, plan, visit)? {
            Ok(status) => status,
            Err(verdict) => return Ok(verdict),
        };
        if let Err(verdict) = self.costly_filters(&dir, full_name, plan.selector)? {
            return Ok(verdict);
        }
        let status = match status {
            Some(status) => status,
            None => {
                self.read_at(&dir, "status")?;
                parse_status(self.bytes())?
            }
        };
        let mut p = self.finish(&dir, stat, status);
        p.cgroup = cgroup;
        Ok(Verdict::Candidate(Box::new(p)))
    }

    /// Step 1 of [`Plan`]: the service's cheap filters (kernel threads, comm, cgroup). Passed,
    /// it gives the name filter when the comm was too short to decide, and the cgroup path.
    fn service_filters<'s>(
        &mut self,
        dir: &ProcDir,
        stat: &StatFields,
        selector: &'s Selector,
    ) -> io::Result<Step<(Option<&'s NameFilter>, Option<String>)>> {
        if stat.flags & PF_KTHREAD != 0 {
            return Ok(Err(Verdict::Rejected("kernel thread")));
        }
        let mut full_name = None;
        if let Some(filter) = &selector.name {
            match filter.check_comm(stat.comm.as_bytes()) {
                CommMatch::No => return Ok(Err(Verdict::Rejected("name"))),
                CommMatch::Yes => {}
                CommMatch::NeedsFullName => full_name = Some(filter),
            }
        }
        let mut cgroup = None;
        if let Some(filter) = &selector.cgroup {
            self.read_at(dir, "cgroup")?;
            let text = String::from_utf8_lossy(self.bytes());
            if !filter.matches(&text) {
                return Ok(Err(Verdict::Rejected("cgroup")));
            }
            cgroup = v2_path(self.bytes());
        }
        Ok(Ok((full_name, cgroup)))
    }

    /// Step 2 of [`Plan`]: what only workers must pass (parent, state, uid). `status` is read
    /// here only when there is a uid to check; passed, it gives the status when it read it.
    fn worker_filters(
        &mut self,
        dir: &ProcDir,
        stat: &StatFields,
        plan: &Plan,
        visit: Visit,
    ) -> io::Result<Step<Option<StatusFields>>> {
        if visit == Visit::Parent {
            return Ok(Ok(None));
        }
        if let Some(why) = plan.stat_rejects(stat) {
            return Ok(Err(plan.step_two(why)));
        }
        if plan.selector.uid.is_none() {
            return Ok(Ok(None));
        }
        self.read_at(dir, "status")?;
        let fields = parse_status(self.bytes())?;
        match plan.uid_rejects(fields.uid) {
            Some(why) => Ok(Err(plan.step_two(why))),
            None => Ok(Ok(Some(fields))),
        }
    }

    /// Step 3 of [`Plan`]: the costly filters (a long name's executable or argv[0], the
    /// command line, the executable).
    fn costly_filters(
        &mut self,
        dir: &ProcDir,
        full_name: Option<&NameFilter>,
        selector: &Selector,
    ) -> io::Result<Step<()>> {
        if let Some(filter) = full_name {
            // exe is unreadable for other users' processes unless we are root; argv[0] is
            // the fallback
            let exe = dir.link("exe").ok();
            self.read_at(dir, "cmdline")?;
            let argv0 = self.bytes().split(|&b| b == 0).next().unwrap_or_default();
            if !filter.check_full_name(Some(argv0), exe.as_deref()) {
                return Ok(Err(Verdict::Rejected("name")));
            }
        }
        if let Some(filter) = &selector.cmdline {
            self.read_at(dir, "cmdline")?;
            if !filter.matches(self.bytes()) {
                return Ok(Err(Verdict::Rejected("command line")));
            }
        }
        if let Some(want) = &selector.exe {
            if !exe_matches(want, &dir.link("exe")?) {
                return Ok(Err(Verdict::Rejected("executable")));
            }
        }
        Ok(Ok(()))
    }

    /// The first filter in [`Plan`]'s order that one file read by path can decide: Some when
    /// it decides. A long name's comm that may be ours passes; its full name is checked
    /// through the directory.
    fn cheap_verdict(&mut self, pid: i32, plan: &Plan) -> io::Result<Option<Verdict>> {
        let selector = plan.selector;
        let (passes, why) = if let Some(filter) = &selector.name {
            self.read(pid, "comm")?;
            let comm = self.bytes().strip_suffix(b"\n").unwrap_or(self.bytes());
            (filter.check_comm(comm) != CommMatch::No, "name")
        } else if let Some(filter) = &selector.cgroup {
            self.read(pid, "cgroup")?;
            (
                filter.matches(&String::from_utf8_lossy(self.bytes())),
                "cgroup",
            )
        } else if selector.uid.is_some() {
            self.read(pid, "status")?;
            let uid = parse_status(self.bytes())?.uid;
            return Ok(plan.uid_rejects(uid).map(|why| plan.step_two(why)));
        } else if !plan.no_step_two() {
            // the parent or the state: from `stat`, through the directory
            (true, "")
        } else if let Some(filter) = &selector.cmdline {
            self.read(pid, "cmdline")?;
            (filter.matches(self.bytes()), "command line")
        } else if let Some(want) = &selector.exe {
            let link = fs::read_link(self.file(pid, "exe"))?;
            (exe_matches(want, link.as_os_str().as_bytes()), "executable")
        } else {
            (true, "")
        };
        Ok((!passes).then_some(Verdict::Rejected(why)))
    }

    /// `stat` and `status` of one process, whatever the filters say.
    fn whole(&mut self, pid: i32) -> io::Result<ProcSample> {
        let dir = self.open_dir(pid)?;
        self.read_at(&dir, "stat")?;
        let stat = parse_stat(self.bytes())?;
        self.read_at(&dir, "status")?;
        let status = parse_status(self.bytes())?;
        Ok(self.finish(&dir, stat, status))
    }

    /// The sample of the process whose `stat` and `status` these are, with its `io`.
    fn finish(&mut self, dir: &ProcDir, stat: StatFields, status: StatusFields) -> ProcSample {
        // read with stat and status, so a baseline taken within the run has it too
        let io = self.io(dir, "io");
        ProcSample {
            pid: stat.pid,
            ppid: stat.ppid,
            comm: stat.comm,
            state: stat.state,
            kernel_thread: stat.flags & PF_KTHREAD != 0,
            uid: status.uid,
            starttime: stat.starttime,
            utime: stat.utime,
            stime: stat.stime,
            cutime: stat.cutime.max(0) as u64,
            cstime: stat.cstime.max(0) as u64,
            rss: status.rss,
            vms: status.vms,
            threads: status.threads,
            cpus_allowed: status.cpus_allowed,
            cgroup: None,
            io,
            reaped_io: None,
            details: None,
        }
    }

    /// One `io` file of the process `dir` stands for (`io`, or a thread's `task/TID/io`).
    fn io(&mut self, dir: &ProcDir, file: &str) -> Io {
        match self.read_at(dir, file) {
            Ok(()) => parse_io(self.bytes()).map_or(Io::Unreadable, Io::Read),
            Err(e) if e.kind() == ErrorKind::NotFound => Io::Absent,
            Err(_) => Io::Unreadable,
        }
    }

    /// The sum of the live threads' own I/O (`task/TID/io`); None when any is not readable.
    fn threads_io(&mut self, dir: &ProcDir) -> Option<IoCounters> {
        let mut sum = IoCounters::default();
        for tid in dir.entries("task").ok()? {
            match self.io(dir, &format!("task/{tid}/io")) {
                Io::Read(own) => sum = sum.plus(own),
                // a thread that exited meanwhile: its I/O is in the whole now
                Io::Absent => {}
                Io::Unreadable => return None,
            }
        }
        Some(sum)
    }

    /// A worker's directory once more, if it still belongs to the sampled process: same start
    /// time in the `stat` read through it. None when it exited or its pid was reused.
    fn reopen(&mut self, worker: &ProcSample) -> Option<ProcDir> {
        let dir = self.open_dir(worker.pid).ok()?;
        self.read_at(&dir, "stat").ok()?;
        let stat = parse_stat(self.bytes()).ok()?;
        (stat.pid == worker.pid && stat.starttime == worker.starttime).then_some(dir)
    }

    /// The details whose cost does not grow with the worker's memory, as far as `reads` asks.
    fn cheap_details(&mut self, dir: &ProcDir, reads: DetailReads) -> Details {
        let fds = reads.fds.then(|| dir.count_entries("fd").ok()).flatten();
        let fd_limit = reads
            .limits
            .then(|| {
                self.read_at(dir, "limits")
                    .ok()
                    .and_then(|()| open_files_limit(self.bytes()))
            })
            .flatten();
        Details {
            fds,
            fd_limit,
            ..Details::default()
        }
    }

    /// PSS and USS from `smaps_rollup`, bytes; None where it may not be read.
    fn smaps(&mut self, dir: &ProcDir) -> (Option<u64>, Option<u64>) {
        match self.read_at(dir, "smaps_rollup") {
            Ok(()) => smaps_rollup(self.bytes()),
            Err(_) => (None, None),
        }
    }

    fn file(&mut self, pid: i32, file: &str) -> &str {
        use std::fmt::Write as _;
        self.path.truncate(self.root_len);
        let _ = write!(self.path, "/{pid}");
        if !file.is_empty() {
            let _ = write!(self.path, "/{file}");
        }
        &self.path
    }

    fn open_dir(&mut self, pid: i32) -> io::Result<ProcDir> {
        ProcDir::open(self.file(pid, ""))
    }

    /// Reads a whole proc file by path: the first filter's file in a full scan (comm).
    fn read(&mut self, pid: i32, file: &str) -> io::Result<()> {
        self.file(pid, file);
        let f = fs::File::open(&self.path)?;
        self.fill(f, ONE_READ.contains(&file), Bound::of(file))
    }

    /// Reads a whole file of the process `dir` stands for.
    fn read_at(&mut self, dir: &ProcDir, file: &str) -> io::Result<()> {
        let f = dir.file(file)?;
        // a thread's `task/TID/io` is bounded as `io` is
        self.fill(f, ONE_READ.contains(&file), Bound::of(file))
    }

    /// Reads `f` into the reused buffer with plain reads: std's `read_to_end` adds an fstat
    /// and an lseek per file to size its buffer, which for the one file every process costs
    /// (comm) doubles the syscalls of the scan. Proc files report size 0 anyway. The buffer
    /// stays allocated and zeroed at its full size; `len` marks what this read filled, so no
    /// read clears or grows memory it does not need. `one_read`: a short read is the whole
    /// file (see [`ONE_READ`]), which saves the read that would return 0. `bound`: no more
    /// than this is read, and the buffer never grows past it; a file that goes on is cut
    /// there or refused as malformed (see [`Bound`]).
    fn fill(&mut self, mut f: fs::File, one_read: bool, bound: Bound) -> io::Result<()> {
        self.len = 0;
        let cap = bound.bytes();
        loop {
            let end = self.space.len().min(cap);
            if self.len == end {
                if end == cap {
                    return match bound {
                        Bound::Truncate(_) => Ok(()),
                        Bound::Refuse(_) if at_end(&mut f)? => Ok(()),
                        Bound::Refuse(_) => Err(io::Error::new(
                            ErrorKind::InvalidData,
                            format!("malformed: more than {cap} bytes"),
                        )),
                    };
                }
                self.space.resize((end * 2).min(cap), 0);
                continue;
            }
            match f.read(&mut self.space[self.len..end]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.len += n;
                    if one_read && self.len < end {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// What the last [`Reader::read`] filled.
    fn bytes(&self) -> &[u8] {
        &self.space[..self.len]
    }
}

/// True when nothing is left to read from `f`.
fn at_end(f: &mut fs::File) -> io::Result<bool> {
    let mut one = [0u8; 1];
    loop {
        match f.read(&mut one) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// ENOENT and ESRCH both mean the process exited between listing and reading.
fn vanished(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::CmdlineFilter;

    #[test]
    fn pid_names() {
        assert_eq!(pid_of(b"1"), Some(1));
        assert_eq!(pid_of(b"4194304"), Some(4_194_304));
        for not_a_pid in [
            &b""[..],
            b"self",
            b"0",
            b"12a",
            b"-1",
            b"99999999999",
            b"2147483648",
        ] {
            assert_eq!(pid_of(not_a_pid), None, "{not_a_pid:?}");
        }
    }

    /// Writes `<root>/<dir>` as a process `pid` named `comm`, started at `starttime` ticks,
    /// with `fds` open files and its own cgroup.
    fn fake_process(root: &Path, dir: &str, pid: i32, comm: &str, starttime: u64, fds: u32) {
        let dir = root.join(dir);
        fs::create_dir_all(dir.join("fd")).unwrap();
        fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        fs::write(
            dir.join("stat"),
            format!(
                "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 \
                 {starttime} 104857600 1024 18446744073709551615 1 1 0 0 0 0 0 4096 16384 0 0 0 \
                 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            ),
        )
        .unwrap();
        fs::write(
            dir.join("status"),
            format!(
                "Name:\t{comm}\nPid:\t{pid}\nUid:\t33\t33\t33\t33\nVmSize:\t102400 kB\n\
                 VmRSS:\t4096 kB\nThreads:\t1\nCpus_allowed_list:\t0-1\n"
            ),
        )
        .unwrap();
        fs::write(
            dir.join("limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            1024                 524288               files     \n",
        )
        .unwrap();
        fs::write(
            dir.join("smaps_rollup"),
            "Pss:    2048 kB\nPrivate_Dirty:  512 kB\n",
        )
        .unwrap();
        fs::write(
            dir.join("cgroup"),
            format!("0::/system.slice/{comm}.service\n"),
        )
        .unwrap();
        for fd in 0..fds {
            fs::write(dir.join("fd").join(fd.to_string()), "").unwrap();
        }
    }

    // A worker's pid reused between the scan and `enrich` gave the new process's fds, limits,
    // PSS and cgroup to the worker's row.
    #[test]
    fn details_of_a_reused_pid_are_not_taken() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "other", 5000, 3);
        let mut workers = vec![ProcSample {
            pid: 812,
            starttime: 1000,
            ..ProcSample::default()
        }];
        let all = DetailReads::of(MetricSet::all());
        let forever = Deadline::new(std::time::Instant::now(), Duration::from_secs(3600));
        enrich(root.path(), &mut workers, all, forever);
        assert_eq!(workers[0].details, Some(Details::default()));
        assert_eq!(workers[0].cgroup, None);
        // the same process: its details are read
        workers[0].starttime = 5000;
        enrich(root.path(), &mut workers, all, forever);
        let expected = Details {
            fds: Some(3),
            fd_limit: Some(1024),
            pss: Some(2048 * 1024),
            uss: Some(512 * 1024),
        };
        assert_eq!(workers[0].details, Some(expected));
        assert_eq!(
            workers[0].cgroup.as_deref(),
            Some("/system.slice/other.service")
        );
    }

    // A pid reused between two reads of one process mixed two processes in one row. Through
    // the directory's descriptor the row stays the first process's, or the read fails: a
    // fixture directory renamed away and replaced is what a reused pid looks like to it.
    // smaps_rollup may cost seconds for workers that map gigabytes (issue 17): once the
    // deadline leaves no time for the next read, no more are read and the cut says so.
    #[test]
    fn smaps_reads_stop_at_the_deadline_and_only_when_asked() {
        let root = tempfile::tempdir().unwrap();
        for pid in [812, 813] {
            fake_process(root.path(), &pid.to_string(), pid, "w", 5000, 3);
        }
        let workers = || {
            [812, 813].map(|pid| ProcSample {
                pid,
                starttime: 5000,
                rss: 1 << 30,
                ..ProcSample::default()
            })
        };
        let now = std::time::Instant::now();
        let forever = Deadline::new(now, Duration::from_secs(3600));
        let passed = Deadline::new(now - Duration::from_secs(5), Duration::from_secs(1));
        let pss = DetailReads::of(MetricSet::defaults().with(crate::catalog::MetricName::Pss));
        let mut all = workers();
        assert_eq!(enrich(root.path(), &mut all, pss, forever), None);
        assert!(all
            .iter()
            .all(|w| w.details.as_ref().unwrap().pss.is_some()));
        let mut late = workers();
        assert_eq!(
            enrich(root.path(), &mut late, pss, passed),
            Some(SmapsCut { read: 0, of: 2 })
        );
        assert!(late
            .iter()
            .all(|w| w.details.as_ref().unwrap().pss.is_none()));
        // the cheap details are still read
        assert_eq!(late[0].details.as_ref().unwrap().fds, Some(3));
        // by default smaps_rollup is not read at all
        let mut default = workers();
        let reads = DetailReads::of(MetricSet::defaults());
        assert_eq!(enrich(root.path(), &mut default, reads, passed), None);
        assert_eq!(default[0].details.as_ref().unwrap().pss, None);
    }

    #[test]
    fn a_directory_read_through_its_descriptor_never_answers_for_a_new_process() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "old", 1000, 1);
        let mut reader = Reader::new(root.path(), false);
        let dir = reader.open_dir(812).unwrap();
        fs::rename(root.path().join("812"), root.path().join("gone")).unwrap();
        fake_process(root.path(), "812", 812, "new", 2000, 5);
        reader.read_at(&dir, "stat").unwrap();
        let stat = parse_stat(reader.bytes()).unwrap();
        reader.read_at(&dir, "status").unwrap();
        let status = parse_status(reader.bytes()).unwrap();
        let p = reader.finish(&dir, stat, status);
        assert_eq!((p.comm.as_bytes(), p.starttime), (&b"old"[..], 1000));
        assert_eq!(
            reader
                .cheap_details(&dir, DetailReads::of(MetricSet::all()))
                .fds,
            Some(1)
        );
        // by path, the same pid is the new process
        assert_eq!(reader.whole(812).unwrap().starttime, 2000);
        // the old process gone for good: reading through its directory fails
        fs::remove_dir_all(root.path().join("gone")).unwrap();
        let e = reader.read_at(&dir, "status").unwrap_err();
        assert!(vanished(&e), "{e}");
    }

    // Issue 16.3: any user can start processes with megabytes of arguments, and the reused
    // buffer grew to hold each whole command line; no file may make it grow without bound.
    #[test]
    fn a_command_line_is_read_up_to_its_bound_and_a_larger_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "python3", 1000, 0);
        let dir_path = root.path().join("812");
        let argument = vec![b'x'; 100 * 1024];
        let huge = [&argument[..], b"\0"].concat().repeat(50);
        fs::write(dir_path.join("cmdline"), &huge).unwrap();
        let mut reader = Reader::new(root.path(), false);
        let dir = reader.open_dir(812).unwrap();
        reader.read_at(&dir, "cmdline").unwrap();
        assert_eq!(reader.bytes(), &huge[..CMDLINE_MATCHED]);
        reader.read(812, "cmdline").unwrap();
        assert_eq!(reader.bytes(), &huge[..CMDLINE_MATCHED]);
        // a short one whole, from the same buffer
        fs::write(dir_path.join("cmdline"), b"sleep\x00600\x00").unwrap();
        reader.read_at(&dir, "cmdline").unwrap();
        assert_eq!(reader.bytes(), b"sleep\x00600\x00");
        // any other file: read whole up to its bound, refused as malformed past it
        let status = fs::read(dir_path.join("status")).unwrap();
        let padded = |len: usize| {
            let mut file = status.clone();
            file.resize(len, b'\n');
            file
        };
        fs::write(dir_path.join("status"), padded(FILE_LIMIT)).unwrap();
        reader.read_at(&dir, "status").unwrap();
        assert_eq!(parse_status(reader.bytes()).unwrap().uid, 33);
        fs::write(dir_path.join("status"), padded(FILE_LIMIT + 1)).unwrap();
        let e = reader.read_at(&dir, "status").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert!(!vanished(&e));
        assert!(reader.space.len() <= FILE_LIMIT.max(CMDLINE_MATCHED));
    }

    // What lies past the first 64 KiB of a command line never matches `-a`, as documented.
    #[test]
    fn a_match_past_the_first_64_kib_of_a_command_line_does_not_count() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "gunicorn", 1000, 0);
        let filter = CmdlineFilter::new(r"gunicorn: worker \[app\]").unwrap();
        let padding = vec![b'x'; CMDLINE_MATCHED];
        let mut reader = Reader::new(root.path(), false);
        let dir = reader.open_dir(812).unwrap();
        for (cmdline, matches) in [
            ([b"gunicorn: worker [app]\0", &padding[..]].concat(), true),
            ([&padding[..], b"\0gunicorn: worker [app]"].concat(), false),
            ([&padding[..20], b"\0gunicorn: worker [app]"].concat(), true),
        ] {
            fs::write(root.path().join("812/cmdline"), &cmdline).unwrap();
            reader.read_at(&dir, "cmdline").unwrap();
            assert_eq!(filter.matches(reader.bytes()), matches, "{}", cmdline.len());
        }
    }

    /// A fixture tree with `uptime`, `stat` and processes 812 to 814, all gunicorn workers.
    fn fake_tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("uptime"), "1000.00 100.00\n").unwrap();
        fs::write(root.path().join("stat"), "cpu0 1 0 1 1\nbtime 1700000000\n").unwrap();
        for pid in 812..=814 {
            fake_process(root.path(), &pid.to_string(), pid, "gunicorn", 1000, 0);
            let cmdline = root.path().join(format!("{pid}/cmdline"));
            fs::write(cmdline, "gunicorn: worker [app]\0").unwrap();
        }
        root
    }

    fn in_ten_seconds() -> Deadline {
        Deadline::new(
            std::time::Instant::now(),
            std::time::Duration::from_secs(10),
        )
    }

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

    /// [`fake_process`] as a child of `ppid`, run by `uid`, with this command line; `None`
    /// makes its `cmdline` fail to read (a directory), so a test sees whether it was read.
    fn fake_child(root: &Path, pid: i32, ppid: i32, uid: u32, cmdline: Option<&str>) {
        fake_process(root, &pid.to_string(), pid, "gunicorn", 1000, 0);
        let dir = root.join(pid.to_string());
        let stat = fs::read_to_string(dir.join("stat")).unwrap();
        fs::write(
            dir.join("stat"),
            stat.replace(") S 1 ", &format!(") S {ppid} ")),
        )
        .unwrap();
        let status = fs::read_to_string(dir.join("status")).unwrap();
        let uids = format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}");
        fs::write(
            dir.join("status"),
            status.replace("Uid:\t33\t33\t33\t33", &uids),
        )
        .unwrap();
        match cmdline {
            Some(cmdline) => fs::write(dir.join("cmdline"), format!("{cmdline}\0")).unwrap(),
            None => fs::create_dir(dir.join("cmdline")).unwrap(),
        }
    }

    /// A root gunicorn master 800 with its worker 801 (www-data), and processes of other users
    /// whose command lines must not be read: 900, 901 (900's child) and 902 (a child of the
    /// master).
    fn tree_with_unread_command_lines() -> tempfile::TempDir {
        let root = fake_tree();
        for pid in 812..=814 {
            fs::remove_dir_all(root.path().join(pid.to_string())).unwrap();
        }
        fake_child(root.path(), 800, 1, 0, Some("gunicorn: master [app]"));
        fake_child(root.path(), 801, 800, 33, Some("gunicorn: worker [app]"));
        fake_child(root.path(), 900, 1, 65534, None);
        fake_child(root.path(), 901, 900, 65534, None);
        fake_child(root.path(), 902, 800, 65534, None);
        root
    }

    fn pids(snapshot: &Snapshot) -> Vec<i32> {
        let mut pids: Vec<i32> = snapshot.procs.iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        pids
    }

    // Issue 16.3: with `-a ... -u www-data`, every process's command line was read and
    // matched before its user was looked at, however large it was and whoever ran it.
    #[test]
    fn the_user_rejects_a_process_before_its_command_line_is_read() {
        let root = tree_with_unread_command_lines();
        let selector = Selector {
            cmdline: Some(CmdlineFilter::new(r"gunicorn: \w+ \[app\]").unwrap()),
            uid: Some(33),
            ..Selector::default()
        };
        let snapshot = scan(
            root.path(),
            root.path(),
            &selector,
            None,
            true,
            in_ten_seconds(),
        );
        let snapshot = snapshot.unwrap();
        // no cmdline of nobody's was read; the root master was, as the worker's parent
        assert_eq!(
            snapshot.skipped,
            Skipped::default(),
            "{:#?}",
            snapshot.trace
        );
        assert_eq!(pids(&snapshot), [800, 801], "{:#?}", snapshot.trace);
        // as the state: the master is asleep, the worker running
        let worker = root.path().join("801/stat");
        let stat = fs::read_to_string(&worker).unwrap();
        fs::write(&worker, stat.replace(") S ", ") R ")).unwrap();
        let running = Selector {
            states: Some("R".into()),
            ..selector
        };
        let snapshot = scan(
            root.path(),
            root.path(),
            &running,
            None,
            true,
            in_ten_seconds(),
        );
        let snapshot = snapshot.unwrap();
        assert_eq!(
            snapshot.skipped,
            Skipped::default(),
            "{:#?}",
            snapshot.trace
        );
        assert_eq!(pids(&snapshot), [800, 801], "{:#?}", snapshot.trace);
    }

    // Without a master to find, what only workers must pass rejects for good: -u alone, or
    // the parent of --ppid (here scanned, as the fixture has no children files).
    #[test]
    fn without_a_master_to_find_the_user_and_parent_reject_for_good() {
        let root = tree_with_unread_command_lines();
        let only_user = Selector {
            uid: Some(33),
            ..Selector::default()
        };
        let snapshot = scan(
            root.path(),
            root.path(),
            &only_user,
            None,
            true,
            in_ten_seconds(),
        );
        assert_eq!(pids(&snapshot.unwrap()), [801]);
        let children = Selector {
            cmdline: Some(CmdlineFilter::new("gunicorn").unwrap()),
            uid: Some(33),
            parent: Some(crate::filter::ParentSpec::Pid(800)),
            ..Selector::default()
        };
        let snapshot = scan(
            root.path(),
            root.path(),
            &children,
            Some(800),
            true,
            in_ten_seconds(),
        );
        let snapshot = snapshot.unwrap();
        assert_eq!(
            snapshot.skipped,
            Skipped::default(),
            "{:#?}",
            snapshot.trace
        );
        assert_eq!(pids(&snapshot), [801], "{:#?}", snapshot.trace);
        assert_eq!(snapshot.parent.map(|p| p.pid), Some(800));
    }

    fn io_file(read: u64, write: u64) -> String {
        format!(
            "rchar: 9999\nwchar: 8888\nsyscr: 7\nsyscw: 6\nread_bytes: {read}\n\
             write_bytes: {write}\ncancelled_write_bytes: 4096\n"
        )
    }

    #[test]
    fn io_counters_of_a_process() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "nginx", 1000, 0);
        let mut reader = Reader::new(root.path(), false);
        let dir = reader.open_dir(812).unwrap();
        // no io file: a kernel without I/O accounting
        assert_eq!(reader.io(&dir, "io"), Io::Absent);
        // not readable (a directory fails to read as another user's io does)
        fs::create_dir(root.path().join("812/io")).unwrap();
        assert_eq!(reader.io(&dir, "io"), Io::Unreadable);
        fs::remove_dir(root.path().join("812/io")).unwrap();
        fs::write(root.path().join("812/io"), io_file(1, 2)).unwrap();
        let p = reader.whole(812).unwrap();
        assert_eq!(
            (p.io.counters(), p.reaped_io),
            (Some(parse_io(io_file(1, 2).as_bytes()).unwrap()), None)
        );
    }

    // What the kernel added to a master's io when it reaped its children is its whole io less
    // its live threads' own (task/TID/io).
    #[test]
    fn a_masters_reaped_io_is_its_whole_less_its_threads() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "nginx", 1000, 0);
        let dir = root.path().join("812");
        fs::write(dir.join("io"), io_file(10_000, 50_000)).unwrap();
        for (tid, own) in [(812, 1000), (900, 2000)] {
            fs::create_dir_all(dir.join(format!("task/{tid}"))).unwrap();
            fs::write(dir.join(format!("task/{tid}/io")), io_file(own, own * 10)).unwrap();
        }
        let mut masters = vec![ProcSample {
            pid: 812,
            starttime: 1000,
            ..ProcSample::default()
        }];
        master_io(root.path(), &mut masters);
        let m = &masters[0];
        assert_eq!(
            m.reaped_io,
            Some(IoCounters {
                read_bytes: 7000,
                write_bytes: 20_000
            })
        );
        assert_eq!(
            m.own_io(),
            Some(IoCounters {
                read_bytes: 3000,
                write_bytes: 30_000
            })
        );
        // a thread's io unreadable: the split is unknown
        fs::remove_file(dir.join("task/900/io")).unwrap();
        fs::create_dir(dir.join("task/900/io")).unwrap();
        master_io(root.path(), &mut masters);
        assert_eq!(masters[0].reaped_io, None);
        // a reused pid: nothing is taken from the new process
        masters[0].starttime = 5;
        master_io(root.path(), &mut masters);
        assert_eq!(masters[0].reaped_io, None);
    }
}
