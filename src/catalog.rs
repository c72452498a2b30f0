//! Metric catalog: every metric the check reports, defined once. Perfdata order, the
//! `-w`/`-c METRIC=` names, units, perfdata maxima and `--help`'s metric list all come from
//! here, and a test holds the README's metric table to it.
//!
//! A leaf module (it names only the counters of `counter`, another leaf), so every step of the
//! pipeline can name a metric without depending on the step that computes or judges it. `metrics` computes the values, grouped by [`Part`].

use crate::counter::Counter;

/// What a metric's numbers mean, so ranges and perfdata use the metric's own unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// a plain count
    Count,
    /// percent (of one core for CPU, unless `--cpu-scale host`)
    Percent,
    /// bytes
    Bytes,
    /// bytes per hour: a size's growth, given and ranged as bytes (perfdata has no rate unit)
    BytesPerHour,
    /// seconds
    Seconds,
}

impl Unit {
    /// How help and the README name the unit: the perfdata UOM, or `count` for a count (whose
    /// UOM is empty, which reads as a missing word).
    pub fn shown(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Percent => "%",
            Unit::Bytes => "B",
            Unit::BytesPerHour => "B/h",
            Unit::Seconds => "s",
        }
    }

    /// The perfdata UOM: the guidelines know no rate, so a growth per hour is given in bytes.
    pub fn uom(self) -> &'static str {
        match self {
            Unit::Count => "",
            Unit::Percent => "%",
            Unit::Bytes | Unit::BytesPerHour => "B",
            Unit::Seconds => "s",
        }
    }
}

/// The lower bound perfdata gives a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Min {
    /// counts, sizes, shares: never below 0
    Zero,
    /// a trend, which may be negative: no bound, an empty field
    Open,
}

impl Min {
    /// The bound, where there is one.
    pub fn value(self) -> Option<f64> {
        match self {
            Min::Zero => Some(0.0),
            Min::Open => None,
        }
    }
}

/// The upper bound perfdata gives a metric, so graphers can scale it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Max {
    /// no natural upper bound (counts, sizes, ages)
    Open,
    /// a share of something whole: 100
    Hundred,
    /// the CPU figures' ceiling, which depends on the host and `--cpu-scale`
    CpuCeiling,
}

impl Max {
    /// The bound for this run; `cpu_ceiling` is what 100 % of every usable CPU reads as.
    pub fn value(self, cpu_ceiling: f64) -> Option<f64> {
        match self {
            Max::Open => None,
            Max::Hundred => Some(100.0),
            Max::CpuCeiling => Some(cpu_ceiling),
        }
    }
}

/// The group of figures in `metrics` that computes a metric: a new metric's value goes into
/// that group's function (a unit test there fails until it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// how many workers and threads there are
    Count,
    /// CPU over the interval between two samples
    Cpu,
    /// sizes from status and smaps_rollup
    Memory,
    /// open file descriptors and their limit
    Fds,
    /// I/O over the interval between two samples
    Io,
    /// how long workers have lived
    Ages,
    /// process states
    States,
    /// from the history of earlier runs: averages, restarts, trends
    History,
    /// what the kernel accounts for the workers' cgroup
    Cgroup,
    /// the accept queues of the service's listening sockets
    Queue,
    /// how fast a [`Counter`] of all workers grew over the interval, per second: one generic
    /// computation serves every such metric
    PerSecond(Counter),
}

/// A per-worker file under `/proc/PID` (or what it leads to) that a metric is computed from.
/// A run reads, for each worker, only the files of the metrics it reports; `stat` and `status`
/// are read for every candidate anyway, as the filters and the selection need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `stat`: ticks, start time, state
    Stat,
    /// `status`: sizes, threads
    Status,
    /// `io`: bytes read and written
    Io,
    /// `fd/`: one entry per open descriptor
    Fds,
    /// `limits`: the soft RLIMIT_NOFILE
    Limits,
    /// `smaps_rollup`: PSS and USS. The kernel walks every page table entry of the process to
    /// sum them, about 7 ms per GiB mapped: 56 ms for a postgres backend mapping 8 GiB of
    /// shared buffers, so 100 of them cost seconds
    SmapsRollup,
    /// `cgroup`, and the files of the cgroup that holds the workers: a few small reads per
    /// run whatever the number of workers
    Cgroup,
    /// the kernel's listening sockets (sock_diag), and the socket links in `fd/` of the
    /// master (else the workers) unless `--listen` names the sockets
    Listen,
}

