//! State step, where the tick files live: choosing the state directory and opening it so that
//! nobody can redirect the check while it does.
//!
//! The directory may sit below a world-writable place (`/var/tmp`) and the check often runs as
//! root, so a path is never looked up twice. Every level is opened relative to the level before
//! it (`openat` with `O_NOFOLLOW`), checked on the opened descriptor (`fstat`), and created or
//! taken over through descriptors (`mkdirat`, `fchown`, `fchmod`), as systemd's `chase()` and
//! OpenSSH's `safe_path` do. What [`StateDir::open`] returns is the directory's descriptor, and every later
//! file operation goes through it: a link swapped in after the checks changes nothing.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, umask, FileStat, Mode, SFlag};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Uid, UnlinkatFlags};

/// The package's state directory: root's and closed to everyone else, so no local user can
/// squat another user's directory in it as they can in `/var/tmp`. The package's postinst makes
/// the `<uid>` directories of `nagios` and `icinga`; root makes its own on its first run.
pub const PACKAGED_DIR: &str = "/var/lib/check-workers";

/// The shared default below a world-writable place, for installs without the package.
const SHARED_DIR: &str = "/var/tmp/check_workers";

/// Most symlinks one walk follows (the kernel's own limit is 40).
const MAX_LINKS: usize = 32;

/// How the first level the check manages is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// `--state-dir`: the operator's own path, missing levels created 0700
    Explicit,
    /// shared by all users (`/var/tmp/check_workers`, `$MP_STATE_PATH`): created sticky and
    /// world-writable like /tmp; root takes over one an unprivileged user created
    Shared(PathBuf),
    /// the package's directory: must be root's and closed to group and others; never created
    Packaged(PathBuf),
}

/// Where the tick files of this user live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub path: PathBuf,
    pub parent: Parent,
}

impl StateDir {
    /// `--state-dir`, else `$MP_STATE_PATH/<euid>/check_workers` (the monitoring-plugins
    /// convention), else `/var/lib/check-workers/<euid>` where the package made it, else
    /// `/var/tmp/check_workers/<euid>`. Per-euid directories let root run a check by hand and
    /// the `nagios` user run it from the scheduler without fighting over files.
    pub fn resolve(explicit: Option<&Path>, mp_state_path: Option<&Path>, euid: u32) -> StateDir {
        StateDir::resolve_with(explicit, mp_state_path, euid, Path::new(PACKAGED_DIR))
    }

    /// [`StateDir::resolve`] with the package's directory at `packaged` (tests move it).
    pub fn resolve_with(
        explicit: Option<&Path>,
        mp_state_path: Option<&Path>,
        euid: u32,
        packaged: &Path,
    ) -> StateDir {
        let mine = euid.to_string();
        if let Some(dir) = explicit {
            return StateDir {
                path: dir.to_path_buf(),
                parent: Parent::Explicit,
            };
        }
        if let Some(base) = mp_state_path {
            return StateDir {
                path: base.join(&mine).join("check_workers"),
                parent: Parent::Shared(base.to_path_buf()),
            };
        }
        if packaged_is_there(packaged, euid) {
            return StateDir {
                path: packaged.join(&mine),
                parent: Parent::Packaged(packaged.to_path_buf()),
            };
        }
        let base = Path::new(SHARED_DIR);
        StateDir {
            path: base.join(&mine),
            parent: Parent::Shared(base.to_path_buf()),
        }
    }

    /// Opens the directory, creating what is missing (0700), and refuses one another user could
    /// tamper with. Below a shared or packaged parent every level must be a real directory of
    /// `euid`, never a link. An operator's `--state-dir` may be reached through links, as long
    /// as the kernel's `fs.protected_symlinks` rule would follow them (checked here too, as that
    /// setting is off on some hosts); the directory itself must be `euid`'s and closed to others.
    pub fn open(&self, euid: u32) -> Result<OpenStateDir> {
        let (mut fd, mut shown, below) = match &self.parent {
            Parent::Explicit => {
                let (fd, _) = walk(&self.path, euid, Some(Mode::from_bits_truncate(0o700)))?;
                (reopen(&fd, &self.path)?, self.path.clone(), Path::new(""))
            }
            Parent::Shared(parent) => (
                open_shared(parent, euid)?,
                parent.clone(),
                self.below(parent),
            ),
            Parent::Packaged(parent) => (
                open_packaged(parent, euid)?,
                parent.clone(),
                self.below(parent),
            ),
        };
        for part in below.components() {
            shown.push(part);
            fd = open_private(&fd, part.as_os_str(), &shown, euid)?;
        }
        let stat =
            fstat(&fd).with_context(|| format!("cannot read state dir {}", shown.display()))?;
        check_private(&shown, &stat, euid)?;
        Ok(OpenStateDir {
            fd,
            path: self.path.clone(),
            euid,
        })
    }

