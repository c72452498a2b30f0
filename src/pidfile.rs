//! Selection's one input from outside `/proc`: the master's pid from `--pidfile`, read at every
//! run as the pid changes on restart.
//!
//! The file often sits in a directory of the service's user (Debian's `/run/php` is
//! www-data's) while the check runs as root, so that user decides what is at that name: a link
//! to a secret, a FIFO, `/dev/zero`. So the file is read as systemd reads `PIDFile=`: a link in
//! the last component is followed only when root or the check's user owns it; only a regular
//! file of at most 4 KiB is read, through a non-blocking descriptor judged by its own `fstat`;
//! and what it holds is never echoed, only described.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::small_file::{self, Unread};

/// Largest pidfile read, bytes: a pid is a few digits, so anything bigger is not a pidfile.
pub const MAX_BYTES: u64 = 4096;

/// Most links followed from the named path to the file (the kernel's own limit is 40).
const MAX_LINKS: usize = 32;

/// What a pidfile says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pidfile {
    /// no such file: the service is not running (daemons remove it when they stop)
    Missing,
    Pid {
        pid: i32,
        /// when the file was last written, seconds since the epoch
        written: f64,
    },
}

/// What the bytes of a pidfile hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// a positive pid, alone but for surrounding white space
    Pid(i32),
    /// nothing but white space
    Empty,
    /// something else, which is never shown: it may be another file's secret
    NoPid,
}

/// Parses a pidfile's bytes: decimal digits of a positive `i32` between optional ASCII white
/// space (daemons end the line; some pad it). No sign, no other text.
pub fn parse(bytes: &[u8]) -> Content {
    let digits = bytes.trim_ascii();
    if digits.is_empty() {
        return Content::Empty;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Content::NoPid;
    }
    match std::str::from_utf8(digits).map(str::parse::<i32>) {
        Ok(Ok(pid)) if pid > 0 => Content::Pid(pid),
        _ => Content::NoPid,
    }
}

/// Reads `--pidfile` as the check's effective user. A missing file is [`Pidfile::Missing`]; a
/// file that cannot be read, is refused, or holds no pid is a one-line error naming the file:
/// a broken setup (or a planted file), not a stopped service.
pub fn read(path: &Path) -> Result<Pidfile> {
    read_as(path, nix::unistd::geteuid().as_raw())
}

/// [`read`] for the effective user `euid`, whose links are followed as root's are.
pub fn read_as(path: &Path, euid: u32) -> Result<Pidfile> {
    let Some(file) = open(path, euid)? else {
        return Ok(Pidfile::Missing);
    };
    let shown = path.display();
    let read = match small_file::read_opened(file, MAX_BYTES) {
        Ok(read) => read,
        Err(Unread::Io(e)) => {
            return Err(e).with_context(|| format!("cannot read pidfile {shown}"))
        }
        Err(Unread::NotRegular(kind)) => bail!("pidfile {shown} is not a regular file ({kind})"),
        Err(Unread::TooLarge) => {
            bail!(
                "pidfile {shown} is larger than {} KiB: not a pidfile",
                MAX_BYTES / 1024
            )
        }
    };
    let written = read
        .meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    match parse(&read.bytes) {
        Content::Pid(pid) => Ok(Pidfile::Pid { pid, written }),
        Content::Empty => bail!("pidfile {shown} is empty"),
        Content::NoPid => bail!("pidfile {shown} holds no pid ({} bytes)", read.bytes.len()),
    }
}

/// Opens the pidfile for reading (`None`: it, or the directory it is in, does not exist). The
/// last component is opened `O_NOFOLLOW` through its directory's descriptor; when it is a link,
/// the link itself is opened (`O_PATH`), its owner checked on that descriptor and its target read
/// from it, so a link swapped in after the check is never the one followed. Links in the
/// directory part are followed as in any path: the rule is systemd's, for the last component.
fn open(path: &Path, euid: u32) -> Result<Option<File>> {
    let shown = path.display();
    let cannot = |e: Errno| anyhow::Error::new(e).context(format!("cannot read pidfile {shown}"));
    // where the path being opened is looked up from (None: the working directory), and the
    // path: the one named, then each link's target
    let mut base: Option<OwnedFd> = None;
    let mut at = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let Some((dir_part, name)) = split(&at) else {
            bail!("pidfile {shown} does not name a file");
        };
        let from = base.as_ref().map_or(CWD, |b| b.as_fd());
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = match rustix::fs::openat(from, dir_part, dir_flags, Mode::empty()) {
            Ok(dir) => dir,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(cannot(e)),
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | small_file::open_flags();
        match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => return Ok(Some(File::from(fd))),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => {}
            Err(e) => return Err(cannot(e)),
        }
        let link_flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let link = match rustix::fs::openat(&dir, name, link_flags, Mode::empty()) {
            Ok(link) => link,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(cannot(e)),
        };
        let stat = rustix::fs::fstat(&link).map_err(cannot)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            // replaced by something else since the open: look at the name again
            continue;
        }
        if stat.st_uid != 0 && stat.st_uid != euid {
            let which = if at == path {
                format!("pidfile {shown} is a link")
            } else {
                format!("pidfile {shown} leads to {}, a link", at.display())
            };
            bail!(
                "{which} of uid {}, neither root's nor the check's (uid {euid}): refusing to \
                 follow it",
                stat.st_uid
            );
        }
        let target = rustix::fs::readlinkat(&link, "", Vec::new()).map_err(cannot)?;
        at = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
        base = Some(dir);
    }
    bail!("pidfile {shown}: too many links")
}

