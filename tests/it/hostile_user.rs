//! What a hostile local user can do with real processes and files (issue 16), apart from
//! pidfiles (`pidfile.rs`) and command lines (`hostile_cmdline.rs`). Masters are trusted with
//! the workers' exited CPU and I/O (their reaped-children counters), so which process is a
//! master, and how much it may add, must hold against processes another user starts; and the
//! tick file's numbers, which the check's own user can write, must never become figures no
//! host could reach. These run processes as other users: root only, elsewhere they skip with a
//! message.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command as StdCommand, Stdio};
use std::thread;
use std::time::Duration;

use crate::fixture::perfdata::of_line;
use crate::fixture::spawn::{install_binary, open_to_all, public_dir, unique, Spawned};
use crate::fixture::{
    command, cpu_heavy, is_root, real_check, setpriv_available, skip, state_dir, status_line,
    stdout_of, tick_file, NOBODY,
};

/// A uid no service and no test user has: the hostile local user.
const STRANGER: u32 = 43_210;

/// A shell named `name` (a copy of /bin/sh in a directory of its own, as the service's
/// programs have that name already) running `script` as `uid` in a process group of its own;
/// the group is killed when dropped.
struct Group(Child);

impl Group {
    fn start(spawned: &Spawned, name: &str, uid: u32, script: &str, args: &[&str]) -> Group {
        let dir = spawned.dir().join(format!("shell-{uid}"));
        fs::create_dir_all(&dir).unwrap();
        open_to_all(&dir, None);
        let shell: PathBuf = dir.join(name);
        crate::fixture::spawn::copy_executable("/bin/sh".as_ref(), &shell);
        let child = StdCommand::new(&shell)
            .args(["-c", script, "master"])
            .args(args)
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Group(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signals the process group this test created; its leader is not reaped yet
        unsafe {
            nix::libc::kill(-(self.pid() as i32), nix::libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn root_or_skip(test: &str) -> bool {
    let ok = is_root() && setpriv_available();
    if !ok {
        skip(
            test,
            "needs root and setpriv to run processes as other users",
        );
    }
    ok
}

/// The options of a check of `name`'s workers run by nobody, warning above 50 % CPU.
fn nobodys_workers(name: &str) -> Vec<String> {
    let uid = NOBODY.to_string();
    [
        "-n",
        name,
        "-u",
        &uid,
        "--interval",
        "0",
        "-w",
        "50",
        "-c",
        "150",
    ]
    .map(String::from)
    .to_vec()
}

/// Two runs of the check `pause` apart with `args`: the second's exit code and stdout.
fn second_of_two_runs(args: &[String], pause: Duration) -> (Option<i32>, String) {
    let state = state_dir();
    let run = || real_check(state.path()).args(args).output().unwrap();
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", stdout_of(&first));
    thread::sleep(pause);
    let second = run();
    (second.status.code(), stdout_of(&second))
}

// Regression (issue 16.1): another user's shell named like the service, with one child of that
// name, was taken for the master with `-n NAME -u www-data`; the busy children it reaps were
// added as exited workers (cpu 272.0% with idle workers).
#[test]
fn another_users_pair_named_like_the_service_is_no_master() {
    if !root_or_skip("another_users_pair_named_like_the_service_is_no_master") {
        return;
    }
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwfm");
    let sleeper = spawned.sleepers_as(&name, 2, (NOBODY, NOBODY));
    let script = r#""$1" 600 & while :; do /bin/sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; done"#;
    let stranger = Group::start(
        &spawned,
        &name,
        STRANGER,
        script,
        &[sleeper.to_str().unwrap()],
    );
    thread::sleep(Duration::from_millis(300));
    let (code, text) = second_of_two_runs(&nobodys_workers(&name), Duration::from_secs(2));
    let line = text.lines().next().unwrap_or_default();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        line.starts_with(&format!("WORKERS OK - {name}: 2 workers, cpu ")),
        "no master may be named: {text}"
    );
    assert!(!text.contains(&stranger.pid().to_string()), "{text}");
    let cpu = of_line(line).number("cpu");
    assert!(cpu < 10.0, "idle workers at {cpu}%: {text}");
    assert!(!text.contains("ticks recovered"), "{text}");
}

// Regression (issue 16.1): a master's child that is no worker (a helper) burnt CPU for seconds
// and was reaped inside one interval; its whole lifetime was added to the workers' CPU.
#[test]
fn a_masters_reaped_helper_adds_no_more_than_exited_workers_could_burn() {
    if !root_or_skip("a_masters_reaped_helper_adds_no_more_than_exited_workers_could_burn") {
        return;
    }
    let _serial = cpu_heavy();
    let spawned = Spawned::new();
    let name = unique("cwhelp");
    let worker = spawned.program("/bin/sleep", &name);
    let busy = "import time\nend = time.time() + 3.0\nwhile time.time() < end: pass";
    let setpriv = format!("setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups");
    let script = format!(r#"{setpriv} "$1" 600 & python3 -c "$2"; sleep 600"#);
    let master = Group::start(
        &spawned,
        &name,
        0,
        &script,
        &[worker.to_str().unwrap(), busy],
    );
    // the baseline while the helper burns; it is reaped before the second run
    thread::sleep(Duration::from_millis(1200));
    let pause = Duration::from_millis(2800);
    let (code, text) = second_of_two_runs(&nobodys_workers(&name), pause);
    assert_eq!(code, Some(0), "{text}");
    let line = text.lines().next().unwrap_or_default().to_string();
    assert!(
        line.starts_with(&format!(
            "WORKERS OK - {name}: 1 worker (master {}), cpu ",
            master.pid()
        )),
        "{text}"
    );
    let cpu = of_line(&line).number("cpu");
    assert!(cpu < 10.0, "an idle worker at {cpu}%: {text}");
    assert!(
        text.contains("cpu: the master's reaped-children time exceeds what 0 exited workers"),
        "{text}"
    );
}

// Regression (issue 16.4): the check's own user edits its tick file: a base of 2^64-1 over an
// older sample read cpu=307394502144800576% on the next run that measured from the history.
#[test]
fn a_tick_file_its_user_forged_gives_no_impossible_figure() {
    if !root_or_skip("a_tick_file_its_user_forged_gives_no_impossible_figure") {
        return;
    }
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = unique("cwforge");
    spawned.sleepers_as(&name, 2, (NOBODY, NOBODY));
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let state = public_dir(Some((NOBODY, NOBODY)));
    let uid = NOBODY.to_string();
    let run_as_nobody = || {
        command("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={uid}")])
            .args(["--clear-groups", "--"])
            .arg(&exe)
            .args(["-n", &name, "-u", &uid, "--interval", "0", "--state-dir"])
            .arg(state.path())
            .output()
            .unwrap()
    };
    assert_eq!(run_as_nobody().status.code(), Some(0));
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(run_as_nobody().status.code(), Some(0));
    // what the user can do to its own file: a base no host could have reached
    let path = tick_file(state.path());
    let text = fs::read_to_string(&path).unwrap();
    let base = text.lines().find(|l| l.starts_with("base ")).unwrap();
    fs::write(&path, text.replace(base, "base 18446744073709551615 0")).unwrap();
    // a re-run a moment later measures from the history, against that base
    let out = run_as_nobody();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "no baseline (tick file discarded: impossible baseline (base of \
                       18446744073709551615 ticks in "
        ),
        "{text}"
    );
    assert_eq!(of_line(&status_line(&out)).item("cpu"), None, "{text}");
    // and the file was rewritten: the next run measures again
    thread::sleep(Duration::from_millis(1100));
    let out = run_as_nobody();
    let text = stdout_of(&out);
    let cpu = of_line(&status_line(&out)).number("cpu");
    assert!(cpu < 10.0, "{text}");
}
