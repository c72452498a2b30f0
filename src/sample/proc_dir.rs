//! Acquisition, the reads themselves: `/proc/PID` opened once as a directory and every file of
//! the process read relative to it, into one reused buffer, each read bounded. Kept apart from
//! the filters and the details so that what makes a read safe (a reused pid never answers for
//! the process that had it, no file grows the buffer without bound) is in one place.

use std::fs;
use std::io::{self, ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::filter::CMDLINE_MATCHED;

use super::parse::{parse_io, parse_stat, parse_status, StatFields, StatusFields, PF_KTHREAD};
use super::values::{IoStatus, ProcSample};
use crate::counter::{Counter, Counters};

/// Proc files the kernel writes whole into its buffer before the first read returns (seq_file
/// with a single record): a read that comes back shorter than asked holds all of the file. Not
/// `cmdline`, which is copied from the process's memory a page at a time.
const ONE_READ: [&str; 7] = [
    "comm",
    "stat",
    "status",
    "limits",
    "smaps_rollup",
    "cgroup",
    "io",
];

/// The most of any other proc file read, bytes. The files read (`stat`, `status`, `io`,
/// `limits`, `smaps_rollup`, `cgroup`) are a few KiB at most; one larger than this is not what
/// the kernel writes and is taken as malformed, so that no file can make the reused buffer
/// grow without bound.
pub(super) const FILE_LIMIT: usize = 64 * 1024;

/// How much of `file` is read, and what a longer one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// the first this many bytes are the file: `cmdline`, of which `-a` matches a prefix
    Truncate(usize),
    /// a longer file is malformed
    Refuse(usize),
}

impl Bound {
    fn of(file: &str) -> Bound {
        if file == "cmdline" {
            Bound::Truncate(CMDLINE_MATCHED)
        } else {
            Bound::Refuse(FILE_LIMIT)
        }
    }

    fn bytes(self) -> usize {
        match self {
            Bound::Truncate(bytes) | Bound::Refuse(bytes) => bytes,
        }
    }
}

/// `/proc/PID`, opened once. A file opened relative to it belongs to the process that had the
/// pid when the directory was opened: once that process has exited, opening fails (ENOENT or
/// ESRCH) even if the pid is already reused, where a path would lead to the new process. A
/// fixture directory renamed away and replaced behaves the same, as the descriptor follows the
/// directory and not its name. Relative opens also spare the kernel a pid lookup per file.
pub(super) struct ProcDir(OwnedFd);

