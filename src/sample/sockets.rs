//! Acquisition after selection, the accept queues: which of the kernel's listening sockets
//! (see [`crate::listen`]) are the service's. Those `--listen` names, or else those the
//! service's processes hold: the socket links in `/proc/PID/fd`, read through the process's
//! directory opened again and checked to be the same process.
//!
//! The kernel's list is read first, so that of the links only the few inodes in it matter,
//! and nothing is read from `/proc` at all on a host with no listening socket. The masters'
//! fds are read before the workers': the servers this check watches (nginx, apache,
//! php-fpm, gunicorn, postgres) open their listening sockets in the master and the workers
//! inherit them, so when a master holds some, the workers' fds (nginx workers can hold ten
//! thousand) need not be read at all.

use std::collections::{BTreeSet, HashMap};
use std::io::ErrorKind;
use std::path::Path;

use crate::deadline::Deadline;
use crate::listen::{self, HeldBy, ListenSocket, Local, Queues, Spec, Unread};

use super::details::DetailReads;
use super::proc_dir::ProcReader;
use super::values::ProcSample;

/// How many fd links are read between two looks at the deadline.
const FDS_PER_LOOK: usize = 256;
/// How many sockets on the same port an unmatched `--listen` shows.
const NEARBY: usize = 3;

/// The accept queues of the service, when a metric the run `reads` needs them: its listening
/// sockets named by `specs`, or (with none) those its `masters`, else its `workers`, hold.
pub fn queues(
    root: &Path,
    (masters, workers): (&[ProcSample], &[ProcSample]),
    specs: &[Spec],
    reads: DetailReads,
    deadline: Deadline,
) -> Option<Queues> {
    reads
        .queues
        .then(|| read(root, (masters, workers), specs, deadline))
}

fn read(
    root: &Path,
    (masters, workers): (&[ProcSample], &[ProcSample]),
    specs: &[Spec],
    deadline: Deadline,
) -> Queues {
    let (families, ports) = listen::request_for(specs);
    let listed = match listen::list(&families, &ports, deadline) {
        Ok(listed) => listed,
        Err(e) => return Queues::Unread(Unread::Dump(e.to_string())),
    };
    match specs.is_empty() {
        true => held(root, (masters, workers), listed, deadline),
        false => named(specs, listed),
    }
}

/// The sockets `specs` name, each once, and the specs that name none.
pub fn named(specs: &[Spec], listed: Vec<ListenSocket>) -> Queues {
    let mut chosen = BTreeSet::new();
    let mut unmatched = Vec::new();
    for spec in specs {
        let found = spec.matching(&listed);
        if found.is_empty() {
            unmatched.push((spec.clone(), nearby(spec, &listed)));
        }
        // positions in `listed`: a socket two specs name is one
        chosen.extend(found);
    }
    let sockets = keep(listed, &chosen);
    Queues::Read {
        sockets,
        from: HeldBy::Listen,
        unmatched,
    }
}

/// What listens on the port of a TCP spec that names no socket (a wildcard where an address
/// was given, or the other family), for the note.
fn nearby(spec: &Spec, listed: &[ListenSocket]) -> Vec<Local> {
    let Spec::Tcp { port, .. } = *spec else {
        return Vec::new();
    };
    listed
        .iter()
        .filter(|s| matches!(s.local, Local::Tcp(addr) if addr.port() == port))
        .map(|s| s.local.clone())
        .take(NEARBY)
        .collect()
}

/// The listening sockets of `listed` whose links are in the fds of the masters, else of the
/// workers (those that are not also masters), each once.
pub fn held(
    root: &Path,
    (masters, workers): (&[ProcSample], &[ProcSample]),
    listed: Vec<ListenSocket>,
    deadline: Deadline,
) -> Queues {
    if listed.is_empty() {
        return Queues::Unread(Unread::NoneHeld);
    }
    let mut links = Links {
        reader: ProcReader::new(root),
        by_inode: listed
            .iter()
            .enumerate()
            .map(|(i, s)| (s.inode, i))
            .collect(),
        found: BTreeSet::new(),
        denied: 0,
        deadline,
    };
    let from = match links.read(masters.iter()) {
        Err(Cut) => return Queues::Unread(Unread::FdsCut),
        Ok(read) if !links.found.is_empty() => HeldBy::Masters(read),
        Ok(_) => {
            let master = |w: &&ProcSample| masters.iter().any(|m| m.pid == w.pid);
            match links.read(workers.iter().filter(|w| !master(w))) {
                Err(Cut) => return Queues::Unread(Unread::FdsCut),
                Ok(read) => HeldBy::Workers(read),
            }
        }
    };
    if links.found.is_empty() {
        return Queues::Unread(match links.denied {
            0 => Unread::NoneHeld,
            denied => Unread::FdsDenied(denied),
        });
    }
    let sockets = keep(listed, &links.found);
    Queues::Read {
        sockets,
        from,
        unmatched: Vec::new(),
    }
}

