//! Selection beyond the name (pidfile, ppid, cgroup/unit, command line, executable, state) and
//! the metrics beyond the core ones, on fixture trees with exact perfdata.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::fixture::{
    check, run, state_dir, status_line, stdout_of, FakeProc, ProcTree, BTIME, NOBODY, V2_MOUNTS,
};

const WWW: u32 = 33;

/// nginx master 812 (root) and workers 813-815 (www-data), with their real command lines, plus
/// an unrelated nginx (900, its own master-less instance) in another cgroup.
fn host() -> ProcTree {
    let tree = ProcTree::new(5000.0);
    let mut master = FakeProc::new(812, 1, "nginx", 0).ticks(50, 30);
    master.cmdline =
        "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;\0".into();
    tree.put(&FakeProc::new(1, 0, "systemd", 0)).put(&master);
    for pid in 813..=815 {
        let mut w = FakeProc::new(pid, 812, "nginx", WWW).started(1100);
        w.cmdline = "nginx: worker process\0\0\0\0\0".into();
        w.exe = Some("/usr/sbin/nginx".into());
        tree.put(&w);
    }
    let mut other = FakeProc::new(900, 1, "nginx", 1000);
    other.cgroup = "/user.slice/user-1000.slice/session-3.scope".into();
    tree.put(&other);
    tree
}

fn pidfile(dir: &Path, content: &str) -> String {
    let path = dir.join("nginx.pid");
    fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn pidfile_names_the_master_and_its_children_are_the_workers() {
    let tree = host();
    let dir = state_dir();
    let file = pidfile(dir.path(), "812\n");
    let out = run(&tree, state_dir(), &["--interval", "0", "--pidfile", &file]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        status_line(&out).starts_with(&format!(
            "WORKERS OK - pidfile {file}: 3 workers (master 812), cpu n/a,"
        )),
        "{}",
        stdout_of(&out)
    );
    // with -n too, the label is the name
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", "nginx", "--pidfile", &file],
    );
    assert!(status_line(&out).starts_with("WORKERS OK - nginx: 3 workers (master 812),"));
}

#[test]
fn children_files_spare_the_full_scan() {
    // the master's task/812/children lists 813 and 814 only: reading it instead of scanning
    // /proc is what keeps --pidfile/--ppid flat on hosts with many processes
    let tree = host();
    let mut master = FakeProc::new(812, 1, "nginx", 0);
    master.children = vec![813, 814];
    tree.put(&master);
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--ppid", "812", "-vvv"],
    );
    let text = stdout_of(&out);
    assert!(
        status_line(&out).starts_with("WORKERS OK - children of 812: 2 workers (master 812),"),
        "{text}"
    );
    let looked_at: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("pid ") && l.contains(": "))
        .collect();
    assert_eq!(
        looked_at,
        ["pid 813 nginx: candidate", "pid 814 nginx: candidate"],
        "{text}"
    );
}

#[test]
fn missing_pidfile_is_critical() {
    let tree = host();
    let dir = state_dir();
    let file = dir.path().join("gone.pid");
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--pidfile", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        status_line(&out),
        format!(
            "WORKERS CRITICAL - pidfile {0}: 0 workers < 1 (pidfile {0} is missing), cpu n/a | \
             workers=0;;1:;0; rss_total=0B;;;0; rss_pct=0%;;;0;100 threads=0;;;0; zombies=0;;;0; \
             uninterruptible=0;;;0;",
            file.display()
        )
    );
}

