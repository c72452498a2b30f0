//! The history in the tick file (issue 11): CPU over runs a fraction of a second apart,
//! `cpu_avg`, `restarts` and `rss_growth`, on fixture trees with exact figures (several runs
//! on one state dir, the tree's uptime moved between them), then on real processes.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::fixture::perfdata::of_line;
use crate::fixture::{run_at, state_dir, status_line, stdout_of, tick_file, FakeProc, ProcTree};

const WWW: u32 = 33;

/// Master `master` (started at `start` ticks) with workers `pids`, each with `utime` user
/// ticks and `rss_kib` of RSS; the processes of an earlier call that are not named again are
/// removed.
fn service(tree: &ProcTree, (master, start): (i32, u64), pids: &[i32], utime: u64, rss_kib: u64) {
    for entry in fs::read_dir(tree.path()).unwrap() {
        let name = entry.unwrap().file_name();
        if let Ok(pid) = name.to_string_lossy().parse::<i32>() {
            if pid != master && !pids.contains(&pid) {
                tree.remove(pid);
            }
        }
    }
    tree.put(&FakeProc::new(master, 1, "nginx", 0).started(start));
    for &pid in pids {
        tree.put(
            &FakeProc::new(pid, master, "nginx", WWW)
                .started(start + 100)
                .ticks(utime, 0)
                .memory_kib(rss_kib, 102_400),
        );
    }
}

/// nginx with master 812 and workers 813-815, `utime` ticks each, 4 MiB RSS each.
fn nginx(tree: &ProcTree, utime: u64) {
    service(tree, (812, 1000), &[813, 814, 815], utime, 4096);
}

/// The `sample` lines of the tick file, and its `uptime` line.
fn history_lines(state: &Path) -> (String, Vec<String>) {
    let text = fs::read_to_string(tick_file(state)).unwrap();
    let uptime = text
        .lines()
        .find(|l| l.starts_with("uptime "))
        .unwrap()
        .to_string();
    let samples = text
        .lines()
        .filter(|l| l.starts_with("sample "))
        .map(str::to_string)
        .collect();
    (uptime, samples)
}

/// The issue's defect: runs 0.1 s apart measured over a few ticks (3 workers at 20 %: 4 ticks
/// each in 0.1 s read 120 %, a false CRITICAL with `-c 95`). Now the re-run measures since the
/// run a minute before, exactly, and the baseline stays for the next run.
#[test]
fn a_rerun_a_tenth_of_a_second_later_measures_since_an_older_sample() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, 0);
    run_at(&tree, state.path(), 1000.0, &[]);
    // 396 ticks each over 59.9 s: 1188 of 5990 = 19.83 %
    nginx(&tree, 396);
    let out = run_at(&tree, state.path(), 1059.9, &[]);
    assert!(
        status_line(&out).contains(" cpu=19.83%;"),
        "{}",
        stdout_of(&out)
    );
    // 0.1 s later, 4 ticks more each: 1200 ticks over the 60 s since the run at 1000
    nginx(&tree, 400);
    let out = run_at(&tree, state.path(), 1060.0, &["-c", "95", "-vv"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = status_line(&out);
    assert!(
        line.contains(", cpu 20.0%, ")
            && line.contains(" cpu=20%;;95;0;200 cpu_user=20%;;;0;200 cpu_system=0%;;;0;200 "),
        "{text}"
    );
    // per-worker CPU needs per-worker ticks, which the history does not keep
    assert_eq!(of_line(&line).item("cpu_max"), None, "{text}");
    assert!(
        text.contains(
            "\ncpu: measured over 60.00 s from the history: the last run, 0.10 s ago, is too \
             recent for 3 workers' ticks; error bound ±0.05 points (3 workers, 1 tick each)\n"
        ),
        "{text}"
    );
    // the baseline of the run at 1059.9 stays; the re-run's sample is added
    let (uptime, samples) = history_lines(state.path());
    assert_eq!(uptime, "uptime 1059.90");
    assert_eq!(
        samples,
        [
            "sample 1000.00 0 0 3 4194304 812:1000",
            "sample 1059.90 1188 0 3 4194304 812:1000",
            "sample 1060.00 1200 0 3 4194304 812:1000",
        ]
    );
    // a second after the baseline it is old enough: per worker again, 14 ticks each in 1.1 s
    nginx(&tree, 410);
    let out = run_at(&tree, state.path(), 1061.0, &["-v"]);
    let line = status_line(&out);
    assert!(
        line.contains(" cpu=38.18%;") && line.contains(" cpu_max=12.73%;"),
        "{}",
        stdout_of(&out)
    );
    assert!(stdout_of(&out).contains(" cpu 12.7% rss 4.0 MiB "));
    assert_eq!(history_lines(state.path()).0, "uptime 1061.00");
}

/// With no sample a second old, a run with `--interval 0` says why it has no CPU figure, and
/// still keeps the baseline and adds its sample.
#[test]
fn a_rerun_with_no_sample_old_enough_keeps_the_baseline() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, 100);
    run_at(&tree, state.path(), 1000.0, &[]);
    nginx(&tree, 103);
    let out = run_at(&tree, state.path(), 1000.5, &["-c", "cpu_max=50"]);
    let text = stdout_of(&out);
    assert!(status_line(&out).contains(", cpu n/a, "), "{text}");
    assert!(
        text.contains(
            "\nno baseline (last run 0.50 s ago, no sample 1.00 s old for the workers' clock \
             ticks) and --interval 0: cpu not measured in this run\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("cpu_max: not measured in this run, thresholds not evaluated"),
        "{text}"
    );
    let (uptime, samples) = history_lines(state.path());
    assert_eq!(uptime, "uptime 1000.00");
    assert_eq!(
        samples,
        [
            "sample 1000.00 0 0 3 4194304 812:1000",
            "sample 1000.50 9 0 3 4194304 812:1000",
        ]
    );
}

