//! `--pidfile` planted by the service's user (issue 16, item 2): that user often owns the
//! pidfile's directory while root runs the check, so the file may be a link to a secret, a
//! FIFO, `/dev/zero` or anything large. Each is one UNKNOWN line naming the file, at once,
//! never its content. The link-owner case needs root (to `lchown`); it skips without.

use std::fs;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::fixture::{
    binary, command, is_root, mkfifo, skip, state_dir, stdout_of, FakeProc, ProcTree, NOBODY,
};

/// The timeout given to every run: a run that waited on the file would take this long.
const TIMEOUT_SECS: u64 = 30;

/// What "at once" means here, far below [`TIMEOUT_SECS`] even on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);

/// nginx master 812 (root) with workers 813 and 814 (www-data).
fn host() -> ProcTree {
    let tree = ProcTree::new(5000.0);
    tree.put(&FakeProc::new(812, 1, "nginx", 0))
        .put(&FakeProc::new(813, 812, "nginx", 33))
        .put(&FakeProc::new(814, 812, "nginx", 33));
    tree
}

/// The check on `tree` with `--pidfile pidfile`, its address space capped at 512 MiB (a
/// pidfile read without a limit fills memory instead), and how long it took.
fn run(tree: &ProcTree, pidfile: &Path) -> (Output, Duration) {
    let state = state_dir();
    let root = tree.path();
    let started = Instant::now();
    let out = command("sh")
        .args(["-c", "ulimit -v 524288 && exec \"$0\" \"$@\""])
        .arg(binary())
        .arg("--proc-root")
        .arg(root)
        .arg("--sys-root")
        .arg(root.join("sys"))
        .arg("--state-dir")
        .arg(state.path())
        .args([
            "--interval",
            "0",
            "-t",
            &TIMEOUT_SECS.to_string(),
            "--pidfile",
        ])
        .arg(pidfile)
        .output()
        .unwrap();
    (out, started.elapsed())
}

/// Asserts the run answered at once with exit 3 and exactly one line,
/// `WORKERS UNKNOWN - <why>`, on stdout, and nothing on stderr.
fn assert_unknown(run: (Output, Duration), why: &str) {
    let (out, took) = run;
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(text, format!("WORKERS UNKNOWN - {why}\n"));
    assert!(took < PROMPT, "took {took:?}: {text}");
}

/// A directory holding a root-only secret, as `/root/.my.cnf` is.
fn secret() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("my.cnf");
    fs::write(&secret, "[client]\npassword=secret\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    (dir, secret)
}

// Regression (issue 16.2): root followed the service user's link to a 0600 file and printed
// its first 40 characters, password included.
#[test]
fn link_of_the_services_user_to_a_secret_is_not_followed() {
    if !is_root() {
        skip(
            "link_of_the_services_user_to_a_secret_is_not_followed",
            "needs root to lchown a link",
        );
        return;
    }
    let tree = host();
    let (dir, secret) = secret();
    let pidfile = dir.path().join("php-fpm.pid");
    symlink(&secret, &pidfile).unwrap();
    lchown(&pidfile, Some(NOBODY), Some(NOBODY)).unwrap();
    assert_unknown(
        run(&tree, &pidfile),
        &format!(
            "pidfile {} is a link of uid {NOBODY}, neither root's nor the check's (uid 0): \
             refusing to follow it",
            pidfile.display()
        ),
    );
    // root's own link is followed, and the secret behind it is described, never shown
    lchown(&pidfile, Some(0), Some(0)).unwrap();
    assert_unknown(
        run(&tree, &pidfile),
        &format!("pidfile {} holds no pid (25 bytes)", pidfile.display()),
    );
}

// Regression (issue 16.2): the open of a FIFO waited for a writer until the timeout, and
// "timed out" hid the CRITICAL of a service that was down.
#[test]
fn fifo_pidfile_answers_at_once() {
    let tree = host();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("nginx.pid");
    mkfifo(&pidfile);
    assert_unknown(
        run(&tree, &pidfile),
        &format!(
            "pidfile {} is not a regular file (a FIFO)",
            pidfile.display()
        ),
    );
}

// Regression (issue 16.2): a link to /dev/zero grew the check's memory by about 2 GB a second.
// Root's link is followed (as /var/run -> /run is), so it is the regular-file rule that
// refuses it, before a byte is read.
#[test]
fn link_to_dev_zero_is_refused_before_reading() {
    let tree = host();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("nginx.pid");
    symlink("/dev/zero", &pidfile).unwrap();
    assert_unknown(
        run(&tree, &pidfile),
        &format!(
            "pidfile {} is not a regular file (a character device)",
            pidfile.display()
        ),
    );
}

// Regression (issue 16.2): a file of any size was read whole and its start printed.
#[test]
fn pidfile_over_4_kib_is_not_a_pidfile() {
    let tree = host();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("nginx.pid");
    fs::write(&pidfile, format!("812\n{}", " ".repeat(4096))).unwrap();
    assert_unknown(
        run(&tree, &pidfile),
        &format!(
            "pidfile {} is larger than 4 KiB: not a pidfile",
            pidfile.display()
        ),
    );
}

/// A good pidfile, directly or through a link of the check's user, still names the master.
#[test]
fn good_pidfile_still_names_the_master() {
    let tree = host();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("nginx.pid");
    fs::write(&pidfile, "812\n").unwrap();
    let link = dir.path().join("var-run-nginx.pid");
    symlink(&pidfile, &link).unwrap();
    for named in [&pidfile, &link] {
        let (out, took) = run(&tree, named);
        let text = stdout_of(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.starts_with(&format!(
                "WORKERS OK - pidfile {}: 2 workers (master 812), cpu n/a,",
                named.display()
            )),
            "{text}"
        );
        assert!(took < PROMPT, "took {took:?}");
    }
}
