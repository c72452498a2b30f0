//! The workers' cgroup on fixture trees: the v2, hybrid and v1 file formats, with exact
//! outputs, and what happens when the cgroup restarts, a counter goes backwards, the kernel
//! has no PSI, or a file is malformed (issue 21). The hierarchies come from the tree's
//! `self/mountinfo`; their files are under `sys/`, which the check reads as `/sys`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::fixture::{
    run_at, state_dir, status_line, stdout_of, tick_file, FakeProc, ProcTree, HYBRID_MOUNTS,
    V1_MOUNTS, V2_MOUNTS,
};

const WWW: u32 = 33;
const UNIT: &str = "system.slice/nginx.service";

/// nginx master 812 and workers 813-815 at 5000 s, all in `nginx.service`, whose
/// `/proc/PID/cgroup` is `cgroup_file`; the hierarchies mounted as `mounts` says.
fn tree(mounts: &str, cgroup_file: &str) -> ProcTree {
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(1, 0, "systemd", 0))
        .put(&FakeProc::new(812, 1, "nginx", 0));
    for pid in 813..=815 {
        tree.put(&FakeProc::new(pid, 812, "nginx", WWW).started(1100));
    }
    for pid in [812, 813, 814, 815] {
        fs::write(tree.path().join(format!("{pid}/cgroup")), cgroup_file).unwrap();
    }
    tree.set_mountinfo(mounts);
    tree
}

/// `sys/fs/cgroup/<under>/<UNIT>` in `tree`, created.
fn unit_dir(tree: &ProcTree, under: &str) -> PathBuf {
    let dir = tree.path().join("sys/fs/cgroup").join(under).join(UNIT);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, files: &[(&str, String)]) {
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap();
    }
}