/// A minute apart, 200 ticks a worker a minute (10 %), then a burst of 1000 (50 %): the
/// 5-minute average is 18 %, the last minute 50 %. Before the history spans 5 minutes,
/// cpu_avg is over what there is, and says so.
#[test]
fn cpu_avg_over_a_window_and_over_a_short_history() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    let avg = ["--average", "5m", "-w", "cpu_avg=15", "-c", "cpu_avg=30"];
    for (minute, utime) in [0, 200, 400].into_iter().enumerate() {
        nginx(&tree, utime);
        let out = run_at(&tree, state.path(), 1000.0 + 60.0 * minute as f64, &avg);
        if minute == 0 {
            // no CPU figure at all on a first run with --interval 0
            assert!(of_line(&status_line(&out)).item("cpu_avg").is_none());
        }
    }
    let out = run_at(&tree, state.path(), 1120.0, &avg);
    let text = stdout_of(&out);
    // the re-run at the same uptime replaces that sample: 1200 ticks over 120 s = 10 %
    assert!(
        status_line(&out).contains(" cpu_avg=10%;15;30;0;200 "),
        "{text}"
    );
    assert!(
        text.contains("\ncpu_avg: over 120 s of the 300 s window (history is short)\n"),
        "{text}"
    );
    for (minute, utime) in [(3, 600), (4, 800), (5, 1800)] {
        nginx(&tree, utime);
        let out = run_at(&tree, state.path(), 1000.0 + 60.0 * minute as f64, &avg);
        if minute < 5 {
            assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
        } else {
            let text = stdout_of(&out);
            assert_eq!(out.status.code(), Some(1), "{text}");
            let line = status_line(&out);
            assert!(line.contains(", cpu 50.0%, "), "{text}");
            assert!(line.contains(", cpu_avg 18.0% > 15 | "), "{text}");
            assert!(line.contains(" cpu_avg=18%;15;30;0;200 "), "{text}");
            assert!(!text.contains("history is short"), "{text}");
        }
    }
}

// Regression (issue 22, item 5): `--average 5m` quietly averaged over 12 s. After a gap in
// the checks the sample nearest the window's start was 12 s old, and the note saying so came
// only at -vv, as if the window were covered. Less than nine tenths of the window is short,
// at the default verbosity.
#[test]
fn cpu_avg_after_a_gap_says_it_covers_less_than_its_window() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    let avg = ["--average", "5m"];
    for (uptime, utime) in [(1000.0, 0), (2200.0, 1000)] {
        nginx(&tree, utime);
        run_at(&tree, state.path(), uptime, &avg);
    }
    nginx(&tree, 1012);
    let out = run_at(&tree, state.path(), 2212.0, &avg);
    let text = stdout_of(&out);
    // 12 ticks a worker over 12 s: 1 % each, 3 workers
    assert!(status_line(&out).contains(" cpu_avg=3%;"), "{text}");
    assert!(
        text.contains(
            "\ncpu_avg: over 12 s of the 300 s window (no sample nearer its start: the \
             checks had a gap)\n"
        ),
        "{text}"
    );
}

