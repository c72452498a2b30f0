//! The check on the real /proc with processes this test spawns under unique names: exact
//! counts, and CPU figures within a tolerance (the machine is shared, so bands, not numbers).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::{unique, Spawned};
use crate::fixture::{cpu_heavy, real_check, state_dir, status_line, stdout_of};

#[test]
fn counts_spawned_sleepers_exactly() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cws");
    let other = unique("cwo");
    spawned.sleepers(&name, 3);
    spawned.sleepers(&other, 2);
    let state = state_dir();
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "0.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = status_line(&out);
    assert!(
        line.starts_with(&format!("WORKERS OK - {name}: 3 workers, cpu ")),
        "{line}"
    );
    assert_eq!(of_line(&line).number("workers"), 3.0);
    assert!(
        of_line(&line).number("cpu") < 5.0,
        "sleepers burn nothing: {line}"
    );
    // sleep's RSS is small but real, read from VmRSS
    let rss = of_line(&line).number("rss");
    assert!(
        (100.0 * 1024.0..50.0 * 1024.0 * 1024.0).contains(&rss),
        "{line}"
    );
}

#[test]
fn cpu_of_busy_workers_over_the_in_run_interval() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwb");
    spawned.burners(&name, 2);
    thread::sleep(Duration::from_millis(200));
    let state = state_dir();
    let (started, ticks) = (Instant::now(), spawned.cpu_ticks());
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "1", "-v"])
        .output()
        .unwrap();
    let truth = percent_since(&spawned, started, ticks);
    let text = stdout_of(&out);
    let line = status_line(&out);
    assert_eq!(of_line(&line).number("workers"), 2.0, "{text}");
    // two busy loops on a two-core machine: 100 % = one core, so up to 200, and what they
    // really got (other work on the machine takes its share) within a few points
    let cpu = of_line(&line).number("cpu");
    assert!(
        (cpu - truth).abs() <= 15.0 && cpu <= 205.0,
        "cpu {cpu}, truth {truth:.1}: {text}"
    );
    assert!(
        of_line(&line).number("cpu_user") > of_line(&line).number("cpu_system"),
        "{line}"
    );
    assert!(text.contains("cpu measured over 1."), "{text}");
}

#[test]
fn second_run_measures_cpu_since_the_first() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwr");
    spawned.burners(&name, 1);
    let state = state_dir();
    let run = || {
        real_check(state.path())
            .args(["-n", &name, "--interval", "0", "-w", "50", "-c", "150"])
            .output()
            .unwrap()
    };
    let first = run();
    let (started, ticks) = (Instant::now(), spawned.cpu_ticks());
    assert_eq!(first.status.code(), Some(0), "{}", stdout_of(&first));
    thread::sleep(Duration::from_secs(2));
    let second = run();
    let truth = percent_since(&spawned, started, ticks);
    let text = stdout_of(&second);
    // one busy loop: about one core, so WARNING (> 50) but not CRITICAL (> 150), and what it
    // really got within a few points
    let cpu = of_line(&status_line(&second)).number("cpu");
    assert!(
        (cpu - truth).abs() <= 10.0 && cpu <= 102.0,
        "cpu {cpu}, truth {truth:.1}: {text}"
    );
    let expected = if cpu > 50.0 { Some(1) } else { Some(0) };
    assert_eq!(second.status.code(), expected, "{text}");
    assert!(!text.contains("no baseline"), "{text}");
}

#[test]
fn gone_service_is_critical() {
    let _serial = cpu_heavy();
    let state = state_dir();
    let name = unique("cwnone");
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(status_line(&out).starts_with(&format!("WORKERS CRITICAL - {name}: 0 workers < 1")));
}

/// A prefork master recycling workers much faster than the check interval: each worker lives
/// about 0.1 s of busy loop, so almost all CPU is burnt by workers no sample ever sees. The
/// figure must still match the true CPU, recovered from the master's reaped-children time.
#[test]
fn cpu_of_workers_recycled_within_the_interval() {
    let _serial = cpu_heavy();
    let spawned = Spawned::new();
    let name = unique("cwc");
    let exe = spawned.program("/bin/sh", &name);
    let stop = spawned.dir().join("stop");
    let script = r#"while [ ! -e "$2" ]; do "$1" -c 'i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done'; done"#;
    let started = Instant::now();
    let master = spawned.master(&name, script, &[exe.as_os_str(), stop.as_os_str()]);
    let pid = master.pid();
    let mut state = state_dir();
    let run = |state: &Path| {
        real_check(state)
            .args(["-n", &name, "--interval", "0", "-vv"])
            .output()
            .unwrap()
    };
    thread::sleep(Duration::from_millis(300));
    // one worker at a time, so the sample finds one, its master named; or, between two
    // workers, the master alone, which has no worker to be the master of and counts as one.
    // Recovery needs the master named at both samples, so a first sample that caught it
    // alone is taken again, on a fresh state dir
    let with_master = format!("WORKERS OK - {name}: 1 worker (master {pid}), cpu n/a, ");
    let alone = format!("WORKERS OK - {name}: 1 worker, cpu n/a, ");
    for attempt in 1.. {
        let first = run(state.path());
        let text = stdout_of(&first);
        assert_eq!(first.status.code(), Some(0), "{text}");
        if text.starts_with(&with_master) {
            break;
        }
        assert!(text.starts_with(&alone) && attempt < 20, "{text}");
        state = state_dir();
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_secs(3));
    let second = run(state.path());
    fs::write(&stop, "").unwrap();
    let true_cpu = master.reap_with_cpu_percent(started);

    let text = stdout_of(&second);
    let line = status_line(&second);
    let measured = of_line(&line).number("cpu");
    assert!(
        (measured - true_cpu).abs() <= 5.0,
        "measured {measured} vs true {true_cpu}: {text}"
    );
    // most of it came from workers that had already exited
    let recovered: f64 = text
        .split("exited within the interval; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recovery note: {text}"));
    let measured_ticks = measured * 3.0; // percent of 100 ticks/s over about 3 s
    assert!(
        recovered > measured_ticks * 0.5,
        "recovered {recovered} ticks of ~{measured_ticks}: {text}"
    );
}