#[test]
fn empty_or_garbage_pidfile_is_unknown() {
    let tree = host();
    let dir = state_dir();
    for (content, why) in [
        ("", "is empty"),
        ("\n \n", "is empty"),
        // described, never echoed: the file may be a link to another file's secret
        ("nginx\n", "holds no pid (6 bytes)"),
        ("-5", "holds no pid (2 bytes)"),
    ] {
        let file = pidfile(dir.path(), content);
        let out = run(&tree, state_dir(), &["--interval", "0", "--pidfile", &file]);
        assert_eq!(out.status.code(), Some(3), "{content:?}");
        let text = stdout_of(&out);
        assert!(
            text.starts_with(&format!("WORKERS UNKNOWN - pidfile {file} {why}")),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
    }
}

#[test]
fn stale_pidfile_is_critical() {
    let tree = host();
    let dir = state_dir();
    let file = pidfile(dir.path(), "4242\n");
    let out = run(&tree, state_dir(), &["--interval", "0", "--pidfile", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        status_line(&out).contains(&format!(
            "0 workers < 1 (pid 4242 from {file} is not running)"
        )),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn pid_reused_by_another_program_is_critical() {
    // the pidfile was written at boot + 5 s; process 812 started at boot + 10 s, so it is not
    // the process that wrote it
    let tree = host();
    let dir = state_dir();
    let file = pidfile(dir.path(), "812\n");
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(BTIME + 5))
        .unwrap();
    let out = run(&tree, state_dir(), &["--interval", "0", "--pidfile", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        status_line(&out).contains(&format!(
            "(pid 812 from {file} is another process (nginx), started after the pidfile was written)"
        )),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn ppid_selects_children() {
    let tree = host();
    let out = run(&tree, state_dir(), &["--interval", "0", "--ppid", "812"]);
    assert!(status_line(&out).starts_with("WORKERS OK - children of 812: 3 workers (master 812),"));
    let out = run(&tree, state_dir(), &["--interval", "0", "--ppid", "31337"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(status_line(&out).contains("0 workers < 1 (process 31337 is not running)"));
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--ppid", "812", "--include-master"],
    );
    assert!(status_line(&out).contains(": 4 workers (master 812 included),"));
}

#[test]
fn unit_and_cgroup_glob() {
    let tree = host();
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--unit", "nginx.service"],
    );
    assert!(
        status_line(&out).starts_with("WORKERS OK - nginx.service: 3 workers (master 812),"),
        "{}",
        stdout_of(&out)
    );
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--cgroup", "/system.slice/ngi?x.*"],
    );
    assert!(status_line(&out)
        .starts_with("WORKERS OK - cgroup /system.slice/ngi?x.*: 3 workers (master 812),"));
    let out = run(
        &tree,
        state_dir(),
        &[
            "--interval",
            "0",
            "-n",
            "nginx",
            "--cgroup",
            "/user.slice/*",
        ],
    );
    assert!(status_line(&out).starts_with("WORKERS OK - nginx: 1 worker,"));
    // cgroup v1 lines match too
    let tree = host();
    let v1 = "12:pids:/system.slice/php8.2-fpm.service\n1:name=systemd:/system.slice/php8.2-fpm.service\n";
    tree.put(&FakeProc::new(700, 1, "php-fpm8.2", 33));
    fs::write(tree.path().join("700/cgroup"), v1).unwrap();
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--unit", "php8.2-fpm.service"],
    );
    assert!(status_line(&out).starts_with("WORKERS OK - php8.2-fpm.service: 1 worker,"));
}

#[test]
fn cmdline_regex_reads_nuls_as_spaces() {
    let tree = host();
    let out = run(
        &tree,
        state_dir(),
        &[
            "--interval",
            "0",
            "-n",
            "nginx",
            "-a",
            "^nginx: worker process$",
        ],
    );
    let line = status_line(&out);
    // only workers match, so there is no hierarchy among them and no master to name
    assert!(
        line.starts_with("WORKERS OK - nginx: 3 workers, cpu n/a"),
        "{line}"
    );
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-a", "master_process on;$"],
    );
    assert!(status_line(&out).starts_with("WORKERS OK - cmdline /master_process on;$/: 1 worker,"));
}

#[test]
fn exe_matches_also_after_an_upgrade() {
    let tree = host();
    let mut upgraded = FakeProc::new(815, 812, "nginx", WWW);
    upgraded.exe = Some("/usr/sbin/nginx (deleted)".into());
    tree.put(&upgraded);
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--exe", "/usr/sbin/nginx"],
    );
    assert!(
        status_line(&out).starts_with("WORKERS OK - /usr/sbin/nginx: 3 workers,"),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn states_filter_and_counts() {
    let tree = host();
    let mut zombie = FakeProc::new(815, 812, "nginx", WWW);
    zombie.state = 'Z';
    zombie.rss_kib = 0;
    let mut stuck = FakeProc::new(814, 812, "nginx", WWW);
    stuck.state = 'D';
    tree.put(&zombie).put(&stuck);
    let out = run(
        &tree,
        state_dir(),
        &[
            "--interval",
            "0",
            "-n",
            "nginx",
            "-c",
            "zombies=0",
            "-w",
            "uninterruptible=0",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let line = status_line(&out);
    assert!(
        line.contains(", zombies 1 > 0, uninterruptible 1 > 0 |"),
        "{line}"
    );
    assert!(
        line.contains(" zombies=1;;0;0; uninterruptible=1;0;;0;"),
        "{line}"
    );
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", "nginx", "-s", "S,D"],
    );
    assert!(status_line(&out).starts_with("WORKERS OK - nginx: 3 workers (master 812),"));
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", "nginx", "-s", "Z"],
    );
    assert!(status_line(&out).starts_with("WORKERS OK - nginx: 1 worker (master 812),"));
}

#[test]
fn pss_left_out_with_a_note_when_unreadable() {
    let tree = host();
    let mut private = FakeProc::new(815, 812, "nginx", WWW);
    private.pss_kib = None;
    private.fds = None;
    tree.put(&private);
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", "nginx", "-w", "pss=1M"],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout_of(&out);
    let line = status_line(&out);
    assert!(
        !line.contains(" pss=") && !line.contains(" uss=") && !line.contains(" fds="),
        "{line}"
    );
    assert!(
        line.contains(" fd_pct_max=0.78%;"),
        "the readable ones still give the worst ratio: {line}"
    );
    assert!(
        text.contains("\npss, uss: smaps_rollup of 1 of 4 workers not readable"),
        "{text}"
    );
    assert!(
        text.contains("\nfds: open files of 1 of 4 workers not readable"),
        "{text}"
    );
    assert!(
        text.contains("\npss: not measured in this run, thresholds not evaluated"),
        "{text}"
    );
}

#[test]
fn extra_metrics_with_thresholds_and_units() {
    let tree = host();
    let mut big = FakeProc::new(813, 812, "nginx", WWW)
        .started(1100)
        .memory_kib(4096, 2_097_152);
    big.fds = Some(900);
    big.threads = 9;
    big.pss_kib = Some(3072);
    tree.put(&big);
    let out = run(
        &tree,
        state_dir(),
        &[
            "--interval",
            "0",
            "-n",
            "nginx",
            "-u",
            "33",
            "-w",
            "vms_max=1G",
            "-c",
            "fd_pct_max=80",
            "-w",
            "threads=10",
            "-w",
            "pss=2M",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let line = status_line(&out);
    assert!(
        line.contains(
            "vms 749.3 MiB avg, pss 2.3 MiB > 2.0 MiB, vms_max 2.0 GiB > 1.0 GiB, \
             threads 11 > 10, fd_pct_max 87.9% > 80 |"
        ),
        "{line}"
    );
    // pss average (3072 + 2048 + 2048) / 3 KiB
    assert!(line.contains(" pss=2446677B;2097152;;0; "), "{line}");
    assert!(
        line.contains(" vms_max=2147483648B;1073741824;;0; "),
        "{line}"
    );
    assert!(line.contains(" threads=11;10;;0; "), "{line}");
    assert!(
        line.contains(" fds=916;;;0; fd_pct_max=87.89%;;80;0;100 "),
        "{line}"
    );
}

#[test]
fn young_workers_mean_a_crash_loop() {
    let tree = host();
    tree.put(&FakeProc::new(816, 812, "nginx", WWW).started(499_000));
    let out = run(
        &tree,
        state_dir(),
        &[
            "--interval",
            "0",
            "-n",
            "nginx",
            "-w",
            "age_min=60:",
            "-c",
            "age_min=5s:",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = status_line(&out);
    assert!(line.contains(", age_min 10s < 60s |"), "{line}");
    assert!(
        line.contains(" age_min=10s;60:;5:;0; age_max=4990s;;;0; "),
        "{line}"
    );
}

#[test]
fn cpu_scale_host_uses_affinity_and_cgroup_quota() {
    let tree = host();
    let state = state_dir();
    let runs = |args: &[&str]| {
        let base = ["-n", "nginx", "-u", "33", "--interval", "0"];
        run(&tree, &state, &[&base, args].concat())
    };
    // every 10 s the three workers burn 500 ticks each: 1500 of 1000 per core = 150 %
    let ten_seconds_later = |uptime: f64, ticks: u64| {
        tree.set_uptime(uptime);
        for pid in 813..=815 {
            tree.put(
                &FakeProc::new(pid, 812, "nginx", WWW)
                    .started(1100)
                    .ticks(ticks, 0),
            );
        }
    };
    runs(&[]);
    ten_seconds_later(5010.0, 500);
    let core = runs(&[]);
    assert!(
        status_line(&core).contains(" cpu=150%;;;0;200 "),
        "{}",
        stdout_of(&core)
    );

    // two CPUs on the host and no cgroup limit: 75 % of the host
    let sys = tree.path().join("sys/fs/cgroup/system.slice/nginx.service");
    fs::create_dir_all(&sys).unwrap();
    tree.set_mountinfo(V2_MOUNTS);
    fs::write(sys.join("memory.max"), "max\n").unwrap();
    ten_seconds_later(5020.0, 1000);
    let line = status_line(&runs(&["--cpu-scale", "host"]));
    assert!(
        line.contains(" cpu 75.0%,") && line.contains(" cpu=75%;;;0;100 "),
        "{line}"
    );

    // a quota of one and a half cores in the unit's cgroup, and a memory limit of 64 MiB
    fs::write(sys.join("cpu.max"), "150000 100000\n").unwrap();
    fs::write(sys.join("memory.max"), "67108864\n").unwrap();
    ten_seconds_later(5030.0, 1500);
    let line = status_line(&runs(&["--cpu-scale", "host"]));
    assert!(line.contains(" cpu=100%;;;0;100 "), "{line}");
    // no memory charge to read, no PSS measured: a sum of RSS would count shared pages once
    // per worker, so rss_pct is left out rather than over 100 % (issue 17)
    assert!(!line.contains(" rss_pct="), "{line}");
    // the unit's charge, each page once: 12 MiB of 64 MiB
    fs::write(sys.join("memory.current"), "12582912\n").unwrap();
    let line = status_line(&runs(&["--cpu-scale", "host"]));
    assert!(line.contains(" rss_pct=18.75%;;;0;100 "), "{line}");
    // without a charge, the PSS sum when it is measured: 3 x 2 MiB of 64 MiB
    fs::remove_file(sys.join("memory.current")).unwrap();
    let line = status_line(&runs(&["--cpu-scale", "host", "--metrics", "pss"]));
    assert!(line.contains(" rss_pct=9.38%;;;0;100 "), "{line}");
}

#[test]
fn vv_explains_the_selection_and_vvv_lists_every_process() {
    let tree = host();
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", "nginx", "-u", "33", "-vv"],
    );
    let text = stdout_of(&out);
    assert!(
        text.contains("\nselection: name nginx, uid 33; master not counted\n"),
        "{text}"
    );
    assert!(
        text.contains("\nskipped: 0 exited while being read, 0 unreadable\n"),
        "{text}"
    );
    assert!(text.contains("\ntick file: "), "{text}");
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", "nginx", "-vvv"],
    );
    let text = stdout_of(&out);
    for line in [
        "pid 1: no match (name)",
        "pid 812 nginx: candidate",
        "pid 900 nginx: candidate",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing: {text}");
    }
}

#[test]
fn unit_reads_its_cgroup_procs_instead_of_scanning() {
    // cgroup.procs lists the master and one worker (a sub-cgroup holds another): only those
    // are looked at, and each still has to match the filter
    let tree = host();
    let unit = tree.path().join("sys/fs/cgroup/system.slice/nginx.service");
    fs::create_dir_all(unit.join("workers")).unwrap();
    fs::write(unit.join("cgroup.procs"), "812\n813\n").unwrap();
    fs::write(unit.join("workers/cgroup.procs"), "814\n900\n").unwrap();
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "--unit", "nginx.service", "-vvv"],
    );
    let text = stdout_of(&out);
    assert!(
        status_line(&out).starts_with("WORKERS OK - nginx.service: 2 workers (master 812),"),
        "{text}"
    );
    let looked_at: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("pid ") && (l.ends_with("candidate") || l.contains("no match")))
        .collect();
    let expected: BTreeSet<&str> = [
        "pid 812 nginx: candidate",
        "pid 813 nginx: candidate",
        "pid 814 nginx: candidate",
        "pid 900: no match (cgroup)",
    ]
    .into();
    assert_eq!(looked_at, expected, "{text}");
}

// Regression (issue 9.3): with -u alone, pid 1 was "master 1" and every orphan it reaped was
// added to the workers' CPU as recovered (cpu 37 % with all of nobody's processes asleep).
#[test]
fn user_alone_has_no_master_and_recovers_nothing_from_pid_1() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    let put = |init_children_ticks: (u64, u64)| {
        let (user, system) = init_children_ticks;
        tree.put(&FakeProc::new(1, 0, "systemd", 0).children_ticks(user, system))
            .put(&FakeProc::new(640, 1, "bash", NOBODY))
            .put(&FakeProc::new(700, 640, "sleep", NOBODY));
    };
    let args = ["-u", "65534", "--interval", "0"];
    put((0, 0));
    run(&tree, &state, &args);
    // a minute later init has reaped 2220 ticks' worth of orphans; nobody's processes slept
    tree.set_uptime(5060.0);
    put((2000, 220));
    let out = run(&tree, &state, &args);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout_of(&out),
        "WORKERS OK - user 65534: 2 workers, cpu 0.0%, rss 4.0 MiB avg, vms 100.0 MiB avg | \
         workers=2;;1:;0; cpu=0%;;;0;200 cpu_user=0%;;;0;200 cpu_system=0%;;;0;200 \
         cpu_max=0%;;;0;200 rss=4194304B;;;0; vms=104857600B;;;0; \
         rss_max=4194304B;;;0; vms_max=104857600B;;;0; \
         rss_total=8388608B;;;0; threads=2;;;0; fds=16;;;0; \
         fd_pct_max=0.78%;;;0;100 age_min=5050s;;;0; age_max=5050s;;;0; zombies=0;;;0; \
         uninterruptible=0;;;0; nvcsw=0;;;0;\n"
    );
}

// --ppid 1: init's children are the workers, but init reaps every orphan on the host, so its
// reaped-children time is never recovered as the workers' CPU and it is named as no master.
#[test]
fn ppid_1_has_workers_but_no_master_to_recover_from() {
    let tree = ProcTree::new(5000.0);
    let state = state_dir();
    let put = |init_user_children_ticks: u64| {
        tree.put(&FakeProc::new(1, 0, "systemd", 0).children_ticks(init_user_children_ticks, 0))
            .put(&FakeProc::new(640, 1, "bash", WWW))
            .put(&FakeProc::new(641, 1, "bash", WWW));
    };
    let args = ["--ppid", "1", "--interval", "0", "--include-master"];
    put(0);
    run(&tree, &state, &args);
    tree.set_uptime(5060.0);
    put(3000);
    let out = run(&tree, &state, &args);
    let line = status_line(&out);
    assert!(
        line.starts_with("WORKERS OK - children of 1: 2 workers, cpu 0.0%, "),
        "{line}"
    );
    assert!(line.contains(" cpu=0%;;;0;200 "), "{line}");
}

/// A name of 20 bytes whose 15-byte cut lands inside its 4th `é`.
const LONG_NON_ASCII: &str = "worker-aéééééé";

// Regression: the kernel cut this name's comm inside a character, the comm was not UTF-8, and
// the process was "unreadable": `-n` said CRITICAL 0 workers with the workers running.
#[test]
fn long_name_cut_inside_a_character_is_found() {
    let cut = &LONG_NON_ASCII.as_bytes()[..15];
    assert!(std::str::from_utf8(cut).is_err());
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(1, 0, "systemd", 0));
    // found by argv[0]
    let mut by_argv0 = FakeProc::new(700, 1, LONG_NON_ASCII, WWW).raw_comm(cut);
    by_argv0.cmdline = format!("/usr/bin/{LONG_NON_ASCII}\0--pool\0www\0");
    // found by the executable: argv[0] was rewritten
    let mut by_exe = FakeProc::new(701, 1, LONG_NON_ASCII, WWW).raw_comm(cut);
    by_exe.cmdline = "worker: pool www\0".into();
    by_exe.exe = Some(format!("/usr/bin/{LONG_NON_ASCII}"));
    // the same 15 bytes, but another program
    let other = FakeProc::new(702, 1, "worker-aééééééx", WWW).raw_comm(cut);
    tree.put(&by_argv0).put(&by_exe).put(&other);
    let out = run(
        &tree,
        state_dir(),
        &["--interval", "0", "-n", LONG_NON_ASCII, "-vvv"],
    );
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        status_line(&out),
        "WORKERS OK - worker-aéééééé: 2 workers, cpu n/a, rss 4.0 MiB avg, vms 100.0 MiB avg | \
         workers=2;;1:;0; rss=4194304B;;;0; vms=104857600B;;;0; \
         rss_max=4194304B;;;0; vms_max=104857600B;;;0; \
         rss_total=8388608B;;;0; threads=2;;;0; fds=16;;;0; \
         fd_pct_max=0.78%;;;0;100 age_min=4990s;;;0; age_max=4990s;;;0; zombies=0;;;0; \
         uninterruptible=0;;;0;"
    );
    // the cut name is shown with its half character escaped
    for line in [
        "pid 700 worker-a\u{e9}\u{e9}\u{e9}\\xc3: candidate",
        "pid 701 worker-a\u{e9}\u{e9}\u{e9}\\xc3: candidate",
        "pid 702: no match (name)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing: {text}");
    }
}

