//! Issue 16.3: any local user can start processes with megabytes of command line. These tests
//! start such processes for real and check that they cost the check almost nothing: the
//! command line is matched on its first 64 KiB only, and never read for a process another
//! filter (here `-u`) already rejects.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::spawn::{public_dir, unique, Spawned};
use crate::fixture::{
    command, cpu_heavy, is_root, real_run, setpriv_available, skip, state_dir, status_line, NOBODY,
};

/// Runs as `-c SCRIPT SCRIPT COUNT READY`: raises its stack limit (the kernel allows a quarter
/// of it for argv, at most 6 MiB), re-executes itself with 50 arguments of 100 KiB each, and
/// then forks until there are COUNT processes, which share that argv copy-on-write: cheap for
/// the attacker, 5 MiB of `cmdline` each for the reader. Writes READY once all exist.
const ATTACKER: &str = r#"
import os, resource, sys, time
script, count, ready = sys.argv[1:4]
if len(sys.argv) == 4:
    resource.setrlimit(resource.RLIMIT_STACK, (64 << 20, resource.RLIM_INFINITY))
    big = ["x" * (100 << 10)] * 50
    os.execv(sys.executable, [sys.executable, "-c", script, script, count, ready] + big)
for _ in range(int(count) - 1):
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
open(ready, "w").close()
time.sleep(600)
"#;

/// A python3 the user nobody may run (a pyenv shim under /root is not one), if any.
fn python_for_nobody() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|python| {
            command("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", python])
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The processes of the process group `pgid`, by their `stat`.
fn group_members(pgid: u32) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let after_comm = &stat[stat.rfind(')').unwrap_or(0) + 2..];
            // state ppid pgrp
            after_comm.split(' ').nth(2) == Some(pgid.to_string().as_str())
        })
        .count()
}

/// Waits (60 s at most) for the attacker's READY file.
fn wait_for(ready: &Path) {
    let started = Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the attacker's processes did not start within 60 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

// 300 processes of nobody with 5 MiB of argv each turned `-a ... -u www-data` (uid 33) for a
// service that is down into `WORKERS UNKNOWN - timed out after 10s` instead of CRITICAL.
#[test]
fn huge_command_lines_of_another_user_do_not_delay_a_critical() {
    let test = "huge_command_lines_of_another_user_do_not_delay_a_critical";
    if !is_root() || !setpriv_available() {
        skip(test, "needs root and setpriv");
        return;
    }
    let Some(python) = python_for_nobody() else {
        skip(test, "needs a python3 the user nobody may run");
        return;
    };
    // 300 forks load the CPU for a moment, and the run is timed: apart from other such tests
    let _heavy = cpu_heavy();
    let count = 300;
    let ready_dir = public_dir(Some((NOBODY, NOBODY)));
    let ready = ready_dir.path().join("ready");
    let spawned = Spawned::new();
    // the group's leader execs into setpriv, then python: dropping `attacker` kills them all
    let attacker = spawned.master(
        &unique("hostile"),
        r#"exec setpriv --reuid=65534 --regid=65534 --clear-groups "$1" -c "$2" "$2" "$3" "$4""#,
        &[
            python.as_ref(),
            ATTACKER.as_ref(),
            count.to_string().as_ref(),
            ready.as_os_str(),
        ],
    );
    wait_for(&ready);
    assert_eq!(group_members(attacker.pid()), count);
    let argv = fs::read(format!("/proc/{}/cmdline", attacker.pid())).unwrap();
    assert!(argv.len() > 5_000_000, "argv of {} bytes", argv.len());

    let state = state_dir();
    let started = Instant::now();
    let out = real_run(
        state.path(),
        &[
            "-a",
            r"gunicorn: worker \[app\]",
            "-u",
            "33",
            "--interval",
            "0",
        ],
    );
    let took = started.elapsed();
    let line = status_line(&out);
    assert!(
        line.starts_with(r"WORKERS CRITICAL - cmdline /gunicorn: worker \[app\]/: 0 workers"),
        "{line} (after {took:?})"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}: {line}");
    drop(attacker);
}