/// A master with a new pid is a restart; a master missing for a run (no workers to find it
/// by) and back as another process is one too; with `--average`, the restarts of the window.
#[test]
fn restarts_count_new_masters() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    let restarts = |out: &Output| {
        of_line(&status_line(out))
            .item("restarts")
            .map(str::to_string)
    };
    nginx(&tree, 0);
    let first = run_at(&tree, state.path(), 1000.0, &[]);
    assert_eq!(restarts(&first), None, "no earlier sample");
    let same = run_at(&tree, state.path(), 1060.0, &["-w", "restarts=0"]);
    assert_eq!(restarts(&same).as_deref(), Some("restarts=0;0;;0;"));
    // systemd restarted it: master 900, new workers
    service(&tree, (900, 110_000), &[901, 902, 903], 0, 4096);
    let out = run_at(&tree, state.path(), 1120.0, &["-w", "restarts=0"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(status_line(&out).contains(", restarts 1 > 0 | "), "{text}");
    assert_eq!(restarts(&out).as_deref(), Some("restarts=1;0;;0;"));
    // down for a run (0 workers, so no master), then back as 950
    service(&tree, (900, 110_000), &[], 0, 4096);
    tree.remove(900);
    let down = run_at(&tree, state.path(), 1180.0, &[]);
    assert_eq!(down.status.code(), Some(2));
    assert_eq!(restarts(&down).as_deref(), Some("restarts=0;;;0;"));
    service(&tree, (950, 120_000), &[951], 0, 4096);
    let back = run_at(&tree, state.path(), 1240.0, &[]);
    assert_eq!(restarts(&back).as_deref(), Some("restarts=1;;;0;"));
    let steady = run_at(&tree, state.path(), 1300.0, &[]);
    assert_eq!(restarts(&steady).as_deref(), Some("restarts=0;;;0;"));
    // over 5 minutes: 812 -> 900 -> (none) -> 950
    let window = run_at(&tree, state.path(), 1360.0, &["--average", "5m"]);
    assert_eq!(restarts(&window).as_deref(), Some("restarts=2;;;0;"));
}

/// RSS of the average worker 4, 5, 6 MiB a minute apart: 2 MiB in 2 minutes, 60 MiB/h. With
/// two samples, or under two minutes, it is left out, and thresholds on it say so.
#[test]
fn rss_growth_is_fitted_once_three_samples_span_two_minutes() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    let warn = ["-w", "rss_growth=~:50MiB"];
    for (i, kib) in [4096, 5120].into_iter().enumerate() {
        service(&tree, (812, 1000), &[813, 814], 0, kib);
        let out = run_at(&tree, state.path(), 1000.0 + 60.0 * i as f64, &warn);
        let text = stdout_of(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert_eq!(
            of_line(&status_line(&out)).item("rss_growth"),
            None,
            "{text}"
        );
        assert!(
            text.contains("\nrss_growth: not measured in this run, thresholds not evaluated"),
            "{text}"
        );
    }
    service(&tree, (812, 1000), &[813, 814], 0, 6144);
    let out = run_at(&tree, state.path(), 1120.0, &warn);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = status_line(&out);
    assert!(
        line.contains(", rss_growth 60.0 MiB/h > 50.0 MiB/h | "),
        "{text}"
    );
    // bytes per hour in perfdata, and no min: it may be negative
    assert!(
        line.contains(" rss_growth=62914560B;~:52428800;;; "),
        "{text}"
    );
    // down to 2 MiB: the fit over 4, 5, 6, 2 MiB a minute apart is -30 MiB/h
    service(&tree, (812, 1000), &[813, 814], 0, 2048);
    let out = run_at(&tree, state.path(), 1180.0, &[]);
    let line = status_line(&out);
    assert_eq!(of_line(&line).number("rss_growth"), -30.0 * 1024.0 * 1024.0);
    assert!(line.contains(" rss_growth=-31457280B;;;; "), "{line}");
}

/// A tick file of the release before the history is a baseline: the CPU figure is exact, and
/// the file is rewritten as v3 with its first sample.
#[test]
fn a_v1_tick_file_is_upgraded_without_losing_the_baseline() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, 100);
    run_at(&tree, state.path(), 1000.0, &[]);
    let path = tick_file(state.path());
    fs::write(
        &path,
        "check_workers ticks v1\n# written by check_workers; ticks are 1/hz seconds\n\
         uptime 1000.00\nbtime 1700000000\nhz 100\n\
         # kind pid starttime utime stime cutime cstime\nmaster 812 1000 0 0 0 0\n\
         worker 813 1100 100 0 0 0\nworker 814 1100 100 0 0 0\nworker 815 1100 100 0 0 0\n",
    )
    .unwrap();
    // 300 ticks each over 60 s: 15 %
    nginx(&tree, 400);
    let out = run_at(&tree, state.path(), 1060.0, &[]);
    let text = stdout_of(&out);
    assert!(status_line(&out).contains(" cpu=15%;"), "{text}");
    assert!(!text.contains("no baseline"), "{text}");
    let upgraded = fs::read_to_string(&path).unwrap();
    assert!(
        upgraded.starts_with("check_workers ticks v3\n"),
        "{upgraded}"
    );
    assert!(upgraded.contains("\nbase 900 0\n"), "{upgraded}");
    assert!(
        upgraded.ends_with("\nsample 1060.00 900 0 3 4194304 812:1000\n"),
        "{upgraded}"
    );
}