impl Source {
    /// Whether reading it costs more the more memory a worker maps: such files are read only
    /// when a metric that needs them is asked for (`--metrics`, or a threshold on it).
    pub fn grows_with_memory(self) -> bool {
        self == Source::SmapsRollup
    }

    /// The file's name, for notes and `--help`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Stat => "stat",
            Source::Status => "status",
            Source::Io => "io",
            Source::Fds => "fd/",
            Source::Limits => "limits",
            Source::SmapsRollup => "smaps_rollup",
            Source::Cgroup => "cgroup",
            Source::Listen => "fd/ and sock_diag",
        }
    }
}

/// One metric's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub metric: MetricName,
    /// the perfdata label, also the name used in `-w METRIC=RANGE`
    pub label: &'static str,
    pub unit: Unit,
    /// perfdata's min field
    pub min: Min,
    /// perfdata's max field
    pub max: Max,
    pub part: Part,
    /// the per-worker files it is computed from
    pub reads: &'static [Source],
    /// one line for `--help`: what the number is
    pub meaning: &'static str,
}

/// Defines the metrics from one table, so a metric's name, label, unit and meaning cannot be
/// added in one place and forgotten in another: the enum's variants and [`CATALOG`] are
/// generated together, in the same order.
macro_rules! catalog {
    ($($metric:ident = $label:literal, $unit:ident, $min:ident, $max:ident, $part:ident $(($counter:ident))?, [$($source:ident),+], $meaning:literal;)+) => {
        /// The metrics this check measures. The order of the variants is the perfdata order
        /// (and `Ord` follows it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum MetricName {
            $(#[doc = $meaning] $metric,)+
        }

        /// Every metric, in perfdata order: `CATALOG[m as usize].metric == m`.
        pub const CATALOG: &[Entry] = &[$(Entry {
            metric: MetricName::$metric,
            label: $label,
            unit: Unit::$unit,
            min: Min::$min,
            max: Max::$max,
            part: Part::$part $((Counter::$counter))?,
            reads: &[$(Source::$source),+],
            meaning: $meaning,
        },)+];
    };
}