    /// The levels below `parent` the check manages: `<euid>`, `<euid>/check_workers`.
    fn below<'a>(&'a self, parent: &Path) -> &'a Path {
        self.path.strip_prefix(parent).unwrap_or(Path::new(""))
    }
}

/// Whether to use the package's directory: it must be there as root's and closed to others,
/// and hold this user's directory unless the user is root (only root can make one there). A
/// user the package made no directory for falls back to `/var/tmp`. Only a choice: `open`
/// checks it all again on descriptors.
fn packaged_is_there(base: &Path, euid: u32) -> bool {
    let closed =
        fs::metadata(base).is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0);
    closed && (euid == 0 || fs::symlink_metadata(base.join(euid.to_string())).is_ok())
}

/// An open state directory. Every file operation of the state step goes through its
/// descriptor, relative and without following links, so nothing can redirect it any more.
#[derive(Debug)]
pub struct OpenStateDir {
    fd: OwnedFd,
    /// the path it was opened by, for messages only
    path: PathBuf,
    /// the user the directory and the files in it belong to
    euid: u32,
}

impl OpenStateDir {
    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user the directory and the files in it belong to.
    pub(super) fn euid(&self) -> u32 {
        self.euid
    }

    /// `openat` of a file in the directory, never following a link (`O_NOFOLLOW`).
    pub(super) fn open_file(&self, name: &str, flags: OFlag, mode: u32) -> std::io::Result<File> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(mode))?;
        Ok(File::from(fd))
    }

    /// `fstatat` of a name in the directory, not following a link.
    pub(super) fn stat(&self, name: &str) -> nix::Result<FileStat> {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    /// `unlinkat` of a file in the directory.
    pub(super) fn remove(&self, name: &str) -> nix::Result<()> {
        unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
    }

    /// `renameat` within the directory.
    pub(super) fn rename(&self, from: &str, to: &str) -> nix::Result<()> {
        renameat(&self.fd, from, &self.fd, to)
    }

    /// fsync of the directory, which makes a rename in it durable.
    pub(super) fn sync(&self) -> nix::Result<()> {
        fsync(&self.fd)
    }

    /// The names in the directory (UTF-8 ones only: the check writes no others).
    pub(super) fn names(&self) -> Vec<String> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(mut dir) = Dir::openat(&self.fd, ".", flags, Mode::empty()) else {
            return Vec::new();
        };
        dir.iter()
            .flatten()
            .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
            .filter(|n| n != "." && n != "..")
            .collect()
    }
}

/// Flags of one level of a walk: a handle to look up names in, not to read.
fn path_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// A level opened for reading, so it can be listed, synced, and `fchown`ed.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Opens the directory `name` in `dir`; a link or anything but a directory is refused.
fn open_dir_at(dir: &impl AsFd, name: &OsStr, flags: OFlag, shown: &Path) -> Result<OwnedFd> {
    openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => {
            anyhow::anyhow!("state dir {} is not a directory", shown.display())
        }
        e => anyhow::Error::new(e).context(format!("cannot open state dir {}", shown.display())),
    })
}

/// The end of a walk, opened for reading.
fn reopen(fd: &OwnedFd, shown: &Path) -> Result<OwnedFd> {
    open_dir_at(fd, OsStr::new("."), dir_flags(), shown)
}