/// A PSI file whose `some` line says `total` microseconds.
fn psi(total: u64) -> String {
    format!(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total={total}\n\
         full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
}

/// What the kernel counts, at one reading.
struct Counts {
    oom_kill: u64,
    periods: u64,
    throttled: u64,
    /// `some` stall microseconds: CPU, memory, I/O
    stalls: [u64; 3],
}

fn cpu_stat(c: &Counts) -> String {
    format!(
        "usage_usec 900000\nuser_usec 600000\nsystem_usec 300000\nnr_periods {}\n\
         nr_throttled {}\nthrottled_usec 12345\n",
        c.periods, c.throttled
    )
}

fn pressure(dir: &Path, c: &Counts) {
    let [cpu, memory, io] = c.stalls;
    write(
        dir,
        &[
            ("cpu.pressure", psi(cpu)),
            ("memory.pressure", psi(memory)),
            ("io.pressure", psi(io)),
        ],
    );
}

/// A pure v2 unit: 100 MiB charged of 400 MiB.
fn v2(dir: &Path, c: &Counts) {
    write(
        dir,
        &[
            ("memory.current", "104857600\n".into()),
            ("memory.max", "419430400\n".into()),
            (
                "memory.events",
                format!(
                    "low 0\nhigh 0\nmax 7\noom 3\noom_kill {}\noom_group_kill 0\n",
                    c.oom_kill
                ),
            ),
            ("cpu.stat", cpu_stat(c)),
        ],
    );
    pressure(dir, c);
}

const BEFORE: Counts = Counts {
    oom_kill: 1,
    periods: 1000,
    throttled: 100,
    stalls: [1_000_000, 0, 500_000],
};

/// 60 s later: 2 more OOM kills; 150 of 600 periods throttled (25 %); 6 s of CPU stall (10 %),
/// 30 s of memory stall (50 %), none for I/O.
const AFTER: Counts = Counts {
    oom_kill: 3,
    periods: 1600,
    throttled: 250,
    stalls: [7_000_000, 30_000_000, 500_000],
};

/// The nginx figures of these trees, before the cgroup's, at the first and second run.
const FIRST: &str = "WORKERS OK - nginx: 3 workers (master 812), cpu n/a, rss 4.0 MiB avg, \
     vms 100.0 MiB avg | workers=3;;1:;0; rss=4194304B;;;0; vms=104857600B;;;0; \
     rss_max=4194304B;;;0; vms_max=104857600B;;;0; rss_total=12582912B;;;0;";
const SECOND: &str = "WORKERS OK - nginx: 3 workers (master 812), cpu 0.0%, rss 4.0 MiB avg, \
     vms 100.0 MiB avg | workers=3;;1:;0; cpu=0%;;;0;200 cpu_user=0%;;;0;200 \
     cpu_system=0%;;;0;200 cpu_max=0%;;;0;200 rss=4194304B;;;0; vms=104857600B;;;0; \
     rss_max=4194304B;;;0; vms_max=104857600B;;;0; rss_total=12582912B;;;0;";
const REST_FIRST: &str = "threads=3;;;0; fds=24;;;0; fd_pct_max=0.78%;;;0;100 \
     age_min=4989s;;;0; age_max=4989s;;;0; zombies=0;;;0; uninterruptible=0;;;0;";
const REST_SECOND: &str = "threads=3;;;0; fds=24;;;0; fd_pct_max=0.78%;;;0;100 \
     age_min=5049s;;;0; age_max=5049s;;;0; zombies=0;;;0; uninterruptible=0;;;0;";
/// The counters over the 60 s, as [`AFTER`] says.
const COUNTED: &str = "oom_kills=2;;;0; cpu_throttled=25%;;;0;100 psi_cpu=10%;;;0;100 \
     psi_memory=50%;;;0;100 psi_io=0%;;;0;100";
const FIRST_RUN: &str = "no baseline (first run) and --interval 0: cpu not measured in this run";

#[test]
fn v2_charge_and_counters_over_the_interval_exactly() {
    let tree = tree(V2_MOUNTS, "0::/system.slice/nginx.service\n");
    let dir = unit_dir(&tree, "");
    let state = state_dir();
    v2(&dir, &BEFORE);
    let first = run_at(&tree, state.path(), 5000.0, &[]);
    // the charge is the workers' memory for rss_pct too: one reading, 100 of 400 MiB
    let memory = "rss_pct=25%;;;0;100";
    let charge = "cg_memory=104857600B;;;0; cg_memory_pct=25%;;;0;100";
    assert_eq!(
        stdout_of(&first),
        format!("{FIRST} {memory} {REST_FIRST} {charge}\n{FIRST_RUN}\n")
    );
    // the tick file keeps the counters with the cgroup's inode and the uptime they were read at
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    let ino = fs::metadata(&dir)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert!(
        ticks.contains(&format!(
            "\ncgroup hierarchy=unified ino={ino} uptime=5000.00 oom_kill=1 nr_periods=1000 \
             nr_throttled=100 some_cpu_us=1000000 some_memory_us=0 some_io_us=500000\n"
        )),
        "{ticks}"
    );
    v2(&dir, &AFTER);
    let second = run_at(&tree, state.path(), 5060.0, &["-vv"]);
    let text = stdout_of(&second);
    assert_eq!(
        text.lines().next().unwrap(),
        format!("{SECOND} {memory} {REST_SECOND} {charge} {COUNTED} restarts=0;;;0; nvcsw=0;;;0;")
    );
    assert!(
        text.contains("\ncgroup: unified /system.slice/nginx.service\n"),
        "{text}"
    );
    // thresholds work as for every metric
    v2(
        &dir,
        &Counts {
            oom_kill: 4,
            ..AFTER
        },
    );
    let judged = run_at(
        &tree,
        state.path(),
        5120.0,
        &["-w", "oom_kills=0", "-c", "psi_memory=60"],
    );
    assert_eq!(judged.status.code(), Some(1), "{}", stdout_of(&judged));
    assert!(
        status_line(&judged).contains(" oom_kills=1;0;;0; "),
        "{}",
        stdout_of(&judged)
    );
    assert!(status_line(&judged).starts_with("WORKERS WARNING - nginx: 3 workers"));
}

#[test]
fn hybrid_reads_v1_memory_and_cpu_and_the_unified_pressure() {
    let file = "9:name=systemd:/system.slice/nginx.service\n\
                4:memory:/system.slice/nginx.service\n\
                3:cpu,cpuacct:/system.slice/nginx.service\n0::/system.slice/nginx.service\n";
    let tree = tree(HYBRID_MOUNTS, file);
    let (memory, cpu, unified) = (
        unit_dir(&tree, "memory"),
        unit_dir(&tree, "cpu,cpuacct"),
        unit_dir(&tree, "unified"),
    );
    let v1 = |c: &Counts| {
        write(
            &memory,
            &[
                ("memory.usage_in_bytes", "104857600\n".into()),
                ("memory.limit_in_bytes", "419430400\n".into()),
                (
                    "memory.oom_control",
                    format!("oom_kill_disable 0\nunder_oom 0\noom_kill {}\n", c.oom_kill),
                ),
            ],
        );
        write(
            &cpu,
            &[(
                "cpu.stat",
                format!(
                    "nr_periods {}\nnr_throttled {}\nthrottled_time 9\n",
                    c.periods, c.throttled
                ),
            )],
        );
        pressure(&unified, c);
    };
    // the slice above limits the unit tighter: 200 MiB
    let slice = memory.parent().unwrap();
    fs::write(slice.join("memory.limit_in_bytes"), "209715200\n").unwrap();
    let state = state_dir();
    v1(&BEFORE);
    run_at(&tree, state.path(), 5000.0, &[]);
    let ticks = fs::read_to_string(tick_file(state.path())).unwrap();
    let lines: Vec<&str> = ticks.lines().filter(|l| l.starts_with("cgroup ")).collect();
    assert_eq!(lines.len(), 3, "one line a hierarchy: {ticks}");
    v1(&AFTER);
    let second = run_at(&tree, state.path(), 5060.0, &["-vv"]);
    let text = stdout_of(&second);
    let (memory_pct, charge) = (
        "rss_pct=50%;;;0;100",
        "cg_memory=104857600B;;;0; cg_memory_pct=50%;;;0;100",
    );
    assert_eq!(
        text.lines().next().unwrap(),
        format!(
            "{SECOND} {memory_pct} {REST_SECOND} {charge} {COUNTED} restarts=0;;;0; nvcsw=0;;;0;"
        )
    );
    assert!(
        text.contains(
            "\ncgroup: memory /system.slice/nginx.service, cpu /system.slice/nginx.service, \
             unified /system.slice/nginx.service\n"
        ),
        "{text}"
    );
}

#[test]
fn pure_v1_has_no_pressure_and_says_so_from_v() {
    let file = "4:memory:/system.slice/nginx.service\n3:cpu,cpuacct:/system.slice/nginx.service\n";
    let tree = tree(V1_MOUNTS, file);
    let (memory, cpu) = (unit_dir(&tree, "memory"), unit_dir(&tree, "cpu,cpuacct"));
    write(
        &memory,
        &[
            ("memory.usage_in_bytes", "104857600\n".into()),
            ("memory.limit_in_bytes", "9223372036854771712\n".into()),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n".into(),
            ),
        ],
    );
    write(
        &cpu,
        &[(
            "cpu.stat",
            "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n".into(),
        )],
    );
    let state = state_dir();
    run_at(&tree, state.path(), 5000.0, &[]);
    let second = run_at(&tree, state.path(), 5060.0, &[]);
    // no limit: no cg_memory_pct, and rss_pct of the host's 4 GiB (100 MiB: 2.44 %); no quota: never throttled
    assert_eq!(
        stdout_of(&second),
        format!(
            "{SECOND} rss_pct=2.44%;;;0;100 {REST_SECOND} cg_memory=104857600B;;;0; \
             oom_kills=0;;;0; cpu_throttled=0%;;;0;100 restarts=0;;;0; nvcsw=0;;;0;\n"
        )
    );
    let verbose = stdout_of(&run_at(&tree, state.path(), 5120.0, &["-v"]));
    let notes: Vec<&str> = verbose.lines().filter(|l| l.contains("left out")).collect();
    assert_eq!(
        notes,
        [
            "cg_memory_pct: the cgroup has no memory limit; left out",
            "psi_cpu, psi_memory, psi_io: no v2 cgroup hierarchy is mounted; left out",
        ]
    );
}

