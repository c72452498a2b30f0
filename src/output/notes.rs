//! Presentation step, the notes: each [`Note`] worded as the line it prints. The wording lives
//! here only; the steps that make notes hand over what happened and its figures.

use crate::catalog::MetricName::{Cpu, CpuAvg, Fds, IoRead, IoWrite, Pss, Queue, RssPct, Uss};
use crate::note::{CgroupGap, Fallback, Note, QueueNote, Since};

/// The line `note` prints (before the output's escaping).
pub(super) fn text(note: &Note) -> String {
    match note {
        Note::Quiet(note) => text(note),
        Note::UnknownShare { .. }
        | Note::ReapedBeyond { .. }
        | Note::ExitedRecovered { .. }
        | Note::NewWorkers { .. }
        | Note::CpuInterval { .. } => cpu(note),
        Note::IoUnreadable { .. }
        | Note::IoGone { .. }
        | Note::IoNoBaseline { .. }
        | Note::IoMasterUnreadable
        | Note::IoReapedUnknown
        | Note::IoReapedNotWorkers
        | Note::IoRecovered { .. } => io(note),
        Note::CounterUnknown { metric, count } => format!(
            "{}: {count} workers without their count at both samples (a tick file of an \
             older release, or not in their status); left out",
            metric.label()
        ),
        Note::AverageWithinRun { .. }
        | Note::AverageShort { .. }
        | Note::AverageOver { .. }
        | Note::BeyondCeiling { .. } => cpu_bounds(note),
        Note::SmapsCut { .. }
        | Note::RssPctNoTotal
        | Note::RssPctFromCharge
        | Note::RssPctFromPss
        | Note::PssUnreadable { .. }
        | Note::FdsUnreadable { .. } => memory(note),
        Note::NotEvaluated(_)
        | Note::NotSaved(_)
        | Note::NoBaseline { .. }
        | Note::DroppedHistory { .. }
        | Note::UnreadableProcesses { .. }
        | Note::Selection { .. }
        | Note::Skipped { .. }
        | Note::TickFile(_)
        | Note::Trace(_)
        | Note::LeftToPeer => run(note),
        Note::CgroupLeftOut { metrics, gap } => {
            let labels: Vec<&str> = metrics.iter().map(|m| m.label()).collect();
            format!("{}: {}; left out", labels.join(", "), cgroup_gap(gap))
        }
        Note::CgroupPlaces(places) => {
            let places: Vec<String> = places.iter().map(|(h, p)| format!("{h} {p}")).collect();
            format!("cgroup: {}", places.join(", "))
        }
        Note::Queue(queue) => self::queue(queue),
    }
}

/// Why a cgroup figure is left out, in words.
fn cgroup_gap(gap: &CgroupGap) -> String {
    match gap {
        CgroupGap::NoMountTable(why) => format!("/proc/self/mountinfo not readable ({why})"),
        CgroupGap::NoMounts => "no /proc/self/mountinfo to find the cgroups in".to_string(),
        CgroupGap::NotMounted(h) => format!("no {h} cgroup hierarchy is mounted"),
        CgroupGap::Unknown(h) => format!("a worker's cgroup in the {h} hierarchy is not known"),
        CgroupGap::Root(h) => {
            format!("the workers are in the root {h} cgroup, or share no cgroup below it")
        }
        CgroupGap::NotVisible(h, path) => {
            format!("the workers' {h} cgroup {path} is outside the tree mounted here")
        }
        CgroupGap::NoDirectory(path, why) => format!("cannot open {}: {why}", path.display()),
        CgroupGap::Missing(path) => format!(
            "{} does not exist (a kernel without it, or PSI off: psi=0)",
            path.display()
        ),
        CgroupGap::NoKey(path, key) => format!(
            "{} has no {key} line (the controller is off for the cgroup, or the kernel is older)",
            path.display()
        ),
        CgroupGap::Unreadable(path, why) => format!("cannot read {}: {why}", path.display()),
        CgroupGap::Malformed(path) => format!("{} is malformed", path.display()),
        CgroupGap::NoLimit => "the cgroup has no memory limit".to_string(),
        CgroupGap::NoBaseline => "no earlier reading of the cgroup's counters yet".to_string(),
        CgroupGap::NewCgroup(h) => format!(
            "the {h} cgroup is a new one since the last run (the unit restarted?), measured \
             from the next run"
        ),
        CgroupGap::Backwards(key) => {
            format!("{key} is lower than at the last run, measured from the next run")
        }
        CgroupGap::Impossible(what) => format!("impossible figure ({what})"),
    }
}