/// Walks `path` from `/` (or the working directory) one level at a time through descriptors,
/// creating missing levels with mode `create` (`None`: a missing level is an error), in the
/// manner of systemd's `chase()`. A link is followed only where `fs.protected_symlinks` would
/// follow it, and never from a level of another unprivileged user into a level that is not
/// theirs: that user could point it anywhere at any moment.
fn walk(path: &Path, euid: u32, create: Option<Mode>) -> Result<(OwnedFd, FileStat)> {
    let start = if path.is_absolute() { "/" } else { "." };
    let mut fd = openat(AT_FDCWD, start, path_flags(), Mode::empty())
        .with_context(|| format!("cannot open {start}"))?;
    let mut stat = fstat(&fd).with_context(|| format!("cannot read {start}"))?;
    // the level reached so far, links resolved, for messages
    let mut level = PathBuf::from(start);
    let mut todo = components(path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        let shown = level.join(&name);
        let entry = match (
            fstatat(&fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW),
            create,
        ) {
            (Err(Errno::ENOENT), Some(mode)) => {
                make_dir(&fd, &name, mode, &shown)?;
                None
            }
            (other, _) => {
                Some(other.with_context(|| format!("cannot open state dir {}", shown.display()))?)
            }
        };
        if let Some(link) = entry.filter(|e| is(e, SFlag::S_IFLNK)) {
            links += 1;
            if links > MAX_LINKS {
                bail!("state dir {}: too many links", path.display());
            }
            check_link(&stat, &link, euid, &shown)?;
            let target = readlinkat(&fd, name.as_os_str())
                .with_context(|| format!("cannot read link {}", shown.display()))?;
            stat = link;
            if Path::new(&target).is_absolute() {
                fd = openat(AT_FDCWD, "/", path_flags(), Mode::empty())?;
                stat = step(&stat, fstat(&fd)?, euid, Path::new("/"))?;
                level = PathBuf::from("/");
            }
            todo.extend(components(Path::new(&target)));
            continue;
        }
        let child = open_dir_at(&fd, &name, path_flags(), &shown)?;
        stat = step(&stat, fstat(&child)?, euid, &shown)?;
        fd = child;
        level = shown;
    }
    Ok((fd, stat))
}

/// The names of a path, last first (a stack for [`walk`]).
fn components(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    names.reverse();
    names
}

/// mkdirat with exactly `mode`, accepting a name someone else made meanwhile (the walk looks
/// at it next). The umask is cleared for the one call: root's is often 077 (sudo, hardened
/// hosts), which would close the levels on the way to a shared parent to the very users who
/// share it, and they would get EACCES for good.
fn make_dir(dir: &impl AsFd, name: &OsStr, mode: Mode, shown: &Path) -> Result<()> {
    let old = umask(Mode::empty());
    let made = mkdirat(dir, name, mode);
    umask(old);
    match made {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create state dir {}", shown.display())),
    }
}

fn is(stat: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == kind
}

/// The kernel's `fs.protected_symlinks` rule: in a sticky world-writable directory (`/tmp`) a
/// link is followed only when it is the follower's or the directory owner's. Anyone can plant
/// one there, and a link of theirs would lead root wherever they like.
fn check_link(dir: &FileStat, link: &FileStat, euid: u32, shown: &Path) -> Result<()> {
    let open_to_all = dir.st_mode & 0o1002 == 0o1002;
    if open_to_all && link.st_uid != dir.st_uid && link.st_uid != euid {
        bail!(
            "state dir {} is a link of uid {} in a sticky world-writable directory: refusing to \
             follow it",
            shown.display(),
            link.st_uid
        );
    }
    step(dir, *link, euid, shown).map(drop)
}

/// systemd's unsafe transition: from a level of another unprivileged user, only into levels of
/// that same user, who could rename or relink what is inside at any moment. Levels of root and
/// of the check's own user are trusted.
fn step(from: &FileStat, to: FileStat, euid: u32, shown: &Path) -> Result<FileStat> {
    if from.st_uid != 0 && from.st_uid != euid && from.st_uid != to.st_uid {
        bail!(
            "state dir {} belongs to uid {} but is reached through a directory of uid {}: \
             refusing to use it",
            shown.display(),
            to.st_uid,
            from.st_uid
        );
    }
    Ok(to)
}

/// The mode of a shared parent: sticky and world-writable, like /tmp.
fn shared_mode() -> Mode {
    Mode::from_bits_truncate(0o1777)
}

