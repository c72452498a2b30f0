//! The regression guard for the scan's cost: what the check opens per process, counted with
//! strace on a fixture tree (file counts, not wall time, so it holds on a busy machine).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use crate::fixture::{check_command, command, skip, state_dir, stdout_of, FakeProc, ProcTree};

fn strace_works() -> bool {
    command("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// How a file of a pid directory was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    /// by its full path, which makes the kernel look the pid up again
    Path,
    /// relative to a descriptor of the pid's directory, so it belongs to that one process
    DirFd,
}

/// One open (or readlink) under a pid directory of the tree. `file` is "." for the pid
/// directory itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Opened {
    file: String,
    via: Via,
}

impl Opened {
    fn path(file: &str) -> Opened {
        Opened {
            file: file.into(),
            via: Via::Path,
        }
    }

    /// The file, with every link of `fd/` as one `fd/*`.
    fn kind(&self) -> &str {
        match self.file.starts_with("fd/") {
            true => "fd/*",
            false => &self.file,
        }
    }
}

/// Every open and readlink the check made under each pid directory of `tree`, by pid, in
/// order. strace's `-y` names the directory a descriptor stands for, so an `openat(3</..>/11>,
/// "stat")` counts for pid 11.
fn files_opened(tree: &ProcTree, args: &[&str]) -> BTreeMap<i32, Vec<Opened>> {
    let state = state_dir();
    let log = state.path().join("strace.log");
    let check = check_command(tree.path(), &state.path().join("state"));
    let out = command("strace")
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=open,openat,readlink,readlinkat",
            "-o",
        ])
        .arg(&log)
        .arg(check.get_program())
        .args(check.get_args())
        .args(args)
        .output()
        .unwrap();
    // every tree here has the nginx master 10 with its three workers, and nothing else to say
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let label = match args {
        ["--ppid", pid, ..] => format!("children of {pid}"),
        _ => "nginx".to_string(),
    };
    assert_eq!(
        text.split_once(" | ").map(|(status, _)| status),
        Some(
            format!(
                "WORKERS OK - {label}: 3 workers (master 10), cpu n/a, rss 4.0 MiB avg, \
                 vms 100.0 MiB avg"
            )
            .as_str()
        ),
        "{text}"
    );
    let root = fs::canonicalize(tree.path()).unwrap();
    let root = format!("{}/", root.display());
    let mut opened: BTreeMap<i32, Vec<Opened>> = BTreeMap::new();
    for line in fs::read_to_string(&log).unwrap().lines() {
        if let Some((pid, file)) = parse_open(line, &root) {
            opened.entry(pid).or_default().push(file);
        }
    }
    opened
}

/// The pid and file of one strace line like `123 openat(AT_FDCWD</x>, "/root/11/comm", ...)`,
/// `123 open("/root/11", ...)` or `123 openat(3</root/11>, "stat", ...)`, when it is under
/// `root` (ending in '/').
fn parse_open(line: &str, root: &str) -> Option<(i32, Opened)> {
    let call = &line[line.find('(')? + 1..];
    let (dirfd, rest) = match call.strip_prefix('"') {
        Some(rest) => ("", rest),
        None => call.split_once(", \"")?,
    };
    let path = &rest[..rest.find('"')?];
    let (under, via) = match path.strip_prefix(root) {
        Some(under) => (under.to_string(), Via::Path),
        None if !path.starts_with('/') => {
            let dir = dirfd.split_once('<')?.1.strip_suffix('>')?;
            (format!("{}/{path}", dir.strip_prefix(root)?), Via::DirFd)
        }
        None => return None,
    };
    let (pid, file) = under.split_once('/').unwrap_or((&under, "."));
    let file = if file.is_empty() { "." } else { file };
    Some((
        pid.parse().ok()?,
        Opened {
            file: file.to_string(),
            via,
        },
    ))
}

fn tree_with_others(others: i32) -> ProcTree {
    let tree = ProcTree::new(1000.0);
    tree.put(&FakeProc::new(10, 1, "nginx", 0));
    for pid in 11..=13 {
        tree.put(&FakeProc::new(pid, 10, "nginx", 33));
    }
    for pid in 100..100 + others {
        tree.put(&FakeProc::new(pid, 1, "other", 0));
    }
    tree
}

