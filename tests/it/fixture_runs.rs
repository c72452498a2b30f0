//! The check on fixture proc trees: exact exit codes, status lines, perfdata and CPU figures.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fixture::{
    check, mkfifo, run, state_dir, status_line, stdout_of, tick_file, FakeProc, ProcTree, BTIME,
};

const WWW: u32 = 33;

/// The committed nginx host: `t0` at uptime 5000 s, `t1` 60 s later.
fn committed(snapshot: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nginx")
        .join(snapshot)
}

/// nginx master 812 (root) with workers 813-816 (www-data), plus unrelated processes.
fn nginx_t0(tree: &ProcTree) {
    tree.put(&FakeProc::new(1, 0, "systemd", 0).ticks(500, 900))
        .put(&FakeProc::new(640, 1, "bash", 1000))
        .put(&FakeProc::new(812, 1, "nginx", 0).ticks(50, 30))
        .put(
            &FakeProc::new(813, 812, "nginx", WWW)
                .started(1100)
                .ticks(1000, 200),
        )
        .put(
            &FakeProc::new(814, 812, "nginx", WWW)
                .started(1100)
                .ticks(500, 100),
        )
        .put(
            &FakeProc::new(815, 812, "nginx", WWW)
                .started(1100)
                .ticks(200, 50),
        )
        .put(&FakeProc::new(816, 812, "nginx", WWW).started(1100));
}

/// 60 s later: 813 burnt 3600 ticks, 814 600, 815 none, 816 exited, 817 started at 5020 s and
/// burnt 300. All together 4500 ticks of 6000 per core: 75 %.
fn nginx_t1(tree: &ProcTree) {
    tree.set_uptime(5060.0);
    tree.put(&FakeProc::new(1, 0, "systemd", 0).ticks(510, 910))
        .put(&FakeProc::new(640, 1, "bash", 1000))
        .put(&FakeProc::new(812, 1, "nginx", 0).ticks(52, 31))
        .put(
            &FakeProc::new(813, 812, "nginx", WWW)
                .started(1100)
                .ticks(4000, 800)
                .memory_kib(8192, 102_400),
        )
        .put(
            &FakeProc::new(814, 812, "nginx", WWW)
                .started(1100)
                .ticks(1100, 100),
        )
        .put(
            &FakeProc::new(815, 812, "nginx", WWW)
                .started(1100)
                .ticks(200, 50),
        )
        .put(
            &FakeProc::new(817, 812, "nginx", WWW)
                .started(502_000)
                .ticks(300, 0)
                .memory_kib(2048, 102_400),
        );
    tree.remove(816);
}

fn nginx_tree() -> ProcTree {
    let tree = ProcTree::new(5000.0);
    nginx_t0(&tree);
    tree
}

const T0_LINE: &str = "WORKERS OK - nginx: 4 workers (master 812), cpu n/a, rss 4.0 MiB avg, \
     vms 100.0 MiB avg | workers=4;;1:;0; rss=4194304B;;;0; vms=104857600B;;;0; \
     rss_max=4194304B;;;0; vms_max=104857600B;;;0; \
     rss_total=16777216B;;;0; threads=4;;;0; fds=32;;;0; \
     fd_pct_max=0.78%;;;0;100 age_min=4989s;;;0; age_max=4989s;;;0; zombies=0;;;0; \
     uninterruptible=0;;;0;";

/// The note of a first run with `--interval 0`.
const FIRST_RUN: &str = "no baseline (first run) and --interval 0: cpu not measured in this run";

const T1_LINE: &str = "WORKERS OK - nginx: 4 workers (master 812), cpu 75.0%, rss 4.5 MiB avg, \
     vms 100.0 MiB avg | workers=4;;1:;0; cpu=75%;;;0;200 cpu_user=65%;;;0;200 \
     cpu_system=10%;;;0;200 cpu_max=60%;;;0;200 rss=4718592B;;;0; vms=104857600B;;;0; \
     rss_max=8388608B;;;0; vms_max=104857600B;;;0; \
     rss_total=18874368B;;;0; threads=4;;;0; fds=32;;;0; \
     fd_pct_max=0.78%;;;0;100 age_min=40s;;;0; age_max=5049s;;;0; zombies=0;;;0; \
     uninterruptible=0;;;0; restarts=0;;;0; nvcsw=0.02;;;0;";

