//! Selection step: which of the sampled processes are the service's workers, and which its
//! master. The filters themselves (name, cgroup, command line, ...) live in `filter`, and
//! `sample` has already read only the processes that pass them; what is left here is the
//! process tree: telling a master from its workers, honouring `--ppid`/`--pidfile`,
//! `--include-master`, `-u` and `-s`, and never counting the check itself. A pure function
//! over the sampled processes.

use std::collections::HashSet;

use crate::filter::Selector;
use crate::sample::{OwnProcesses, ProcSample};

/// How the master is known for this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Master {
    /// no `--ppid`/`--pidfile`: found from the process tree
    Detect,
    /// named by the operator and running
    Given(Box<ProcSample>),
    /// named by the operator but not running (or not the process the pidfile meant)
    Missing,
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
/// A master is a matched process whose parent is not matched and which is the parent of a
/// selected worker: nginx or apache run the master as root and the workers as www-data, and
/// the master's figures would distort the workers' averages. It need not pass the user and
/// state filters, so that `-u www-data` can still name the root master (see
/// [`detect_masters`]). With `--ppid`/`--pidfile` the master
/// is the named process and the workers are its children.
///
/// Pid 1 is never a master: it reaps every orphan on the host, so its reaped-children time
/// (which the metrics add to the workers' CPU as recovered from exited workers) is the whole
/// host's, not the service's. With `--ppid 1` or a pidfile holding 1 its children are still
/// the workers, but pid 1 is neither named nor counted (not even with `--include-master`).
pub fn select(
    candidates: Vec<ProcSample>,
    selector: &Selector,
    own: OwnProcesses,
    master: &Master,
) -> Selection {
    let matched: Vec<ProcSample> = candidates
        .into_iter()
        .filter(|p| !p.kernel_thread && !own.contains(p))
        .collect();
    let worker_ok = |p: &ProcSample| {
        selector.uid.is_none_or(|uid| p.uid == uid)
            && selector.states.as_ref().is_none_or(|s| s.contains(p.state))
    };
    let mut selection = Selection::default();
    match master {
        Master::Missing => {}
        Master::Given(parent) => {
            if parent.pid != INIT {
                selection.masters.push((**parent).clone());
                if selector.include_master && worker_ok(parent) {
                    selection.workers.push((**parent).clone());
                }
            }
            selection.workers.extend(
                matched
                    .into_iter()
                    .filter(|p| p.ppid == parent.pid && p.pid != parent.pid && worker_ok(p)),
            );
        }
        Master::Detect => {
            let masters = detect_masters(&matched, selector, worker_ok);
            for p in matched {
                let master = masters.contains(&p.pid);
                if master {
                    selection.masters.push(p.clone());
                }
                if (!master || selector.include_master) && worker_ok(&p) {
                    selection.workers.push(p);
                }
            }
        }
    }
    selection
}

/// The pid of init, which reaps every orphan on the host.
const INIT: i32 = 1;