/// What became of the accept queues.
fn queue(note: &QueueNote) -> String {
    let what = Queue.label();
    match note {
        QueueNote::NoList(why) => {
            format!("{what}: left out, the kernel's listening sockets could not be listed ({why})")
        }
        QueueNote::FdsDenied => format!(
            "{what}: left out, the service's fds are not readable as this user; name its \
             sockets with --listen ADDR:PORT or --listen PATH"
        ),
        QueueNote::FdsDeniedDetail { count } => format!(
            "{what}: the fds of {count} of the service's processes (/proc/PID/fd) may be read \
             only by root or their user; --listen none for a service that listens on nothing"
        ),
        QueueNote::FdsCut => {
            format!("{what}: left out, the service's fds were not all read before the deadline")
        }
        QueueNote::NoneHeld => {
            format!("{what}: the service holds no listening socket (TCP, unix stream)")
        }
        QueueNote::Unmatched { spec, nearby } if nearby.is_empty() => {
            format!("{what}: --listen {spec} names no listening socket")
        }
        QueueNote::Unmatched { spec, nearby } => format!(
            "{what}: --listen {spec} names no listening socket (on its port: {})",
            nearby.join(", ")
        ),
        QueueNote::From { sockets, from } => format!(
            "{what}: {sockets} listening socket{} {}",
            if *sockets == 1 { "" } else { "s" },
            crate::metrics::held_by(*from)
        ),
    }
}

/// `cpu` or, when the I/O figures follow the same rule, `cpu, io_read, io_write`.
fn cpu_label(with_io: bool) -> String {
    match with_io {
        true => format!("{}, {}, {}", Cpu.label(), IoRead.label(), IoWrite.label()),
        false => Cpu.label().to_string(),
    }
}

/// How each worker's CPU was known, and over what.
fn cpu(note: &Note) -> String {
    match *note {
        Note::UnknownShare { count, with_io } => format!(
            "{}: {count} workers were running but not workers at the previous sample; \
             counted as 0 for this interval",
            cpu_label(with_io)
        ),
        Note::ReapedBeyond {
            exited,
            interval,
            ticks,
        } => format!(
            "{}: the master's reaped-children time exceeds what {exited} exited workers could \
             have used in the {interval:.0} s interval; {ticks} ticks left out",
            Cpu.label()
        ),
        Note::ExitedRecovered { count, ticks } => format!(
            "{}: {count} workers exited within the interval; {ticks} ticks recovered from the \
             master's reaped-children time",
            Cpu.label()
        ),
        Note::NewWorkers {
            count,
            interval,
            with_io,
        } => format!(
            "{}: {count} workers started within the {interval:.0} s interval and count fully",
            cpu_label(with_io)
        ),
        Note::CpuInterval {
            seconds,
            since,
            error_bound,
            workers,
        } => {
            let how = match since {
                Since::Baseline => ", per worker, since an earlier run".to_string(),
                Since::Older { last_run } => format!(
                    " from the history: the last run, {last_run:.2} s ago, is too recent for \
                     {workers} workers' ticks"
                ),
                Since::WithinRun => " within this run".to_string(),
            };
            format!(
                "cpu: measured over {seconds:.2} s{how}; error bound ±{error_bound:.2} points \
                 ({workers} workers, 1 tick each)"
            )
        }
        _ => unreachable!("not a cpu note: {note:?}"),
    }
}

/// Why the I/O figures are left out or miss exited workers, or what was recovered.
fn io(note: &Note) -> String {
    let labels = format!("{}, {}", IoRead.label(), IoWrite.label());
    let left_out = |why: String| format!("{labels}: {why}; left out");
    let not_counted = |why: &str| {
        format!("{labels}: {why}, so workers that exited within the interval are not counted")
    };
    match *note {
        Note::IoUnreadable { unreadable, of } => left_out(format!(
            "/proc/PID/io of {unreadable} of {of} workers not readable (needs root or the \
             workers' user)"
        )),
        Note::IoGone { count } => left_out(format!(
            "/proc/PID/io of {count} workers gone when read (they exited meanwhile)"
        )),
        Note::IoNoBaseline { count } => left_out(format!(
            "{count} workers have no I/O counters in the previous sample (an older tick file, \
             or not readable then)"
        )),
        Note::IoMasterUnreadable => {
            not_counted("/proc/PID/io of the master not readable (needs root or its user)")
        }
        Note::IoReapedUnknown => {
            not_counted("the master's reaped-children I/O not known at both samples")
        }
        Note::IoReapedNotWorkers => {
            not_counted("the master reaped more than the exited workers could have done")
        }
        Note::IoRecovered { read, written } => format!(
            "{labels}: {read} bytes read and {written} written by workers that exited within \
             the interval, recovered from the master's reaped-children I/O"
        ),
        _ => unreachable!("not an io note: {note:?}"),
    }
}

