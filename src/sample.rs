//! Acquisition step: read a proc tree (the real `/proc` or a fixture shaped like it) into
//! plain [`ProcSample`] values. This is the only module that reads `/proc` or uses `procfs`.
//!
//! Every process costs one read of its `comm`; only processes whose name can match get their
//! `stat` and `status` read. Time and boot time come from the tree's own `uptime` and `stat`, so
//! a fixture tree fixes them and tests can assert exact CPU figures.

use std::fs;
use std::io::{self, ErrorKind, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use procfs::process::{Stat, Status};
use procfs::{FromBufRead, FromRead, Uptime};

use crate::select::{CommMatch, NameFilter, OwnProcesses};

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u32 = 0x0020_0000;

/// One process as the check needs it; no `procfs` handle is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcSample {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
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
    /// processes whose name matched (all processes when no name was given)
    pub procs: Vec<ProcSample>,
    pub skipped: Skipped,
}

/// Reads the proc tree at `root`. Fails only when the tree itself is unusable (no `uptime`
/// or `stat`, or the directory cannot be listed); single processes are skipped and counted.
pub fn scan(root: &Path, name: Option<&NameFilter>) -> Result<Snapshot> {
    let uptime = read_uptime(root)?;
    let (btime, cpus) = read_kernel_stat(root)?;
    let mut snapshot = Snapshot {
        uptime,
        btime,
        clock_ticks: procfs::ticks_per_second(),
        cpus,
        ..Snapshot::default()
    };
    let entries = fs::read_dir(root).with_context(|| format!("listing {}", root.display()))?;
    let mut reader = Reader::new(root);
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        match reader.process(pid, name) {
            Ok(Some(p)) => snapshot.procs.push(p),
            Ok(None) => {}
            Err(e) if vanished(&e) => snapshot.skipped.vanished += 1,
            Err(_) => snapshot.skipped.unreadable += 1,
        }
    }
    Ok(snapshot)
}

/// The check's own pid and its parent's, from the tree's `self` link: in a fixture tree that
/// has none, nothing is excluded.
pub fn own_processes(root: &Path) -> OwnProcesses {
    let pid = fs::read_link(root.join("self"))
        .ok()
        .and_then(|target| target.to_str().and_then(|s| s.parse::<i32>().ok()));
    let parent = pid
        .and_then(|pid| Stat::from_file(root.join(pid.to_string()).join("stat")).ok())
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

/// Boot time and CPU count from `stat`. Parsed by hand: procfs's `KernelStats` needs every
/// CPU time line to be complete, and we need two facts from it.
fn read_kernel_stat(root: &Path) -> Result<(u64, usize)> {
    let path = root.join("stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
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
    let btime = btime.with_context(|| format!("{}: no btime line", path.display()))?;
    Ok((btime, cpus.max(1)))
}

/// Reads one process's files into reused buffers, so non-matching processes allocate nothing.
struct Reader {
    /// `<root>/<pid>/<file>`, rebuilt in place for each read
    path: String,
    root_len: usize,
    buf: Vec<u8>,
}

impl Reader {
    fn new(root: &Path) -> Reader {
        let path = root.to_string_lossy().trim_end_matches('/').to_string();
        Reader {
            root_len: path.len(),
            path,
            buf: Vec::with_capacity(4096),
        }
    }

    /// `Ok(None)` when the process is not a candidate.
    fn process(&mut self, pid: i32, name: Option<&NameFilter>) -> io::Result<Option<ProcSample>> {
        if let Some(filter) = name {
            self.read(pid, "comm")?;
            let comm = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            match filter.check_comm(comm) {
                CommMatch::No => return Ok(None),
                CommMatch::Yes => {}
                CommMatch::NeedsFullName => {
                    // exe is unreadable for other users' processes unless we are root;
                    // argv[0] is the fallback
                    let exe = fs::read_link(self.file(pid, "exe")).ok();
                    let exe = exe.as_deref().and_then(Path::to_str);
                    self.read(pid, "cmdline")?;
                    let argv0 = self.buf.split(|&b| b == 0).next().unwrap_or_default();
                    let argv0 = std::str::from_utf8(argv0).ok();
                    if !filter.check_full_name(argv0, exe) {
                        return Ok(None);
                    }
                }
            }
        }
        self.read(pid, "stat")?;
        let stat = Stat::from_read(&self.buf[..]).map_err(to_io)?;
        self.read(pid, "status")?;
        let status = Status::from_buf_read(&self.buf[..]).map_err(to_io)?;
        Ok(Some(ProcSample {
            pid: stat.pid,
            ppid: stat.ppid,
            comm: stat.comm,
            state: stat.state,
            kernel_thread: stat.flags & PF_KTHREAD != 0,
            uid: status.ruid,
            starttime: stat.starttime,
            utime: stat.utime,
            stime: stat.stime,
            cutime: stat.cutime.max(0) as u64,
            cstime: stat.cstime.max(0) as u64,
            rss: status.vmrss.unwrap_or(0).saturating_mul(1024),
            vms: status.vmsize.unwrap_or(0).saturating_mul(1024),
        }))
    }

    fn file(&mut self, pid: i32, file: &str) -> &str {
        use std::fmt::Write as _;
        self.path.truncate(self.root_len);
        let _ = write!(self.path, "/{pid}/{file}");
        &self.path
    }

    fn read(&mut self, pid: i32, file: &str) -> io::Result<()> {
        self.file(pid, file);
        self.buf.clear();
        fs::File::open(&self.path)?.read_to_end(&mut self.buf)?;
        Ok(())
    }
}

fn to_io(e: procfs::ProcError) -> io::Error {
    match e {
        procfs::ProcError::NotFound(_) => io::Error::from(ErrorKind::NotFound),
        procfs::ProcError::PermissionDenied(_) => io::Error::from(ErrorKind::PermissionDenied),
        procfs::ProcError::Io(e, _) => e,
        other => io::Error::new(ErrorKind::InvalidData, other.to_string()),
    }
}

/// ENOENT and ESRCH both mean the process exited between listing and reading.
fn vanished(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(3)
}