#[test]
fn a_restarted_unit_is_a_new_cgroup_measured_from_the_next_run() {
    let tree = tree(V2_MOUNTS, "0::/system.slice/nginx.service\n");
    let dir = unit_dir(&tree, "");
    let state = state_dir();
    v2(&dir, &AFTER);
    run_at(&tree, state.path(), 5000.0, &[]);
    // systemd removed the old cgroup and made a new one, whose counters start again (kept
    // aside here so that its inode cannot be reused)
    fs::rename(&dir, dir.with_file_name("old.service")).unwrap();
    let dir = unit_dir(&tree, "");
    v2(
        &dir,
        &Counts {
            oom_kill: 0,
            periods: 10,
            throttled: 1,
            stalls: [1, 1, 1],
        },
    );
    let restarted = run_at(&tree, state.path(), 5060.0, &["-v"]);
    let text = stdout_of(&restarted);
    let line = status_line(&restarted);
    assert!(
        line.contains(" cg_memory=104857600B;;;0; cg_memory_pct=25%;;;0;100 restarts=0"),
        "{line}"
    );
    // by design, so from -v only (the unit tests hold the level)
    assert!(
        text.contains(
            "\noom_kills, cpu_throttled, psi_cpu, psi_memory, psi_io: the unified cgroup is a new \
             one since the last run (the unit restarted?), measured from the next run; left out\n"
        ),
        "{text}"
    );
    // and the run after measures the new one
    v2(
        &dir,
        &Counts {
            oom_kill: 1,
            periods: 110,
            throttled: 51,
            stalls: [1, 1, 1],
        },
    );
    let next = status_line(&run_at(&tree, state.path(), 5120.0, &[]));
    assert!(
        next.contains(" oom_kills=1;;;0; cpu_throttled=50%;;;0;100 psi_cpu=0%"),
        "{next}"
    );
}

