//! Beside the pipeline: reading a small file another local user may have put in the check's way
//! (the `--extra-opts` ini file, a `--pidfile`), where root must not hang, fill its memory or
//! open a device because of it.
//!
//! The file is opened non-blocking, so a FIFO (which would wait for a writer forever) opens at
//! once; it is judged by the `fstat` of the opened descriptor, never by its path (a path can be
//! swapped for a link between a look and the open); and it is read only up to a limit, so
//! `/dev/zero` or a huge file costs nothing. Callers word the messages: each names its file.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// Why a small file was not read.
#[derive(Debug)]
pub enum Unread {
    /// the open, fstat or read failed (a missing file too: what that means is the caller's)
    Io(io::Error),
    /// not a regular file; what it is instead, for the message ("a FIFO")
    NotRegular(&'static str),
    /// larger than the limit the caller gave
    TooLarge,
}

/// A small regular file, read whole.
#[derive(Debug)]
pub struct SmallFile {
    pub bytes: Vec<u8>,
    /// the opened file's metadata (its mtime, for a pidfile)
    pub meta: fs::Metadata,
}

/// Flags for every open of such a file besides read-only: non-blocking, so a FIFO or a device
/// opens at once (to be refused by the fstat); no controlling terminal from a tty; and closed
/// on exec. [`std::fs`] adds `O_CLOEXEC` by itself; it is here for opens made with `openat`.
pub fn open_flags() -> OFlags {
    OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// Opens `path` (following links, as the operator named it) with [`open_flags`] and reads it
/// with [`read_opened`].
pub fn read(path: &Path, max_bytes: u64) -> Result<SmallFile, Unread> {
    let file = File::options()
        .read(true)
        .custom_flags(open_flags().bits() as i32)
        .open(path)
        .map_err(Unread::Io)?;
    read_opened(file, max_bytes)
}

/// Reads an opened file, which must be a regular file of at most `max_bytes`, judged on the
/// descriptor itself.
pub fn read_opened(file: File, max_bytes: u64) -> Result<SmallFile, Unread> {
    let meta = file.metadata().map_err(Unread::Io)?;
    if !meta.is_file() {
        return Err(Unread::NotRegular(kind(&meta.file_type())));
    }
    if meta.len() > max_bytes {
        return Err(Unread::TooLarge);
    }
    // the file may grow after the fstat: read one byte past the limit to notice
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(Unread::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(Unread::TooLarge);
    }
    Ok(SmallFile { bytes, meta })
}

/// What a file that is not a regular file is, in words.
fn kind(file_type: &fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(read(&fifo, 10), Err(Unread::NotRegular("a FIFO"))));
        assert!(matches!(
            read(Path::new("/dev/zero"), 10),
            Err(Unread::NotRegular("a character device"))
        ));
        assert!(matches!(
            read(dir.path(), 10),
            Err(Unread::NotRegular("a directory"))
        ));
        let file = dir.path().join("file");
        fs::write(&file, "0123456789").unwrap();
        assert_eq!(read(&file, 10).unwrap().bytes, b"0123456789");
        assert!(matches!(read(&file, 9), Err(Unread::TooLarge)));
        let missing = read(&dir.path().join("missing"), 10);
        assert!(matches!(missing, Err(Unread::Io(e)) if e.kind() == io::ErrorKind::NotFound));
    }
}