/// A path as the directory to open and the name in it (`None`: it ends in `/` or `..`).
fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Some((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn parse_takes_a_lone_positive_pid() {
        assert_eq!(parse(b"812\n"), Content::Pid(812));
        assert_eq!(parse(b"  812  \r\n"), Content::Pid(812));
        assert_eq!(parse(b"0812"), Content::Pid(812));
        assert_eq!(parse(b"2147483647"), Content::Pid(i32::MAX));
        assert_eq!(parse(b""), Content::Empty);
        assert_eq!(parse(b" \n\t\n"), Content::Empty);
        for bad in [
            &b"0"[..],
            b"-5",
            b"+5",
            b"2147483648",
            b"99999999999999999999",
            b"812 813",
            b"812\n813\n",
            b"pid=812",
            b"[client]\npassword=secret\n",
            b"\xff\xfe",
            b"\x00\x00\x00",
        ] {
            assert_eq!(
                parse(bad),
                Content::NoPid,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn error(path: &Path, euid: u32) -> String {
        format!("{:#}", read_as(path, euid).unwrap_err())
    }

    #[test]
    fn read_describes_a_bad_file_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.pid");
        let euid = nix::unistd::geteuid().as_raw();
        assert_eq!(read_as(&file, euid).unwrap(), Pidfile::Missing);
        assert_eq!(
            read_as(&dir.path().join("gone/x.pid"), euid).unwrap(),
            Pidfile::Missing
        );
        fs::write(&file, "4242\n").unwrap();
        assert!(matches!(
            read_as(&file, euid).unwrap(),
            Pidfile::Pid { pid: 4242, written } if written > 1.6e9
        ));
        fs::write(&file, "[client]\npassword=secret\n").unwrap();
        let shown = file.display();
        assert_eq!(
            error(&file, euid),
            format!("pidfile {shown} holds no pid (25 bytes)")
        );
        fs::write(&file, "\n").unwrap();
        assert_eq!(error(&file, euid), format!("pidfile {shown} is empty"));
        fs::write(&file, "1".repeat(MAX_BYTES as usize + 1)).unwrap();
        assert_eq!(
            error(&file, euid),
            format!("pidfile {shown} is larger than 4 KiB: not a pidfile")
        );
        fs::remove_file(&file).unwrap();
        nix::unistd::mkfifo(&file, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            error(&file, euid),
            format!("pidfile {shown} is not a regular file (a FIFO)")
        );
        assert_eq!(
            error(dir.path(), euid),
            format!(
                "pidfile {} is not a regular file (a directory)",
                dir.path().display()
            )
        );
    }

    /// systemd's rule for `PIDFile=`: a last-component link is followed only when root or
    /// the check's user owns it, however many links lead to it.
    #[test]
    fn only_links_of_root_or_the_checks_user_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.pid");
        fs::write(&real, "4242\n").unwrap();
        let link = dir.path().join("link.pid");
        symlink("real.pid", &link).unwrap();
        let chained = dir.path().join("chained.pid");
        symlink(&link, &chained).unwrap();
        let root = nix::unistd::geteuid().is_root();
        let owner = if root {
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            65534
        } else {
            nix::unistd::geteuid().as_raw()
        };
        assert!(matches!(
            read_as(&link, owner).unwrap(),
            Pidfile::Pid { pid: 4242, .. }
        ));
        assert!(matches!(
            read_as(&chained, owner).unwrap(),
            Pidfile::Pid { pid: 4242, .. }
        ));
        let other = owner + 1;
        assert_eq!(
            error(&link, other),
            format!(
                "pidfile {} is a link of uid {owner}, neither root's nor the check's (uid \
                 {other}): refusing to follow it",
                link.display()
            )
        );
        // the first link is ours when we are root: then the refusal names the second
        let chained_error = error(&chained, other);
        assert!(
            chained_error.ends_with("refusing to follow it"),
            "{chained_error}"
        );
        if root {
            assert!(chained_error.contains(&format!("leads to {}", link.display())));
        }
        // a dangling link: the file it named is gone, as when the service stopped
        fs::remove_file(&real).unwrap();
        assert_eq!(read_as(&link, owner).unwrap(), Pidfile::Missing);
        let looped = dir.path().join("loop.pid");
        symlink("loop.pid", &looped).unwrap();
        assert!(error(&looped, owner).ends_with("too many links"));
    }
}