// A tick file is another user's to edit: a counter above today's, or a stall longer than the
// interval, is never a figure, and always said.
#[test]
fn counters_gone_backwards_or_impossible_are_left_out_with_a_note() {
    let tree = tree(V2_MOUNTS, "0::/system.slice/nginx.service\n");
    let dir = unit_dir(&tree, "");
    let state = state_dir();
    v2(&dir, &BEFORE);
    run_at(&tree, state.path(), 5000.0, &[]);
    let path = tick_file(state.path());
    let ticks = fs::read_to_string(&path).unwrap();
    let forged = ticks
        .replace(" oom_kill=1 ", " oom_kill=99 ")
        .replace(" nr_throttled=100 ", " nr_throttled=0 ");
    fs::write(&path, forged).unwrap();
    // 61 s of CPU stall in 60 s; 1600 periods, 250 throttled since 0: 250 of 600 periods fine
    v2(
        &dir,
        &Counts {
            stalls: [62_000_000, 0, 500_000],
            ..AFTER
        },
    );
    let out = run_at(&tree, state.path(), 5060.0, &[]);
    let text = stdout_of(&out);
    let line = status_line(&out);
    assert!(
        !line.contains("oom_kills=") && !line.contains("psi_cpu="),
        "{text}"
    );
    assert!(
        line.contains(" cpu_throttled=41.67%;;;0;100 psi_memory=0%;;;0;100 psi_io=0%"),
        "{text}"
    );
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        [
            "oom_kills: oom_kill is lower than at the last run, measured from the next run; \
             left out",
            "psi_cpu: impossible figure (61.00 s of stall in a 60.00 s interval); left out",
        ]
    );
}