/// Opens the shared parent, creating it sticky and world-writable when missing. It is never
/// reached through a link (`O_NOFOLLOW`), and its mode comes from `mkdirat` itself (or
/// `fchmod` of the opened directory, see [`trust_shared`]), never from a chmod by name: a link
/// flipped in at that name cannot make root change the mode of another directory.
fn open_shared(parent: &Path, euid: u32) -> Result<OwnedFd> {
    let (Some(container), Some(name)) = (parent.parent(), parent.file_name()) else {
        bail!("shared state dir {} must end in a name", parent.display());
    };
    let (outer, _) = walk(container, euid, Some(Mode::from_bits_truncate(0o755)))?;
    if let Err(Errno::ENOENT) = openat(&outer, name, path_flags(), Mode::empty()) {
        make_dir(&outer, name, shared_mode(), parent)?;
    }
    let fd = open_dir_at(&outer, name, path_flags(), parent)?;
    trust_shared(&outer, name, &fd, parent, euid)?;
    Ok(fd)
}

/// A shared parent is safe when nobody but root and us can rename what is in it: it must be
/// root's or ours and, if world-writable, sticky. When an unprivileged user created it first
/// (the scheduler's `nagios` user before root ran the check by hand), root takes it over, so
/// "root first" and "nagios first" both keep working. A sticky one the check holds (its own,
/// or taken over) ends with exactly the mode the check makes it with, see [`open_to_all`].
fn trust_shared(
    outer: &OwnedFd,
    name: &OsStr,
    dir: &OwnedFd,
    shown: &Path,
    euid: u32,
) -> Result<()> {
    let meta = fstat(dir).with_context(|| format!("cannot read state dir {}", shown.display()))?;
    let world_writable = meta.st_mode & 0o002 != 0;
    let sticky = meta.st_mode & 0o1000 != 0;
    if world_writable && !sticky {
        bail!(
            "state dir {} is world-writable but not sticky (mode {:o}): refusing to use it",
            shown.display(),
            meta.st_mode & 0o7777
        );
    }
    if meta.st_uid == euid && sticky {
        return open_to_all(dir, &meta, shown);
    }
    if meta.st_uid == 0 || meta.st_uid == euid {
        return Ok(());
    }
    if euid == 0 && sticky {
        // chown the directory we opened, then make sure the name still leads to it
        fchown(
            reopen(dir, shown)?,
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
        )
        .with_context(|| format!("cannot take over state dir {}", shown.display()))?;
        let now = fstatat(outer, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("cannot read state dir {}", shown.display()))?;
        if now.st_ino == meta.st_ino && now.st_dev == meta.st_dev {
            return open_to_all(dir, &meta, shown);
        }
    }
    bail!(
        "state dir {} belongs to uid {}: refusing to use it (chown it to root, or use --state-dir)",
        shown.display(),
        meta.st_uid
    )
}

/// Gives a sticky shared parent the check holds exactly [`shared_mode`], through the
/// descriptor it opened. Whoever made it first chose its mode: a 1700 made by another user and
/// then taken over by root (or left so by a release that kept it) would lock every other user
/// out for good, while each run still reported. A shared parent that is not sticky is an
/// operator's closed directory (`install -d -m 0755`, with a `<uid>` directory made for each
/// user) and is left as it is.
fn open_to_all(dir: &OwnedFd, meta: &FileStat, shown: &Path) -> Result<()> {
    if meta.st_mode & 0o7777 == shared_mode().bits() {
        return Ok(());
    }
    // an O_PATH descriptor cannot be fchmod'ed: reopen the same directory for reading
    fchmod(reopen(dir, shown)?, shared_mode())
        .with_context(|| format!("cannot open state dir {} to all users", shown.display()))
}

/// Opens the package's directory, which must be root's and closed to group and others: then
/// only root can have made or changed what is in it.
fn open_packaged(parent: &Path, euid: u32) -> Result<OwnedFd> {
    let (fd, stat) = walk(parent, euid, None)
        .with_context(|| format!("cannot open state dir {}", parent.display()))?;
    if stat.st_uid != 0 || stat.st_mode & 0o022 != 0 {
        bail!(
            "state dir {} must be root's and not writable by group or others: refusing to use it",
            parent.display()
        );
    }
    Ok(fd)
}

/// Opens (creating it 0700 when missing) one level below a shared or packaged parent: a real
/// directory of `euid`, never a link.
fn open_private(dir: &OwnedFd, name: &OsStr, shown: &Path, euid: u32) -> Result<OwnedFd> {
    if let Err(Errno::ENOENT) = openat(dir, name, dir_flags(), Mode::empty()) {
        make_dir(dir, name, Mode::from_bits_truncate(0o700), shown)?;
    }
    let fd = open_dir_at(dir, name, dir_flags(), shown)?;
    let stat = fstat(&fd).with_context(|| format!("cannot read state dir {}", shown.display()))?;
    check_private(shown, &stat, euid)?;
    Ok(fd)
}

