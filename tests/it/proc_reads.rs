//! The regression guard for the scan's cost: what the check opens per process, counted with
//! strace on a fixture tree (file counts, not wall time, so it holds on a busy machine).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command as StdCommand;

use assert_cmd::cargo::cargo_bin;

use crate::fixture::{skip, state_dir, FakeProc, ProcTree};

fn strace_works() -> bool {
    StdCommand::new("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The files the check opened under each pid directory of `tree`, by pid.
fn files_opened(tree: &ProcTree, args: &[&str]) -> BTreeMap<i32, BTreeSet<String>> {
    let state = state_dir();
    let log = state.path().join("strace.log");
    let status = StdCommand::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=open,openat,readlink,readlinkat",
            "-o",
        ])
        .arg(&log)
        .arg(cargo_bin("check_workers"))
        .arg("--proc-root")
        .arg(tree.path())
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .args(args)
        .status()
        .unwrap();
    assert!(status.code().is_some_and(|c| c <= 3));
    let root = format!("{}/", tree.path().display());
    let mut opened: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for line in fs::read_to_string(&log).unwrap().lines() {
        let Some(start) = line.find(&root) else {
            continue;
        };
        let rest = &line[start + root.len()..];
        let path = &rest[..rest.find('"').unwrap_or(rest.len())];
        if let Some((pid, file)) = path.split_once('/') {
            if let Ok(pid) = pid.parse::<i32>() {
                opened.entry(pid).or_default().insert(file.to_string());
            }
        }
    }
    opened
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
    let opened = files_opened(&tree, &["-n", "nginx", "--interval", "0"]);
    let comm_only: BTreeSet<String> = ["comm".to_string()].into();
    for pid in 100..300 {
        assert_eq!(
            opened.get(&pid),
            Some(&comm_only),
            "pid {pid}: {:?}",
            opened.get(&pid)
        );
    }
    // workers get their stat, status and per-worker details; the master no details
    let worker = &opened[&11];
    for file in ["comm", "stat", "status", "smaps_rollup", "limits", "fd"] {
        assert!(
            worker.iter().any(|f| f == file),
            "worker lacks {file}: {worker:?}"
        );
    }
    assert_eq!(
        opened[&10],
        ["comm", "stat", "status"].map(String::from).into(),
        "master"
    );
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
        opened[&10].contains("task/10/children"),
        "{:?}",
        opened[&10]
    );
}