/// Rewrites the committed fixture trees from the builders above:
/// `cargo test -- --ignored write_committed_fixtures`.
#[test]
#[ignore]
fn write_committed_fixtures() {
    for (name, steps) in [("t0", 0), ("t1", 1)] {
        let tree = nginx_tree();
        if steps == 1 {
            nginx_t1(&tree);
        }
        let target = committed(name);
        let _ = fs::remove_dir_all(&target);
        copy_tree(tree.path(), &target);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn first_run_with_interval_0_reports_no_cpu() {
    let state = state_dir();
    let out = check(&committed("t0"), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_of(&out), format!("{T0_LINE}\n{FIRST_RUN}\n"));
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    assert!(ticks.starts_with("check_workers ticks v3\n"), "{ticks}");
    assert!(ticks.contains("\nuptime 5000.00\n"), "{ticks}");
    assert!(ticks.contains(&format!("\nbtime {BTIME}\n")), "{ticks}");
    assert!(
        ticks.contains(
            "\nworker pid=813 start=1100 utime=1000 stime=200 cutime=0 cstime=0 nvcsw=1\n"
        ),
        "{ticks}"
    );
    assert!(
        ticks.contains("\nmaster pid=812 start=1000 utime=50 stime=30 cutime=0 cstime=0 nvcsw=1\n"),
        "{ticks}"
    );
}

#[test]
fn second_run_gives_exact_cpu_over_the_interval() {
    let state = state_dir();
    let first = check(&committed("t0"), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0));
    let second = check(&committed("t1"), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout_of(&second), format!("{T1_LINE}\n"));
}

/// The README's first example is this fixture's real output (issue 17: it showed 7 perfdata
/// labels where a run printed 24).
#[test]
fn readme_first_example_is_real_output() {
    let state = state_dir();
    let first = run(committed("t0"), &state, &["-n", "nginx", "--interval", "0"]);
    assert_eq!(first.status.code(), Some(0));
    let args = ["-n", "nginx", "-w", "80", "-c", "95"];
    let second = run(committed("t1"), &state, &args);
    let shown = format!(
        "    $ /usr/lib/nagios/plugins/check_workers {}\n    {}",
        args.join(" "),
        stdout_of(&second)
    );
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&shown),
        "README.md's first example must be:\n{shown}"
    );
}

#[test]
fn committed_fixtures_match_their_builders() {
    for (name, steps) in [("t0", 0), ("t1", 1)] {
        let tree = nginx_tree();
        if steps == 1 {
            nginx_t1(&tree);
        }
        assert_eq!(listing(tree.path()), listing(&committed(name)), "{name}");
    }
}

fn listing(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let content = fs::read(&path).unwrap();
                files.push((path.strip_prefix(root).unwrap().to_path_buf(), content));
            }
        }
    }
    files.sort();
    files
}

/// Lays a baseline with a plain first run on the nginx tree (exactly [`T0_LINE`]), then applies
/// `change` and runs `-n nginx --interval 0` again with `extra`.
fn two_runs(change: impl FnOnce(&ProcTree), extra: &[&str]) -> std::process::Output {
    let tree = nginx_tree();
    let state = state_dir();
    let args = ["-n", "nginx", "--interval", "0"];
    let first = run(&tree, &state, &args);
    assert_eq!(first.status.code(), Some(0), "{}", stdout_of(&first));
    assert_eq!(stdout_of(&first), format!("{T0_LINE}\n{FIRST_RUN}\n"));
    change(&tree);
    run(&tree, &state, &[&args, extra].concat())
}

#[test]
fn reused_pid_is_a_new_process() {
    // pid 813 exits and the pid is reused by a new worker started at 5030 s with 120 ticks:
    // the old 1200 ticks must not be subtracted (that would read 0 or wrap around)
    let out = two_runs(
        |tree| {
            tree.set_uptime(5060.0);
            tree.put(
                &FakeProc::new(813, 812, "nginx", WWW)
                    .started(503_000)
                    .ticks(100, 20),
            );
        },
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let line = status_line(&out);
    // 120 ticks of 6000 = 2 %
    assert!(line.contains(" cpu 2.0%,"), "{line}");
    assert!(line.contains(" cpu=2%;"), "{line}");
}

#[test]
fn master_excluded_by_default_and_included_on_request() {
    let tree = nginx_tree();
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0", "--include-master"])
        .output()
        .unwrap();
    let line = status_line(&out);
    assert!(
        line.starts_with("WORKERS OK - nginx: 5 workers (master 812 included), cpu n/a,"),
        "{line}"
    );
    assert!(line.contains("workers=5;;1:;0;"), "{line}");
    // and a different tick file from the selection without the master
    check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .assert()
        .code(0);
    let tick_files = fs::read_dir(state.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ticks")
        })
        .count();
    assert_eq!(tick_files, 2);
}

