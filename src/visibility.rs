//! Acquisition, before the scan: can this check see the workers at all?
//!
//! A proc mounted with `hidepid=` (`noaccess`, `invisible`, `ptraceable`) hides other users'
//! processes from an unprivileged reader. The scan then finds no workers and the check would
//! say CRITICAL "0 workers", or OK where `-c workers=0:` allows none, for ever and with no word
//! about why. So the mount is read first, and a blind check answers UNKNOWN with the cure.

use std::fs;
use std::path::Path;

use anyhow::{bail, Result};

/// `CAP_SYS_PTRACE`: the capability that lets a reader past hidepid (with the proc gid).
const CAP_SYS_PTRACE: u32 = 19;

/// How a proc mount hides processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hidepid {
    /// the option as the mount shows it (`2`, `invisible`, `noaccess`, ...)
    pub mode: String,
    /// `gid=`: members of this group see everything
    pub gid: Option<u32>,
}

/// Who is reading, as the kernel's hidepid check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub euid: u32,
    /// the effective gid and the supplementary groups
    pub groups: Vec<u32>,
    pub can_ptrace_all: bool,
}

/// Refuses to run blind: when `proc_root` is a proc mount that hides other users' processes
/// and this reader is not exempt, unless the selection is the reader's own processes (`-u`
/// with its own uid), which hidepid leaves visible.
pub fn ensure_visible(proc_root: &Path, only_uid: Option<u32>) -> Result<()> {
    let Some(hidepid) = mount_of(proc_root) else {
        return Ok(());
    };
    let reader = Reader::current();
    if reader.exempt(&hidepid) || only_uid == Some(reader.euid) {
        return Ok(());
    }
    let cure = match hidepid.gid {
        Some(gid) => format!("run it as root, or add uid {} to group {gid}", reader.euid),
        None => "run it as root, or remount proc with gid=GROUP and add the user to GROUP".into(),
    };
    bail!(
        "{} is mounted hidepid={}: as uid {} this check cannot see other users' processes; {cure}",
        proc_root.display(),
        hidepid.mode,
        reader.euid
    )
}

impl Reader {
    fn current() -> Reader {
        let mut groups = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| Vec::new());
        groups.push(nix::unistd::getegid().as_raw());
        let euid = nix::unistd::geteuid().as_raw();
        let can_ptrace_all = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| effective_caps(&status))
            .map_or(euid == 0, |caps| caps & (1 << CAP_SYS_PTRACE) != 0);
        Reader {
            euid,
            groups,
            can_ptrace_all,
        }
    }

    /// The kernel shows every process to a member of the mount's gid and to a reader that may
    /// ptrace it (CAP_SYS_PTRACE, which root has).
    pub fn exempt(&self, hidepid: &Hidepid) -> bool {
        self.can_ptrace_all || hidepid.gid.is_some_and(|gid| self.groups.contains(&gid))
    }
}

/// The hidepid setting of the proc mount at `proc_root`; None when it hides nothing or is no
/// proc mount (a fixture tree), or when the mount table cannot be read.
fn mount_of(proc_root: &Path) -> Option<Hidepid> {
    let target = fs::canonicalize(proc_root).ok()?;
    let table = fs::read_to_string(proc_root.join("self/mountinfo")).ok()?;
    hidepid_of(&table, target.to_str()?)
}

/// From a `mountinfo` table: the hidepid option of the topmost proc mount at `mount_point`.
pub fn hidepid_of(mountinfo: &str, mount_point: &str) -> Option<Hidepid> {
    let line = mountinfo
        .lines()
        .rev()
        .find(|line| line.split(' ').nth(4).map(unescape).as_deref() == Some(mount_point))?;
    let (mount, fs) = line.split_once(" - ")?;
    let mut fs = fs.split(' ');
    if fs.next() != Some("proc") {
        return None;
    }
    let options = [mount.split(' ').nth(5), fs.nth(1)];
    let options = options.iter().flatten().flat_map(|o| o.split(','));
    let mut hidepid = None;
    let mut gid = None;
    for option in options {
        if let Some(mode) = option.strip_prefix("hidepid=") {
            hidepid = Some(mode.to_string());
        } else if let Some(value) = option.strip_prefix("gid=") {
            gid = value.parse().ok();
        }
    }
    let mode = hidepid.filter(|m| !matches!(m.as_str(), "0" | "off"))?;
    Some(Hidepid { mode, gid })
}

/// mountinfo writes a space, tab, newline and backslash in a path as `\040`-style octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, b| acc.wrapping_mul(8) + (b - b'0')),
                );
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `CapEff:` of a `/proc/PID/status`, as a bit set.
fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 22 0:22 / /proc/sys/fs/binfmt_misc rw,relatime - autofs systemd-1 rw
40 27 0:40 / /srv/my\\040proc rw,nosuid - proc proc rw,hidepid=invisible,gid=1234
41 27 0:41 / /old rw,nosuid - proc proc rw,hidepid=2
42 27 0:42 / /off rw - proc proc rw,hidepid=0
43 27 0:43 / /tmp rw - tmpfs tmpfs rw,hidepid=2
44 27 0:44 / /old rw - proc proc rw
";

    #[test]
    fn reads_hidepid_and_gid_of_the_topmost_proc_mount() {
        assert_eq!(hidepid_of(TABLE, "/proc"), None);
        assert_eq!(
            hidepid_of(TABLE, "/srv/my proc"),
            Some(Hidepid {
                mode: "invisible".into(),
                gid: Some(1234)
            })
        );
        // /old was mounted hidepid=2, then a plain proc on top of it
        assert_eq!(hidepid_of(TABLE, "/old"), None);
        assert_eq!(hidepid_of(TABLE, "/off"), None);
        assert_eq!(hidepid_of(TABLE, "/tmp"), None, "not a proc mount");
        assert_eq!(hidepid_of(TABLE, "/nowhere"), None);
        let old = TABLE.replace("44 27 0:44 / /old rw - proc proc rw\n", "");
        assert_eq!(hidepid_of(&old, "/old").unwrap().mode, "2");
    }

    #[test]
    fn root_and_the_gid_group_are_exempt() {
        let hidepid = Hidepid {
            mode: "2".into(),
            gid: Some(1234),
        };
        let nagios = Reader {
            euid: 110,
            groups: vec![118],
            can_ptrace_all: false,
        };
        assert!(!nagios.exempt(&hidepid));
        let in_group = Reader {
            groups: vec![118, 1234],
            ..nagios.clone()
        };
        assert!(in_group.exempt(&hidepid));
        let root = Reader {
            euid: 0,
            groups: vec![0],
            can_ptrace_all: true,
        };
        assert!(root.exempt(&hidepid));
    }

    #[test]
    fn capabilities_from_status() {
        let status = "Name:\tx\nCapEff:\t000001fffeffffff\n";
        assert_eq!(
            effective_caps(status).unwrap() & (1 << CAP_SYS_PTRACE),
            1 << 19
        );
        assert_eq!(effective_caps("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(effective_caps("Name: x\n"), None);
    }
}
