//! Watch mode (issue 19): `--every SECONDS [--count N]` takes a sample every SECONDS and
//! prints each as one timestamped line (or one JSON object per line), keeps the tick file up to
//! date, survives a failing sample, and stops on SIGINT or SIGTERM after the sample under way.
//! Exact figures on fixture trees changed between samples; real processes with tolerances.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::{unique, Spawned};
use crate::fixture::{
    binary, check_command, command, cpu_heavy, state_dir, tick_file, FakeProc, ProcTree,
};
use crate::json_output::schema;

const WWW: u32 = 33;

/// A check running in watch mode, read line by line as it prints.
struct Watching {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Watching {
    fn start(mut cmd: Command) -> Watching {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Watching { child, out }
    }

    /// The next line it prints, without its newline.
    fn line(&mut self) -> String {
        let mut line = String::new();
        let read = self.out.read_line(&mut line).unwrap();
        assert!(read > 0, "the watch ended early");
        line.trim_end_matches('\n').to_string()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Whether its main thread blocks SIGINT (`SigBlk` of its status) within `limit`.
    fn blocks_sigint_within(&self, limit: Duration) -> bool {
        let started = Instant::now();
        let path = format!("/proc/{}/status", self.child.id());
        while started.elapsed() < limit {
            let status = fs::read_to_string(&path).unwrap_or_default();
            let blocked = status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
            if blocked.is_some_and(|mask| mask & (1 << (libc_sigint() - 1)) != 0) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Its resident set now, KiB.
    fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Its exit, and what it printed after the lines read.
    fn finish(mut self) -> (ExitStatus, String) {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        (self.child.wait().unwrap(), rest)
    }
}

fn libc_sigint() -> u32 {
    Signal::SIGINT as u32
}

/// nginx master 812 with workers 813 and 814 at `ticks` (user ticks each), the tree at `uptime`.
fn nginx_at(tree: &ProcTree, uptime: f64, ticks: [u64; 2]) {
    tree.put(&FakeProc::new(812, 1, "nginx", 0));
    for (pid, utime) in [813, 814].into_iter().zip(ticks) {
        tree.put(&FakeProc::new(pid, 812, "nginx", WWW).ticks(utime, 0));
    }
    tree.set_uptime(uptime);
}

/// `--every 1` on the fixture: a pause long enough for the test to move the tree on between
/// samples, whatever the load.
fn watch_fixture(tree: &ProcTree, state: &Path, extra: &[&str]) -> Watching {
    let mut cmd = check_command(tree.path(), state);
    cmd.args(["-n", "nginx", "--interval", "0", "--every", "1"])
        .args(extra);
    Watching::start(cmd)
}

/// The check on the real `/proc`, keeping its state in `state`, as a command to spawn.
fn real_command(state: &Path) -> Command {
    let mut cmd = command(binary());
    cmd.arg("--state-dir").arg(state);
    cmd
}

/// The line after its ISO 8601 local time (`2026-12-06T16:20:00+01:00 `), which it must have.
fn after_time(line: &str) -> &str {
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(is_local_time(time), "no time first: {line}");
    rest
}

fn is_local_time(text: &str) -> bool {
    let re = regex_lite::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$").unwrap();
    re.is_match(text)
}

#[test]
fn each_sample_is_a_timestamped_line_with_cpu_since_the_previous_sample() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx_at(&tree, 1000.0, [100, 200]);
    let mut watch = watch_fixture(&tree, state.path(), &["--count", "3", "-w", "20"]);
    let first = watch.line();
    assert_eq!(
        after_time(&first).split(" | ").next().unwrap(),
        "WORKERS OK - nginx: 2 workers (master 812), cpu n/a, rss 4.0 MiB avg, vms 100.0 MiB avg"
    );
    // a minute later: 600 and 1200 ticks more, 30 % over the minute since the first sample
    nginx_at(&tree, 1060.0, [700, 1400]);
    let second = watch.line();
    let second = after_time(&second);
    assert!(second.starts_with("WORKERS WARNING - "), "{second}");
    assert_eq!(of_line(second).item("cpu"), Some("cpu=30%;20;;0;200"));
    // and a minute on, 60 more each: 2 % since the second sample, not 16 % since the first
    nginx_at(&tree, 1120.0, [760, 1460]);
    let third = watch.line();
    assert_eq!(
        of_line(after_time(&third)).item("cpu"),
        Some("cpu=2%;20;;0;200")
    );
    let (status, rest) = watch.finish();
    assert_eq!((status.code(), rest.as_str()), (Some(0), ""));
    // the tick file holds the last sample, for a scheduled check afterwards
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert!(
        ticks.contains("uptime=1120.00") || ticks.contains("1120.00"),
        "{ticks}"
    );
    assert!(
        ticks.contains("pid=814 ") && ticks.contains("utime=1460"),
        "{ticks}"
    );
}

#[test]
fn json_lines_one_object_per_sample() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx_at(&tree, 1000.0, [100, 200]);
    let mut watch = watch_fixture(&tree, state.path(), &["--count", "2", "--format", "json"]);
    let first: Value = serde_json::from_str(&watch.line()).unwrap();
    nginx_at(&tree, 1060.0, [700, 1400]);
    let second: Value = serde_json::from_str(&watch.line()).unwrap();
    for sample in [&first, &second] {
        schema(sample);
        assert!(is_local_time(sample["time"].as_str().unwrap()), "{sample}");
        assert_eq!(sample["state"], "OK");
        assert_eq!(sample["exit_code"], 0);
        assert_eq!(sample["label"], "nginx");
        assert_eq!(sample["metrics"]["workers"]["value"], 2.0);
    }
    assert!(first["metrics"].get("cpu").is_none(), "{first}");
    assert_eq!(second["metrics"]["cpu"]["value"], 30.0, "{second}");
    assert_eq!(second["metrics"]["cpu"]["uom"], "%");
    let (status, rest) = watch.finish();
    assert_eq!((status.code(), rest.as_str()), (Some(0), ""));
}

#[test]
fn a_failing_sample_prints_its_line_and_the_watch_goes_on() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx_at(&tree, 1000.0, [100, 200]);
    let pidfile = tree.path().join("nginx.pid");
    fs::write(&pidfile, "812\n").unwrap();
    let pidfile_arg = pidfile.to_str().unwrap();
    let mut watch = watch_fixture(
        &tree,
        state.path(),
        &["--count", "3", "--pidfile", pidfile_arg],
    );
    assert!(after_time(&watch.line()).starts_with("WORKERS OK - "));
    // the service stops: its pidfile goes
    fs::remove_file(&pidfile).unwrap();
    tree.set_uptime(1060.0);
    let gone = watch.line();
    assert!(
        after_time(&gone).starts_with("WORKERS CRITICAL - ")
            && gone.contains(&format!("pidfile {pidfile_arg} is missing")),
        "{gone}"
    );
    // a pidfile that is not a pid: this sample is UNKNOWN, the watch still goes on to the end
    fs::write(&pidfile, "garbage\n").unwrap();
    tree.set_uptime(1120.0);
    let broken = watch.line();
    assert!(
        after_time(&broken).starts_with("WORKERS UNKNOWN - "),
        "{broken}"
    );
    let (status, _) = watch.finish();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_between_samples_ends_the_watch_at_once_with_exit_0() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx_at(&tree, 1000.0, [100, 200]);
    let mut cmd = check_command(tree.path(), state.path());
    // a pause far longer than the test: only the signal can end it in time
    cmd.args(["-n", "nginx", "--interval", "0", "--every", "3600"]);
    let mut watch = Watching::start(cmd);
    watch.line();
    let signalled = Instant::now();
    watch.signal(Signal::SIGTERM);
    let (status, rest) = watch.finish();
    assert_eq!((status.code(), rest.as_str()), (Some(0), ""));
    assert!(signalled.elapsed() < Duration::from_secs(2));
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert!(ticks.contains("utime=200"), "{ticks}");
}

#[test]
fn the_timeout_is_per_sample_not_for_the_whole_watch() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx_at(&tree, 1000.0, [100, 200]);
    let mut cmd = check_command(tree.path(), state.path());
    cmd.args([
        "-n",
        "nginx",
        "--interval",
        "0",
        "-t",
        "1",
        "--every",
        "0.4",
    ])
    .args(["--count", "4"]);
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(started.elapsed() > Duration::from_millis(1200), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| after_time(l).starts_with("WORKERS OK - ")),
        "{text}"
    );
}