#[test]
fn ppid_and_pidfile_find_the_children_of_a_real_master() {
    let spawned = Spawned::new();
    let child_name = unique("cwfk");
    let family = spawned.family(&unique("cwfm"), &child_name);
    let master = family.pid().to_string();
    let state = state_dir();
    let out = real_check(state.path())
        .args(["--ppid", &master, "--interval", "0"])
        .output()
        .unwrap();
    let line = status_line(&out);
    assert!(
        line.starts_with(&format!(
            "WORKERS OK - children of {master}: 3 workers (master {master}), "
        )),
        "{line}"
    );
    let dir = state_dir();
    let pidfile = dir.path().join("master.pid");
    fs::write(&pidfile, format!("{master}\n")).unwrap();
    let out = real_check(state.path())
        .args(["-n", &child_name, "--pidfile"])
        .arg(&pidfile)
        .args(["--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = status_line(&out);
    assert!(
        line.starts_with(&format!(
            "WORKERS OK - {}: 3 workers (master {master}), ",
            child_name
        )),
        "{line}"
    );
    // the master gone: the pidfile is stale, and that is CRITICAL
    drop(family);
    let out = real_check(state.path())
        .arg("--pidfile")
        .arg(&pidfile)
        .args(["--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(status_line(&out).contains(&format!(
        "(pid {master} from {} is not running)",
        pidfile.display()
    )));
}

// Regression: the kernel cuts a long name's comm at 15 bytes, here inside an `é`; that comm is
// not UTF-8, the sleepers were "unreadable", and `-n` found 0 of them.
#[test]
fn long_non_ascii_name_cut_inside_a_character_is_found() {
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    // unique to this run, an even number of ASCII bytes, then é's: byte 15 is inside one
    let mut name = format!("cw{}-", std::process::id());
    if name.len() % 2 == 1 {
        name.push('a');
    }
    while name.len() < 20 {
        name.push('é');
    }
    assert!(!name.is_char_boundary(15), "{name}");
    spawned.sleepers(&name, 2);
    let state = state_dir();
    let out = real_check(state.path())
        .args(["-n", &name, "--interval", "0"])
        .output()
        .unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        status_line(&out).starts_with(&format!("WORKERS OK - {name}: 2 workers, cpu n/a, ")),
        "{text}"
    );
    assert_eq!(of_line(&status_line(&out)).number("workers"), 2.0);
}

/// CPU percent (100 = one core) the spawned children really used since `started`, when they
/// had used `ticks`.
fn percent_since(spawned: &Spawned, started: Instant, ticks: u64) -> f64 {
    let used = spawned.cpu_ticks() - ticks;
    used as f64 / (started.elapsed().as_secs_f64() * 100.0) * 100.0
}

// Regression (issue 22, item 7): the README's demo line used `--ppid $$`, which finds nothing
// in a subshell or a script, where `$$` is not the shell that started the `sleep`.
#[test]
fn readme_demo_line_works_in_a_subshell_and_a_script() {
    let _serial = cpu_heavy();
    let readme = include_str!("../../README.md");
    let line = readme.lines().nth(2).unwrap().trim();
    let demo = line
        .strip_prefix("cargo build --release && ")
        .expect("the README's first line builds, then runs the demo")
        .replace(
            "./target/release/check_workers",
            crate::fixture::binary().to_str().unwrap(),
        );
    let state = state_dir();
    for shell in [format!("( {demo} )"), format!("bash -c '{demo}'")] {
        // into a file: the demo's sleep keeps a pipe open for its minute
        let printed = state.path().join("printed");
        let status = crate::fixture::command("bash")
            .arg("-c")
            .arg(&shell)
            .env("MP_STATE_PATH", state.path())
            .stdout(fs::File::create(&printed).unwrap())
            .status()
            .unwrap();
        let text = fs::read_to_string(&printed).unwrap();
        assert_eq!(status.code(), Some(0), "{shell}: {text}");
        assert!(text.starts_with("WORKERS OK - sleep: "), "{shell}: {text}");
        assert!(text.contains(" (sleep) "), "{shell}: {text}");
    }
}