// Regression: `-u` and `--ppid` silently left out a process whose comm is not UTF-8 (it was
// counted as "could not be read").
#[test]
fn user_and_ppid_include_a_process_whose_name_is_not_utf8() {
    let tree = host();
    tree.put(&FakeProc::new(816, 812, "nginx", WWW).raw_comm(b"ngx\xff\xfe|w"));
    let out = run(&tree, state_dir(), &["--interval", "0", "-u", "33", "-vvv"]);
    let text = stdout_of(&out);
    assert!(
        status_line(&out).starts_with("WORKERS OK - user 33: 4 workers, cpu n/a,"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "pid 816 ngx\\xff\\xfe\\x7cw: candidate"),
        "{text}"
    );
    assert!(!text.contains("could not be read"), "{text}");
    let out = run(&tree, state_dir(), &["--interval", "0", "--ppid", "812"]);
    let text = stdout_of(&out);
    assert!(
        status_line(&out).starts_with("WORKERS OK - children of 812: 4 workers (master 812),"),
        "{text}"
    );
    assert!(!text.contains("could not be read"), "{text}");
}

// Regression: a pidfile's pid reused by a process whose name is not UTF-8 gave UNKNOWN (the
// reused process could not be read) instead of CRITICAL.
#[test]
fn pid_reused_by_a_program_whose_name_is_not_utf8_is_critical() {
    let tree = host();
    tree.put(&FakeProc::new(812, 1, "x", 0).raw_comm(b"evil\xff|x"));
    let dir = state_dir();
    let file = pidfile(dir.path(), "812\n");
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(BTIME + 5))
        .unwrap();
    let out = run(&tree, state_dir(), &["--interval", "0", "--pidfile", &file]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout_of(&out));
    assert_eq!(
        status_line(&out),
        format!(
            "WORKERS CRITICAL - pidfile {file}: 0 workers < 1 (pid 812 from {file} is another \
             process (evil\\xff\\x7cx), started after the pidfile was written), cpu n/a | \
             workers=0;;1:;0; rss_total=0B;;;0; rss_pct=0%;;;0;100 threads=0;;;0; zombies=0;;;0; \
             uninterruptible=0;;;0;"
        )
    );
}

// Regression: `-n` took only UTF-8, so a worker whose name is not UTF-8 could not be named at
// all; the name is bytes on the command line as in the kernel.
#[test]
fn a_name_that_is_not_utf8_can_be_given() {
    use std::os::unix::ffi::OsStrExt;
    let tree = host();
    tree.put(&FakeProc::new(820, 812, "x", WWW).raw_comm(b"w\xffk"));
    let state = state_dir();
    let out = check(tree.path(), state.path())
        .args(["--interval", "0", "-n"])
        .arg(std::ffi::OsStr::from_bytes(b"w\xffk"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    assert!(
        status_line(&out).starts_with("WORKERS OK - w\\xffk: 1 worker, cpu n/a,"),
        "{}",
        stdout_of(&out)
    );
}