/// What `cpu_avg` spans, and CPU figures beyond what the CPUs can give.
fn cpu_bounds(note: &Note) -> String {
    let label = CpuAvg.label();
    match note {
        Note::AverageWithinRun { span, window } => format!(
            "{label}: over {} within this run, of the {window} s window (no history yet)",
            seconds(*span)
        ),
        Note::AverageShort { span, window, gap } => format!(
            "{label}: over {} of the {window} s window ({})",
            seconds(*span),
            match gap {
                true => "no sample nearer its start: the checks had a gap",
                false => "history is short",
            }
        ),
        Note::AverageOver { span, window } => {
            format!("{label}: over {} for the {window} s window", seconds(*span))
        }
        Note::BeyondCeiling { figures, ceiling } => {
            let figures: Vec<String> = figures
                .iter()
                .map(|(m, v)| format!("{} {v:.1}%", m.label()))
                .collect();
            format!(
                "{}: beyond the {ceiling:.0}% every usable CPU can give; left out",
                figures.join(", ")
            )
        }
        _ => unreachable!("not a cpu bounds note: {note:?}"),
    }
}

/// `120 s`, `1.50 s`.
fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.2} s")
    }
}

/// Memory details that could not be read, and what `rss_pct` is taken from.
fn memory(note: &Note) -> String {
    let rss_pct = RssPct.label();
    match *note {
        Note::SmapsCut { read, of } => format!(
            "{}, {}: smaps_rollup of {read} of {of} workers read before the time ran out (-t); \
             left out",
            Pss.label(),
            Uss.label(),
        ),
        Note::RssPctNoTotal => format!(
            "{rss_pct}: no memory cgroup holds the workers and not this check, and pss was not \
             measured (--metrics pss); left out"
        ),
        Note::RssPctFromCharge => {
            format!("{rss_pct}: the memory charged to the workers' cgroup (cg_memory)")
        }
        Note::RssPctFromPss => format!("{rss_pct}: the sum of the workers' PSS"),
        Note::PssUnreadable { unreadable, of } => format!(
            "{}, {}: smaps_rollup of {unreadable} of {of} workers not readable (needs root or \
             the workers' user); left out",
            Pss.label(),
            Uss.label(),
        ),
        Note::FdsUnreadable { unreadable, of } => format!(
            "{}: open files of {unreadable} of {of} workers not readable (needs root or the \
             workers' user); left out",
            Fds.label(),
        ),
        _ => unreachable!("not a memory note: {note:?}"),
    }
}

/// What the run found around the figures: thresholds, the baseline, the tick file, the scan.
fn run(note: &Note) -> String {
    match note {
        Note::NotEvaluated(metric) => format!(
            "{}: not measured in this run, thresholds not evaluated",
            metric.label()
        ),
        Note::NotSaved(why) => {
            format!("UNKNOWN: tick file not saved: {}", crate::text::shown(why))
        }
        Note::NoBaseline { reason, then } => no_baseline(reason, then),
        Note::DroppedHistory { count } => {
            format!("tick file: {count} history samples with totals no host could reach dropped")
        }
        Note::UnreadableProcesses { count } => {
            format!("{count} processes could not be read (permission or malformed /proc files)")
        }
        Note::Selection { filters, master } => {
            format!("selection: {}; {master}", filters.join(", "))
        }
        Note::Skipped {
            vanished,
            unreadable,
        } => format!("skipped: {vanished} exited while being read, {unreadable} unreadable"),
        Note::TickFile(path) => format!("tick file: {}", path.display()),
        Note::Trace(line) => line.clone(),
        Note::LeftToPeer => {
            "tick file not updated: another check of the same workers holds it".to_string()
        }
        _ => unreachable!("not a run note: {note:?}"),
    }
}

/// Why there was no baseline and what became of CPU.
fn no_baseline(reason: &str, then: &Fallback) -> String {
    match then {
        Fallback::NoInterval => {
            format!("no baseline ({reason}) and --interval 0: cpu not measured in this run")
        }
        Fallback::NoTime => {
            format!("no baseline ({reason}); cpu not measured: no time left within -t")
        }
        Fallback::ScanTimedOut(e) => {
            format!("no baseline ({reason}); cpu not measured: {e} within -t")
        }
        Fallback::WithinRun { seconds } => {
            format!("no baseline ({reason}): cpu measured over {seconds:.2} s within this run")
        }
        Fallback::Unusable(why) => {
            format!("no baseline ({reason}), and {why}: cpu not measured")
        }
        Fallback::NoWorkers => format!("no baseline ({reason}) and no workers: cpu not measured"),
    }
}
