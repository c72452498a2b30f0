//! The tick file under concurrent runs and planted symlinks.

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Stdio;
use std::time::Instant;

use predicates::prelude::*;

use crate::fixture::{
    check, check_command, cpu_heavy, mkfifo, run, state_dir, status_line, stdout_of, tick_file,
    FakeProc, ProcTree,
};

/// The arguments of every run here: the nginx workers, CPU from the tick file only.
const NGINX: [&str; 4] = ["-n", "nginx", "--interval", "0"];

fn tree() -> ProcTree {
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(812, 1, "nginx", 0))
        .put(&FakeProc::new(813, 812, "nginx", 33).ticks(100, 0))
        .put(&FakeProc::new(814, 812, "nginx", 33).ticks(200, 0));
    tree
}

/// How a run on [`tree`] measured CPU.
#[derive(Clone, Copy)]
enum Cpu<'a> {
    /// against the per-worker baseline: every CPU figure
    Baseline,
    /// from the history's running totals, the baseline being too recent: no `cpu_max`
    History,
    /// not at all, with the note `no baseline (why) ...`
    NotMeasured(&'a str),
}

/// Stdout of a run on [`tree`] at `uptime` (the ticks never move, so CPU is `0.0%` where
/// measured); `restarts` where the run found a master in the history, `rss_growth` where it
/// found 3 samples (its own among them) spanning 2 minutes or more.
fn nginx_stdout(uptime: f64, cpu: Cpu, restarts: bool, growth: bool) -> String {
    let age = uptime - 10.0;
    // a per-second counter needs the per-worker baseline, as cpu_max does
    let nvcsw = if matches!(cpu, Cpu::Baseline) {
        " nvcsw=0;;;0;"
    } else {
        ""
    };
    let all = "cpu=0%;;;0;200 cpu_user=0%;;;0;200 cpu_system=0%;;;0;200 ";
    let (cpu_text, cpu_perf, note) = match cpu {
        Cpu::Baseline => ("0.0%", format!("{all}cpu_max=0%;;;0;200 "), String::new()),
        Cpu::History => ("0.0%", all.to_string(), String::new()),
        Cpu::NotMeasured(why) => (
            "n/a",
            String::new(),
            format!("no baseline ({why}) and --interval 0: cpu not measured in this run\n"),
        ),
    };
    let restarts = if restarts { " restarts=0;;;0;" } else { "" };
    let growth = if growth { "rss_growth=0B;;;; " } else { "" };
    format!(
        "WORKERS OK - nginx: 2 workers (master 812), cpu {cpu_text}, rss 4.0 MiB avg, vms 100.0 MiB \
         avg | workers=2;;1:;0; {cpu_perf}rss=4194304B;;;0; vms=104857600B;;;0; \
         rss_max=4194304B;;;0; vms_max=104857600B;;;0; \
         rss_total=8388608B;;;0; {growth}threads=2;;;0; fds=16;;;0; \
         fd_pct_max=0.78%;;;0;100 age_min={age}s;;;0; age_max={age}s;;;0; zombies=0;;;0; \
         uninterruptible=0;;;0;{restarts}{nvcsw}\n{note}"
    )
}

