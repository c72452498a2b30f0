//! Acquisition, the scan's filters: each process meets the operator's filters cheapest first
//! (see [`Plan`]), so that a process that is not ours costs one small read whatever it holds.
//! Kept apart from the reads (`proc_dir`) and from which pids are read (`pids`): this is where
//! the order of the filters, and the reason for it, lives.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;

use crate::filter::{exe_matches, CommMatch, NameFilter, Selector};

use super::parse::{cgroup_text, parse_stat, parse_status, StatFields, StatusFields, PF_KTHREAD};
use super::proc_dir::{vanished, ProcDir, ProcReader};
use super::values::{ProcSample, Snapshot};

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
pub(super) struct Plan<'a> {
    selector: &'a Selector,
    /// the pid of `--ppid`/`--pidfile`: the workers are its children
    parent: Option<i32>,
    /// step 2 sets aside rather than rejects (see above)
    masters_detected: bool,
}

impl Plan<'_> {
    pub(super) fn new(selector: &Selector, parent: Option<i32>) -> Plan<'_> {
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
    fn step_two(&self, why: &'static str) -> ScanVerdict {
        if self.masters_detected {
            ScanVerdict::SetAside(why)
        } else {
            ScanVerdict::Rejected(why)
        }
    }

    /// True when there is no step 2: a full scan's one read by path may then be the command
    /// line or the executable.
    fn no_step_two(&self) -> bool {
        self.parent.is_none() && self.selector.uid.is_none() && self.selector.states.is_none()
    }
}

/// Why a process was not a candidate, for `-vvv`. A candidate is boxed: most processes are
/// rejected, and a rejection need not move a whole sample around.
pub(super) enum ScanVerdict {
    Candidate(Box<ProcSample>),
    Rejected(&'static str),
    /// failed a filter only workers must pass, and may still be a master: looked at again if
    /// it is a candidate's parent (see [`Plan`])
    SetAside(&'static str),
    /// passed every other filter, but the executable `--exe` names could not be read (another
    /// user's process, without root): it may be a worker
    Undecided,
}

/// What one step of the filters decided: go on with what it read, or this verdict.
type Step<T> = Result<T, ScanVerdict>;

/// How a process came to be looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Visit {
    /// listed in a full scan, where most processes are not ours
    Listed,
    /// from a shortlist (a master's children, a unit's cgroup): mostly ours
    Shortlisted,
    /// set aside by step 2 and a candidate's parent: only the service's filters apply
    Parent,
}

/// The filters at work on one scan: the reader they read with, and what they leave for the
/// scan to read again or to show with `-vvv`.
pub(super) struct Sieve {
    reader: ProcReader,
    /// `-vvv`: record every process looked at
    tracing: bool,
    pub(super) trace: Vec<String>,
    /// the pids set aside by the scan's step 2 (see [`Plan`])
    pub(super) set_aside: Vec<i32>,
}

impl Sieve {
    pub(super) fn new(reader: ProcReader, tracing: bool) -> Sieve {
        Sieve {
            reader,
            tracing,
            trace: Vec::new(),
            set_aside: Vec::new(),
        }
    }

    /// Reads one process into the snapshot, or counts why it could not be read.
    pub(super) fn visit(&mut self, pid: i32, plan: &Plan, visit: Visit, snapshot: &mut Snapshot) {
        let outcome = self.process(pid, plan, visit);
        if self.tracing {
            let line = match &outcome {
                Ok(ScanVerdict::Candidate(p)) if visit == Visit::Parent => {
                    format!("pid {pid} {}: candidate (as a candidate's parent)", p.comm)
                }
                Ok(ScanVerdict::Candidate(p)) => format!("pid {pid} {}: candidate", p.comm),
                Ok(ScanVerdict::Rejected(why)) => format!("pid {pid}: no match ({why})"),
                Ok(ScanVerdict::SetAside(why)) => {
                    format!("pid {pid}: not a worker ({why}); looked at again if a parent")
                }
                Ok(ScanVerdict::Undecided) => {
                    format!("pid {pid}: could be a worker, but its exe is not readable")
                }
                Err(e) if vanished(e) => format!("pid {pid}: exited while being read"),
                Err(e) => format!("pid {pid}: unreadable ({e})"),
            };
            self.trace.push(line);
        }
        match outcome {
            Ok(ScanVerdict::Candidate(p)) => snapshot.procs.push(*p),
            Ok(ScanVerdict::Rejected(_)) => {}
            Ok(ScanVerdict::SetAside(_)) => self.set_aside.push(pid),
            Ok(ScanVerdict::Undecided) => snapshot.skipped.undecided += 1,
            Err(e) if vanished(&e) => snapshot.skipped.vanished += 1,
            Err(_) => snapshot.skipped.unreadable += 1,
        }
    }