#[test]
fn missing_pressure_files_and_malformed_ones_name_the_file() {
    let tree = tree(V2_MOUNTS, "0::/system.slice/nginx.service\n");
    let dir = unit_dir(&tree, "");
    let state = state_dir();
    v2(&dir, &BEFORE);
    run_at(&tree, state.path(), 5000.0, &[]);
    v2(&dir, &AFTER);
    // a kernel booted with psi=0 (EL's default) has no pressure files
    for file in ["cpu.pressure", "memory.pressure", "io.pressure"] {
        fs::remove_file(dir.join(file)).unwrap();
    }
    fs::write(dir.join("memory.events"), "oom_kill lots\n").unwrap();
    let out = run_at(&tree, state.path(), 5060.0, &["-v"]);
    let text = stdout_of(&out);
    assert!(!status_line(&out).contains("psi_"), "{text}");
    assert!(!status_line(&out).contains("oom_kills"), "{text}");
    assert!(
        status_line(&out).contains(" cpu_throttled=25%;;;0;100 restarts="),
        "{text}"
    );
    let shown = dir.display();
    let notes: Vec<&str> = text.lines().filter(|l| l.contains("left out")).collect();
    assert_eq!(
        notes,
        [
            format!("oom_kills: {shown}/memory.events is malformed; left out"),
            format!("psi_cpu: {shown}/cpu.pressure does not exist (a kernel without it, or PSI off: psi=0); left out"),
            format!("psi_memory: {shown}/memory.pressure does not exist (a kernel without it, or PSI off: psi=0); left out"),
            format!("psi_io: {shown}/io.pressure does not exist (a kernel without it, or PSI off: psi=0); left out"),
        ]
    );
    // at the default verbosity only the malformed file is worth a line
    let default = stdout_of(&run_at(&tree, state.path(), 5120.0, &[]));
    assert_eq!(
        default.lines().skip(1).collect::<Vec<_>>(),
        [format!(
            "oom_kills: {shown}/memory.events is malformed; left out"
        )]
    );
}

#[test]
fn workers_in_the_root_cgroup_or_spread_have_no_cgroup_figures() {
    for (files, note) in [
        (
            ["0::/\n", "0::/\n"],
            "the workers are in the root unified cgroup, or share no cgroup below it",
        ),
        (
            ["0::/system.slice/a.service\n", "0::/user.slice/b.scope\n"],
            "the workers are in the root unified cgroup, or share no cgroup below it",
        ),
    ] {
        let tree = tree(V2_MOUNTS, files[0]);
        fs::write(tree.path().join("815/cgroup"), files[1]).unwrap();
        let state = state_dir();
        let out = run_at(&tree, state.path(), 5000.0, &["-v"]);
        let text = stdout_of(&out);
        assert!(!status_line(&out).contains("cg_memory"), "{text}");
        assert!(
            text.contains(&format!(
                "\ncg_memory, cg_memory_pct, oom_kills, cpu_throttled, psi_cpu, psi_memory, \
                 psi_io: {note}; left out\n"
            )),
            "{text}"
        );
    }
}

#[test]
fn unit_names_its_own_cgroup_above_the_workers() {
    // the workers in a sub-cgroup of the unit (a delegated unit's own tree): the unit's figures
    let tree = tree(V2_MOUNTS, "0::/system.slice/nginx.service/workers\n");
    fs::write(
        tree.path().join("812/cgroup"),
        "0::/system.slice/nginx.service/master\n",
    )
    .unwrap();
    let dir = unit_dir(&tree, "");
    v2(&dir, &BEFORE);
    fs::create_dir(dir.join("workers")).unwrap();
    let state = state_dir();
    let out = run_at(
        &tree,
        state.path(),
        5000.0,
        &["--unit", "nginx.service", "-vv"],
    );
    let text = stdout_of(&out);
    assert!(
        status_line(&out).contains(" rss_pct=25%;;;0;100 "),
        "{text}"
    );
    assert!(
        text.contains("\ncgroup: unified /system.slice/nginx.service\n"),
        "{text}"
    );
}