/// The sockets of `listed` at the positions `chosen`, in the kernel's order.
fn keep(listed: Vec<ListenSocket>, chosen: &BTreeSet<usize>) -> Vec<ListenSocket> {
    let kept = listed
        .into_iter()
        .enumerate()
        .filter(|(i, _)| chosen.contains(i));
    kept.map(|(_, s)| s).collect()
}

/// The deadline came before the fds were read.
struct Cut;

/// The fd links read so far, against the kernel's listening sockets.
struct Links {
    reader: ProcReader,
    /// inode -> position in the kernel's list
    by_inode: HashMap<u64, usize>,
    /// positions of the sockets found in some process's fds
    found: BTreeSet<usize>,
    /// processes whose `fd/` may not be read
    denied: usize,
    deadline: Deadline,
}

impl Links {
    /// Reads the fd links of `procs`; how many were read. A process gone, or whose pid now
    /// belongs to another, is passed over.
    fn read<'a>(&mut self, procs: impl Iterator<Item = &'a ProcSample>) -> Result<usize, Cut> {
        let mut read = 0;
        for p in procs {
            if self.deadline.remaining().is_zero() {
                return Err(Cut);
            }
            let Some(dir) = self.reader.reopen(p) else {
                continue;
            };
            let mut seen = 0usize;
            let (by_inode, found, deadline) = (&self.by_inode, &mut self.found, self.deadline);
            let done = dir.each_link::<24>("fd", |target| {
                seen += 1;
                if seen.is_multiple_of(FDS_PER_LOOK) && deadline.remaining().is_zero() {
                    return false;
                }
                if let Some(i) = socket_inode(target).and_then(|ino| by_inode.get(&ino)) {
                    found.insert(*i);
                }
                true
            });
            match done {
                Ok(true) => read += 1,
                Ok(false) => return Err(Cut),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => self.denied += 1,
            }
        }
        Ok(read)
    }
}