/// A v2 file whose history is off in any way is no baseline, as any corrupt file, and the
/// run writes a good one.
#[test]
fn a_corrupt_history_is_no_baseline() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx(&tree, 100);
    run_at(&tree, state.path(), 1000.0, &[]);
    run_at(&tree, state.path(), 1060.0, &[]);
    let path = tick_file(state.path());
    let good = fs::read_to_string(&path).unwrap();
    for bad in [
        good.replace("sample 1000.00", "sample 1070.00"),
        good.replace("keep 900", "keep many"),
        good.replace(" 812:1000\n", " 812\n"),
        good.replace("base 0 0\n", ""),
        format!("{good}sample 1060.00 0 0 3 4194304 -\n"),
    ] {
        assert_ne!(bad, good);
        fs::write(&path, &bad).unwrap();
        let out = run_at(&tree, state.path(), 1120.0, &[]);
        let text = stdout_of(&out);
        assert!(
            text.contains("\nno baseline (tick file discarded: ")
                && text.contains(" and --interval 0: cpu not measured in this run\n"),
            "{bad}\n{text}"
        );
        let now = fs::read_to_string(&path).unwrap();
        assert!(
            check_workers::state::TickState::parse(&now).is_ok(),
            "{now}"
        );
        assert!(
            now.ends_with("\nsample 1120.00 0 0 3 4194304 812:1000\n"),
            "{now}"
        );
    }
}

/// Two runs a minute apart (3 workers, 396 ticks each in between), then the tick file with
/// `forge` applied to its text.
fn forged_after_two_runs(tree: &ProcTree, state: &Path, forge: impl Fn(&str) -> String) {
    nginx(tree, 0);
    run_at(tree, state, 1000.0, &[]);
    nginx(tree, 396);
    run_at(tree, state, 1060.0, &[]);
    let path = tick_file(state);
    let good = fs::read_to_string(&path).unwrap();
    let bad = forge(&good);
    assert_ne!(bad, good);
    fs::write(&path, bad).unwrap();
}