#[test]
fn bad_watch_options_exit_3_before_any_sample() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    for (args, said) in [
        (
            &["--every", "0.001"][..],
            "--every 0.001: give seconds, at least 0.01",
        ),
        (
            &["--every", "1", "--count", "0"][..],
            "--count 0: give at least 1 sample",
        ),
    ] {
        let out = check_command(tree.path(), state.path())
            .args(["-n", "nginx"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, format!("WORKERS UNKNOWN - {said}\n"));
        assert_eq!(out.status.code(), Some(3));
    }
}

// Regression guard (issue 19): memory stays flat however long the watch runs. Up to 1,024
// samples the tick file's history fills (its buffers grow with it); from 1,100 on nothing may
// grow: 500 samples more may move the resident set by 64 KiB at most, so a leak of 128 bytes a
// sample fails. The bench (benches/watch_memory.sh) runs 10,000 in a release build.
#[test]
fn memory_stays_flat_once_the_history_is_full() {
    let tree = ProcTree::new(1000.0);
    let state = state_dir();
    nginx_at(&tree, 1000.0, [100, 200]);
    let mut cmd = check_command(tree.path(), state.path());
    // -t 60: 1,600 fsync'd saves on a machine busy with other tests may meet a slow disk
    cmd.args([
        "-n",
        "nginx",
        "--interval",
        "0",
        "--every",
        "0.01",
        "-t",
        "60",
    ]);
    let mut watch = Watching::start(cmd);
    let mut rss_at_1100 = 0;
    for n in 1..=1600 {
        watch.line();
        // the fixture's clock moves, so every sample adds to the history as a real one does
        tree.set_uptime(1000.0 + n as f64);
        if n == 1100 {
            rss_at_1100 = watch.rss_kib();
        }
    }
    let rss_at_1600 = watch.rss_kib();
    eprintln!("watch RSS: {rss_at_1100} KiB after 1,100 samples, {rss_at_1600} KiB after 1,600");
    watch.signal(Signal::SIGINT);
    let (status, rest) = watch.finish();
    assert_eq!(status.code(), Some(0), "{status:?}: {rest}");
    assert!(
        rss_at_1600 <= rss_at_1100 + 64,
        "RSS grew from {rss_at_1100} KiB after 1,100 samples to {rss_at_1600} KiB after 1,600"
    );
}