/// A state dir must be a directory of `euid` that nobody else can write to.
fn check_private(dir: &Path, stat: &FileStat, euid: u32) -> Result<()> {
    if !is(stat, SFlag::S_IFDIR) {
        bail!("state dir {} is not a directory", dir.display());
    }
    if stat.st_uid != euid {
        bail!(
            "state dir {} belongs to uid {}, not to uid {euid}: refusing to use it",
            dir.display(),
            stat.st_uid
        );
    }
    if stat.st_mode & 0o022 != 0 {
        bail!(
            "state dir {} is writable by group or others (mode {:o}): refusing to use it",
            dir.display(),
            stat.st_mode & 0o7777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn euid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    /// True when root; otherwise says on the terminal (past libtest's capture) that `test`
    /// did not run.
    fn root_or_skip(test: &str) -> bool {
        use std::io::Write as _;
        let root = euid() == 0;
        if !root {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs root");
        }
        root
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn default_locations_are_per_euid() {
        let none = Path::new("/nonexistent/check-workers");
        let d = StateDir::resolve_with(None, None, 110, none);
        assert_eq!(d.path, Path::new("/var/tmp/check_workers/110"));
        let d = StateDir::resolve_with(None, Some(Path::new("/var/lib/mp")), 0, none);
        assert_eq!(d.path, Path::new("/var/lib/mp/0/check_workers"));
        let d = StateDir::resolve_with(Some(Path::new("/x")), Some(Path::new("/y")), 0, none);
        assert_eq!(d.path, Path::new("/x"));
    }

    /// The package's directory is used when it is root's and closed, by root always and by
    /// another user only when the package made that user's directory.
    #[test]
    fn packaged_dir_when_root_made_it() {
        if !root_or_skip("packaged_dir_when_root_made_it") {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let pkg = base.path().join("check-workers");
        fs::create_dir(&pkg).unwrap();
        fs::set_permissions(&pkg, fs::Permissions::from_mode(0o755)).unwrap();
        let root = StateDir::resolve_with(None, None, 0, &pkg);
        assert_eq!(root.path, pkg.join("0"));
        root.open(0).unwrap();
        assert_eq!(mode(&pkg.join("0")), 0o700);
        let other = StateDir::resolve_with(None, None, 110, &pkg);
        assert_eq!(other.path, Path::new("/var/tmp/check_workers/110"));
        fs::create_dir(pkg.join("110")).unwrap();
        let other = StateDir::resolve_with(None, None, 110, &pkg);
        assert_eq!(other.path, pkg.join("110"));
        // opened later, a directory others can write to is refused
        fs::set_permissions(&pkg, fs::Permissions::from_mode(0o775)).unwrap();
        let err = format!("{:#}", root.open(0).unwrap_err());
        assert!(err.contains("must be root's and not writable"), "{err}");
        assert_eq!(
            StateDir::resolve_with(None, None, 0, &pkg).parent,
            Parent::Shared(SHARED_DIR.into())
        );
    }

    #[test]
    fn refuses_group_writable_dir() {
        let dir = tempfile::tempdir().unwrap();
        let euid = euid();
        let state = StateDir::resolve(Some(dir.path()), None, euid);
        state.open(euid).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = state.open(euid).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        let err = state.open(euid + 1).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
    }

    #[test]
    fn explicit_dir_is_created_private_through_the_operators_links() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        fs::create_dir(&real).unwrap();
        symlink(&real, base.path().join("link")).unwrap();
        let state = StateDir::resolve(Some(&base.path().join("link/a/b")), None, euid());
        state.open(euid()).unwrap();
        assert_eq!(mode(&real.join("a")), 0o700);
        assert_eq!(mode(&real.join("a/b")), 0o700);
    }

    #[test]
    fn shared_parent_is_created_sticky_and_checked_level_by_level() {
        let base = tempfile::tempdir().unwrap();
        let euid = euid();
        let mp = base.path().join("mp");
        let dir = StateDir::resolve(None, Some(&mp), euid);
        dir.open(euid).unwrap();
        assert_eq!(mode(&mp), 0o1777);
        let mine = mp.join(euid.to_string());
        assert_eq!(mode(&mine), 0o700);
        assert_eq!(mode(&dir.path), 0o700);

        // a symlink planted where our per-euid dir should be is refused, not followed
        fs::remove_dir_all(&mine).unwrap();
        let elsewhere = base.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, &mine).unwrap();
        let err = format!("{:#}", dir.open(euid).unwrap_err());
        assert!(err.contains("is not a directory"), "{err}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

        // a world-writable shared parent without the sticky bit is refused
        fs::remove_file(&mine).unwrap();
        fs::set_permissions(&mp, fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", dir.open(euid).unwrap_err());
        assert!(err.contains("world-writable but not sticky"), "{err}");
    }

    /// Issue 16, item 5: a shared parent root takes over, or one it left closed when it took it
    /// over before, ends 1777 like one root makes; an operator's closed parent (not sticky)
    /// keeps its mode.
    #[test]
    fn shared_parent_root_holds_is_open_to_all() {
        if !root_or_skip("shared_parent_root_holds_is_open_to_all") {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let mp = base.path().join("mp");
        let dir = StateDir::resolve(None, Some(&mp), 0);
        for (owner, before, after) in [
            (65534, 0o1700, 0o1777),
            (0, 0o1700, 0o1777),
            (0, 0o755, 0o755),
        ] {
            let _ = fs::remove_dir_all(&mp);
            fs::create_dir(&mp).unwrap();
            fs::set_permissions(&mp, fs::Permissions::from_mode(before)).unwrap();
            std::os::unix::fs::chown(&mp, Some(owner), Some(owner)).unwrap();
            dir.open(0).unwrap();
            assert_eq!(mode(&mp), after, "uid {owner}, mode {before:o}");
            assert_eq!(fs::metadata(&mp).unwrap().uid(), 0);
        }
    }

    /// The shared parent itself is never reached through a link, whoever owns the link: root
    /// would create in, or change, whatever it points to.
    #[test]
    fn link_at_the_shared_parent_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        let mp = base.path().join("mp");
        symlink(&target, &mp).unwrap();
        let err = format!(
            "{:#}",
            StateDir::resolve(None, Some(&mp), euid())
                .open(euid())
                .unwrap_err()
        );
        assert!(err.contains("is not a directory"), "{err}");
        assert_eq!(mode(&target), 0o755);
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    }

    /// `fs.protected_symlinks`, checked by the check itself: in a sticky world-writable
    /// directory only links of the directory's owner or of the check's user are followed.
    #[test]
    fn link_of_another_user_in_a_sticky_dir_is_not_followed() {
        if !root_or_skip("link_of_another_user_in_a_sticky_dir_is_not_followed") {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let real = tempfile::tempdir().unwrap();
        let link = base.path().join("state");
        symlink(real.path(), &link).unwrap();
        let state = StateDir::resolve(Some(&link), None, 0);
        state.open(0).unwrap();
        nix::unistd::fchownat(
            AT_FDCWD,
            &link,
            Some(Uid::from_raw(65534)),
            None,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let err = format!("{:#}", state.open(0).unwrap_err());
        assert!(
            err.contains("is a link of uid 65534 in a sticky world-writable"),
            "{err}"
        );
    }

    /// systemd's unsafe transition: a directory of another user may hold a link to anywhere.
    #[test]
    fn nothing_of_root_is_reached_through_another_users_directory() {
        if !root_or_skip("nothing_of_root_is_reached_through_another_users_directory") {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let theirs = base.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let real = tempfile::tempdir().unwrap();
        symlink(real.path(), theirs.join("state")).unwrap();
        std::os::unix::fs::lchown(theirs.join("state"), Some(65534), Some(65534)).unwrap();
        let err = format!(
            "{:#}",
            StateDir::resolve(Some(&theirs.join("state")), None, 0)
                .open(0)
                .unwrap_err()
        );
        assert!(
            err.contains("reached through a directory of uid 65534"),
            "{err}"
        );
        fs::create_dir(theirs.join("mine")).unwrap();
        let err = format!(
            "{:#}",
            StateDir::resolve(Some(&theirs.join("mine")), None, 0)
                .open(0)
                .unwrap_err()
        );
        assert!(
            err.contains("reached through a directory of uid 65534"),
            "{err}"
        );
    }
}