    /// The filters in [`Plan`]'s order. In a full scan the first one is tried on one file
    /// read by path, so a process that fails it costs that one read. Any other process has
    /// its directory opened, and every filter and every figure is taken through it: the row
    /// and the decision are about one process even if the pid was reused since the first
    /// read.
    fn process(&mut self, pid: i32, plan: &Plan, visit: Visit) -> io::Result<ScanVerdict> {
        if visit == Visit::Listed {
            if let Some(verdict) = self.cheap_verdict(pid, plan)? {
                return Ok(verdict);
            }
        }
        let dir = self.reader.open_dir(pid)?;
        self.reader.read_at(&dir, "stat")?;
        let stat = parse_stat(self.reader.bytes())?;
        let (full_name, cgroup) = match self.service_filters(&dir, &stat, plan.selector)? {
            Ok(passed) => passed,
            Err(verdict) => return Ok(verdict),
        };
        let status = match self.worker_filters(&dir, &stat, plan, visit)? {
            Ok(status) => status,
            Err(verdict) => return Ok(verdict),
        };
        if let Err(verdict) = self.costly_filters(&dir, full_name, plan.selector)? {
            // a candidate's parent that cannot be checked is just not its master
            return Ok(match (verdict, visit) {
                (ScanVerdict::Undecided, Visit::Parent) => ScanVerdict::Rejected("executable"),
                (verdict, _) => verdict,
            });
        }
        let status = match status {
            Some(status) => status,
            None => {
                self.reader.read_at(&dir, "status")?;
                parse_status(self.reader.bytes())?
            }
        };
        let mut p = self.reader.finish(&dir, stat, status);
        p.cgroup = cgroup;
        Ok(ScanVerdict::Candidate(Box::new(p)))
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
            return Ok(Err(ScanVerdict::Rejected("kernel thread")));
        }
        let mut full_name = None;
        if let Some(filter) = &selector.name {
            match filter.check_comm(stat.comm.as_bytes()) {
                CommMatch::No => return Ok(Err(ScanVerdict::Rejected("name"))),
                CommMatch::Yes => {}
                CommMatch::NeedsFullName => full_name = Some(filter),
            }
        }
        let mut cgroup = None;
        if let Some(filter) = &selector.cgroup {
            self.reader.read_at(dir, "cgroup")?;
            let text = String::from_utf8_lossy(self.reader.bytes());
            if !filter.matches(&text) {
                return Ok(Err(ScanVerdict::Rejected("cgroup")));
            }
            cgroup = cgroup_text(self.reader.bytes());
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
        self.reader.read_at(dir, "status")?;
        let fields = parse_status(self.reader.bytes())?;
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
            self.reader.read_at(dir, "cmdline")?;
            let argv0 = self
                .reader
                .bytes()
                .split(|&b| b == 0)
                .next()
                .unwrap_or_default();
            if !filter.check_full_name(Some(argv0), exe.as_deref()) {
                return Ok(Err(ScanVerdict::Rejected("name")));
            }
        }
        if let Some(filter) = &selector.cmdline {
            self.reader.read_at(dir, "cmdline")?;
            if !filter.matches(self.reader.bytes()) {
                return Ok(Err(ScanVerdict::Rejected("command line")));
            }
        }
        if let Some(want) = &selector.exe {
            let exe = match dir.link("exe") {
                Ok(exe) => exe,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Ok(Err(ScanVerdict::Undecided))
                }
                Err(e) => return Err(e),
            };
            if !exe_matches(want, &exe) {
                return Ok(Err(ScanVerdict::Rejected("executable")));
            }
        }
        Ok(Ok(()))
    }

    /// The first filter in [`Plan`]'s order that one file read by path can decide: Some when
    /// it decides. A long name's comm that may be ours passes; its full name is checked
    /// through the directory.
    fn cheap_verdict(&mut self, pid: i32, plan: &Plan) -> io::Result<Option<ScanVerdict>> {
        let selector = plan.selector;
        let (passes, why) = if let Some(filter) = &selector.name {
            self.reader.read(pid, "comm")?;
            let comm = self
                .reader
                .bytes()
                .strip_suffix(b"\n")
                .unwrap_or(self.reader.bytes());
            (filter.check_comm(comm) != CommMatch::No, "name")
        } else if let Some(filter) = &selector.cgroup {
            self.reader.read(pid, "cgroup")?;
            (
                filter.matches(&String::from_utf8_lossy(self.reader.bytes())),
                "cgroup",
            )
        } else if selector.uid.is_some() {
            self.reader.read(pid, "status")?;
            let uid = parse_status(self.reader.bytes())?.uid;
            return Ok(plan.uid_rejects(uid).map(|why| plan.step_two(why)));
        } else if !plan.no_step_two() {
            // the parent or the state: from `stat`, through the directory
            (true, "")
        } else if let Some(filter) = &selector.cmdline {
            self.reader.read(pid, "cmdline")?;
            (filter.matches(self.reader.bytes()), "command line")
        } else if let Some(want) = &selector.exe {
            let link = fs::read_link(self.reader.file(pid, "exe"))?;
            (exe_matches(want, link.as_os_str().as_bytes()), "executable")
        } else {
            (true, "")
        };
        Ok((!passes).then_some(ScanVerdict::Rejected(why)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::CmdlineFilter;
    use crate::sample::fake::{in_ten_seconds, pids, tree_with_unread_command_lines};
    use crate::sample::{scan, Skipped, Snapshot};

    /// A scan of the fixture `root` with `selector` (and `--ppid parent`), its trace kept.
    fn traced(root: &std::path::Path, selector: &Selector, parent: Option<i32>) -> Snapshot {
        scan(root, root, selector, parent, true, in_ten_seconds()).unwrap()
    }

    /// No process of the scan was skipped as unreadable or gone.
    fn no_skips(snapshot: &Snapshot) {
        assert_eq!(
            snapshot.skipped,
            Skipped::default(),
            "{:#?}",
            snapshot.trace
        );
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
        let snapshot = traced(root.path(), &selector, None);
        // no cmdline of nobody's was read; the root master was, as the worker's parent
        no_skips(&snapshot);
        assert_eq!(pids(&snapshot), [800, 801], "{:#?}", snapshot.trace);
        // as the state: the master is asleep, the worker running
        let worker = root.path().join("801/stat");
        let stat = fs::read_to_string(&worker).unwrap();
        fs::write(&worker, stat.replace(") S ", ") R ")).unwrap();
        let running = Selector {
            states: Some("R".into()),
            ..selector
        };
        let snapshot = traced(root.path(), &running, None);
        no_skips(&snapshot);
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
        let snapshot = traced(root.path(), &only_user, None);
        assert_eq!(pids(&snapshot), [801]);
        let children = Selector {
            cmdline: Some(CmdlineFilter::new("gunicorn").unwrap()),
            uid: Some(33),
            parent: Some(crate::filter::ParentSpec::Pid(800)),
            ..Selector::default()
        };
        let snapshot = traced(root.path(), &children, Some(800));
        no_skips(&snapshot);
        assert_eq!(pids(&snapshot), [801], "{:#?}", snapshot.trace);
        assert_eq!(snapshot.parent.map(|p| p.pid), Some(800));
    }
}
