//! Acquisition, the bytes of one proc file into figures: one small parser per file, pure
//! functions over what was read, so that every odd thing a process can put in its name or a
//! kernel can put in a file is tested here, away from the reads.
//!
//! Names are bytes chosen by whoever started the process: `stat` and `status` are parsed as
//! bytes, and only the ASCII fields after the name are decoded.

use std::io::{self, ErrorKind};

use crate::counter::{Counter, Counters, Line};

use super::values::Comm;

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
pub(super) const PF_KTHREAD: u32 = 0x0020_0000;

/// The fields of `/proc/PID/stat` the check uses.
pub(super) struct StatFields {
    pub(super) pid: i32,
    pub(super) comm: Comm,
    pub(super) state: char,
    pub(super) ppid: i32,
    pub(super) flags: u32,
    pub(super) starttime: u64,
    /// the counters read from stat fields (see [`Counter::line`])
    pub(super) counters: Counters,
}

/// `/proc/PID/stat` as bytes. The comm sits between the first `(` and the last `)` and may
/// hold any byte (spaces, parentheses, half a UTF-8 character); the fields after it are ASCII.
/// procfs's parser wants the whole line as UTF-8, which made such a process unreadable.
pub(super) fn parse_stat(bytes: &[u8]) -> io::Result<StatFields> {
    let open = bytes.iter().position(|&b| b == b'(');
    let close = bytes.iter().rposition(|&b| b == b')');
    let (Some(open), Some(close)) = (open, close) else {
        return Err(malformed("stat"));
    };
    if close < open {
        return Err(malformed("stat"));
    }
    let pid = std::str::from_utf8(&bytes[..open]).ok().map(str::trim);
    let rest = std::str::from_utf8(&bytes[close + 1..]).map_err(|_| malformed("stat"))?;
    // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
    // cutime cstime priority nice num_threads itrealvalue starttime ...: field n of proc(5)
    // is f[n - 3]
    let f: Vec<&str> = rest.split_ascii_whitespace().take(50).collect();
    let parsed = (|| {
        Some(StatFields {
            pid: pid?.parse().ok()?,
            comm: Comm::from(&bytes[open + 1..close]),
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            flags: f.get(6)?.parse().ok()?,
            starttime: f.get(19)?.parse().ok()?,
            counters: stat_counters(&f)?,
        })
    })();
    parsed.ok_or_else(|| malformed("stat"))
}

/// The counters read from `stat`'s fields `f` (the fields after the comm); None when one is
/// missing or not a number.
fn stat_counters(f: &[&str]) -> Option<Counters> {
    let mut counters = Counters::default();
    for &counter in Counter::ALL {
        if let Line::Stat(field) = counter.line() {
            let text = f.get(field.checked_sub(3)?)?;
            let value = match text.parse::<u64>() {
                Ok(n) => n,
                Err(_) => text.parse::<i64>().ok()?.max(0) as u64,
            };
            counters.set(counter, value);
        }
    }
    Some(counters)
}

/// The fields of `/proc/PID/status` the check uses.
pub(super) struct StatusFields {
    /// real uid
    pub(super) uid: u32,
    /// VmRSS, bytes (0 where absent: kernel threads, zombies)
    pub(super) rss: u64,
    /// VmSize, bytes
    pub(super) vms: u64,
    pub(super) threads: u64,
    pub(super) cpus_allowed: Option<u32>,
    /// the counters read from status lines (see [`Counter::line`])
    pub(super) counters: Counters,
}

