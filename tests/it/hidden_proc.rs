//! Blind hosts: a proc mounted `hidepid=` hides other users' processes from an unprivileged
//! check, which must then say UNKNOWN with the cure instead of CRITICAL "0 workers" or OK.
//! Each case mounts its own proc in a private mount namespace, so the host's /proc is never
//! touched; they need root, unshare and setpriv, and skip with a message elsewhere.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::process::{Command as StdCommand, Output};

use crate::fixture::spawn::{install_binary, public_dir, unique, Spawned};
use crate::fixture::{is_root, setpriv_available, skip, stdout_of, NOBODY};

/// Runs the check as nobody (with `group` as its one supplementary group, if any) on a fresh
/// proc mounted with `options`, in a private mount namespace.
fn run_blind(options: &str, group: Option<u32>, args: &[&str]) -> Output {
    let bin = public_dir(None);
    let exe = install_binary(bin.path());
    let place = tempfile::tempdir().unwrap();
    fs::set_permissions(place.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let proc_dir = place.path().join("proc");
    let state = place.path().join("state");
    fs::create_dir(&proc_dir).unwrap();
    fs::create_dir(&state).unwrap();
    chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let groups = match group {
        Some(gid) => format!("--groups={gid}"),
        None => "--clear-groups".to_string(),
    };
    let script = r#"opts=$1 dir=$2 groups=$3 exe=$4 state=$5; shift 5
mount -t proc -o "$opts" proc "$dir" || exit 99
exec setpriv --reuid=65534 --regid=65534 "$groups" -- \
    "$exe" --proc-root "$dir" --state-dir "$state" --interval 0 "$@""#;
    StdCommand::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(options)
        .arg(&proc_dir)
        .arg(groups)
        .arg(&exe)
        .arg(&state)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap()
}

fn can_run(test: &str) -> bool {
    let unshare = StdCommand::new("unshare").arg("-V").output();
    let ok = is_root() && setpriv_available() && unshare.is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            test,
            "needs root, unshare and setpriv to mount a hidepid proc",
        );
    }
    ok
}

/// Before: CRITICAL "0 workers" with root's worker running, for ever.
#[test]
fn hidepid_invisible_is_unknown_with_the_cure() {
    if !can_run("hidepid_invisible_is_unknown_with_the_cure") {
        return;
    }
    let name = unique("hidw");
    let mut worker = Spawned::new();
    worker.sleepers(&name, 1);
    let out = run_blind("hidepid=2", None, &["-n", &name]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.starts_with("WORKERS UNKNOWN - "), "{text}");
    assert!(text.contains("is mounted hidepid="), "{text}");
    assert!(
        text.contains("as uid 65534 this check cannot see other users' processes; run it as root"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

/// Before: OK, since `-c workers=0:` allows none, and the operator never hears of it.
#[test]
fn hidepid_noaccess_is_unknown_even_where_zero_workers_are_allowed() {
    if !can_run("hidepid_noaccess_is_unknown_even_where_zero_workers_are_allowed") {
        return;
    }
    let name = unique("hidn");
    let mut worker = Spawned::new();
    worker.sleepers(&name, 1);
    let out = run_blind(
        "hidepid=1,gid=4242",
        None,
        &["-n", &name, "-c", "workers=0:"],
    );
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("or add uid 65534 to group 4242"), "{text}");
}

/// The mount's gid= group sees everything, as does a check of the reader's own processes;
/// a plain proc hides nothing.
#[test]
fn exempt_readers_see_the_workers() {
    if !can_run("exempt_readers_see_the_workers") {
        return;
    }
    let name = unique("hidx");
    let mut worker = Spawned::new();
    worker.sleepers(&name, 1);
    let out = run_blind("hidepid=2,gid=4242", Some(4242), &["-n", &name]);
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("{name}: 1 worker,")), "{text}");

    let plain = run_blind("rw", None, &["-n", &name]);
    let text = stdout_of(&plain);
    assert!(text.contains(&format!("{name}: 1 worker,")), "{text}");

    let own = run_blind(
        "hidepid=2",
        None,
        &["-n", &name, "-u", "65534", "-c", "workers=0:"],
    );
    let text = stdout_of(&own);
    assert_eq!(own.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("{name}: 0 workers,")), "{text}");
}
