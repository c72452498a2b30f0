//! Notes: what the measuring and judging steps found worth telling beside the figures, as
//! values (what happened, with its figures) rather than finished lines. Each kind has the `-v`
//! level it is shown from; `output` alone decides which are shown and words them. A leaf
//! module, so every step can make notes without depending on a later one.

use std::path::PathBuf;

use crate::catalog::MetricName;
use crate::listen::HeldBy;

/// From which `-v` a note is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// always: the figures are incomplete or off without it
    Always = 0,
    /// `-v`
    Verbose = 1,
    /// `-vv`: how the figures were made
    Detail = 2,
    /// `-vvv`: the trace of the proc reads
    Trace = 3,
}

/// Where the CPU interval starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Since {
    /// the per-worker baseline an earlier run left
    Baseline,
    /// a sample of the history, the baseline being too recent; the last run was this many
    /// seconds ago
    Older { last_run: f64 },
    /// a first reading taken within this run
    WithinRun,
}

/// What became of CPU when there was no baseline to measure it against.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// `--interval 0`: no reading within the run
    NoInterval,
    /// the deadline left no time for a second reading
    NoTime,
    /// the second reading ran out of time (what the scan says)
    ScanTimedOut(String),
    /// measured over this many seconds within the run
    WithinRun { seconds: f64 },
    /// the first reading of the run could not serve either (why)
    Unusable(String),
    /// the run found no workers: nothing to measure, no second reading
    NoWorkers,
}