/// A change that starts reading stat or status (or anything else) for every process on the
/// host multiplies the check's cost on big hosts: this fails before that ships.
#[test]
fn a_process_that_does_not_match_costs_one_read_of_comm() {
    if !strace_works() {
        skip(
            "a_process_that_does_not_match_costs_one_read_of_comm",
            "needs strace",
        );
        return;
    }
    let tree = tree_with_others(200);
    // a listening socket on the host, so that the queue metrics read the socket links of the
    // master's fd/ (on a host with none, they read no fd/ at all)
    let _listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opened = files_opened(&tree, &["-n", "nginx", "--interval", "0"]);
    for pid in 100..300 {
        assert_eq!(
            opened.get(&pid),
            Some(&vec![Opened::path("comm")]),
            "pid {pid}"
        );
    }
    // workers get their stat, status and the details of the default metrics, whose cost does
    // not grow with their memory: never smaps_rollup (issue 17); the master no details
    // fd/* are the links of fd/ read for the queue metrics
    let worker: BTreeSet<&str> = opened[&11].iter().map(Opened::kind).collect();
    assert_eq!(
        worker,
        [".", "cgroup", "comm", "fd", "fd/*", "io", "limits", "stat", "status"].into(),
        "worker"
    );
    let master: BTreeSet<&str> = opened[&10].iter().map(Opened::kind).collect();
    // and its io once more, split into its own and its reaped children's (none here), and
    // its fd/ links for the queue metrics
    assert_eq!(
        master,
        [".", "comm", "fd", "fd/*", "io", "stat", "status"].into(),
        "master"
    );
}

/// A candidate's row is one process: after the cheap comm read by path, its directory is
/// opened once and every file is read relative to that descriptor (a pid reused meanwhile
/// then fails instead of answering for the new process). The details read after selection
/// re-open the directory the same way.
#[test]
fn a_candidate_is_read_through_one_descriptor_of_its_directory() {
    if !strace_works() {
        skip(
            "a_candidate_is_read_through_one_descriptor_of_its_directory",
            "needs strace",
        );
        return;
    }
    let tree = tree_with_others(5);
    // as above: the queue metrics read the master's socket links, then the workers' (the
    // fixture master holds no listening socket)
    let _listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opened = files_opened(&tree, &["-n", "nginx", "--interval", "0"]);
    for pid in 10..=13 {
        let by_path: Vec<&str> = opened[&pid]
            .iter()
            .filter(|o| o.via == Via::Path)
            .map(|o| o.file.as_str())
            .collect();
        // a worker's directory again for its details, the master's for its split io, and
        // each once more for its fd/ links
        let expected = vec!["comm", ".", ".", "."];
        assert_eq!(by_path, expected, "pid {pid}: {:?}", opened[&pid]);
        let through_fd: BTreeSet<&str> = opened[&pid]
            .iter()
            .filter(|o| o.via == Via::DirFd)
            .map(|o| o.file.as_str())
            .collect();
        assert!(
            through_fd.is_superset(&["stat", "status"].into()),
            "pid {pid}: {:?}",
            opened[&pid]
        );
    }
    let worker: BTreeSet<&str> = opened[&11]
        .iter()
        .filter(|o| o.via == Via::DirFd)
        .map(Opened::kind)
        .collect();
    assert_eq!(
        worker,
        ["cgroup", "fd", "fd/*", "io", "limits", "stat", "status"].into(),
        "{:?}",
        opened[&11]
    );
}

/// smaps_rollup costs about 7 ms per GiB a worker maps (100 postgres backends sharing 8 GiB
/// took seconds), so only a run that reports pss or uss reads it: `--metrics` or a threshold.
#[test]
fn smaps_rollup_is_read_only_for_pss_and_uss() {
    if !strace_works() {
        skip("smaps_rollup_is_read_only_for_pss_and_uss", "needs strace");
        return;
    }
    let tree = tree_with_others(5);
    for args in [
        &["--metrics", "pss"][..],
        &["-w", "uss=1G"],
        &["--metrics", "all"],
    ] {
        let mut all = vec!["-n", "nginx", "--interval", "0"];
        all.extend_from_slice(args);
        let opened = files_opened(&tree, &all);
        for pid in 11..=13 {
            assert!(
                opened[&pid].iter().any(|o| o.file == "smaps_rollup"),
                "{args:?}: pid {pid}: {:?}",
                opened[&pid]
            );
        }
        // never the master's
        assert!(!opened[&10].iter().any(|o| o.file == "smaps_rollup"));
    }
}

/// With --ppid the check reads the master's children list and never looks at other processes.
#[test]
fn ppid_never_visits_other_processes() {
    if !strace_works() {
        skip("ppid_never_visits_other_processes", "needs strace");
        return;
    }
    let tree = tree_with_others(200);
    let mut master = FakeProc::new(10, 1, "nginx", 0);
    master.children = vec![11, 12, 13];
    tree.put(&master);
    let opened = files_opened(&tree, &["--ppid", "10", "--interval", "0"]);
    assert!(
        (100..300).all(|pid| !opened.contains_key(&pid)),
        "{:?}",
        opened.keys().collect::<Vec<_>>()
    );
    assert!(
        opened[&10].contains(&Opened::path("task/10/children")),
        "{:?}",
        opened[&10]
    );
}