/// `/proc/PID/status` line by line as bytes: its `Name:` line holds the raw comm, which need
/// not be UTF-8, and the lines we read are ASCII. Uid and Threads are always there; a file
/// without them is malformed.
pub(super) fn parse_status(bytes: &[u8]) -> io::Result<StatusFields> {
    let (mut uid, mut threads) = (None, None);
    let mut fields = StatusFields {
        uid: 0,
        rss: 0,
        vms: 0,
        threads: 0,
        cpus_allowed: None,
        counters: Counters::default(),
    };
    for line in bytes.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        // the five lines we want and the counters', found before any of the ~55 is decoded
        let counter = Counter::of_status_line(key);
        if counter.is_none()
            && !matches!(
                key,
                b"Uid" | b"VmRSS" | b"VmSize" | b"Threads" | b"Cpus_allowed_list"
            )
        {
            continue;
        }
        let value = std::str::from_utf8(value).map_err(|_| malformed("status"))?;
        let first = value.split_ascii_whitespace().next();
        if let Some(counter) = counter {
            if let Some(n) = first.and_then(|n| n.parse().ok()) {
                fields.counters.set(counter, n);
            }
            continue;
        }
        let kib = || first?.parse::<u64>().ok().map(|k| k.saturating_mul(1024));
        match key {
            b"Uid" => uid = first.and_then(|u| u.parse().ok()),
            b"VmRSS" => fields.rss = kib().unwrap_or(0),
            b"VmSize" => fields.vms = kib().unwrap_or(0),
            b"Threads" => threads = first.and_then(|t| t.parse().ok()),
            _ => fields.cpus_allowed = cpu_count(value.trim()),
        }
    }
    fields.uid = uid.ok_or_else(|| malformed("status"))?;
    fields.threads = threads.ok_or_else(|| malformed("status"))?;
    Ok(fields)
}

/// CPUs in a list like `0-3,8,10-11`; None when it does not parse.
fn cpu_count(list: &str) -> Option<u32> {
    list.split(',').try_fold(0u32, |sum, range| {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (u32, u32) = (first.parse().ok()?, last.parse().ok()?);
        sum.checked_add(last.checked_sub(first)?.checked_add(1)?)
    })
}

fn malformed(file: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, format!("malformed {file}"))
}

/// The soft limit of `Max open files` in `/proc/PID/limits`; None when unlimited.
pub(super) fn open_files_limit(limits: &[u8]) -> Option<u64> {
    let limits = String::from_utf8_lossy(limits);
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The counters read from a `/proc/PID/io` (see [`Counter::line`]); None when one is missing
/// or not a number.
pub(super) fn parse_io(bytes: &[u8]) -> Option<Counters> {
    let text = std::str::from_utf8(bytes).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse::<u64>()
            .ok()
    };
    let mut counters = Counters::default();
    for counter in Counter::io() {
        let Line::Io(name) = counter.line() else {
            continue;
        };
        counters.set(counter, field(name)?);
    }
    Some(counters)
}

/// A `/proc/PID/cgroup` as text: one line per hierarchy (v2's `0::/path`, v1's
/// `N:controllers:/path`), each of which the cgroup figures may need. None when empty.
pub(super) fn cgroup_text(cgroup: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(cgroup);
    (!text.trim().is_empty()).then(|| text.into_owned())
}

/// PSS and USS (private clean + dirty) of a `/proc/PID/smaps_rollup`, bytes; both None
/// without a `Pss:` line.
pub(super) fn smaps_rollup(bytes: &[u8]) -> (Option<u64>, Option<u64>) {
    let text = String::from_utf8_lossy(bytes);
    let private = |name| kib_field(&text, name).unwrap_or(0);
    let uss =
        kib_field(&text, "Pss:").map(|_| private("Private_Clean:") + private("Private_Dirty:"));
    (kib_field(&text, "Pss:"), uss)
}

/// Boot time (None without a `btime` line) and CPU count (the `cpuN` lines, at least 1) of
/// the tree's `stat`. Parsed by hand: procfs's `KernelStats` needs every CPU time line to be
/// complete, and we need two facts from it.
pub(super) fn kernel_stat(text: &str) -> (Option<u64>, usize) {
    let mut btime = None;
    let mut cpus = 0;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("btime ") {
            btime = value.trim().parse::<u64>().ok();
        } else if line
            .strip_prefix("cpu")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        {
            cpus += 1;
        }
    }
    (btime, cpus.max(1))
}

