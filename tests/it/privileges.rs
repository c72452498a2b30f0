//! State directories shared by users: root by hand, then the `nagios` user from the scheduler.
//! These need root (to switch users and chown); elsewhere they skip with a message.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::fixture::spawn::{install_binary, public_dir, Spawned};
use crate::fixture::{
    binary, check, command, cpu_heavy, is_root, setpriv_available, skip, state_dir, status_line,
    stdout_of, FakeProc, ProcTree, NOBODY,
};

/// Runs the check as `uid` (None: as ourselves, root) with the default state location under
/// `mp_state_path`.
fn run_as(uid: Option<u32>, exe: &Path, mp_state_path: &Path, args: &[&str]) -> Output {
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = command("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(exe);
            c
        }
        None => command(exe),
    };
    cmd.env("MP_STATE_PATH", mp_state_path)
        .current_dir("/")
        .args(args)
        .output()
        .unwrap()
}

/// The classic "Cannot write statefile" of stateful plugins: root creates the state first,
/// then the nagios user cannot write there. Per-euid directories under a sticky shared parent
/// keep both working.
#[test]
fn root_then_unprivileged_user_both_keep_state() {
    if !is_root() || !setpriv_available() {
        skip(
            "root_then_unprivileged_user_both_keep_state",
            "needs root and setpriv",
        );
        return;
    }
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mp = base.path().join("mp-state");
    let name = format!("cwp{}", std::process::id());
    let mut worker = Spawned::new();
    worker.sleepers(&name, 1);
    let args = ["-n", name.as_str(), "--interval", "0"];

    let root_first = run_as(None, &exe, &mp, &args);
    assert_eq!(
        root_first.status.code(),
        Some(0),
        "{}",
        stdout_of(&root_first)
    );
    assert_eq!(
        fs::metadata(&mp).unwrap().permissions().mode() & 0o7777,
        0o1777
    );

    let user_first = run_as(Some(NOBODY), &exe, &mp, &args);
    let text = stdout_of(&user_first);
    assert_eq!(user_first.status.code(), Some(0), "{text}");
    assert!(text.contains("no baseline (first run)"), "{text}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let user_second = run_as(Some(NOBODY), &exe, &mp, &args);
    let text = stdout_of(&user_second);
    assert_eq!(user_second.status.code(), Some(0), "{text}");
    assert!(status_line(&user_second).contains(" cpu=0%;"), "{text}");
    assert!(!text.contains("no baseline"), "{text}");

    let root_again = run_as(None, &exe, &mp, &args);
    let text = stdout_of(&root_again);
    assert!(status_line(&root_again).contains(" cpu=0%;"), "{text}");
    assert!(!text.contains("no baseline"), "{text}");

    let owner = |p: PathBuf| std::os::unix::fs::MetadataExt::uid(&fs::metadata(p).unwrap());
    assert_eq!(owner(mp.join("0/check_workers")), 0);
    assert_eq!(owner(mp.join(format!("{NOBODY}/check_workers"))), NOBODY);
}

/// And the other way round: the unprivileged user creates the shared parent first.
#[test]
fn unprivileged_user_first_then_root() {
    if !is_root() || !setpriv_available() {
        skip(
            "unprivileged_user_first_then_root",
            "needs root and setpriv",
        );
        return;
    }
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let mp = base.path().join("mp-state");
    let name = format!("cwq{}", std::process::id());
    let mut worker = Spawned::new();
    worker.sleepers(&name, 1);
    let args = ["-n", name.as_str(), "--interval", "0"];
    let user = run_as(Some(NOBODY), &exe, &mp, &args);
    assert_eq!(user.status.code(), Some(0), "{}", stdout_of(&user));
    let owner = |p: &Path| std::os::unix::fs::MetadataExt::uid(&fs::metadata(p).unwrap());
    assert_eq!(owner(&mp), NOBODY);
    let root = run_as(None, &exe, &mp, &args);
    assert_eq!(root.status.code(), Some(0), "{}", stdout_of(&root));
    // root took the sticky shared parent over; the user's own directory stays the user's
    assert_eq!(owner(&mp), 0);
    assert_eq!(owner(&mp.join(NOBODY.to_string())), NOBODY);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let user_again = run_as(Some(NOBODY), &exe, &mp, &args);
    let text = stdout_of(&user_again);
    assert_eq!(user_again.status.code(), Some(0), "{text}");
    assert!(!text.contains("no baseline"), "{text}");
}

#[test]
fn state_dir_of_another_user_is_refused() {
    if !is_root() {
        skip(
            "state_dir_of_another_user_is_refused",
            "needs root to chown",
        );
        return;
    }
    let tree = ProcTree::new(100.0);
    tree.put(&FakeProc::new(10, 1, "nginx", 0));
    let state = state_dir();
    std::os::unix::fs::chown(state.path(), Some(NOBODY), None).unwrap();
    let out = check(tree.path(), state.path())
        .args(["-n", "nginx", "--interval", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!(
            "belongs to uid {NOBODY}, not to uid 0: refusing to use it"
        )),
        "{text}"
    );
}

/// `fs.protected_symlinks` is off on some hosts, so the check applies its rule itself: an
/// explicit `--state-dir` that is another user's link in a sticky world-writable directory is
/// not followed; the operator's own link is.
#[test]
fn state_dir_link_of_another_user_in_a_sticky_dir_is_refused() {
    if !is_root() {
        skip(
            "state_dir_link_of_another_user_in_a_sticky_dir_is_refused",
            "needs root to chown a link",
        );
        return;
    }
    let tree = ProcTree::new(100.0);
    tree.put(&FakeProc::new(10, 1, "nginx", 0));
    let sticky = tempfile::tempdir().unwrap();
    fs::set_permissions(sticky.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let real = state_dir();
    let link = sticky.path().join("state");
    std::os::unix::fs::symlink(real.path(), &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let run = || {
        check(tree.path(), &link)
            .args(["-n", "nginx", "--interval", "0"])
            .output()
            .unwrap()
    };
    let out = run();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(
        text.lines().nth(1).unwrap(),
        format!(
            "UNKNOWN: tick file not saved: state dir {} is a link of uid {NOBODY} in a sticky \
             world-writable directory: refusing to follow it",
            link.display()
        )
    );
    assert_eq!(fs::read_dir(real.path()).unwrap().count(), 0);

    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
    assert!(fs::read_dir(real.path()).unwrap().count() > 0);
}

/// Any local user can pre-create another user's directory below a shared parent
/// (`/var/tmp/check_workers/<uid of nagios>`). The check then keeps no state, but a down
/// service must still page as CRITICAL, and a healthy one shows its figures as UNKNOWN.
#[test]
fn squatted_state_dir_does_not_hide_a_critical() {
    if !is_root() {
        skip(
            "squatted_state_dir_does_not_hide_a_critical",
            "needs root to chown",
        );
        return;
    }
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(812, 1, "nginx", 0))
        .put(&FakeProc::new(813, 812, "nginx", 33))
        .put(&FakeProc::new(814, 812, "nginx", 33));
    let base = tempfile::tempdir().unwrap();
    let mp = base.path().join("mp");
    fs::create_dir(&mp).unwrap();
    fs::set_permissions(&mp, fs::Permissions::from_mode(0o1777)).unwrap();
    let squatted = mp.join("0");
    fs::create_dir(&squatted).unwrap();
    std::os::unix::fs::chown(&squatted, Some(NOBODY), Some(NOBODY)).unwrap();
    let run = |name: &str| {
        let root = tree.path().to_str().unwrap();
        let sys = format!("{root}/sys");
        let args = [
            "--proc-root",
            root,
            "--sys-root",
            &sys,
            "-n",
            name,
            "--interval",
            "0",
        ];
        run_as(None, &binary(), &mp, &args)
    };
    let why = format!(
        "UNKNOWN: tick file not saved: state dir {} belongs to uid {NOBODY}, not to uid 0: \
         refusing to use it\n",
        squatted.display()
    );

    let down = run("apache2");
    assert_eq!(down.status.code(), Some(2), "{}", stdout_of(&down));
    assert_eq!(
        stdout_of(&down),
        format!(
            "WORKERS CRITICAL - apache2: 0 workers < 1, cpu n/a | \
             workers=0;;1:;0; rss_total=0B;;;0; rss_pct=0%;;;0;100 threads=0;;;0; \
             zombies=0;;;0; uninterruptible=0;;;0;\n{why}"
        )
    );

    let up = run("nginx");
    assert_eq!(up.status.code(), Some(3), "{}", stdout_of(&up));
    assert_eq!(
        stdout_of(&up),
        format!(
            "WORKERS UNKNOWN - nginx: 2 workers (master 812), cpu n/a, rss 4.0 MiB avg, \
             vms 100.0 MiB avg | workers=2;;1:;0; rss=4194304B;;;0; vms=104857600B;;;0; \
             rss_max=4194304B;;;0; \
             vms_max=104857600B;;;0; rss_total=8388608B;;;0; \
             threads=2;;;0; fds=16;;;0; fd_pct_max=0.78%;;;0;100 age_min=4990s;;;0; \
             age_max=4990s;;;0; zombies=0;;;0; uninterruptible=0;;;0;\n{why}\
             no baseline (no usable state dir) and --interval 0: cpu not measured in this run\n"
        )
    );
    assert_eq!(fs::read_dir(&squatted).unwrap().count(), 0);
}

/// True when running as root with `unshare`, which the private-namespace tests need.
fn namespaces_available() -> bool {
    is_root()
        && StdCommand::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

/// `sh -c script` as root in a private mount namespace with its own tmpfs of `size` at
/// /var/tmp, so the host's /var/tmp never changes whatever the script does there.
fn with_private_var_tmp(size: &str, script: &str) -> StdCommand {
    let mut cmd = StdCommand::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-uc"])
        .arg(format!(
            "mount -t tmpfs -o size={size},mode=1777 check-workers-test /var/tmp || exit 99\n\
             {script}"
        ))
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .current_dir("/");
    cmd
}

/// A full disk is the everyday instance of a state dir that cannot be written: the figures are
/// still measured (here against the previous run's baseline) and reported, and the state is
/// the worse of theirs and UNKNOWN.
#[test]
fn full_disk_still_reports_the_figures() {
    if !namespaces_available() {
        skip(
            "full_disk_still_reports_the_figures",
            "needs root and unshare",
        );
        return;
    }
    let t0 = ProcTree::new(5000.0);
    let t1 = ProcTree::new(5060.0);
    for (tree, ticks) in [(&t0, 100), (&t1, 400)] {
        tree.put(&FakeProc::new(812, 1, "nginx", 0))
            .put(&FakeProc::new(813, 812, "nginx", 33).ticks(ticks, 0));
    }
    let script = r#"
        mkdir -m 0700 /var/tmp/state
        run() {
            "$EXE" --proc-root "$1" --sys-root "$1/sys" --state-dir /var/tmp/state -n "$2" \
                --interval 0
            echo "exit $?"
        }
        run "$T0" nginx
        cat /dev/zero >/var/tmp/filler 2>/dev/null
        run "$T1" nginx
        run "$T1" apache2
    "#;
    let out = with_private_var_tmp("64k", script)
        .env("EXE", binary())
        .env("T0", t0.path())
        .env("T1", t1.path())
        .output()
        .unwrap();
    let full = "UNKNOWN: tick file not saved: cannot write tick file in /var/tmp/state: No space \
                left on device (os error 28)";
    let memory = "rss=4194304B;;;0; vms=104857600B;;;0; \
                  rss_max=4194304B;;;0; vms_max=104857600B;;;0; rss_total=4194304B;;;0; \
                  threads=1;;;0; fds=8;;;0; fd_pct_max=0.78%;;;0;100";
    let rest = "zombies=0;;;0; uninterruptible=0;;;0;";
    let ages = |age: u32| format!("age_min={age}s;;;0; age_max={age}s;;;0;");
    let nginx = "nginx: 1 worker (master 812)";
    let sizes = "rss 4.0 MiB avg, vms 100.0 MiB avg";
    // the second run: 300 ticks over 60 s is 5 % of a core, against the first run's tick file
    let cpu = "cpu=5%;;;0;200 cpu_user=5%;;;0;200 cpu_system=0%;;;0;200 cpu_max=5%;;;0;200";
    assert_eq!(
        stdout_of(&out),
        format!(
            "WORKERS OK - {nginx}, cpu n/a, {sizes} | workers=1;;1:;0; {memory} {} {rest}\n\
             no baseline (first run) and --interval 0: cpu not measured in this run\n\
             exit 0\n\
             WORKERS UNKNOWN - {nginx}, cpu 5.0%, {sizes} | workers=1;;1:;0; {cpu} {memory} {} \
             {rest} restarts=0;;;0; nvcsw=0;;;0;\n{full}\nexit 3\n\
             WORKERS CRITICAL - apache2: 0 workers < 1, cpu n/a | workers=0;;1:;0; \
             rss_total=0B;;;0; rss_pct=0%;;;0;100 threads=0;;;0; {rest}\n{full}\nexit 2\n",
            ages(4990),
            ages(5050),
        )
    );
}

/// Flips a link at `name` in `dir` to `target` and back to nothing until `stop`, as an
/// unprivileged user would: this thread alone takes `NOBODY`'s file-system identity
/// (setfsuid), so the links are its and it can only do what that user can. Returns the flips.
fn flip_link(dir: OwnedFd, name: &str, target: &str, stop: &AtomicBool) -> u64 {
    nix::unistd::setfsuid(nix::unistd::Uid::from_raw(NOBODY));
    let mut flips = 0;
    while !stop.load(Ordering::Relaxed) {
        if nix::unistd::symlinkat(target, &dir, name).is_ok() {
            flips += 1;
        }
        let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    flips
}

/// Issue 9, item 1: the shared parent was checked by name, created, then chmod'ed 1777 by name.
/// A local user flipping a link at that name made root chmod any directory 1777 (seen after 8
/// runs). Root runs the check hundreds of times, each with the shared parent gone, while a
/// racer flips a link there to a root-owned 0755 directory; its mode must never change.
#[test]
fn link_flipped_at_the_shared_parent_never_changes_a_mode() {
    if !namespaces_available() {
        skip(
            "link_flipped_at_the_shared_parent_never_changes_a_mode",
            "needs root and unshare",
        );
        return;
    }
    let _serial = cpu_heavy();
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(812, 1, "nginx", 0))
        .put(&FakeProc::new(813, 812, "nginx", 33));
    let script = r#"
        mkdir -m 0755 /var/tmp/target
        echo ready
        read go
        i=0
        while [ $i -lt 400 ] && [ "$(stat -c %a /var/tmp/target)" = 755 ]; do
            i=$((i + 1))
            rm -rf /var/tmp/check_workers
            MP_STATE_PATH=/var/tmp/check_workers "$EXE" --proc-root "$T" --sys-root "$T/sys" \
                -n nginx --interval 0 >/dev/null
        done
        echo "$i runs, target mode $(stat -c %a /var/tmp/target)"
    "#;
    let mut child = with_private_var_tmp("1m", script)
        .env("EXE", binary())
        .env("T", tree.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // the namespace's own /var/tmp, seen from outside through the script's root
    let var_tmp = nix::fcntl::open(
        format!("/proc/{}/root/var/tmp", child.id()).as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || flip_link(var_tmp, "check_workers", "/var/tmp/target", &stop))
    };
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let flips = racer.join().unwrap();
    assert_eq!(rest, "400 runs, target mode 755\n");
    assert!(flips > 400, "the racer flipped only {flips} times");
}

/// Runs `script` as [`with_private_var_tmp`] does, with `$EXE` a copy of the check that any
/// user may run, `$T0` and `$T1` two readings of one nginx 60 s apart in trees any user may
/// read, and `$nobody` the prefix that runs a command as uid 65534. Returns its stdout.
fn shared_parent_script(script: &str) -> String {
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let (t0, t1) = (ProcTree::new(5000.0), ProcTree::new(5060.0));
    for (tree, ticks) in [(&t0, 100), (&t1, 400)] {
        tree.put(&FakeProc::new(812, 1, "nginx", 0))
            .put(&FakeProc::new(813, 812, "nginx", 33).ticks(ticks, 0));
        fs::set_permissions(tree.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = with_private_var_tmp("1m", script)
        .env("EXE", &exe)
        .env("T0", t0.path())
        .env("T1", t1.path())
        .env(
            "nobody",
            format!("setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    stdout_of(&out)
}

/// Runs the check on `$2` as `$1` (empty: root, else `$nobody`), says `$3: exit N`, and keeps
/// its output in `$out`.
const CHECK_FN: &str = r#"
    check() {
        out=$($1 "$EXE" --proc-root "$2" --sys-root "$2/sys" -n nginx --interval 0)
        echo "$3: exit $?"
    }
    baseline() { case $out in *"no baseline"*) echo "no baseline" ;; *) echo baseline ;; esac; }
"#;

// Regression (issue 16, item 5): another user made the shared parent first with mode 1700;
// root took it over (fchown) and kept that mode, so the monitoring user got EACCES for good
// while every run still reported. Taken over, it gets the mode root would have made it with.
#[test]
fn taken_over_shared_parent_is_open_to_all_again() {
    if !namespaces_available() || !setpriv_available() {
        skip(
            "taken_over_shared_parent_is_open_to_all_again",
            "needs root, unshare and setpriv",
        );
        return;
    }
    let script = format!(
        "{CHECK_FN}
        export MP_STATE_PATH=/var/tmp/check_workers
        $nobody mkdir -m 1700 $MP_STATE_PATH
        stat -c 'squatted: %a %u' $MP_STATE_PATH
        check '' \"$T0\" root
        stat -c 'taken over: %a %u' $MP_STATE_PATH
        check \"$nobody\" \"$T0\" nobody
        check \"$nobody\" \"$T1\" nobody
        baseline
        "
    );
    assert_eq!(
        shared_parent_script(&script),
        format!(
            "squatted: 1700 {NOBODY}\nroot: exit 0\ntaken over: 1777 0\nnobody: exit 0\n\
             nobody: exit 0\nbaseline\n"
        )
    );
}

// Same class (issue 16, item 5): root's umask (077 under many sudo setups) closed the levels
// root created on the way to a shared parent, which the other users then could not reach.
#[test]
fn shared_parent_made_under_a_tight_umask_is_open_to_all() {
    if !namespaces_available() || !setpriv_available() {
        skip(
            "shared_parent_made_under_a_tight_umask_is_open_to_all",
            "needs root, unshare and setpriv",
        );
        return;
    }
    let script = format!(
        "{CHECK_FN}
        export MP_STATE_PATH=/var/tmp/monitoring/state
        (umask 077; check '' \"$T0\" root)
        stat -c 'made: %a %u' /var/tmp/monitoring $MP_STATE_PATH
        check \"$nobody\" \"$T0\" nobody
        check \"$nobody\" \"$T1\" nobody
        baseline
        "
    );
    assert_eq!(
        shared_parent_script(&script),
        "root: exit 0\nmade: 755 0\nmade: 1777 0\nnobody: exit 0\nnobody: exit 0\nbaseline\n"
    );
}

// Regression (issue 22, item 2): `--exe` run as the nagios user read CRITICAL "0 workers < 1"
// while nginx ran, because other users' /proc/PID/exe could not be read. The answer is
// UNKNOWN, naming the cause and the fix; as root, and for the user's own processes, it counts.
#[test]
fn exe_that_cannot_be_read_is_unknown_never_zero_workers() {
    if !is_root() || !setpriv_available() {
        skip(
            "exe_that_cannot_be_read_is_unknown_never_zero_workers",
            "needs root and setpriv",
        );
        return;
    }
    let _serial = cpu_heavy();
    let mut spawned = Spawned::new();
    let name = crate::fixture::spawn::unique("cwx");
    let program = spawned.sleepers(&name, 2);
    let program = program.to_str().unwrap().to_string();
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let mp = public_dir(Some((NOBODY, NOBODY)));
    let args = [
        "-n",
        name.as_str(),
        "--exe",
        program.as_str(),
        "--interval",
        "0",
    ];
    let as_nobody = run_as(Some(NOBODY), &exe, mp.path(), &args);
    assert_eq!(
        as_nobody.status.code(),
        Some(3),
        "{}",
        stdout_of(&as_nobody)
    );
    assert_eq!(
        stdout_of(&as_nobody),
        format!(
            "WORKERS UNKNOWN - --exe {program}: 2 processes that pass the other filters could \
             not be checked, as only root or their own user may read /proc/PID/exe; run the \
             check as root, or through sudo (contrib/sudoers)\n"
        )
    );
    let root_state = state_dir();
    let as_root = run_as(None, &exe, root_state.path(), &args);
    assert_eq!(as_root.status.code(), Some(0), "{}", stdout_of(&as_root));
    assert!(
        status_line(&as_root).contains(": 2 workers, "),
        "{}",
        stdout_of(&as_root)
    );
    // nobody's own processes: their exe is readable, so they count
    let mut own = Spawned::new();
    let mine = crate::fixture::spawn::unique("cwy");
    let program = own.sleepers_as(&mine, 1, (NOBODY, NOBODY));
    let args = [
        "-n",
        mine.as_str(),
        "--exe",
        program.to_str().unwrap(),
        "--interval",
        "0",
    ];
    let out = run_as(Some(NOBODY), &exe, mp.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout_of(&out));
}