// Regression (issue 16.4): every number of the tick file is untrusted. A base of 2^64-1 over
// an older sample at 0 read cpu=307394502144800576%; a base of 1e11 with `keep 86400` made
// cpu_avg about 1.6e9 % on every run for a day. A base no host could have reached since boot
// discards the file, and the run rewrites it.
#[test]
fn a_base_no_host_could_reach_discards_the_file() {
    for (base, extra) in [
        ("18446744073709551615 0", &[][..]),
        ("100000000000 0", &["--average", "5m"][..]),
    ] {
        let tree = ProcTree::new(1000.0);
        let state = state_dir();
        forged_after_two_runs(&tree, state.path(), |good| {
            // the older sample stays at 0, as in the issue
            good.replace("base 1188 0\n", &format!("base {base}\n"))
                .replace("keep 900\n", "keep 86400\n")
        });
        nginx(&tree, 400);
        let out = run_at(&tree, state.path(), 1060.1, extra);
        let text = stdout_of(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!(
                "\nno baseline (tick file discarded: impossible baseline (base of {} ticks in \
                 1060.00 s of uptime)) and --interval 0: cpu not measured in this run\n",
                base.trim_end_matches(" 0")
            )),
            "{text}"
        );
        assert_eq!(of_line(&status_line(&out)).item("cpu"), None, "{text}");
        let (_, samples) = history_lines(state.path());
        assert_eq!(samples, ["sample 1060.10 0 0 3 4194304 812:1000"], "{text}");
    }
}

// Regression (issue 16.4): a history sample whose total is further below the baseline's than
// the CPUs could have burnt in between is dropped alone; the baseline still serves.
#[test]
fn a_sample_no_host_could_reach_is_dropped_alone() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    // 2 CPUs for 60 s are 12000 ticks at most: 200000 between the samples is impossible
    forged_after_two_runs(&tree, state.path(), |good| {
        good.replace("base 1188 0\n", "base 201188 0\n")
            .replace("sample 1060.00 1188 0 ", "sample 1060.00 201188 0 ")
    });
    nginx(&tree, 792);
    let out = run_at(&tree, state.path(), 1120.0, &["--average", "2m"]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // 396 ticks each over the 60 s since the baseline: 1188 of 6000 = 19.8 %
    assert!(status_line(&out).contains(" cpu=19.8%;"), "{text}");
    assert!(
        text.contains("\ntick file: 1 history samples with totals no host could reach dropped\n"),
        "{text}"
    );
    let (_, samples) = history_lines(state.path());
    assert_eq!(
        samples,
        [
            "sample 1060.00 201188 0 3 4194304 812:1000",
            "sample 1120.00 202376 0 3 4194304 812:1000"
        ],
        "{text}"
    );
}