/// The inode of an fd link to a socket, `socket:[INODE]`.
fn socket_inode(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::fake::fake_process;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    fn listening(inode: u64, port: u16, queue: u32) -> ListenSocket {
        ListenSocket {
            local: Local::Tcp(([127, 0, 0, 1], port).into()),
            inode,
            queue,
            limit: 64,
            v6only: None,
        }
    }

    /// Process `pid` in `root` whose fds 10.. link to these targets.
    fn process(root: &Path, pid: i32, links: &[&str]) -> ProcSample {
        fake_process(root, &pid.to_string(), pid, "nginx", 5000, 2);
        for (fd, target) in links.iter().enumerate() {
            symlink(target, root.join(format!("{pid}/fd/{}", fd + 10))).unwrap();
        }
        ProcSample {
            pid,
            starttime: 5000,
            ..ProcSample::default()
        }
    }

    fn forever() -> Deadline {
        Deadline::new(Instant::now(), Duration::from_secs(3600))
    }

    fn inodes(queues: &Queues) -> Vec<u64> {
        match queues {
            Queues::Read { sockets, .. } => sockets.iter().map(|s| s.inode).collect(),
            Queues::Unread(why) => panic!("unread: {why:?}"),
        }
    }

    fn held_by(queues: &Queues) -> HeldBy {
        match queues {
            Queues::Read { from, .. } => *from,
            Queues::Unread(why) => panic!("unread: {why:?}"),
        }
    }

    #[test]
    fn the_masters_sockets_each_once_and_the_workers_not_read() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let master = process(
            r,
            812,
            &["socket:[100]", "socket:[999]", "/dev/null", "socket:[200]"],
        );
        let workers = [
            process(r, 813, &["socket:[100]", "socket:[200]"]),
            process(r, 814, &["socket:[300]"]),
        ];
        let listed = vec![
            listening(100, 80, 3),
            listening(200, 443, 0),
            listening(300, 8080, 9),
        ];
        let q = held(r, (&[master], &workers), listed.clone(), forever());
        assert_eq!(inodes(&q), [100, 200]);
        assert_eq!(held_by(&q), HeldBy::Masters(1));
        // no master: the workers' sockets, one shared by two of them counted once
        let q = held(r, (&[], &workers), listed, forever());
        assert_eq!(inodes(&q), [100, 200, 300]);
        assert_eq!(held_by(&q), HeldBy::Workers(2));
    }

    #[test]
    fn a_master_holding_none_leaves_it_to_the_workers() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let master = process(r, 812, &["pipe:[5]"]);
        let masters = [master.clone()];
        let worker = process(r, 813, &["socket:[100]"]);
        let listed = vec![listening(100, 80, 3)];
        let q = held(r, (&masters, &[master, worker]), listed, forever());
        assert_eq!(inodes(&q), [100]);
        // the master counted as a worker too (--include-master) is not read twice
        assert_eq!(held_by(&q), HeldBy::Workers(1));
    }

    #[test]
    fn unreadable_fds_none_held_and_the_deadline() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let master = process(r, 812, &[]);
        // a fd/ that cannot be listed, as another user's is (EACCES), here ENOTDIR
        fs::remove_dir_all(r.join("812/fd")).unwrap();
        fs::write(r.join("812/fd"), "").unwrap();
        let worker = process(r, 813, &["socket:[7]"]);
        let listed = || vec![listening(100, 80, 3)];
        let (masters, workers) = ([master], [worker]);
        let q = held(r, (&masters, &workers), listed(), forever());
        assert_eq!(q, Queues::Unread(Unread::FdsDenied(1)));
        // everything readable, nothing listening among the links
        let q = held(r, (&[], &workers), listed(), forever());
        assert_eq!(q, Queues::Unread(Unread::NoneHeld));
        // no listening socket on the host: no fd read at all
        let q = held(r, (&masters, &workers), Vec::new(), forever());
        assert_eq!(q, Queues::Unread(Unread::NoneHeld));
        let passed = Deadline::new(Instant::now(), Duration::ZERO);
        let q = held(r, (&masters, &workers), listed(), passed);
        assert_eq!(q, Queues::Unread(Unread::FdsCut));
    }

    // A worker's pid reused between the scan and the fd reads gave the new process's
    // sockets to the service.
    #[test]
    fn the_fds_of_a_reused_pid_are_not_taken() {
        let root = tempfile::tempdir().unwrap();
        let mut worker = process(root.path(), 813, &["socket:[100]"]);
        worker.starttime = 1;
        let q = held(
            root.path(),
            (&[], &[worker]),
            vec![listening(100, 80, 3)],
            forever(),
        );
        assert_eq!(q, Queues::Unread(Unread::NoneHeld));
    }

    #[test]
    fn named_sockets_once_and_the_unmatched_with_their_neighbours() {
        let specs: Vec<Spec> = ["127.0.0.1:80", "*:80", "[::1]:8080", "/run/none.sock"]
            .iter()
            .map(|t| Spec::parse(t.as_bytes()).unwrap())
            .collect();
        let mut listed = vec![listening(100, 80, 3), listening(200, 8080, 0)];
        listed.push(ListenSocket {
            local: Local::Tcp("[::]:8443".parse().unwrap()),
            ..listening(300, 8443, 0)
        });
        let Queues::Read {
            sockets,
            from,
            unmatched,
        } = named(&specs, listed)
        else {
            panic!("unread");
        };
        assert_eq!(sockets.iter().map(|s| s.inode).collect::<Vec<_>>(), [100]);
        assert_eq!(from, HeldBy::Listen);
        let unmatched: Vec<(String, Vec<String>)> = unmatched
            .iter()
            .map(|(spec, near)| {
                (
                    spec.to_string(),
                    near.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            unmatched,
            [
                ("[::1]:8080".to_string(), vec!["127.0.0.1:8080".to_string()]),
                ("/run/none.sock".to_string(), vec![]),
            ]
        );
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[29212]"), Some(29212));
        for other in [
            &b"socket:[]"[..],
            b"socket:[12",
            b"pipe:[3]",
            b"/dev/null",
            b"socket:[-1]",
        ] {
            assert_eq!(socket_inode(other), None);
        }
    }
}