/// A `Name:   1234 kB` line of a proc file, in bytes.
pub(super) fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::fake::io_file;

    const STAT: &[u8] = b"4242 (a) b\xff (c) R 1 4242 4242 0 -1 4194368 1 0 0 0 11 12 13 -1 20 0 \
                          1 0 777 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 \
                          0 0 0\n";

    #[test]
    fn stat_comm_is_bytes_between_the_first_and_last_parenthesis() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.comm.as_bytes(), b"a) b\xff (c");
        assert_eq!(stat.comm.to_string(), "a) b\\xff (c");
        assert_eq!((stat.state, stat.ppid, stat.flags), ('R', 1, 4_194_368));
        let ticks = crate::counter::TICKS.map(|c| stat.counters.get(c));
        assert_eq!(
            ticks,
            [11, 12, 13, 0].map(Some),
            "a negative child field reads as 0"
        );
        assert_eq!(stat.starttime, 777);
        for broken in [
            &b""[..],
            b"1 (x",
            b"1 x) R",
            b"1 (x) R 1 2 3",
            b"x (y) R 1 1 1 0 -1 0",
        ] {
            assert!(parse_stat(broken).is_err(), "{broken:?}");
        }
    }

    #[test]
    fn stat_comm_may_be_empty_or_hold_newlines_and_only_parentheses() {
        let line = |comm: &[u8]| {
            [
                b"7 (",
                comm,
                b") S 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 99 0 0\n",
            ]
            .concat()
        };
        for comm in [&b""[..], b"))((", b"a\nb", b" ", b"\xc3", b"(x) R 1 2"] {
            let stat = parse_stat(&line(comm)).unwrap();
            assert_eq!(stat.comm.as_bytes(), comm);
            assert_eq!((stat.state, stat.ppid, stat.starttime), ('S', 1, 99));
        }
    }

    #[test]
    fn stat_cut_anywhere_before_its_start_time_is_malformed() {
        let start = STAT.windows(4).position(|w| w == b" 777").unwrap() + 1;
        for len in 0..=start {
            let e = parse_stat(&STAT[..len]).err();
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::InvalidData), "{len}");
        }
        assert_eq!(parse_stat(&STAT[..start + 3]).unwrap().starttime, 777);
    }

    #[test]
    fn stat_fields_after_the_name_must_be_ascii_numbers() {
        let garbage = [
            &b"1 (x) R 1 1 1 0 -1 0 0 0 0 0 \xff 2 0 0 20 0 1 0 99\n"[..],
            b"1 (x) R one 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 99\n",
            b"1 (x) R 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 -99\n",
            b"\xff (x) R 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 99\n",
            b"1 )x( R 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 99\n",
        ];
        for line in garbage {
            assert!(parse_stat(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn status_fields_whatever_the_name() {
        let text = b"Name:\tw\xc3\nUmask:\t0022\nUid:\t33\t0\t0\t0\nVmSize:\t 2048 kB\n\
                     VmRSS:\t 1024 kB\nThreads:\t3\nCpus_allowed_list:\t0-3,8,10-11\n";
        let status = parse_status(text).unwrap();
        assert_eq!(status.uid, 33);
        assert_eq!((status.rss, status.vms), (1024 * 1024, 2048 * 1024));
        assert_eq!(status.threads, 3);
        assert_eq!(status.cpus_allowed, Some(7));
        // kernel threads and zombies have no memory lines
        let bare = parse_status(b"Name:\tkthreadd\nUid:\t0\t0\t0\t0\nThreads:\t1\n").unwrap();
        assert_eq!((bare.rss, bare.vms, bare.cpus_allowed), (0, 0, None));
        assert!(parse_status(b"Name:\tx\nThreads:\t1\n").is_err());
        assert_eq!(cpu_count("0"), Some(1));
        assert_eq!(cpu_count("3-1"), None);
        assert_eq!(cpu_count(""), None);
    }

    #[test]
    fn status_with_a_name_that_looks_like_its_fields_is_read_by_its_own_lines() {
        let text = b"Name:\tUid: 0 Threads: 9\nUid:\t1000\t1000\t1000\t1000\nThreads:\t2\n";
        let status = parse_status(text).unwrap();
        assert_eq!((status.uid, status.threads), (1000, 2));
    }

    #[test]
    fn status_garbage_in_a_wanted_line_or_cut_short_is_malformed_never_a_panic() {
        assert!(parse_status(b"Uid:\t\xff\t0\nThreads:\t1\n").is_err());
        assert!(parse_status(b"Uid:\tx\t0\nThreads:\t1\n").is_err());
        assert!(parse_status(b"Uid:\t0\nThreads:\t-1\n").is_err());
        let whole = b"Name:\tw\nUid:\t33\t0\t0\t0\nVmRSS:\t1024 kB\nThreads:\t3\n";
        for len in 0..whole.len() {
            // cut anywhere: an error, or the figures of the lines it kept; never a panic
            let _ = parse_status(&whole[..len]);
        }
        let huge = b"Uid:\t0\nVmRSS:\t99999999999999999999 kB\nVmSize:\t18446744073709551615 kB\n\
                     Threads:\t1\n";
        let status = parse_status(huge).unwrap();
        assert_eq!((status.rss, status.vms), (0, u64::MAX));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_count("0-3,8,10-11"), Some(7));
        assert_eq!(cpu_count("0-1,"), None);
        assert_eq!(cpu_count("a-b"), None);
        // a list no kernel writes must not overflow the count
        assert_eq!(cpu_count("0-4294967295"), None);
    }

    #[test]
    fn io_counters_of_a_process() {
        assert_eq!(
            parse_io(io_file(4096, 81_920).as_bytes()),
            Some(
                Counters::default()
                    .with(Counter::ReadBytes, 4096)
                    .with(Counter::WriteBytes, 81_920)
            )
        );
        assert_eq!(parse_io(b"rchar: 1\nread_bytes: 2\n"), None);
        assert_eq!(parse_io(b"read_bytes: x\nwrite_bytes: 1\n"), None);
        assert_eq!(parse_io(b"read_bytes: 1\nwrite_bytes: \xff\n"), None);
        assert_eq!(parse_io(b""), None);
        let whole = io_file(1, 2);
        let cut = whole.find("write_bytes").unwrap();
        assert_eq!(parse_io(&whole.as_bytes()[..cut]), None);
    }

    #[test]
    fn open_files_limit_is_the_soft_limit() {
        let limits = b"Limit                     Soft Limit           Hard Limit           Units\n\
                       Max cpu time              unlimited            unlimited            s\n\
                       Max open files            1024                 524288               files\n";
        assert_eq!(open_files_limit(limits), Some(1024));
        let unlimited =
            b"Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_files_limit(unlimited), None);
        assert_eq!(open_files_limit(b"Max open files"), None);
        assert_eq!(
            open_files_limit(b"\xff\nMax open files 12 12 files\n"),
            Some(12)
        );
        assert_eq!(open_files_limit(b""), None);
    }

    #[test]
    fn every_line_of_a_cgroup_file() {
        let hybrid = "12:pids:/system.slice/nginx.service\n0::/system.slice/nginx.service\n";
        assert_eq!(cgroup_text(hybrid.as_bytes()).as_deref(), Some(hybrid));
        assert_eq!(
            cgroup_text(b"0::/a b\xff\n").as_deref(),
            Some("0::/a b\u{fffd}\n")
        );
        assert_eq!(cgroup_text(b""), None);
        assert_eq!(cgroup_text(b"\n"), None);
    }

    #[test]
    fn pss_and_uss_of_a_smaps_rollup() {
        let text = b"55d0c1e00000-7ffd1e3f2000 ---p 00000000 00:00 0  [rollup]\nRss:  4096 kB\n\
                     Pss:  2048 kB\nPrivate_Clean:  100 kB\nPrivate_Dirty:  412 kB\n";
        assert_eq!(smaps_rollup(text), (Some(2048 * 1024), Some(512 * 1024)));
        assert_eq!(
            smaps_rollup(b"Pss: 1 kB\n"),
            (Some(1024), Some(0)),
            "no private lines: nothing private"
        );
        assert_eq!(
            smaps_rollup(b"Rss: 1 kB\nPrivate_Dirty: 1 kB\n"),
            (None, None)
        );
        assert_eq!(smaps_rollup(b"Pss: x kB\n"), (None, None));
    }

    #[test]
    fn boot_time_and_cpus_of_the_kernel_stat() {
        let text = "cpu  10 0 10 100\ncpu0 5 0 5 50\ncpu1 5 0 5 50\nintr 1\nbtime 1700000000\n";
        assert_eq!(kernel_stat(text), (Some(1_700_000_000), 2));
        assert_eq!(kernel_stat("cpu  1 1 1 1\n"), (None, 1), "at least one CPU");
        assert_eq!(kernel_stat("btime soon\ncpu0 1\n"), (None, 1));
    }

    #[test]
    fn kib_fields_in_bytes() {
        let meminfo = "MemTotal:       16318484 kB\nMemFree:  1 kB\n";
        assert_eq!(kib_field(meminfo, "MemTotal:"), Some(16_318_484 * 1024));
        assert_eq!(kib_field(meminfo, "Cached:"), None);
        assert_eq!(
            kib_field("MemTotal: 18446744073709551615 kB", "MemTotal:"),
            None
        );
        assert_eq!(kib_field("MemTotal:", "MemTotal:"), None);
    }
}
