//! State directories shared by users: root by hand, then the `nagios` user from the scheduler.
//! These need root (to switch users and chown); elsewhere they skip with a message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output};

use assert_cmd::cargo::cargo_bin;
use tempfile::TempDir;

use crate::fixture::{
    copy_executable, is_root, skip, state_dir, status_line, stdout_of, FakeProc, ProcTree,
};

/// The unprivileged user the tests switch to.
pub(crate) const NOBODY: u32 = 65534;

/// A copy of the binary in a directory every user may enter.
pub(crate) fn public_binary() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("check_workers");
    copy_executable(&cargo_bin("check_workers"), &exe);
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}

pub(crate) fn setpriv_available() -> bool {
    StdCommand::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the check as `uid` (None: as ourselves, root) with the default state location under
/// `mp_state_path`.
fn run_as(uid: Option<u32>, exe: &Path, mp_state_path: &Path, args: &[&str]) -> Output {
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = StdCommand::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(exe);
            c
        }
        None => StdCommand::new(exe),
    };
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MP_STATE_PATH", mp_state_path)
        .current_dir("/")
        .args(args)
        .output()
        .unwrap()
}

pub(crate) struct Sleeper {
    child: Child,
    /// holds the renamed copy of sleep until the child is gone
    _dir: TempDir,
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn sleeper(name: &str) -> Sleeper {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join(name);
    copy_executable(std::path::Path::new("/bin/sleep"), &exe);
    let child = StdCommand::new(&exe).arg("600").spawn().unwrap();
    Sleeper { child, _dir: dir }
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
    let (_bin, exe) = public_binary();
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mp = base.path().join("mp-state");
    let name = format!("cwp{}", std::process::id());
    let _sleeper = sleeper(&name);
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
    let (_bin, exe) = public_binary();
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let mp = base.path().join("mp-state");
    let name = format!("cwq{}", std::process::id());
    let _sleeper = sleeper(&name);
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
    let out = crate::fixture::check(tree.path(), state.path())
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