#[test]
fn real_workers_every_second_with_cpu_from_the_second_sample_on() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwe");
    spawned.burners(&name, 1);
    spawned.sleepers(&name, 1);
    let state = state_dir();
    let mut cmd = real_command(state.path());
    cmd.args([
        "-n",
        &name,
        "--interval",
        "0.5",
        "--every",
        "1",
        "--count",
        "3",
    ]);
    let mut watch = Watching::start(cmd);
    let mut arrivals = Vec::new();
    for _ in 0..3 {
        let line = watch.line();
        arrivals.push((Instant::now(), spawned.cpu_ticks(), line));
    }
    let (status, _) = watch.finish();
    assert_eq!(status.code(), Some(0));
    for pair in arrivals.windows(2) {
        let ((then, ticks_then, _), (now, ticks_now, line)) = (&pair[0], &pair[1]);
        let gap = now.duration_since(*then).as_secs_f64();
        assert!(
            (0.9..2.5).contains(&gap),
            "samples {gap:.2} s apart: {line}"
        );
        let line = after_time(line);
        assert_eq!(of_line(line).number("workers"), 2.0, "{line}");
        // what the burner really used between the two lines, within the error bound of one
        // tick per worker plus the few milliseconds between the reading and the line
        let truth = (ticks_now - ticks_then) as f64 / gap;
        let cpu = of_line(line).number("cpu");
        assert!(
            (cpu - truth).abs() <= 15.0 && cpu <= 102.0,
            "cpu {cpu}, truth {truth:.1}: {line}"
        );
    }
}

#[test]
fn real_sigint_during_a_sample_finishes_it_saves_and_exits_0() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwi");
    spawned.sleepers(&name, 2);
    let state = state_dir();
    let mut cmd = real_command(state.path());
    // the first sample measures within itself over 1 s: the signal comes in the middle of it
    cmd.args(["-n", &name, "--interval", "1", "--every", "60", "-v"]);
    let watch = Watching::start(cmd);
    // once the watch blocks SIGINT its first sample is under way (a busy machine may take
    // longer than that to start it: a signal before would kill it, as it kills any program)
    assert!(watch.blocks_sigint_within(Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(300));
    watch.signal(Signal::SIGINT);
    let (status, rest) = watch.finish();
    assert_eq!(status.code(), Some(0), "{rest}");
    let lines: Vec<&str> = rest.lines().collect();
    let line = after_time(lines[0]);
    assert!(
        line.starts_with(&format!("WORKERS OK - {name}: 2 workers, cpu ")),
        "{rest}"
    );
    assert!(
        rest.contains("cpu measured over 1.0") && rest.contains(" s within this run"),
        "{rest}"
    );
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert_eq!(
        ticks.lines().filter(|l| l.starts_with("worker ")).count(),
        2,
        "{ticks}"
    );
}

#[test]
fn real_json_lines_parse() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwj");
    spawned.sleepers(&name, 3);
    let state = state_dir();
    let mut cmd = real_command(state.path());
    cmd.args([
        "-n",
        &name,
        "--interval",
        "0.2",
        "--every",
        "0.5",
        "--count",
        "3",
    ])
    .args(["--format", "json", "-v"]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let samples: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 3, "{text}");
    for sample in &samples {
        schema(sample);
        assert_eq!(sample["state"], "OK", "{sample}");
        assert_eq!(sample["metrics"]["workers"]["value"], 3.0, "{sample}");
        assert_eq!(sample["workers"].as_array().unwrap().len(), 3, "{sample}");
        assert!(is_local_time(sample["time"].as_str().unwrap()), "{sample}");
    }
}