impl ProcDir {
    pub(super) fn open(path: &str) -> io::Result<ProcDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(ProcDir(rustix::fs::open(path, flags, Mode::empty())?))
    }

    pub(super) fn file(&self, name: &str) -> io::Result<fs::File> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&self.0, name, flags, Mode::empty())?.into())
    }

    pub(super) fn link(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(rustix::fs::readlinkat(&self.0, name, Vec::new())?.into_bytes())
    }

    /// Calls `each` with the name of every entry of a subdirectory (`fd`, `task`), `.` and
    /// `..` left out, without allocating per entry: `fd/` can hold thousands.
    pub(super) fn each_entry(&self, name: &str, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::Dir::new(rustix::fs::openat(&self.0, name, flags, Mode::empty())?)?;
        for entry in dir {
            let entry = entry?;
            let entry_name = entry.file_name().to_bytes();
            if !matches!(entry_name, b"." | b"..") {
                each(entry_name);
            }
        }
        Ok(())
    }

    /// Calls `each` with the start of the target of every link in a subdirectory (`fd`), at
    /// most `N` bytes of it (`socket:[4294967295]` is 19), until `each` says stop (false).
    /// One descriptor for the directory and one `readlinkat` per entry: nothing allocated per
    /// fd, of which a worker can hold tens of thousands. Entries that are not links (or gone
    /// since the listing) are skipped. Ok(false) when stopped.
    pub(super) fn each_link<const N: usize>(
        &self,
        name: &str,
        mut each: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<bool> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir =
            rustix::fs::Dir::new(rustix::fs::openat(&self.0, name, flags, Mode::empty())?)?;
        let mut target = [0u8; N];
        while let Some(entry) = dir.next() {
            let entry = entry?;
            if matches!(entry.file_name().to_bytes(), b"." | b"..") {
                continue;
            }
            let Ok(len) = rustix::fs::readlinkat_raw(dir.fd()?, entry.file_name(), &mut target[..])
            else {
                continue;
            };
            if !each(&target[..len.min(N)]) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The entries of a subdirectory (`task`), by name.
    pub(super) fn entries(&self, name: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        self.each_entry(name, |entry| {
            names.push(String::from_utf8_lossy(entry).into_owned())
        })?;
        Ok(names)
    }

    /// How many entries a subdirectory (`fd`) has.
    pub(super) fn count_entries(&self, name: &str) -> io::Result<u64> {
        let mut entries = 0;
        self.each_entry(name, |_| entries += 1)?;
        Ok(entries)
    }
}

/// Reads one process's files into a reused buffer, so non-matching processes allocate nothing.
pub(super) struct ProcReader {
    /// `<root>/<pid>/<file>`, rebuilt in place for each read
    path: String,
    root_len: usize,
    /// reused read buffer, always at its full (zeroed) size; never grown past the largest
    /// [`Bound`] of a file read
    space: Vec<u8>,
    /// bytes of `space` the last read filled
    len: usize,
}

impl ProcReader {
    pub(super) fn new(root: &Path) -> ProcReader {
        let path = root.to_string_lossy().trim_end_matches('/').to_string();
        ProcReader {
            root_len: path.len(),
            path,
            space: vec![0; 4096],
            len: 0,
        }
    }

    /// `stat` and `status` of one process, whatever the filters say.
    pub(super) fn whole(&mut self, pid: i32) -> io::Result<ProcSample> {
        let dir = self.open_dir(pid)?;
        self.read_at(&dir, "stat")?;
        let stat = parse_stat(self.bytes())?;
        self.read_at(&dir, "status")?;
        let status = parse_status(self.bytes())?;
        Ok(self.finish(&dir, stat, status))
    }

    /// The sample of the process whose `stat` and `status` these are, with its `io`.
    pub(super) fn finish(
        &mut self,
        dir: &ProcDir,
        stat: StatFields,
        status: StatusFields,
    ) -> ProcSample {
        // read with stat and status, so a baseline taken within the run has it too
        let (io, io_counters) = self.io(dir, "io");
        let mut counters = stat.counters;
        for (counter, value) in status.counters.known().chain(io_counters.known()) {
            counters.set(counter, value);
        }
        ProcSample {
            pid: stat.pid,
            ppid: stat.ppid,
            comm: stat.comm,
            state: stat.state,
            kernel_thread: stat.flags & PF_KTHREAD != 0,
            uid: status.uid,
            starttime: stat.starttime,
            rss: status.rss,
            vms: status.vms,
            threads: status.threads,
            cpus_allowed: status.cpus_allowed,
            cgroup: None,
            io,
            reaped: Counters::default(),
            counters,
            details: None,
        }
    }

    /// One `io` file of the process `dir` stands for (`io`, or a thread's `task/TID/io`), and
    /// its counters where read.
    pub(super) fn io(&mut self, dir: &ProcDir, file: &str) -> (IoStatus, Counters) {
        match self.read_at(dir, file) {
            Ok(()) => parse_io(self.bytes())
                .map_or((IoStatus::Unreadable, Counters::default()), |c| {
                    (IoStatus::Read, c)
                }),
            Err(e) if e.kind() == ErrorKind::NotFound => (IoStatus::Absent, Counters::default()),
            Err(_) => (IoStatus::Unreadable, Counters::default()),
        }
    }

    /// The sum of the live threads' own I/O counters (`task/TID/io`); None when any is not
    /// readable.
    pub(super) fn threads_io(&mut self, dir: &ProcDir) -> Option<Counters> {
        let mut sum = Counters::default();
        for counter in Counter::io() {
            sum.set(counter, 0);
        }
        for tid in dir.entries("task").ok()? {
            match self.io(dir, &format!("task/{tid}/io")) {
                (IoStatus::Read, own) => {
                    for (counter, n) in own.known() {
                        sum.set(counter, sum.get(counter).unwrap_or(0).saturating_add(n));
                    }
                }
                // a thread that exited meanwhile: its I/O is in the whole now
                (IoStatus::Absent, _) => {}
                (IoStatus::Unreadable, _) => return None,
            }
        }
        Some(sum)
    }

    /// A worker's directory once more, if it still belongs to the sampled process: same start
    /// time in the `stat` read through it. None when it exited or its pid was reused.
    pub(super) fn reopen(&mut self, worker: &ProcSample) -> Option<ProcDir> {
        let dir = self.open_dir(worker.pid).ok()?;
        self.read_at(&dir, "stat").ok()?;
        let stat = parse_stat(self.bytes()).ok()?;
        (stat.pid == worker.pid && stat.starttime == worker.starttime).then_some(dir)
    }

    /// `<root>/<pid>/<file>` (`<root>/<pid>` for an empty `file`), for a read by path.
    pub(super) fn file(&mut self, pid: i32, file: &str) -> &str {
        use std::fmt::Write as _;
        self.path.truncate(self.root_len);
        let _ = write!(self.path, "/{pid}");
        if !file.is_empty() {
            let _ = write!(self.path, "/{file}");
        }
        &self.path
    }

    pub(super) fn open_dir(&mut self, pid: i32) -> io::Result<ProcDir> {
        ProcDir::open(self.file(pid, ""))
    }

    /// Reads a whole proc file by path: the first filter's file in a full scan (comm).
    pub(super) fn read(&mut self, pid: i32, file: &str) -> io::Result<()> {
        self.file(pid, file);
        let f = fs::File::open(&self.path)?;
        self.fill(f, ONE_READ.contains(&file), Bound::of(file))
    }

    /// Reads a whole file of the process `dir` stands for.
    pub(super) fn read_at(&mut self, dir: &ProcDir, file: &str) -> io::Result<()> {
        let f = dir.file(file)?;
        // a thread's `task/TID/io` is bounded as `io` is
        self.fill(f, ONE_READ.contains(&file), Bound::of(file))
    }

    /// Reads `f` into the reused buffer with plain reads: std's `read_to_end` adds an fstat
    /// and an lseek per file to size its buffer, which for the one file every process costs
    /// (comm) doubles the syscalls of the scan. Proc files report size 0 anyway. The buffer
    /// stays allocated and zeroed at its full size; `len` marks what this read filled, so no
    /// read clears or grows memory it does not need. `one_read`: a short read is the whole
    /// file (see [`ONE_READ`]), which saves the read that would return 0. `bound`: no more
    /// than this is read, and the buffer never grows past it; a file that goes on is cut
    /// there or refused as malformed (see [`Bound`]).
    fn fill(&mut self, mut f: fs::File, one_read: bool, bound: Bound) -> io::Result<()> {
        self.len = 0;
        let cap = bound.bytes();
        loop {
            let end = self.space.len().min(cap);
            if self.len == end {
                if end == cap {
                    return match bound {
                        Bound::Truncate(_) => Ok(()),
                        Bound::Refuse(_) if at_end(&mut f)? => Ok(()),
                        Bound::Refuse(_) => Err(io::Error::new(
                            ErrorKind::InvalidData,
                            format!("malformed: more than {cap} bytes"),
                        )),
                    };
                }
                self.space.resize((end * 2).min(cap), 0);
                continue;
            }
            match f.read(&mut self.space[self.len..end]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.len += n;
                    if one_read && self.len < end {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// What the last [`ProcReader::read`] filled.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.space[..self.len]
    }
}

/// True when nothing is left to read from `f`.
fn at_end(f: &mut fs::File) -> io::Result<bool> {
    let mut one = [0u8; 1];
    loop {
        match f.read(&mut one) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// ENOENT and ESRCH both mean the process exited between listing and reading.
pub(super) fn vanished(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::CmdlineFilter;
    use crate::sample::fake::{fake_process, io_file};
    use crate::sample::parse::parse_io;

    // A pid reused between two reads of one process mixed two processes in one row. Through
    // the directory's descriptor the row stays the first process's, or the read fails: a
    // fixture directory renamed away and replaced is what a reused pid looks like to it.
    #[test]
    fn a_directory_read_through_its_descriptor_never_answers_for_a_new_process() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "old", 1000, 1);
        let mut reader = ProcReader::new(root.path());
        let dir = reader.open_dir(812).unwrap();
        fs::rename(root.path().join("812"), root.path().join("gone")).unwrap();
        fake_process(root.path(), "812", 812, "new", 2000, 5);
        reader.read_at(&dir, "stat").unwrap();
        let stat = parse_stat(reader.bytes()).unwrap();
        reader.read_at(&dir, "status").unwrap();
        let status = parse_status(reader.bytes()).unwrap();
        let p = reader.finish(&dir, stat, status);
        assert_eq!((p.comm.as_bytes(), p.starttime), (&b"old"[..], 1000));
        assert_eq!(dir.count_entries("fd").unwrap(), 1);
        // by path, the same pid is the new process
        assert_eq!(reader.whole(812).unwrap().starttime, 2000);
        // the old process gone for good: reading through its directory fails
        fs::remove_dir_all(root.path().join("gone")).unwrap();
        let e = reader.read_at(&dir, "status").unwrap_err();
        assert!(vanished(&e), "{e}");
    }

    // Issue 16.3: any user can start processes with megabytes of arguments, and the reused
    // buffer grew to hold each whole command line; no file may make it grow without bound.
    #[test]
    fn a_command_line_is_read_up_to_its_bound_and_a_larger_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "python3", 1000, 0);
        let dir_path = root.path().join("812");
        let argument = vec![b'x'; 100 * 1024];
        let huge = [&argument[..], b"\0"].concat().repeat(50);
        fs::write(dir_path.join("cmdline"), &huge).unwrap();
        let mut reader = ProcReader::new(root.path());
        let dir = reader.open_dir(812).unwrap();
        reader.read_at(&dir, "cmdline").unwrap();
        assert_eq!(reader.bytes(), &huge[..CMDLINE_MATCHED]);
        reader.read(812, "cmdline").unwrap();
        assert_eq!(reader.bytes(), &huge[..CMDLINE_MATCHED]);
        // a short one whole, from the same buffer
        fs::write(dir_path.join("cmdline"), b"sleep\x00600\x00").unwrap();
        reader.read_at(&dir, "cmdline").unwrap();
        assert_eq!(reader.bytes(), b"sleep\x00600\x00");
        // any other file: read whole up to its bound, refused as malformed past it
        let status = fs::read(dir_path.join("status")).unwrap();
        let padded = |len: usize| {
            let mut file = status.clone();
            file.resize(len, b'\n');
            file
        };
        fs::write(dir_path.join("status"), padded(FILE_LIMIT)).unwrap();
        reader.read_at(&dir, "status").unwrap();
        assert_eq!(parse_status(reader.bytes()).unwrap().uid, 33);
        fs::write(dir_path.join("status"), padded(FILE_LIMIT + 1)).unwrap();
        let e = reader.read_at(&dir, "status").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert!(!vanished(&e));
        assert!(reader.space.len() <= FILE_LIMIT.max(CMDLINE_MATCHED));
    }

    // What lies past the first 64 KiB of a command line never matches `-a`, as documented.
    #[test]
    fn a_match_past_the_first_64_kib_of_a_command_line_does_not_count() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "gunicorn", 1000, 0);
        let filter = CmdlineFilter::new(r"gunicorn: worker \[app\]").unwrap();
        let padding = vec![b'x'; CMDLINE_MATCHED];
        let mut reader = ProcReader::new(root.path());
        let dir = reader.open_dir(812).unwrap();
        for (cmdline, matches) in [
            ([b"gunicorn: worker [app]\0", &padding[..]].concat(), true),
            ([&padding[..], b"\0gunicorn: worker [app]"].concat(), false),
            ([&padding[..20], b"\0gunicorn: worker [app]"].concat(), true),
        ] {
            fs::write(root.path().join("812/cmdline"), &cmdline).unwrap();
            reader.read_at(&dir, "cmdline").unwrap();
            assert_eq!(filter.matches(reader.bytes()), matches, "{}", cmdline.len());
        }
    }

    #[test]
    fn io_counters_of_a_process() {
        let root = tempfile::tempdir().unwrap();
        fake_process(root.path(), "812", 812, "nginx", 1000, 0);
        let mut reader = ProcReader::new(root.path());
        let dir = reader.open_dir(812).unwrap();
        // no io file: a kernel without I/O accounting
        assert_eq!(reader.io(&dir, "io").0, IoStatus::Absent);
        // not readable (a directory fails to read as another user's io does)
        fs::create_dir(root.path().join("812/io")).unwrap();
        assert_eq!(reader.io(&dir, "io").0, IoStatus::Unreadable);
        fs::remove_dir(root.path().join("812/io")).unwrap();
        fs::write(root.path().join("812/io"), io_file(1, 2)).unwrap();
        let p = reader.whole(812).unwrap();
        assert_eq!((p.io, p.reaped), (IoStatus::Read, Counters::default()));
        for (counter, n) in parse_io(io_file(1, 2).as_bytes()).unwrap().known() {
            assert_eq!(p.counters.get(counter), Some(n));
        }
    }
}
