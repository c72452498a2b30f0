//! Acquisition's output: the plain values a reading of `/proc` gives ([`ProcSample`] per
//! process, [`Snapshot`] per reading), which every later step takes in and none reads `/proc`
//! for. They depend on nothing of the reading, so every part of `sample` can build them.

use std::fmt;
use std::path::PathBuf;

use crate::counter::Counters;
use crate::listen::Queues;
use crate::text::shown_bytes;

use super::cgroup::CgroupReading;

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
    /// resident set size (VmRSS), bytes
    pub rss: u64,
    /// virtual size (VmSize), bytes
    pub vms: u64,
    /// threads of the process
    pub threads: u64,
    /// CPUs the process may run on (its affinity), where known
    pub cpus_allowed: Option<u32>,
    /// the process's `/proc/PID/cgroup`, one line per hierarchy, where known
    pub cgroup: Option<String>,
    /// whether `/proc/PID/io` was read; its counters (in `counters`) are the whole process's
    /// (its threads, dead and alive, and its reaped children)
    pub io: IoStatus,
    /// for a master (see [`master_io`](super::master_io)): the part of its `io` counters its
    /// reaped children (and exited threads) did, which the kernel keeps apart from its live
    /// threads' own; none otherwise
    pub reaped: Counters,
    /// the counters of [`crate::counter`], where read (CPU ticks always)
    pub counters: Counters,
    /// the rest is read for workers only (see [`enrich`](super::enrich)), so None also means
    /// "not read"
    pub details: Option<Details>,
}

/// Whether `/proc/PID/io` of one process was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IoStatus {
    /// not read, or no such file: a kernel without task I/O accounting, a fixture tree
    /// without it, a process that exited meanwhile
    #[default]
    Absent,
    /// there but not readable: it needs ptrace access (root or the process's user), or it
    /// did not parse
    Unreadable,
    /// read: its counters are in [`ProcSample::counters`]
    Read,
}

impl ProcSample {
    /// The counters of the process itself: its `io` ones less what its reaped children did,
    /// where that is known (masters); for any other process its whole counters.
    pub fn own(&self) -> Counters {
        let mut own = self.counters;
        for (counter, reaped) in self.reaped.known() {
            own.put(counter, own.get(counter).map(|n| n.saturating_sub(reaped)));
        }
        own
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
    /// processes that passed every other filter but whose executable we may not read for
    /// `--exe`: they may be workers, so the scan cannot say how many there are
    pub undecided: usize,
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
    /// the workers' cgroup: its figures and limits; None when not read (no workers, or no
    /// metric needs it)
    pub cgroup: Option<CgroupReading>,
    pub skipped: Skipped,
    /// with `-vvv`: every process looked at and what became of it
    pub trace: Vec<String>,
    /// how far the workers' `smaps_rollup` reads got, when the deadline cut them short
    pub smaps_cut: Option<SmapsCut>,
    /// the accept queues of the service's listening sockets, when a queue metric is asked for
    pub queues: Option<Queues>,
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

/// How far the `smaps_rollup` reads got before the deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmapsCut {
    /// workers whose smaps_rollup was read (or found unreadable)
    pub read: usize,
    /// workers it was to be read of
    pub of: usize,
}