// Adding a metric: one line here (in the place perfdata should list it), then its value in
// the function of its part in `metrics`. Help, thresholds and perfdata follow; the README's
// metric table needs its row (a test says so). Meanings stay within 54 characters so
// `--help`'s list fits 80 columns.
catalog! {
    // variant       label              unit          min   max         part     reads                meaning
    Workers         = "workers",         Count,        Zero, Open,       Count,   [Stat],              "number of worker processes";
    Cpu             = "cpu",             Percent,      Zero, CpuCeiling, Cpu,     [Stat],              "CPU of all workers over the interval (user + system)";
    CpuUser         = "cpu_user",        Percent,      Zero, CpuCeiling, Cpu,     [Stat],              "the user-mode part of cpu";
    CpuSystem       = "cpu_system",      Percent,      Zero, CpuCeiling, Cpu,     [Stat],              "the kernel-mode part of cpu";
    CpuMax          = "cpu_max",         Percent,      Zero, CpuCeiling, Cpu,     [Stat],              "CPU of the busiest worker, which an average hides";
    CpuAvg          = "cpu_avg",         Percent,      Zero, CpuCeiling, History, [Stat],              "cpu averaged over the --average window";
    Rss             = "rss",             Bytes,        Zero, Open,       Memory,  [Status],            "average resident set size per worker (VmRSS)";
    Vms             = "vms",             Bytes,        Zero, Open,       Memory,  [Status],            "average virtual size per worker (VmSize)";
    Pss             = "pss",             Bytes,        Zero, Open,       Memory,  [SmapsRollup],       "average proportional set size per worker";
    Uss             = "uss",             Bytes,        Zero, Open,       Memory,  [SmapsRollup],       "average unique set size per worker";
    RssMax          = "rss_max",         Bytes,        Zero, Open,       Memory,  [Status],            "resident set size of the largest worker";
    VmsMax          = "vms_max",         Bytes,        Zero, Open,       Memory,  [Status],            "virtual size of the largest worker";
    RssTotal        = "rss_total",       Bytes,        Zero, Open,       Memory,  [Status],            "sum of the workers' RSS (shared pages once per worker)";
    RssPct          = "rss_pct",         Percent,      Zero, Hundred,    Memory,  [Cgroup],            "workers' memory, each page once, as % of their limit";
    RssGrowth       = "rss_growth",      BytesPerHour, Open, Open,       History, [Status],            "how fast rss grows, bytes per hour (may be negative)";
    Threads         = "threads",         Count,        Zero, Open,       Count,   [Status],            "threads of all workers";
    Fds             = "fds",             Count,        Zero, Open,       Fds,     [Fds],               "open file descriptors of all workers";
    FdPctMax        = "fd_pct_max",      Percent,      Zero, Hundred,    Fds,     [Fds, Limits],       "the highest % of its soft RLIMIT_NOFILE a worker uses";
    Queue           = "queue",           Count,        Zero, Open,       Queue,   [Listen],            "connections waiting to be accepted, all sockets";
    QueueMax        = "queue_max",       Count,        Zero, Open,       Queue,   [Listen],            "the sum of the listening sockets' backlog limits";
    QueuePct        = "queue_pct",       Percent,      Zero, Hundred,    Queue,   [Listen],            "the fullest socket's queue, % of its own limit";
    IoRead          = "io_read",         Bytes,        Zero, Open,       Io,      [Io],                "bytes/s all workers made the storage layer read";
    IoWrite         = "io_write",        Bytes,        Zero, Open,       Io,      [Io],                "bytes/s all workers made the storage layer write";
    AgeMin          = "age_min",         Seconds,      Zero, Open,       Ages,    [Stat],              "seconds since the youngest worker started";
    AgeMax          = "age_max",         Seconds,      Zero, Open,       Ages,    [Stat],              "seconds since the oldest worker started";
    Zombies         = "zombies",         Count,        Zero, Open,       States,  [Stat],              "workers in state Z (zombie)";
    Uninterruptible = "uninterruptible", Count,        Zero, Open,       States,  [Stat],              "workers in state D (uninterruptible sleep)";
    CgMemory        = "cg_memory",       Bytes,        Zero, Open,       Cgroup,  [Cgroup],            "bytes charged to the workers' cgroup (page cache too)";
    CgMemoryPct     = "cg_memory_pct",   Percent,      Zero, Hundred,    Cgroup,  [Cgroup],            "cg_memory as % of the cgroup's memory limit";
    OomKills        = "oom_kills",       Count,        Zero, Open,       Cgroup,  [Cgroup],            "OOM kills in the workers' cgroup since the last run";
    CpuThrottled    = "cpu_throttled",   Percent,      Zero, Hundred,    Cgroup,  [Cgroup],            "% of the cgroup's CPU periods that were throttled";
    PsiCpu          = "psi_cpu",         Percent,      Zero, Hundred,    Cgroup,  [Cgroup],            "% of the interval some of its tasks waited for CPU";
    PsiMemory       = "psi_memory",      Percent,      Zero, Hundred,    Cgroup,  [Cgroup],            "% of the interval some of its tasks waited for memory";
    PsiIo           = "psi_io",          Percent,      Zero, Hundred,    Cgroup,  [Cgroup],            "% of the interval some of its tasks waited for I/O";
    Restarts        = "restarts",        Count,        Zero, Open,       History, [Stat],              "master restarts since the last run (or --average)";
    Nvcsw           = "nvcsw",           Count,        Zero, Open,       PerSecond(Nvcsw), [Status],   "involuntary context switches/s of all workers";
}

impl MetricName {
    /// This metric's definition.
    pub fn entry(self) -> &'static Entry {
        &CATALOG[self as usize]
    }

    /// The perfdata label, also the name used in `-w METRIC=RANGE`.
    pub fn label(self) -> &'static str {
        self.entry().label
    }

    /// The unit its ranges are parsed in and its perfdata is given in.
    pub fn unit(self) -> Unit {
        self.entry().unit
    }

    /// Its perfdata minimum.
    pub fn min(self) -> Min {
        self.entry().min
    }

    /// Its perfdata maximum.
    pub fn max(self) -> Max {
        self.entry().max
    }

    /// The metric `-w`/`-c` name with `label`.
    pub fn from_label(label: &str) -> Option<MetricName> {
        CATALOG.iter().find(|e| e.label == label).map(|e| e.metric)
    }

    /// Every metric, in perfdata order.
    pub fn all() -> impl Iterator<Item = MetricName> {
        CATALOG.iter().map(|e| e.metric)
    }

    /// Whether a run measures it unless asked not to: its files cost the same whatever the
    /// size of a worker's memory.
    pub fn by_default(self) -> bool {
        !self.entry().reads.iter().any(|s| s.grows_with_memory())
    }
}

/// The metrics a run measures: the default ones, those `--metrics` adds, and those a
/// threshold names. Everything else is neither read nor in perfdata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSet(u64);