/// The masters among the matched processes: those whose parent is not matched and at least
/// one of whose children is a selected worker (it passed `-u` and `-s` too).
///
/// A master's reaped-children time and I/O are added to the workers' figures as exited
/// workers', so it must be the workers' parent, not merely a process of the same name: any
/// user can start a pair named like the service, and that pair's reaped children are not the
/// service's. The master itself need not pass `-u`/`-s` (a root master's workers run as
/// another user), but it must have passed a filter that says which service this is (name,
/// command line, executable, cgroup); `-u` and `-s` alone say nothing about the service: with
/// only those, every process of the user is matched and pid 1, their common parent, would be
/// taken for the master of them all. So then there is no master.
fn detect_masters(
    matched: &[ProcSample],
    selector: &Selector,
    worker_ok: impl Fn(&ProcSample) -> bool,
) -> HashSet<i32> {
    if !selector.names_the_service() {
        return HashSet::new();
    }
    let pids: HashSet<i32> = matched.iter().map(|p| p.pid).collect();
    let parents_of_workers: HashSet<i32> = matched
        .iter()
        .filter(|p| pids.contains(&p.ppid) && worker_ok(p))
        .map(|p| p.ppid)
        .collect();
    matched
        .iter()
        .filter(|p| p.pid != INIT && !pids.contains(&p.ppid) && parents_of_workers.contains(&p.pid))
        .map(|p| p.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{CgroupFilter, CmdlineFilter, NameFilter};

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
            ..Selector::default()
        }
    }

    /// The selection with the master found from the process tree, as without `--ppid`.
    fn detect(procs: Vec<ProcSample>, selector: &Selector) -> Selection {
        select(procs, selector, OwnProcesses::default(), &Master::Detect)
    }

    fn pids(list: &[ProcSample]) -> Vec<i32> {
        list.iter().map(|p| p.pid).collect()
    }

    #[test]
    fn master_is_named_not_counted() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33), proc(814, 812, 33)];
        let s = detect(procs, &selector());
        assert_eq!(pids(&s.workers), [813, 814]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn include_master_counts_it() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33)];
        let s = detect(
            procs,
            &Selector {
                include_master: true,
                ..selector()
            },
        );
        assert_eq!(pids(&s.workers), [812, 813]);
        assert_eq!(pids(&s.masters), [812]);
    }

    #[test]
    fn flat_processes_are_all_workers() {
        let procs = vec![proc(10, 1, 0), proc(11, 1, 0), proc(12, 5, 0)];
        let s = detect(procs, &selector());
        assert_eq!(pids(&s.workers), [10, 11, 12]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn user_filter_keeps_master_known() {
        let procs = vec![proc(812, 1, 0), proc(813, 812, 33), proc(900, 1, 33)];
        let s = detect(
            procs,
            &Selector {
                uid: Some(33),
                ..selector()
            },
        );
        assert_eq!(pids(&s.workers), [813, 900]);
        assert_eq!(pids(&s.masters), [812]);
    }

    // Regression (issue 16.1): another user's pair named like the service was a master, and
    // its reaped children's time and I/O were added to the workers' as exited workers'.
    #[test]
    fn a_master_must_be_the_parent_of_a_selected_worker() {
        let procs = vec![
            proc(812, 1, 0),      // the service's master (root)
            proc(813, 812, 33),   // its worker
            proc(900, 1, 1000),   // another user's process of the same name...
            proc(901, 900, 1000), // ...with a child of the same name
        ];
        let s = detect(
            procs,
            &Selector {
                uid: Some(33),
                ..selector()
            },
        );
        assert_eq!(pids(&s.workers), [813]);
        assert_eq!(pids(&s.masters), [812]);
        // a child that fails -s does not make its parent a master either
        let mut zombie = proc(901, 900, 33);
        zombie.state = 'Z';
        let mut master = proc(900, 1, 0);
        master.state = 'S';
        let s = detect(
            vec![master, zombie],
            &Selector {
                states: Some("RS".into()),
                ..selector()
            },
        );
        assert!(s.masters.is_empty(), "{:?}", pids(&s.masters));
        assert_eq!(pids(&s.workers), [900]);
    }

    // Regression (issue 9.3): with -u alone, pid 1 was "master 1" and its reaped-children
    // time of every orphan on the host was added to the workers' CPU.
    #[test]
    fn user_alone_has_no_master() {
        let procs = vec![
            proc(1, 0, 0),
            proc(640, 1, 65534),
            proc(641, 640, 65534),
            proc(700, 1, 65534),
        ];
        let s = detect(
            procs,
            &Selector {
                uid: Some(65534),
                ..Selector::default()
            },
        );
        assert_eq!(pids(&s.workers), [640, 641, 700]);
        assert!(s.masters.is_empty(), "{:?}", pids(&s.masters));
        // -s does not name the service either
        let s = detect(
            vec![proc(1, 0, 0), proc(640, 1, 0)],
            &Selector {
                states: Some("S".into()),
                ..Selector::default()
            },
        );
        assert!(s.masters.is_empty());
    }

    #[test]
    fn service_filters_allow_a_master() {
        let procs = || vec![proc(812, 1, 0), proc(813, 812, 33)];
        let with = |selector: Selector| {
            let s = detect(procs(), &selector);
            pids(&s.masters)
        };
        let filters = [
            Selector {
                cmdline: Some(CmdlineFilter::new("nginx").unwrap()),
                ..Selector::default()
            },
            Selector {
                exe: Some("/usr/sbin/nginx".into()),
                ..Selector::default()
            },
            Selector {
                cgroup: Some(CgroupFilter::Unit("nginx.service".into())),
                ..Selector::default()
            },
            Selector {
                uid: Some(33),
                ..selector()
            },
        ];
        for filter in filters {
            assert_eq!(with(filter.clone()), [812], "{filter:?}");
        }
    }

    #[test]
    fn pid_1_is_never_a_master() {
        // `-n systemd`: init and the user managers it started are all just processes named so
        let procs = vec![proc(1, 0, 0), proc(900, 1, 1000), proc(901, 1, 1001)];
        let s = detect(
            procs,
            &Selector {
                name: Some(NameFilter::new("systemd")),
                include_master: true,
                ..Selector::default()
            },
        );
        assert_eq!(pids(&s.workers), [1, 900, 901]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn given_pid_1_has_workers_but_is_no_master() {
        // --ppid 1 or a pidfile holding 1: the children are the workers, but init's
        // reaped-children time is the host's, so it must not be a master to recover from
        let procs = vec![proc(1, 0, 0), proc(640, 1, 33), proc(641, 1, 33)];
        let s = select(
            procs,
            &Selector {
                include_master: true,
                ..selector()
            },
            OwnProcesses::default(),
            &Master::Given(Box::new(proc(1, 0, 0))),
        );
        assert_eq!(pids(&s.workers), [640, 641]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn kernel_threads_never_match() {
        let mut kthread = proc(50, 2, 0);
        kthread.kernel_thread = true;
        let s = detect(vec![kthread], &selector());
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
        let s = select(procs, &selector(), own, &Master::Detect);
        assert_eq!(pids(&s.workers), [200]);
        assert!(s.masters.is_empty());
    }

    #[test]
    fn given_master_takes_its_children_only() {
        let procs = vec![
            proc(812, 1, 0),
            proc(813, 812, 33),
            proc(900, 1, 33),
            proc(901, 900, 33),
        ];
        let parent = proc(812, 1, 0);
        let s = select(
            procs,
            &selector(),
            OwnProcesses::default(),
            &Master::Given(Box::new(parent)),
        );
        assert_eq!(pids(&s.workers), [813]);
        assert_eq!(pids(&s.masters), [812]);
        let gone = select(
            vec![proc(813, 812, 33)],
            &selector(),
            OwnProcesses::default(),
            &Master::Missing,
        );
        assert!(gone.workers.is_empty() && gone.masters.is_empty());
    }

    #[test]
    fn state_filter() {
        let mut zombie = proc(11, 1, 0);
        zombie.state = 'Z';
        let mut running = proc(12, 1, 0);
        running.state = 'R';
        let sel = Selector {
            states: Some("RS".into()),
            ..selector()
        };
        let s = detect(vec![zombie, running], &sel);
        assert_eq!(pids(&s.workers), [12]);
    }
}