/// Icinga retries, an operator by hand, two services with one filter: many runs at once must
/// each answer properly and leave a tick file the next run can use. Which run takes the lock
/// when is up to the scheduler, so each answer is one of an exact few: in each round exactly
/// one run reads the previous round's file (none in round 0), every later one reads the file a
/// run of this round wrote (its baseline too recent: CPU from the history's totals, or not at
/// all in round 0), and a run that waited in vain for the lock says so.
#[test]
fn fifty_checks_at_once_on_one_state_dir() {
    let _serial = cpu_heavy();
    let tree = tree();
    let state = state_dir();
    for round in 0..3 {
        let uptime = 5000.0 + 60.0 * f64::from(round);
        tree.set_uptime(uptime);
        let children: Vec<_> = (0..50)
            .map(|_| {
                check_command(tree.path(), state.path())
                    .args(NGINX)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // round 0: the first run has no file; the runs after it find its file 0 s old with
        // no older sample. Later rounds: the first run measures against the previous round's
        // baseline, the runs after it from the history's totals (their baseline is too recent)
        let (baseline, after_it) = if round == 0 {
            (
                nginx_stdout(uptime, Cpu::NotMeasured("first run"), false, false),
                nginx_stdout(
                    uptime,
                    Cpu::NotMeasured(
                        "last run 0.00 s ago, no sample 1.00 s old for the workers' clock ticks",
                    ),
                    true,
                    false,
                ),
            )
        } else {
            // samples at 5000, 5060, 5120: the third, two minutes after the first, comes in
            // round 2, for the round's first run and the runs after it alike
            (
                nginx_stdout(uptime, Cpu::Baseline, true, round >= 2),
                nginx_stdout(uptime, Cpu::History, true, round >= 2),
            )
        };
        let busy = format!(
            "{}tick file not updated: another check of the same workers holds it\n",
            nginx_stdout(
                uptime,
                Cpu::NotMeasured("another check of the same workers is running"),
                false,
                false,
            )
        );
        let mut with_baseline = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            let text = stdout_of(&out);
            assert_eq!(out.status.code(), Some(0), "round {round}: {text}");
            assert!(
                [&baseline, &after_it, &busy].contains(&&text),
                "round {round}: {text}"
            );
            with_baseline += usize::from(text == baseline);
        }
        assert_eq!(with_baseline, 1, "round {round}");
        let text = fs::read_to_string(tick_file(state.path())).unwrap();
        assert!(text.starts_with("check_workers ticks v3\n"), "{text}");
        assert!(
            text.contains(
                "\nworker pid=814 start=1000 utime=200 stime=0 cutime=0 cstime=0 nvcsw=1\n"
            ),
            "{text}"
        );
    }
    tree.set_uptime(5240.0);
    tree.put(&FakeProc::new(813, 812, "nginx", 33).ticks(400, 0));
    // 300 ticks over 120 s since the last round = 2.5 %
    check(tree.path(), state.path())
        .args(NGINX)
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
    run(&tree, &state, &NGINX);
    let ticks = tick_file(state.path());
    fs::remove_file(&ticks).unwrap();
    symlink(&victim, &ticks).unwrap();
    let out = run(&tree, &state, &NGINX);
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
        .args(NGINX)
        .assert()
        .code(0);
    let lock = tick_file(state.path()).with_extension("lock");
    fs::remove_file(&lock).unwrap();
    symlink(&victim, &lock).unwrap();
    // no read-modify-write without the lock: measured within the run, and UNKNOWN says why
    check(tree.path(), state.path())
        .args(NGINX)
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
        .args(NGINX)
        .assert()
        .code(0);
    let ticks = tick_file(state.path());
    fs::remove_file(&ticks).unwrap();
    mkfifo(&ticks);
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
    let args = [&NGINX[..], &["-t", "5"]].concat();
    let first = run(&tree, &state, &args);
    assert_eq!(first.status.code(), Some(0));
    let marker = state.path().join(".last-sweep");
    fs::remove_file(&marker).unwrap();
    mkfifo(&marker);
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
    let out = run(&tree, &state, &args);
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
/// the new tick file, never a torn one, so the next run always has a usable baseline.
/// `state::tests` proves it deterministically at each step of the save; this smoke test kills
/// real runs at assorted instants, from start-up to past the end of a run, and asserts the file
/// is then exactly the one the last completed run wrote, beside nothing but the killed runs'
/// temp files.
#[test]
fn killed_runs_leave_the_tick_file_of_the_last_completed_run() {
    let _serial = cpu_heavy();
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(1, 0, "gunicorn", 0));
    for pid in 2..3000 {
        tree.put(&FakeProc::new(pid, 1, "gunicorn", 33).ticks(pid as u64, 7));
    }
    let state = state_dir();
    let args = ["-n", "gunicorn", "--interval", "0"];
    let started = Instant::now();
    let first = run(&tree, &state, &args);
    let whole_run = started.elapsed();
    assert_eq!(first.status.code(), Some(0), "{}", stdout_of(&first));
    let path = tick_file(state.path());
    // a finished run's file is whole, and its newest sample is that run's uptime
    let newest_sample = |text: &str| {
        let state = check_workers::state::TickState::parse(text).expect("a whole tick file");
        state.history.newest().map(|s| s.uptime)
    };
    let mut last_file = fs::read_to_string(&path).unwrap();
    assert_eq!(newest_sample(&last_file), Some(5000.0));
    let tick_name = path.file_name().unwrap().to_str().unwrap().to_string();
    let lock_name = tick_name.replace(".ticks", ".lock");
    let mut killed_pids = Vec::new();
    for round in 1..=20u32 {
        let uptime = 5000.0 + f64::from(round) * 10.0;
        tree.set_uptime(uptime);
        let mut child = check_command(tree.path(), state.path())
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // kill at a different instant each round, from start-up to past a whole run's time
        std::thread::sleep(whole_run * round / 16);
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed_pids.push(child.id());
        let text = fs::read_to_string(&path).unwrap();
        if newest_sample(&text) == Some(uptime) {
            last_file = text;
        } else {
            assert!(
                status.code().is_none(),
                "round {round}: a run that finished ({status}) left no new file"
            );
            assert_eq!(
                text, last_file,
                "round {round}: neither the old nor the new tick file"
            );
        }
        for entry in fs::read_dir(state.path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let known = [tick_name.as_str(), lock_name.as_str(), ".last-sweep"]
                .contains(&name.as_str())
                || killed_pids
                    .iter()
                    .any(|pid| name.starts_with(&format!(".tmp-{pid}-")));
            assert!(known, "round {round}: {name} in the state dir");
        }
    }
    tree.set_uptime(6000.0);
    let out = run(&tree, &state, &args);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
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
        .args(NGINX)
        .assert()
        .code(0);
    let lock_path = tick_file(state.path()).with_extension("lock");
    let held = fs::File::options().write(true).open(&lock_path).unwrap();
    held.lock().unwrap();
    let started = std::time::Instant::now();
    let out = run(&tree, &state, &[&NGINX[..], &["-t", "4"]].concat());
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
        .args(NGINX)
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