/// The default set.
impl Default for MetricSet {
    fn default() -> MetricSet {
        MetricSet::defaults()
    }
}

impl MetricSet {
    /// Every metric whose cost does not grow with the workers' memory.
    pub fn defaults() -> MetricSet {
        MetricName::all()
            .filter(|m| m.by_default())
            .fold(MetricSet(0), MetricSet::with)
    }

    /// No metric.
    pub fn none() -> MetricSet {
        MetricSet(0)
    }

    /// Every metric (`--metrics all`).
    pub fn all() -> MetricSet {
        MetricName::all().fold(MetricSet(0), MetricSet::with)
    }

    /// This set and `metric`.
    pub fn with(self, metric: MetricName) -> MetricSet {
        MetricSet(self.0 | 1 << metric as u64)
    }

    /// This set without `metric`.
    pub fn without(self, metric: MetricName) -> MetricSet {
        MetricSet(self.0 & !(1 << metric as u64))
    }

    pub fn contains(self, metric: MetricName) -> bool {
        self.0 & (1 << metric as u64) != 0
    }

    /// Whether some metric of the set is computed from `source`.
    pub fn reads(self, source: Source) -> bool {
        CATALOG
            .iter()
            .any(|e| self.contains(e.metric) && e.reads.contains(&source))
    }

    /// The metrics of the set, in perfdata order.
    pub fn iter(self) -> impl Iterator<Item = MetricName> {
        MetricName::all().filter(move |&m| self.contains(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_indexed_by_their_variant() {
        for (i, e) in CATALOG.iter().enumerate() {
            assert_eq!(e.metric as usize, i, "{}", e.label);
            assert_eq!(MetricName::from_label(e.label), Some(e.metric));
        }
        assert_eq!(MetricName::from_label("bogus"), None);
    }

    #[test]
    fn labels_are_unique_perfdata_labels() {
        for (i, e) in CATALOG.iter().enumerate() {
            // perfdata labels with these would need quoting, and `=` splits `-w METRIC=RANGE`
            assert!(
                !e.label.is_empty() && e.label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                e.label
            );
            assert!(
                CATALOG[..i].iter().all(|other| other.label != e.label),
                "{} twice",
                e.label
            );
        }
    }

    #[test]
    fn a_set_holds_every_metric() {
        // one bit per metric: a catalog past 64 metrics needs a wider set
        assert!(CATALOG.len() <= 64);
        assert_eq!(MetricSet::all().iter().count(), CATALOG.len());
        let defaults: Vec<&str> = MetricName::all()
            .filter(|&m| !MetricSet::defaults().contains(m))
            .map(MetricName::label)
            .collect();
        assert_eq!(defaults, ["pss", "uss"], "left out by default");
        assert!(!MetricSet::defaults().reads(Source::SmapsRollup));
        assert!(MetricSet::defaults()
            .with(MetricName::Uss)
            .reads(Source::SmapsRollup));
    }

    #[test]
    fn meanings_fit_one_help_line() {
        for e in CATALOG {
            assert!(
                !e.meaning.is_empty() && e.meaning.len() <= 54 && !e.meaning.contains('\n'),
                "{}: {:?} ({} bytes)",
                e.label,
                e.meaning,
                e.meaning.len()
            );
        }
    }

    /// The README's metric table as (label, unit, max) cells, backticks removed.
    fn readme_metric_rows() -> Vec<[String; 3]> {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Metrics and perfdata\n")
            .nth(1)
            .expect("README has a \"## Metrics and perfdata\" section");
        section
            .lines()
            .skip_while(|l| !l.starts_with("| label |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<String> = row
                    .trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().replace('`', ""))
                    .collect();
                assert!(cells.len() >= 4, "README metric row {row:?}");
                [cells[0].clone(), cells[1].clone(), cells[2].clone()]
            })
            .collect()
    }

    #[test]
    fn readme_metric_table_lists_the_catalog() {
        let readme = readme_metric_rows();
        let catalog: Vec<[String; 3]> = CATALOG
            .iter()
            .map(|e| {
                let max = match e.max {
                    Max::Open => "none",
                    Max::Hundred => "100",
                    Max::CpuCeiling => "100 × CPUs",
                };
                [e.label, e.unit.shown(), max].map(String::from)
            })
            .collect();
        assert_eq!(
            readme, catalog,
            "README.md's metric table (label | unit | max | meaning) must list the catalog's \
             metrics in catalog order"
        );
    }
}