/// Why a figure of the workers' cgroup is left out. Paths are the files (or directories) as
/// read, under `--sys-root`; hierarchies are named as the tick file names them.
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupGap {
    /// `/proc/self/mountinfo` could not be read (why)
    NoMountTable(String),
    /// there is no `/proc/self/mountinfo` (a fixture tree without one): nothing is mounted
    NoMounts,
    /// no cgroup file system with this controller (or, `v2`, no cgroup2 one) is mounted
    NotMounted(&'static str),
    /// some worker's cgroup in this hierarchy is not known (no line for it)
    Unknown(&'static str),
    /// the workers are in the root cgroup of this hierarchy, or share nothing below it
    Root(&'static str),
    /// the workers' cgroup (this path) is outside the part of the tree mounted here
    NotVisible(&'static str, String),
    /// the cgroup's directory could not be opened (why)
    NoDirectory(PathBuf, String),
    /// the file is not there: a kernel without the feature, or PSI turned off (`psi=0`)
    Missing(PathBuf),
    /// the file has no line for this key: the controller is not on for the cgroup (v2's
    /// `cpu.stat` without the cpu controller), or the kernel predates it
    NoKey(PathBuf, &'static str),
    /// the file could not be read (why)
    Unreadable(PathBuf, String),
    /// the file does not say what its format says
    Malformed(PathBuf),
    /// the cgroup and those above it set no memory limit to take a percentage of
    NoLimit,
    /// no counter at the previous reading: a first run, a tick file of an older release, or
    /// not readable then
    NoBaseline,
    /// the cgroup of this hierarchy is another one than at the previous reading: the unit
    /// restarted (or the workers moved), and its counters started again
    NewCgroup(&'static str),
    /// this counter is lower than at the previous reading
    Backwards(&'static str),
    /// the figure is beyond what is possible (what it would have been)
    Impossible(String),
}

impl CgroupGap {
    /// Whether the figure cannot be had on this host or at this run by design (nothing
    /// mounted, the root cgroup, a feature the kernel lacks, no baseline yet): said from
    /// `-v` only, so that operators never learn to skip a note. The rest say something is
    /// wrong and are always shown.
    pub fn by_design(&self) -> bool {
        matches!(
            self,
            CgroupGap::NotMounted(_)
                | CgroupGap::NoMounts
                | CgroupGap::Root(_)
                | CgroupGap::Missing(_)
                | CgroupGap::NoKey(..)
                | CgroupGap::NoLimit
                | CgroupGap::NoBaseline
                | CgroupGap::NewCgroup(_)
        )
    }
}

/// What became of the accept queues (`queue`, `queue_max`, `queue_pct`).
#[derive(Debug, Clone, PartialEq)]
pub enum QueueNote {
    /// left out: the kernel's listening sockets could not be listed (why)
    NoList(String),
    /// left out: no `--listen`, and the service's fds may not be read
    FdsDenied,
    /// the detail of `FdsDenied`: how many processes' fds may not be read
    FdsDeniedDetail { count: usize },
    /// left out: the deadline came before the fds were read
    FdsCut,
    /// the service holds no listening socket
    NoneHeld,
    /// `--listen SPEC` names no listening socket; what listens on its port
    Unmatched { spec: String, nearby: Vec<String> },
    /// how many sockets were measured, and where they came from
    From { sockets: usize, from: HeldBy },
}

impl QueueNote {
    fn level(&self) -> Level {
        match self {
            QueueNote::FdsDeniedDetail { .. } => Level::Verbose,
            QueueNote::NoneHeld | QueueNote::From { .. } => Level::Detail,
            _ => Level::Always,
        }
    }
}

/// One thing a step found worth telling, with its figures. Metric lists name the metrics
/// the note is about; counts are workers unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// a note on what the running user may not read by design (other users' I/O and open
    /// files) about metrics nobody asked for: shown from `-v`, as a default run as the nagios
    /// user would otherwise carry it every time, and operators learn to ignore notes
    Quiet(Box<Note>),
    /// workers whose CPU share could not be known, counted as 0 (`with_io`: the I/O figures
    /// follow the same rule)
    UnknownShare { count: usize, with_io: bool },
    /// reaped-children ticks beyond what `exited` workers could have used in `interval`
    /// seconds, left out
    ReapedBeyond {
        exited: usize,
        interval: f64,
        ticks: u64,
    },
    /// ticks recovered for `count` exited workers from the master's reaped-children time
    ExitedRecovered { count: usize, ticks: u64 },
    /// workers started within the `interval` seconds that count fully
    NewWorkers {
        count: usize,
        interval: f64,
        with_io: bool,
    },
    /// what the CPU figures were measured over, seconds, and their error bound, points
    CpuInterval {
        seconds: f64,
        since: Since,
        error_bound: f64,
        workers: usize,
    },
    /// I/O left out: `/proc/PID/io` of `unreadable` of `of` workers not readable
    IoUnreadable { unreadable: usize, of: usize },
    /// I/O left out: `/proc/PID/io` of `count` workers gone when read
    IoGone { count: usize },
    /// I/O left out: `count` workers without I/O counters in the previous sample
    IoNoBaseline { count: usize },
    /// a per-second metric left out: `count` workers whose counter is not known at both
    /// samples (a tick file of a release without it, or a status without the line)
    CounterUnknown { metric: MetricName, count: usize },
    /// exited workers' I/O not counted: the master's `/proc/PID/io` is not readable
    IoMasterUnreadable,
    /// exited workers' I/O not counted: the master's reaped-children I/O unknown at a sample
    IoReapedUnknown,
    /// exited workers' I/O not counted: the master reaped more than the workers could have
    IoReapedNotWorkers,
    /// bytes read and written by exited workers, recovered from their master
    IoRecovered { read: u64, written: u64 },
    /// `cpu_avg` over `span` seconds within this run, of a `window` of seconds
    AverageWithinRun { span: f64, window: u64 },
    /// `cpu_avg` over `span` seconds, the history being shorter than the window
    AverageShort { span: f64, window: u64, gap: bool },
    /// `cpu_avg` over `span` seconds for the window
    AverageOver { span: f64, window: u64 },
    /// CPU figures beyond the `ceiling` percent every usable CPU can give, left out
    BeyondCeiling {
        figures: Vec<(MetricName, f64)>,
        ceiling: f64,
    },
    /// `smaps_rollup` of `read` of `of` workers read before the deadline
    SmapsCut { read: usize, of: usize },
    /// `rss_pct` has no total that counts each page once
    RssPctNoTotal,
    /// `rss_pct` is the cgroup's memory charge
    RssPctFromCharge,
    /// `rss_pct` is the workers' PSS sum
    RssPctFromPss,
    /// `smaps_rollup` of `unreadable` of `of` workers not readable
    PssUnreadable { unreadable: usize, of: usize },
    /// open files of `unreadable` of `of` workers not readable
    FdsUnreadable { unreadable: usize, of: usize },
    /// a threshold on a metric this run did not measure
    NotEvaluated(MetricName),
    /// the tick file could not be saved (the OS's reason): the run is UNKNOWN
    NotSaved(String),
    /// no baseline to measure CPU against (`reason`, as its type words it), and what the run
    /// did instead
    NoBaseline { reason: String, then: Fallback },
    /// history samples with totals no host could reach, dropped from the tick file
    DroppedHistory { count: usize },
    /// processes that could not be read
    UnreadableProcesses { count: usize },
    /// what selects the workers (the filters' own phrases) and the master
    Selection {
        filters: Vec<String>,
        master: String,
    },
    /// processes skipped while scanning
    Skipped { vanished: usize, unreadable: usize },
    /// where the tick file is
    TickFile(PathBuf),
    /// one line of the trace of the proc reads
    Trace(String),
    /// the tick file was left to a peer that holds it
    LeftToPeer,
    /// cgroup figures left out, and why
    CgroupLeftOut {
        metrics: Vec<MetricName>,
        gap: CgroupGap,
    },
    /// which cgroup the cgroup figures are from: (hierarchy, path) each
    CgroupPlaces(Vec<(&'static str, String)>),
    /// the accept queues
    Queue(QueueNote),
}

impl Note {
    /// From which `-v` this note is shown.
    pub fn level(&self) -> Level {
        match self {
            Note::NewWorkers { .. } | Note::CounterUnknown { .. } | Note::Quiet(_) => {
                Level::Verbose
            }
            Note::ExitedRecovered { .. }
            | Note::CpuInterval { .. }
            | Note::IoRecovered { .. }
            | Note::AverageOver { .. }
            | Note::RssPctNoTotal
            | Note::RssPctFromCharge
            | Note::RssPctFromPss
            | Note::Selection { .. }
            | Note::Skipped { .. }
            | Note::TickFile(_) => Level::Detail,
            // "0 workers" already says it
            Note::NoBaseline {
                then: Fallback::NoWorkers,
                ..
            } => Level::Detail,
            Note::Trace(_) => Level::Trace,
            Note::CgroupLeftOut { gap, .. } if gap.by_design() => Level::Verbose,
            Note::CgroupPlaces(_) => Level::Detail,
            Note::Queue(queue) => queue.level(),
            _ => Level::Always,
        }
    }

    /// Whether this note is shown at `-v` repeated `verbosity` times.
    pub fn shown_at(&self, verbosity: u8) -> bool {
        self.level() as u8 <= verbosity
    }
}
