//! Selection step: which of the sampled processes are the service's workers.
//!
//! The scan in `sample` only asks the [`NameFilter`] about each process's comm, so that
//! processes that cannot match cost one small read; everything else here is a pure function
//! over the sampled processes.

use std::collections::{HashMap, HashSet};

use crate::sample::ProcSample;

/// The kernel keeps at most this many bytes of a command name (TASK_COMM_LEN minus the NUL).
const COMM_LEN: usize = 15;

/// `-n NAME`: the command name as `ps -o comm` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFilter {
    name: String,
}

/// What the comm alone says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommMatch {
    No,
    Yes,
    /// The comm is the kernel's truncation of a long name: only argv[0] or the executable
    /// can tell whether the process is really ours.
    NeedsFullName,
}

impl NameFilter {
    pub fn new(name: &str) -> NameFilter {
        NameFilter {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn check_comm(&self, comm: &[u8]) -> CommMatch {
        let name = self.name.as_bytes();
        if name.len() <= COMM_LEN {
            if comm == name {
                CommMatch::Yes
            } else {
                CommMatch::No
            }
        } else if comm == &name[..COMM_LEN] {
            CommMatch::NeedsFullName
        } else {
            CommMatch::No
        }
    }

    /// For long names: the basename of argv[0] or of the executable must equal the name.
    pub fn check_full_name(&self, argv0: Option<&str>, exe: Option<&str>) -> bool {
        [argv0, exe]
            .into_iter()
            .flatten()
            .any(|path| basename(path) == self.name)
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Everything that decides which processes are workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: Option<NameFilter>,
    /// `-u`: real uid of the workers
    pub uid: Option<u32>,
    /// `--include-master`: count the master as a worker too
    pub include_master: bool,
}

/// The check's own process and its parent, which must never be counted: NRPE and Icinga often
/// wrap a check in `sh -c`, and `check_procs` counted that shell for years.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnProcesses {
    pub pid: Option<i32>,
    pub parent: Option<i32>,
}

impl OwnProcesses {
    fn contains(&self, p: &ProcSample) -> bool {
        let own = |pid: Option<i32>| pid == Some(p.pid);
        own(self.pid) || own(self.parent) || (self.pid.is_some() && self.pid == Some(p.ppid))
    }
}

/// The outcome of selection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// the processes whose figures the check reports
    pub workers: Vec<ProcSample>,
    /// masters found (named in the output; among the workers too with `--include-master`)
    pub masters: Vec<ProcSample>,
}

/// Picks the workers out of the processes whose name matched.
///
/// A master is a matched process whose parent is not matched but which has matched children:
/// nginx or apache run the master as root and the workers as www-data, and the master's
/// figures would distort the workers' averages. It is found before the user filter, so that
/// `-u www-data` can still name the root master.
pub fn select(candidates: Vec<ProcSample>, selector: &Selector, own: OwnProcesses) -> Selection {
    let matched: Vec<ProcSample> = candidates
        .into_iter()
        .filter(|p| !p.kernel_thread && !own.contains(p))
        .collect();
    let pids: HashSet<i32> = matched.iter().map(|p| p.pid).collect();
    let mut children: HashMap<i32, usize> = HashMap::new();
    for p in &matched {
        if pids.contains(&p.ppid) {
            *children.entry(p.ppid).or_default() += 1;
        }
    }
    let is_master = |p: &ProcSample| !pids.contains(&p.ppid) && children.contains_key(&p.pid);
    let user_ok = |p: &ProcSample| selector.uid.is_none_or(|uid| p.uid == uid);

    let mut selection = Selection::default();
    for p in matched {
        let master = is_master(&p);
        if master {
            selection.masters.push(p.clone());
        }
        if (!master || selector.include_master) && user_ok(&p) {
            selection.workers.push(p);
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, ppid: i32, uid: u32) -> ProcSample {
        ProcSample {
            pid,
            ppid,
            uid,
            comm: "nginx".into(),
            ..ProcSample::default()
        }
    }

    fn selector() -> Selector {
        Selector {
            name: Some(NameFilter::new("nginx")),
            uid: None,
            include_master: false,
        }
    }

    fn pids(list: &[ProcSample]) -> Vec<i32> {
        list.iter().map(|p| p.pid).collect()
    }

    #[test]
    fn comm_matches_exactly() {
        let filter = NameFilter::new("nginx");
        assert_eq!(filter.check_comm(b"nginx"), CommMatch::Yes);
        assert_eq!(filter.check_comm(b"nginx2"), CommMatch::No);
        assert_eq!(filter.check_comm(b"ngin"), CommMatch::No);
        assert_eq!(filter.check_comm(b"NGINX"), CommMatch::No);
    }

    #[test]
    fn long_names_need_argv0_or_exe() {
        let filter = NameFilter::new("php-fpm8.2-long-name");
        assert_eq!(
            filter.check_comm(b"php-fpm8.2-long"),
            CommMatch::NeedsFullName
        );
        assert_eq!(filter.check_comm(b"php-fpm8.2-lon"), CommMatch::No);
        assert!(filter.check_full_name(Some("/usr/sbin/php-fpm8.2-long-name"), None));
        assert!(filter.check_full_name(None, Some("/usr/sbin/php-fpm8.2-long-name")));
        assert!(filter.check_full_name(Some("php-fpm8.2-long-name"), None));
        assert!(!filter.check_full_name(Some("/usr/sbin/php-fpm8.2-long-other"), None));
        assert!(!filter.check_full_name(None, None));
        // exactly 15 bytes is never truncated
        let fifteen = NameFilter::new("abcdefghijklmno");
        assert_eq!(fifteen.check_comm(b"abcdefghijklmno"), CommMatch::Yes);
    }

    #[test]
    fn master_is_named_not_counted() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33), proc(814, 812, 33)];
        let s = select(procs, &selector(), OwnProcesses::default());
        assert_eq!(pids(&s.workers), [813, 814]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn include_master_counts_it() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33)];
        let s = select(
            procs,
            &Selector {
                include_master: true,
                ..selector()
            },
            OwnProcesses::default(),
        );
        assert_eq!(pids(&s.workers), [812, 813]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn flat_processes_are_all_workers() {
        let procs = vec![proc(10, 1, 0), proc(11, 1, 0), proc(12, 5, 0)];
        let s = select(procs, &selector(), OwnProcesses::default());
        assert_eq!(pids(&s.workers), [10, 11, 12]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn user_filter_keeps_master_known() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33), proc(900, 1, 33)];
        let s = select(
            procs,
            &Selector {
                uid: Some(33),
                ..selector()
            },
            OwnProcesses::default(),
        );
        assert_eq!(pids(&s.workers), [813, 900]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn kernel_threads_never_match() {
        let mut kthread = proc(50, 2, 0);
        kthread.kernel_thread = true;
        let s = select(vec![kthread], &selector(), OwnProcesses::default());
        assert!(s.workers.is_empty());
    }

    // Regression guard for check_procs' old bug: the wrapping `sh -c` was counted.
    #[test]
    fn never_counts_itself_its_parent_or_children() {
        let procs = vec![
            proc(100, 1, 0),   // the shell that runs the check
            proc(101, 100, 0), // the check itself
            proc(102, 101, 0), // a child of the check
            proc(200, 1, 0),   // a real worker
        ];
        let own = OwnProcesses {
            pid: Some(101),
            parent: Some(100),
        };
        let s = select(procs, &selector(), own);
        assert_eq!(pids(&s.workers), [200]);
        assert!(s.masters.is_empty());
    }
}