#[test]
fn no_workers_is_critical() {
    let tree = ProcTree::new(100.0);
    tree.put(&FakeProc::new(1, 0, "systemd", 0));
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        status_line(&out),
        "WORKERS CRITICAL - nginx: 0 workers < 1, cpu n/a | workers=0;;1:;0; rss_total=0B;;;0; \
         rss_pct=0%;;;0;100 threads=0;;;0; zombies=0;;;0; uninterruptible=0;;;0;"
    );
}

#[test]
fn explicit_workers_range_overrides_the_default() {
    let tree = ProcTree::new(100.0);
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0", "-c", "workers=0:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(status_line(&out).contains("workers=0;;0:;0;"));
}

#[test]
fn cpu_thresholds_warn_and_crit() {
    let out = two_runs(nginx_t1, &["-w", "70", "-c", "80"]);
    assert_eq!(out.status.code(), Some(1));
    let line = status_line(&out);
    assert!(
        line.starts_with("WORKERS WARNING - nginx: 4 workers (master 812), cpu 75.0% > 70, rss"),
        "{line}"
    );
    assert!(line.contains(" cpu=75%;70;80;0;200 "), "{line}");

    let out = two_runs(nginx_t1, &["-w", "60", "-c", "74.9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(status_line(&out).contains("cpu 75.0% > 74.9,"));

    // the edge: 75 is inside 0..75, so OK
    let out = two_runs(nginx_t1, &["-c", "75"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn memory_thresholds_with_units_and_non_core_metric_named() {
    let out = two_runs(nginx_t1, &["-w", "rss_max=7MiB", "-c", "rss=5M"]);
    assert_eq!(out.status.code(), Some(1));
    let line = status_line(&out);
    assert!(
        line.contains("rss 4.5 MiB avg, vms 100.0 MiB avg, rss_max 8.0 MiB > 7.0 MiB |"),
        "{line}"
    );
    assert!(line.contains(" rss=4718592B;;5242880;0; "), "{line}");
    assert!(line.contains(" rss_max=8388608B;7340032;;0; "), "{line}");
}

#[test]
fn worst_state_wins() {
    // cpu is WARNING, workers CRITICAL: CRITICAL
    let out = two_runs(
        |tree| {
            nginx_t1(tree);
        },
        &["-w", "50", "-c", "workers=5:"],
    );
    assert_eq!(out.status.code(), Some(2));
    let line = status_line(&out);
    assert!(
        line.starts_with("WORKERS CRITICAL - nginx: 4 workers < 5 (master 812), cpu 75.0% > 50,"),
        "{line}"
    );
}

#[test]
fn bad_ranges_and_options_exit_3_with_one_line() {
    let tree = nginx_tree();
    let state = state_dir();
    for (args, expected) in [
        (
            vec!["-w", "abc"],
            "WORKERS UNKNOWN - bad -w \"abc\": \"abc\" is not a number",
        ),
        (
            vec!["-c", "cpu=10:5"],
            "WORKERS UNKNOWN - bad -c \"cpu=10:5\": start is greater than end",
        ),
        (
            vec!["-w", "load=5"],
            "WORKERS UNKNOWN - bad -w \"load=5\": unknown metric \"load\"",
        ),
        (
            vec!["-w", "rss=5X"],
            "WORKERS UNKNOWN - bad -w \"rss=5X\": unknown size unit \"X\"",
        ),
        (
            vec!["-w", "95", "-c", "80"],
            "WORKERS UNKNOWN - -w cpu=95 can never warn",
        ),
        (
            vec!["--frobnicate"],
            "WORKERS UNKNOWN - unexpected argument '--frobnicate' found",
        ),
    ] {
        let out = check(tree.path(), state.path())
            .args(["-n", "nginx"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let text = stdout_of(&out);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with(expected), "{args:?}: {text}");
    }
    // nothing was sampled, so nothing was saved
    assert_eq!(fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn help_and_version_exit_3() {
    let tree = nginx_tree();
    let state = state_dir();
    let help = check(tree.path(), state.path())
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(3));
    assert!(stdout_of(&help).contains("Examples:"));
    let version = check(tree.path(), state.path()).arg("-V").output().unwrap();
    assert_eq!(version.status.code(), Some(3));
    assert_eq!(
        stdout_of(&version),
        format!("check_workers {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn corrupt_tick_file_is_discarded_not_fatal() {
    let tree = nginx_tree();
    let state = state_dir();
    let args = ["-n", "nginx", "--interval", "0"];
    let first = run(&tree, &state, &args);
    assert_eq!(stdout_of(&first), format!("{T0_LINE}\n{FIRST_RUN}\n"));
    let path = tick_file(state.path());
    for garbage in [
        &b"\x00\xff garbage"[..],
        b"check_workers ticks v1\nuptime 1\n",
        b"check_workers ticks v2\n",
        b"",
    ] {
        fs::write(&path, garbage).unwrap();
        let out = run(&tree, &state, &args);
        assert_eq!(out.status.code(), Some(0));
        let text = stdout_of(&out);
        assert!(text.starts_with(T0_LINE), "{text}");
        assert!(
            text.contains("no baseline (tick file discarded: ")
                && text.contains("and --interval 0: cpu not measured"),
            "{text}"
        );
        // and it was replaced by a good one
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("worker pid=813 "));
    }
}

#[test]
fn reboot_discards_the_baseline() {
    let out = two_runs(
        |tree| {
            nginx_t1(tree);
            tree.set_btime(BTIME + 3600);
        },
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_of(&out);
    assert!(text.contains("cpu n/a"), "{text}");
    assert!(
        text.contains("no baseline (host rebooted since the last run)"),
        "{text}"
    );
}

#[test]
fn uptime_going_backwards_discards_the_baseline() {
    let out = two_runs(|tree| tree.set_uptime(4000.0), &[]);
    let text = stdout_of(&out);
    assert!(
        text.contains("no baseline (tick file is from the future)"),
        "{text}"
    );
}

#[test]
fn in_run_interval_on_a_frozen_fixture_is_too_short() {
    // a fixture tree's uptime does not move while the check sleeps: it must say so, not divide
    // by zero
    let tree = nginx_tree();
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_of(&out);
    assert!(
        text.contains(
            "no baseline (first run), and last run less than 2 clock ticks ago: cpu not measured"
        ),
        "{text}"
    );
}

/// A state dir that cannot be made is UNKNOWN, never hiding what was measured.
#[test]
fn unwritable_state_dir_is_unknown() {
    let tree = nginx_tree();
    let parent = state_dir();
    let blocked = parent.path().join("file-not-dir");
    fs::write(&blocked, "x").unwrap();
    let out = check(tree.path(), &blocked.join("state"))
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("WORKERS UNKNOWN - nginx: 4 workers (master 812), cpu n/a, "),
        "{text}"
    );
    assert!(lines[0].contains(" | workers=4;;1:;0; "), "{text}");
    assert_eq!(
        lines[1],
        format!(
            "UNKNOWN: tick file not saved: state dir {} is not a directory",
            blocked.display()
        )
    );
    assert_eq!(lines.len(), 3, "{text}");
}

#[test]
fn group_writable_state_dir_is_refused() {
    let tree = nginx_tree();
    let state = state_dir();
    fs::set_permissions(state.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout_of(&out).contains("is writable by group or others"));
}

#[test]
fn user_filter_by_name_and_uid() {
    let tree = nginx_tree();
    tree.put(&FakeProc::new(900, 1, "nginx", 1000));
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "-u", "33", "--interval", "0"])
        .output()
        .unwrap();
    let line = status_line(&out);
    assert!(
        line.starts_with("WORKERS OK - nginx: 4 workers (master 812), "),
        "{line}"
    );
    // 812 is not the parent of 1000's nginx: not its master (and, failing -u, not read past
    // its uid, see sample's Plan)
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "-u", "1000", "--interval", "0"])
        .output()
        .unwrap();
    let line = status_line(&out);
    assert!(line.starts_with("WORKERS OK - nginx: 1 worker, "), "{line}");
    // root's only nginx is the master 812, none of whose children is root's: a master only
    // of processes that are not selected, it is one worker like any other
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "-u", "root", "--interval", "0"])
        .output()
        .unwrap();
    let line = status_line(&out);
    assert!(line.starts_with("WORKERS OK - nginx: 1 worker, "), "{line}");
}

#[test]
fn long_names_match_argv0() {
    let tree = ProcTree::new(100.0);
    let mut p = FakeProc::new(300, 1, "php-fpm8.2-long", 0);
    p.cmdline = "/usr/sbin/php-fpm8.2-long-name\0--nodaemonize\0".into();
    let mut other = FakeProc::new(301, 1, "php-fpm8.2-long", 0);
    other.cmdline = "/usr/sbin/php-fpm8.2-long-other\0".into();
    tree.put(&p).put(&other);
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "php-fpm8.2-long-name", "--interval", "0", "-v"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert!(
        text.starts_with("WORKERS OK - php-fpm8.2-long-name: 1 worker, "),
        "{text}"
    );
    assert!(text.contains("\npid 300 (php-fpm8.2-long) root "), "{text}");
}

// Regression guard: check_procs counted its own wrapping shell.
#[test]
fn never_counts_itself_its_shell_or_kernel_threads() {
    let tree = ProcTree::new(100.0);
    tree.put(&FakeProc::new(50, 1, "sh", 0)) // the shell NRPE wrapped us in
        .put(&FakeProc::new(51, 50, "sh", 0)) // the check itself (as if named sh)
        .put(&FakeProc::new(60, 1, "sh", 0)); // a real worker
    let mut kthread = FakeProc::new(70, 2, "sh", 0);
    kthread.flags = 0x0020_8040;
    tree.put(&kthread);
    tree.set_self(51);
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "sh", "--interval", "0", "-v"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert!(text.starts_with("WORKERS OK - sh: 1 worker, "), "{text}");
    assert!(text.contains("\npid 60 (sh) root "), "{text}");
}

#[test]
fn verbose_lists_busiest_first_and_caps_at_20() {
    let tree = ProcTree::new(1000.0);
    tree.put(&FakeProc::new(10, 1, "gunicorn", 0));
    for i in 0..25 {
        tree.put(&FakeProc::new(100 + i, 10, "gunicorn", 4242).started(20_000));
    }
    let state = state_dir();
    check(tree.path(), state.path())
        .args(["-n", "gunicorn", "--interval", "0"])
        .assert()
        .code(0);
    tree.set_uptime(1010.0);
    // worker 107 burns 500 ticks in 10 s = 50 %, worker 111 100 ticks = 10 %
    tree.put(
        &FakeProc::new(107, 10, "gunicorn", 4242)
            .started(20_000)
            .ticks(400, 100),
    );
    tree.put(
        &FakeProc::new(111, 10, "gunicorn", 4242)
            .started(20_000)
            .ticks(100, 0),
    );
    let out = check(tree.path(), state.path())
        .args(["-n", "gunicorn", "--interval", "0", "-v"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("WORKERS OK - gunicorn: 25 workers (master 10), cpu 60.0%,"),
        "{text}"
    );
    assert_eq!(
        lines[1],
        "pid 107 (gunicorn) 4242 S cpu 50.0% rss 4.0 MiB vms 100.0 MiB age 13m30s"
    );
    assert_eq!(
        lines[2],
        "pid 111 (gunicorn) 4242 S cpu 10.0% rss 4.0 MiB vms 100.0 MiB age 13m30s"
    );
    assert_eq!(
        lines[3],
        "pid 100 (gunicorn) 4242 S cpu 0.0% rss 4.0 MiB vms 100.0 MiB age 13m30s"
    );
    assert_eq!(lines.len(), 1 + 20 + 1, "{text}");
    assert_eq!(lines[21], "... and 5 more workers");
}

#[test]
fn timeout_gives_unknown() {
    // a status file that never delivers data stands in for a hung /proc read (NFS, FUSE)
    let tree = nginx_tree();
    let status = tree.path().join("813/status");
    fs::remove_file(&status).unwrap();
    mkfifo(&status);
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0", "-t", "1"])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout_of(&out), "WORKERS UNKNOWN - timed out after 1s\n");
}

#[test]
fn missing_proc_root_is_unknown() {
    let state = state_dir();
    let out = check(Path::new("/nonexistent/proc"), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stdout_of(&out),
        "WORKERS UNKNOWN - reading /nonexistent/proc/uptime: No such file or directory (os error 2)\n"
    );
}

#[test]
fn verbose_says_which_workers_counted_fully() {
    let out = two_runs(nginx_t1, &["-v"]);
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], T1_LINE);
    assert_eq!(
        lines[1],
        "cpu: 1 workers started within the 60 s interval and count fully"
    );
    // busiest first: 813 burnt 3600 ticks of 6000 (60 %)
    // uid 33 is named as the host's passwd says (www-data on Debian)
    assert!(lines[2].starts_with("pid 813 "), "{text}");
    assert!(
        lines[2].ends_with(" S cpu 60.0% rss 8.0 MiB vms 100.0 MiB age 1h24m"),
        "{text}"
    );
}

#[test]
fn old_process_new_to_the_selection_counts_zero_with_a_note() {
    // pid 900 has run since boot but was not an nginx worker at the previous sample (it exec'd
    // nginx since): its 5000 ticks cannot be placed in the interval
    let out = two_runs(
        |tree| {
            tree.set_uptime(5060.0);
            tree.put(
                &FakeProc::new(900, 812, "nginx", WWW)
                    .started(1100)
                    .ticks(5000, 0),
            );
        },
        &[],
    );
    let text = stdout_of(&out);
    assert!(text.contains(" cpu 0.0%,"), "{text}");
    assert!(
        text.contains("cpu: 1 workers were running but not workers at the previous sample"),
        "{text}"
    );
}

#[test]
fn exited_workers_are_recovered_from_the_master() {
    // 816 had 300/60 ticks at t0, burnt 500/40 more and exited; a short-lived worker burnt
    // 1200/0 and exited too. The master reaped both: cutime 0 -> 2000, cstime 0 -> 100.
    // Recovered: 2000 - 300 user, 100 - 60 system = 1740 ticks; with the live workers' 4500,
    // 6240 of 6000 ticks per core = 104 %.
    let tree = nginx_tree();
    tree.put(
        &FakeProc::new(816, 812, "nginx", WWW)
            .started(1100)
            .ticks(300, 60),
    );
    let state = state_dir();
    let args = ["-n", "nginx", "--interval", "0"];
    run(&tree, &state, &args);
    nginx_t1(&tree);
    tree.put(
        &FakeProc::new(812, 1, "nginx", 0)
            .ticks(52, 31)
            .children_ticks(2000, 100),
    );
    let out = run(&tree, &state, &[&args[..], &["-vv"]].concat());
    let text = stdout_of(&out);
    let line = status_line(&out);
    assert!(line.contains(" cpu 104.0%,"), "{text}");
    assert!(
        line.contains(" cpu=104%;;;0;200 cpu_user=93.33%;;;0;200 cpu_system=10.67%;;;0;200 "),
        "{text}"
    );
    assert!(
        text.contains(
            "\ncpu: 1 workers exited within the interval; 1740 ticks recovered from the master's reaped-children time\n"
        ),
        "{text}"
    );
}

#[test]
fn extra_opts_reads_an_ini_section() {
    let state = state_dir();
    let ini = state.path().join("plugins.ini");
    fs::write(
        &ini,
        "[check_workers]\nname=nginx\ninterval=0\n[other]\nname=x\n",
    )
    .unwrap();
    let out = check(&committed("t0"), &state.path().join("s"))
        .arg(format!("--extra-opts=@{}", ini.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(status_line(&out), T0_LINE);
    // the command line comes after the file, so it wins
    let out = check(&committed("t0"), &state.path().join("s2"))
        .arg(format!("--extra-opts=@{}", ini.display()))
        .args(["-c", "workers=5:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Nagios reads line 1 as the status line and a `|` in any line as the start of perfdata: the
/// only `|` of the whole output must be the one before perfdata, on line 1.
fn assert_one_pipe_on_line_1(text: &str) {
    assert!(text.starts_with("WORKERS "), "{text:?}");
    assert_eq!(text.matches('|').count(), 1, "{text:?}");
    assert!(text.lines().next().unwrap().contains(" | "), "{text:?}");
}

/// `text` as the output escapes it: `|` and line breaks as `\xNN`.
fn escaped(text: &str) -> String {
    text.replace('|', "\\x7c").replace('\n', "\\x0a")
}

/// A process name that would forge a status line and start perfdata.
const FORGED: &str = "x|y\nWORKERS OK";

/// Master 812 with one child, 813, named [`FORGED`] (the kernel takes any bytes from
/// PR_SET_NAME; its `status` escapes the line break, `stat` and `comm` do not).
fn forged_name_tree() -> ProcTree {
    let tree = ProcTree::new(5000.0);
    let mut master = FakeProc::new(812, 1, "nginx", 0);
    master.children = vec![813];
    tree.put(&master)
        .put(&FakeProc::new(813, 812, FORGED, 4242).started(1100));
    let status = tree.path().join("813/status");
    let text = fs::read_to_string(&status).unwrap();
    fs::write(&status, text.replacen(FORGED, "x|y\\nWORKERS OK", 1)).unwrap();
    tree
}

// Regression (issue 9.5): a process name in the -vvv trace turned the rest of the long output
// into perfdata and added a fake status line.
#[test]
fn forged_process_name_is_escaped_at_vvv() {
    let tree = forged_name_tree();
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["--ppid", "812", "--interval", "0", "-vvv"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text,
        format!(
            "WORKERS OK - children of 812: 1 worker (master 812), cpu n/a, rss 4.0 MiB avg, \
             vms 100.0 MiB avg | workers=1;;1:;0; rss=4194304B;;;0; vms=104857600B;;;0; \
             rss_max=4194304B;;;0; \
             vms_max=104857600B;;;0; rss_total=4194304B;;;0; \
             threads=1;;;0; fds=8;;;0; fd_pct_max=0.78%;;;0;100 age_min=4989s;;;0; \
             age_max=4989s;;;0; zombies=0;;;0; uninterruptible=0;;;0;\n\
             no baseline (first run) and --interval 0: cpu not measured in this run\n\
             rss_pct: no memory cgroup holds the workers and not this check, and pss was not \
             measured (--metrics pss); left out\n\
             queue: the service holds no listening socket (TCP, unix stream)\n\
             selection: children of 812; master not counted\n\
             skipped: 0 exited while being read, 0 unreadable\n\
             tick file: {}\n\
             pid 813 x\\x7cy\\x0aWORKERS OK: candidate\n\
             pid 813 (x\\x7cy\\x0aWORKERS OK) 4242 S cpu n/a rss 4.0 MiB vms 100.0 MiB age 1h23m\n",
            tick_file(state.path()).display()
        )
    );
    assert_one_pipe_on_line_1(&text);
}

// Regression (issue 9.5): the reused-pidfile message quotes the process name in the status
// text, which split the status line and started perfdata early.
#[test]
fn forged_process_name_is_escaped_in_the_reused_pidfile_message() {
    let tree = forged_name_tree();
    let state = state_dir();
    let pidfile = state.path().join("nginx.pid");
    fs::write(&pidfile, "813\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&pidfile)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(BTIME + 5))
        .unwrap();
    let out = check(tree.path(), &state.path().join("s"))
        .args(["--interval", "0", "--pidfile"])
        .arg(&pidfile)
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(
        text,
        format!(
            "WORKERS CRITICAL - pidfile {0}: 0 workers < 1 (pid 813 from {0} is another \
             process (x\\x7cy\\x0aWORKERS OK), started after the pidfile was written), cpu n/a \
             | workers=0;;1:;0; rss_total=0B;;;0; rss_pct=0%;;;0;100 threads=0;;;0; \
             zombies=0;;;0; uninterruptible=0;;;0;\n",
            pidfile.display()
        )
    );
    assert_one_pipe_on_line_1(&text);
}

// Regression (issue 9.5): an ordinary regex alternation is a `|` in the label and in -vv.
#[test]
fn regex_alternation_is_escaped_in_the_label_and_at_vv() {
    let tree = ProcTree::new(5000.0);
    for (pid, seconds) in [(700, "300"), (701, "200"), (702, "100")] {
        let mut sleeper = FakeProc::new(pid, 1, "sleep", 4242);
        sleeper.cmdline = format!("sleep\0{seconds}\0");
        tree.put(&sleeper);
    }
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-a", "sleep 300|sleep 200", "--interval", "0", "-vv"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text,
        format!(
            "WORKERS OK - cmdline /sleep 300\\x7csleep 200/: 2 workers, cpu n/a, \
             rss 4.0 MiB avg, vms 100.0 MiB avg | workers=2;;1:;0; rss=4194304B;;;0; \
             vms=104857600B;;;0; rss_max=4194304B;;;0; \
             vms_max=104857600B;;;0; rss_total=8388608B;;;0; \
             threads=2;;;0; fds=16;;;0; fd_pct_max=0.78%;;;0;100 age_min=4990s;;;0; \
             age_max=4990s;;;0; zombies=0;;;0; uninterruptible=0;;;0;\n\
             no baseline (first run) and --interval 0: cpu not measured in this run\n\
             rss_pct: no memory cgroup holds the workers and not this check, and pss was not \
             measured (--metrics pss); left out\n\
             queue: the service holds no listening socket (TCP, unix stream)\n\
             selection: cmdline /sleep 300\\x7csleep 200/; master not counted\n\
             skipped: 0 exited while being read, 0 unreadable\n\
             tick file: {}\n\
             pid 700 (sleep) 4242 S cpu n/a rss 4.0 MiB vms 100.0 MiB age 1h23m\n\
             pid 701 (sleep) 4242 S cpu n/a rss 4.0 MiB vms 100.0 MiB age 1h23m\n",
            tick_file(state.path()).display()
        )
    );
    assert_one_pipe_on_line_1(&text);
}

#[test]
fn pipe_in_a_name_filter_is_escaped() {
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(700, 1, "a|b", 4242));
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["-n", "a|b", "--interval", "0"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text,
        "WORKERS OK - a\\x7cb: 1 worker, cpu n/a, rss 4.0 MiB avg, vms 100.0 MiB avg | \
         workers=1;;1:;0; rss=4194304B;;;0; vms=104857600B;;;0; \
         rss_max=4194304B;;;0; vms_max=104857600B;;;0; \
         rss_total=4194304B;;;0; threads=1;;;0; fds=8;;;0; \
         fd_pct_max=0.78%;;;0;100 age_min=4990s;;;0; age_max=4990s;;;0; zombies=0;;;0; \
         uninterruptible=0;;;0;\n\
         no baseline (first run) and --interval 0: cpu not measured in this run\n"
    );
    assert_one_pipe_on_line_1(&text);
}

// Regression (issue 9.5): a path named by the operator is outside text too.
#[test]
fn missing_pidfile_with_a_pipe_and_a_line_break_is_escaped() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    let pidfile = state.path().join("run|x\nWORKERS OK.pid");
    let out = check(tree.path(), &state.path().join("s"))
        .args(["--interval", "0", "--pidfile"])
        .arg(&pidfile)
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let shown = escaped(&pidfile.display().to_string());
    assert_eq!(
        text,
        format!(
            "WORKERS CRITICAL - pidfile {shown}: 0 workers < 1 (pidfile {shown} is missing), \
             cpu n/a | workers=0;;1:;0; rss_total=0B;;;0; rss_pct=0%;;;0;100 threads=0;;;0; \
             zombies=0;;;0; uninterruptible=0;;;0;\n"
        )
    );
    assert_one_pipe_on_line_1(&text);
}

// Regression (issue 9.5): an unusable state dir ends in an UNKNOWN line that quotes its path.
#[test]
fn unusable_state_dir_with_a_pipe_is_escaped() {
    let tree = ProcTree::new(5000.0);
    let parent = state_dir();
    let blocked = parent.path().join("st|ate\nWORKERS OK");
    fs::write(&blocked, "not a directory").unwrap();
    let out = check(tree.path(), &blocked)
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    // no workers is CRITICAL, and the unusable state dir must not hide it (issue 9.6)
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(
        text,
        format!(
            "WORKERS CRITICAL - nginx: 0 workers < 1, cpu n/a | workers=0;;1:;0; rss_total=0B;;;0; \
             rss_pct=0%;;;0;100 threads=0;;;0; zombies=0;;;0; uninterruptible=0;;;0;\n\
             UNKNOWN: tick file not saved: state dir {} is not a directory\n",
            escaped(&blocked.display().to_string())
        )
    );
    assert_eq!(text.matches('|').count(), 1, "{text:?}");
    assert!(text.lines().next().unwrap().contains('|'));
}

// Regression (issue 9.7): --extra-opts was read before the watchdog started and without
// limits: a FIFO hung the check forever, /dev/zero grew its memory without bound and a huge
// file was read whole. Now only a regular file of at most 1 MiB is read, within -t.
#[test]
fn extra_opts_reads_only_small_regular_files() {
    let state = state_dir();
    let fifo = state.path().join("fifo.ini");
    mkfifo(&fifo);
    let big = state.path().join("big.ini");
    let mut text = String::from("[check_workers]\nname=nginx\ninterval=0\n");
    text.push_str(&"# padding\n".repeat(110_000));
    fs::write(&big, text).unwrap();
    for (ini, why) in [
        (fifo.as_path(), "is not a regular file"),
        (Path::new("/dev/zero"), "is not a regular file"),
        (big.as_path(), "is larger than 1024 KiB"),
    ] {
        let started = std::time::Instant::now();
        let out = check(&committed("t0"), &state.path().join("s"))
            .arg(format!("--extra-opts=@{}", ini.display()))
            .args(["-t", "3"])
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", ini.display());
        assert_eq!(
            stdout_of(&out),
            format!("WORKERS UNKNOWN - --extra-opts: {} {why}\n", ini.display())
        );
        assert!(started.elapsed().as_secs_f64() < 3.0, "{}", ini.display());
    }
}

// Regression (issue 9.7): `-t 1` alone was always UNKNOWN, as the default --interval 1 was not
// shorter than the timeout; the default interval now fits inside any timeout.
#[test]
fn timeout_of_1s_alone_works() {
    let state = state_dir();
    let out = check(&committed("t0"), state.path())
        .args(["-n", "nginx", "-t", "1"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // a fixture tree's uptime does not move during the in-run interval
    assert_eq!(
        text,
        format!(
            "{T0_LINE}\nno baseline (first run), and last run less than 2 clock ticks ago: \
             cpu not measured\n"
        )
    );
}

// Regression (issue 22, item 11): a first run for a service that is down waited the whole
// --interval, printed cpu 0.0% and a note on every threshold of a per-worker metric.
#[test]
fn zero_workers_answer_at_once_with_cpu_n_a_and_nothing_else() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    let started = std::time::Instant::now();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "-w", "rss=300MiB", "-c", "cpu=90"])
        .output()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_millis(900));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout_of(&out),
        "WORKERS CRITICAL - nginx: 0 workers < 1, cpu n/a | workers=0;;1:;0; rss_total=0B;;;0; \
         rss_pct=0%;;;0;100 threads=0;;;0; zombies=0;;;0; uninterruptible=0;;;0;\n"
    );
}