// Regression (issue 16.4): a worker's ticks in the baseline above what it has now went down
// to a silent 0 % (saturating); ticks it could not have had since it started made hundreds
// of percent. Either discards the file.
#[test]
fn a_worker_line_no_process_could_have_discards_the_file() {
    for (forged, why) in [
        (
            "worker pid=813 start=1100 utime=999999 stime=0",
            "process 813 has 999999 ticks in the 1049.00 s it had run",
        ),
        (
            "worker pid=813 start=1100 utime=5000 stime=0",
            "process 813's ticks went down since the baseline",
        ),
        (
            "worker pid=813 start=999999 utime=396 stime=0",
            "process 813 started 9999.99 s after boot, after the reading at 1060.00 s",
        ),
    ] {
        let tree = ProcTree::new(1000.0);
        let state = state_dir();
        forged_after_two_runs(&tree, state.path(), |good| {
            good.replace("worker pid=813 start=1100 utime=396 stime=0", forged)
        });
        nginx(&tree, 400);
        let out = run_at(&tree, state.path(), 1120.0, &[]);
        let text = stdout_of(&out);
        assert!(
            text.contains(&format!(
                "\nno baseline (tick file discarded: impossible baseline ({why})) and \
                 --interval 0: cpu not measured in this run\n"
            )),
            "{forged}: {text}"
        );
        let now = fs::read_to_string(tick_file(state.path())).unwrap();
        assert!(
            now.contains("\nworker pid=813 start=1100 utime=400 stime=0 "),
            "{now}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Real processes: spawned under unique names on the real /proc, figures within bands (the
// machine is shared), compared with what the workers' own counters say over the same spans.

mod real {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command as StdCommand};
    use std::thread;
    use std::time::{Duration, Instant};

    use tempfile::TempDir;

    use crate::fixture::perfdata::of_line;
    use crate::fixture::spawn::Spawned;
    use crate::fixture::spawn::{copy_executable, unique};
    use crate::fixture::{cpu_heavy, real_run as real_check, state_dir, status_line, stdout_of};

    /// A worker that names itself (PR_SET_NAME), then burns CPU in 10-ms cycles: busy for the
    /// share in the file `argv[2]` (re-read every cycle, so a test can change the load), idle
    /// for the rest.
    const DUTY_WORKER: &str = r#"
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
while True:
    with open(sys.argv[2]) as f:
        share = float(f.read())
    end = time.monotonic() + 0.01 * share
    while time.monotonic() < end:
        pass
    time.sleep(0.01 * (1 - share))
"#;

    /// A worker that names itself, then grows by `argv[2]` bytes a second, touching each page.
    const GROWING_WORKER: &str = r#"
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
rate, held, chunks, start = int(sys.argv[2]), 0, [], time.monotonic()
while True:
    want = int((time.monotonic() - start) * rate)
    if want > held:
        chunks.append(b"x" * (want - held))
        held = want
    time.sleep(0.05)
"#;

    fn python3_available() -> bool {
        StdCommand::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The seconds `-vv` says the CPU figure was measured over.
    fn measured_over(text: &str) -> f64 {
        text.split("cpu: measured over ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no interval note: {text}"))
    }

    /// The issue's test: 3 workers at a steady 60 % of a core, one run, then 10 runs about
    /// 0.1 s apart from 2 s later. Each figure must be within 15 points of what the workers'
    /// own counters say over the same span (before: 0 % to 150 %, and n/a).
    #[test]
    fn back_to_back_runs_on_a_steady_load_stay_close_to_the_truth() {
        if !python3_available() {
            crate::fixture::skip("back_to_back_runs...", "needs python3");
            return;
        }
        let _serial = cpu_heavy();
        let mut spawned = Spawned::new();
        let name = unique("cwh");
        let duty = spawned.dir().join("duty");
        fs::write(&duty, "0.6").unwrap();
        spawned.python(DUTY_WORKER, &name, duty.to_str().unwrap(), 3);
        spawned.wait_until_named(&name);
        thread::sleep(Duration::from_millis(500));
        let state = state_dir();
        let args = ["-n", name.as_str(), "-vv", "--interval", "0.5"];
        let started = Instant::now();
        // (seconds since started, the workers' ticks) right after each run
        let mut truth: Vec<(f64, u64)> = Vec::new();
        let first = real_check(state.path(), &args);
        assert_eq!(of_line(&status_line(&first)).number("workers"), 3.0);
        truth.push((started.elapsed().as_secs_f64(), spawned.cpu_ticks()));
        thread::sleep(Duration::from_secs(2));
        let mut report = Vec::new();
        for _ in 0..10 {
            let out = real_check(state.path(), &args);
            let now = (started.elapsed().as_secs_f64(), spawned.cpu_ticks());
            let text = stdout_of(&out);
            let cpu = of_line(&status_line(&out)).number("cpu");
            let over = measured_over(&text);
            // the record closest to where the check's interval started
            let from = *truth
                .iter()
                .min_by(|a, b| {
                    let off = |r: &(f64, u64)| (now.0 - over - r.0).abs();
                    off(a).total_cmp(&off(b))
                })
                .unwrap();
            // ticks are 1/100 s: ticks per second are percent of one core
            let true_cpu = (now.1 - from.1) as f64 / (now.0 - from.0);
            report.push(format!("{cpu:.1} (true {true_cpu:.1}, over {over:.2} s)"));
            assert!(over >= 1.0, "an interval under 1 s: {text}");
            assert!(
                (cpu - true_cpu).abs() <= 15.0,
                "cpu {cpu} vs true {true_cpu} over {over} s: {text}\n{report:?}"
            );
            truth.push(now);
            thread::sleep(Duration::from_millis(100));
        }
        eprintln!("back-to-back figures: {}", report.join(", "));
    }

    /// An average over a window that holds a steady stretch and a burst lies between the two;
    /// on the first run, with nothing to average over, it is the run's own figure.
    #[test]
    fn cpu_avg_over_a_burst_lies_between_steady_and_burst() {
        if !python3_available() {
            crate::fixture::skip("cpu_avg_over_a_burst...", "needs python3");
            return;
        }
        let _serial = cpu_heavy();
        let mut spawned = Spawned::new();
        let name = unique("cwa");
        let duty = spawned.dir().join("duty");
        fs::write(&duty, "0.15").unwrap();
        spawned.python(DUTY_WORKER, &name, duty.to_str().unwrap(), 2);
        spawned.wait_until_named(&name);
        thread::sleep(Duration::from_millis(500));
        let state = state_dir();
        // a first run has only its own sample: cpu_avg is the CPU measured within the run
        let first = real_check(
            state.path(),
            &["-n", &name, "--interval", "0.5", "--average", "4s"],
        );
        let text = stdout_of(&first);
        let line = status_line(&first);
        assert_eq!(
            of_line(&line).number("cpu_avg"),
            of_line(&line).number("cpu"),
            "{text}"
        );
        assert!(
            text.contains("\ncpu_avg: over 0.5")
                && text.contains(" s within this run, of the 4 s window (no history yet)\n"),
            "{text}"
        );
        let args = ["-n", name.as_str(), "--interval", "0", "--average", "4s"];
        thread::sleep(Duration::from_secs(2));
        let steady = of_line(&status_line(&real_check(state.path(), &args))).number("cpu");
        fs::write(&duty, "0.85").unwrap();
        thread::sleep(Duration::from_secs(2));
        let out = real_check(state.path(), &args);
        let line = status_line(&out);
        let burst = of_line(&line).number("cpu");
        let average = of_line(&line).number("cpu_avg");
        eprintln!("steady {steady:.1}, burst {burst:.1}, cpu_avg over 4 s {average:.1}");
        assert!(
            burst > steady + 20.0,
            "no burst to average: {steady} {burst}"
        );
        assert!(
            steady + 5.0 < average && average < burst - 5.0,
            "steady {steady}, burst {burst}, cpu_avg {average}: {}",
            stdout_of(&out)
        );
    }

    /// A master (a shell) with two children of the same name, as nginx runs; killed and
    /// started again, as systemd would. Its process group dies with it.
    struct Service {
        master: Child,
        _dir: TempDir,
    }

    impl Service {
        fn start(name: &str) -> Service {
            use std::os::unix::process::CommandExt;
            let dir = tempfile::tempdir().unwrap();
            let (shell, sleep): (PathBuf, PathBuf) = (dir.path().join("m"), dir.path().join("w"));
            for (from, to) in [("/bin/sh", &shell), ("/bin/sleep", &sleep)] {
                fs::create_dir(to).unwrap();
                copy_executable(Path::new(from), &to.join(name));
            }
            let master = StdCommand::new(shell.join(name))
                .args(["-c", r#""$1" 600 & "$1" 600 & wait"#, "master"])
                .arg(sleep.join(name))
                .process_group(0)
                .spawn()
                .unwrap();
            let children = format!("/proc/{0}/task/{0}/children", master.id());
            for _ in 0..200 {
                let listed = fs::read_to_string(&children).unwrap_or_default();
                if listed.split_whitespace().count() == 2 {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            Service { master, _dir: dir }
        }
    }

    impl Drop for Service {
        fn drop(&mut self) {
            // SAFETY: signals the process group this test created
            unsafe {
                nix::libc::kill(-(self.master.id() as i32), nix::libc::SIGKILL);
            }
            let _ = self.master.wait();
        }
    }

    #[test]
    fn a_killed_and_restarted_master_is_one_restart() {
        let name = unique("cwm");
        let state = state_dir();
        let args = ["-n", name.as_str(), "--interval", "0", "-w", "restarts=0"];
        let service = Service::start(&name);
        let master = service.master.id();
        let first = real_check(state.path(), &args);
        let line = status_line(&first);
        assert!(
            line.contains(&format!(": 2 workers (master {master}), ")),
            "{line}"
        );
        assert_eq!(of_line(&line).item("restarts"), None, "{line}");
        let again = real_check(state.path(), &args);
        assert_eq!(again.status.code(), Some(0), "{}", stdout_of(&again));
        assert_eq!(of_line(&status_line(&again)).number("restarts"), 0.0);
        drop(service);
        let service = Service::start(&name);
        let out = real_check(state.path(), &args);
        let text = stdout_of(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let line = status_line(&out);
        assert!(
            line.contains(&format!("(master {}), ", service.master.id())),
            "{text}"
        );
        assert!(line.contains(", restarts 1 > 0 | "), "{text}");
        let after = real_check(state.path(), &args);
        assert_eq!(of_line(&status_line(&after)).number("restarts"), 0.0);
    }

    /// A master whose two workers each hold `argv[2]` MiB, all named `argv[1]`.
    const HOLDING_FAMILY: &str = r#"
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
for _ in range(2):
    if os.fork() == 0:
        held = b"x" * (int(sys.argv[2]) << 20)
        time.sleep(600)
        os._exit(0)
os.wait()
"#;

    /// A [`HOLDING_FAMILY`] in a process group of its own, killed when dropped.
    struct Family(Child);

    impl Family {
        fn start(name: &str, mib: u32) -> Family {
            use std::os::unix::process::CommandExt;
            let master = StdCommand::new("python3")
                .args(["-c", HOLDING_FAMILY, name, &mib.to_string()])
                .process_group(0)
                .spawn()
                .unwrap();
            let children = format!("/proc/{0}/task/{0}/children", master.id());
            let named = |pid: &str| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
            };
            for _ in 0..500 {
                let listed = fs::read_to_string(&children).unwrap_or_default();
                let pids: Vec<&str> = listed.split_whitespace().collect();
                if pids.len() == 2 && pids.iter().all(|p| named(p)) {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            // the children fill their memory after they are named
            thread::sleep(Duration::from_millis(500));
            Family(master)
        }
    }

    impl Drop for Family {
        fn drop(&mut self) {
            // SAFETY: signals the process group this test created
            unsafe {
                nix::libc::kill(-(self.0.id() as i32), nix::libc::SIGKILL);
            }
            let _ = self.0.wait();
        }
    }

    /// Issue 22, item 6, on one timeline (each case needs two minutes of samples), runs at 0,
    /// 5, 10, 65 and 130 s:
    /// - two workers growing 1 MiB/s each: no `rss_growth` before two minutes (10 s of load
    ///   read 42 MiB/h for nginx), then about 3600 MiB an hour;
    /// - a master whose workers hold 10 MiB, restarted after the 65-s run with workers of
    ///   60 MiB: the fit over both would read about 1.4 GiB/h; the new series has one sample,
    ///   so no figure, and `restarts=1`.
    #[test]
    fn rss_growth_needs_two_minutes_and_a_restart_starts_a_new_series() {
        if !python3_available() {
            crate::fixture::skip("rss_growth_needs_two_minutes...", "needs python3");
            return;
        }
        let mut spawned = Spawned::new();
        let growing = unique("cwg");
        spawned.python(GROWING_WORKER, &growing, "1048576", 2);
        spawned.wait_until_named(&growing);
        let restarted = unique("cwq");
        let mut family = Family::start(&restarted, 10);
        let (growing_state, restarted_state) = (state_dir(), state_dir());
        let check = |name: &str, state: &Path| {
            let out = real_check(state, &["-n", name, "--interval", "0"]);
            status_line(&out)
        };
        let started = Instant::now();
        for at in [0, 5, 10, 65, 130] {
            thread::sleep(Duration::from_secs(at).saturating_sub(started.elapsed()));
            let line = check(&growing, growing_state.path());
            if at < 120 {
                assert_eq!(of_line(&line).item("rss_growth"), None, "{line}");
            } else {
                let growth = of_line(&line).number("rss_growth");
                let expected = 3600.0 * 1024.0 * 1024.0;
                let gib = |b: f64| b / (1u64 << 30) as f64;
                eprintln!(
                    "rss_growth {:.2} GiB/h (expected {:.2})",
                    gib(growth),
                    gib(expected)
                );
                assert!((growth - expected).abs() <= 0.3 * expected, "{line}");
            }
            if at == 0 || at == 65 {
                check(&restarted, restarted_state.path());
            }
            if at == 65 {
                drop(family);
                family = Family::start(&restarted, 60);
            }
        }
        let line = check(&restarted, restarted_state.path());
        assert_eq!(of_line(&line).number("restarts"), 1.0, "{line}");
        assert!(
            of_line(&line).number("rss") > 50.0 * 1024.0 * 1024.0,
            "{line}"
        );
        assert_eq!(of_line(&line).item("rss_growth"), None, "{line}");
        drop(family);
    }
}
