//! The tick file under concurrent runs and planted symlinks.

use std::fs;
use std::os::unix::fs::symlink;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::cargo::cargo_bin;
use predicates::prelude::*;

use crate::fixture::{
    check, cpu_heavy, state_dir, status_line, stdout_of, tick_file, FakeProc, ProcTree,
};

fn tree() -> ProcTree {
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(812, 1, "nginx", 0))
        .put(&FakeProc::new(813, 812, "nginx", 33).ticks(100, 0))
        .put(&FakeProc::new(814, 812, "nginx", 33).ticks(200, 0));
    tree
}

/// Icinga retries, an operator by hand, two services with one filter: many runs at once must
/// each answer properly and leave a tick file the next run can use.
#[test]
fn fifty_checks_at_once_on_one_state_dir() {
    let _serial = cpu_heavy();
    let tree = tree();
    let state = state_dir();
    for round in 0..3 {
        tree.set_uptime(5000.0 + 60.0 * f64::from(round));
        let children: Vec<_> = (0..50)
            .map(|_| {
                StdCommand::new(cargo_bin("check_workers"))
                    .env_clear()
                    .arg("--proc-root")
                    .arg(tree.path())
                    .arg("--state-dir")
                    .arg(state.path())
                    .args(["-n", "nginx", "--interval", "0"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let code = out.status.code().expect("exited, not killed");
            assert!(code <= 3, "exit {code}");
            let line = status_line(&out);
            assert!(
                line.starts_with("WORKERS OK - nginx: 2 workers (master 812), cpu "),
                "round {round}: {line}"
            );
        }
        let text = fs::read_to_string(tick_file(state.path())).unwrap();
        assert!(text.starts_with("check_workers ticks v2\n"), "{text}");
        assert!(text.contains("\nworker 814 1000 200 0 0 0\n"), "{text}");
    }
    tree.set_uptime(5240.0);
    tree.put(&FakeProc::new(813, 812, "nginx", 33).ticks(400, 0));
    // 300 ticks over 120 s since the last round = 2.5 %
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(" cpu=2.5%;"));
}

#[test]
fn planted_symlink_at_the_tick_file_is_not_followed() {
    let tree = tree();
    let state = state_dir();
    let outside = state_dir();
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let run = || {
        check(tree.path(), state.path())
            .args(["-n", "nginx", "--interval", "0"])
            .output()
            .unwrap()
    };
    run();
    let ticks = tick_file(state.path());
    fs::remove_file(&ticks).unwrap();
    symlink(&victim, &ticks).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no baseline (tick file discarded: "));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = fs::symlink_metadata(&ticks).unwrap();
    assert!(meta.is_file(), "the link was replaced by a real tick file");
}

#[test]
fn planted_symlink_at_the_lock_file_is_refused() {
    let tree = tree();
    let state = state_dir();
    let outside = state_dir();
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(0);
    let lock = tick_file(state.path()).with_extension("lock");
    fs::remove_file(&lock).unwrap();
    symlink(&victim, &lock).unwrap();
    // no read-modify-write without the lock: measured within the run, and UNKNOWN says why
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(3)
        .stdout(predicate::str::starts_with(
            "WORKERS UNKNOWN - nginx: 2 workers (master 812), cpu n/a, ",
        ))
        .stdout(predicate::str::contains(format!(
            "\nUNKNOWN: tick file not saved: cannot open lock file {}: Too many levels of \
             symbolic links (os error 40)\n",
            lock.display()
        )))
        .stderr("");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn fifo_at_the_tick_file_does_not_hang() {
    let tree = tree();
    let state = state_dir();
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(0);
    let ticks = tick_file(state.path());
    fs::remove_file(&ticks).unwrap();
    assert!(StdCommand::new("mkfifo")
        .arg(&ticks)
        .status()
        .unwrap()
        .success());
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0", "-t", "5"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("not a regular file"));
}

/// A FIFO at the sweep marker, older than a day, used to stall every run into its timeout:
/// the marker is opened like the tick file (`O_NOFOLLOW|O_NONBLOCK`, regular files only).
#[test]
fn fifo_at_the_sweep_marker_does_not_hang() {
    let tree = tree();
    let state = state_dir();
    let run = || {
        check(tree.path(), state.path())
            .args(["-n", "nginx", "--interval", "0", "-t", "5"])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0));
    let marker = state.path().join(".last-sweep");
    fs::remove_file(&marker).unwrap();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&marker, mode).unwrap();
    let two_days_ago = nix::sys::time::TimeSpec::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 2 * 24 * 3600,
        0,
    );
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &marker,
        &two_days_ago,
        &two_days_ago,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    tree.set_uptime(5060.0);
    let started = std::time::Instant::now();
    let out = run();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    assert!(
        status_line(&out).starts_with("WORKERS OK - nginx: 2 workers (master 812), cpu 0.0%, "),
        "{}",
        stdout_of(&out)
    );
    assert!(took.as_secs_f64() < 3.0, "took {took:?}");
}

/// A run killed at any instant (the scheduler's own timeout, OOM, a reboot) leaves the old or
/// the new tick file, never a torn one: the next run always has a usable baseline.
#[test]
fn killed_runs_never_leave_a_torn_tick_file() {
    let _serial = cpu_heavy();
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(1, 0, "gunicorn", 0));
    for pid in 2..3000 {
        tree.put(&FakeProc::new(pid, 1, "gunicorn", 33).ticks(pid as u64, 7));
    }
    let state = state_dir();
    let run = |uptime: f64| {
        tree.set_uptime(uptime);
        check(tree.path(), state.path())
            .args(["-n", "gunicorn", "--interval", "0"])
            .output()
            .unwrap()
    };
    run(5000.0);
    for round in 1..=20u32 {
        tree.set_uptime(5000.0 + f64::from(round) * 10.0);
        let mut child = StdCommand::new(cargo_bin("check_workers"))
            .env_clear()
            .arg("--proc-root")
            .arg(tree.path())
            .arg("--state-dir")
            .arg(state.path())
            .args(["-n", "gunicorn", "--interval", "0"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // kill at a different instant each round, from start-up to the write
        std::thread::sleep(std::time::Duration::from_millis(u64::from(round) * 4));
        let _ = child.kill();
        let _ = child.wait();
        let text = fs::read_to_string(tick_file(state.path())).unwrap();
        assert!(
            crate::fixture::tick_file_parses(&text),
            "round {round}: torn tick file"
        );
    }
    let out = run(6000.0);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.contains("no baseline"), "{text}");
    assert!(text.contains(" cpu=0%;"), "{text}");
}

/// A peer that holds the lock for long (hung on NFS, stopped in a debugger) must not turn
/// this run into a timeout: it waits a bounded time, then measures within the run.
#[test]
fn lock_held_by_a_peer_is_waited_for_only_briefly() {
    let tree = tree();
    let state = state_dir();
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(0);
    let lock_path = tick_file(state.path()).with_extension("lock");
    let held = fs::File::options().write(true).open(&lock_path).unwrap();
    held.lock().unwrap();
    let started = std::time::Instant::now();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0", "-t", "4"])
        .output()
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("no baseline (another check of the same workers is running)"),
        "{text}"
    );
    assert!(text.contains("tick file not updated: another check of the same workers holds it"));
    // a quarter of the 4 s timeout, plus start-up
    assert!(waited.as_secs_f64() < 3.0, "waited {waited:?}");
    assert!(waited.as_secs_f64() >= 1.0, "waited {waited:?}");
}

// Regression (issue 9.7): the lock wait and the in-run interval were each bounded, but not
// together: with `-t 2 --interval 1.9` and a held lock the run overran and timed out. The run
// now plans both against one deadline inside -t and still gives a proper answer.
#[test]
fn held_lock_and_interval_fit_inside_the_timeout() {
    let tree = tree();
    let state = state_dir();
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(0);
    let lock_path = tick_file(state.path()).with_extension("lock");
    let held = fs::File::options().write(true).open(&lock_path).unwrap();
    held.lock().unwrap();
    let started = std::time::Instant::now();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "1.9", "-t", "2"])
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .unwrap();
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("WORKERS OK - nginx: 2 workers (master 812), cpu n/a, "),
        "{text}"
    );
    // a fixture tree's uptime does not move while the check sleeps
    assert!(
        text.contains(
            "\nno baseline (another check of the same workers is running), and last run less \
             than 2 clock ticks ago: cpu not measured\n"
        ),
        "{text}"
    );
    assert!(waited.as_secs_f64() < 2.0, "waited {waited:?}");
}
