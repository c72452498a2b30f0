//! Metrics step, the accept queues: the service's listening sockets (see
//! [`crate::listen::Queues`]) into `queue`, `queue_max` and `queue_pct`, and what the notes
//! say when they could not be read. Pure.

use crate::catalog::MetricName::{Queue, QueueMax, QueuePct};
use crate::listen::{HeldBy, ListenSocket, Queues, Unread};
use crate::note::{Note, QueueNote};

use crate::listen::Spec;

use super::{Figures, Measured};

/// [`Part::Queue`](crate::catalog::Part): the connections waiting in all the sockets, the sum
/// of their limits, and the fullest one's share. Unmeasured without sockets: no queue is not
/// an empty queue.
pub(super) fn queue_values(queues: Option<&Queues>) -> Vec<Measured> {
    let sockets = sockets(queues);
    let some = !sockets.is_empty();
    let sum = |field: fn(&ListenSocket) -> u32| {
        some.then(|| sockets.iter().map(|s| u64::from(field(s))).sum::<u64>() as f64)
    };
    let fullest = sockets
        .iter()
        .map(|s| percent(s.queue, s.limit))
        .reduce(f64::max);
    vec![
        (Queue, sum(|s| s.queue)),
        (QueueMax, sum(|s| s.limit)),
        (QueuePct, fullest),
    ]
}

/// The sockets measured, none when the queues were not read.
pub fn sockets(queues: Option<&Queues>) -> &[ListenSocket] {
    match queues {
        Some(Queues::Read { sockets, .. }) => sockets,
        _ => &[],
    }
}

/// One socket's queue as % of its limit, at most 100. Linux queues one connection past the
/// limit before it drops new ones (a backlog of 0 takes one), and a socket `listen()`ed again
/// with a smaller backlog keeps the connections it had: such a queue is full, 100 %, never
/// more.
pub fn percent(queue: u32, limit: u32) -> f64 {
    match limit {
        0 if queue == 0 => 0.0,
        0 => 100.0,
        _ => (f64::from(queue) / f64::from(limit) * 100.0).min(100.0),
    }
}

/// Whether the run failed to do what `--listen` (`listen`) asked: a `--listen` names
/// no listening socket, or the kernel's list could not be read. That run is UNKNOWN: the
/// check cannot watch what it was told to, and an OK would hide a typo (or a service moved to
/// another port) for good.
pub fn listen_unmet(figures: &Figures, listen: &[Spec]) -> bool {
    unmet(figures.queues.as_ref(), !listen.is_empty())
}

fn unmet(queues: Option<&Queues>, listen_given: bool) -> bool {
    match queues {
        Some(Queues::Read { unmatched, .. }) => !unmatched.is_empty(),
        Some(Queues::Unread(_)) => listen_given,
        None => false,
    }
}

/// What the notes say of the queues: where the sockets came from, or why they are missing.
/// Left out by design (another user's fds, no `--listen`), one short line by default and its
/// detail at `-v`: a note printed on every run of a healthy service is a note operators
/// learn to ignore.
pub(super) fn queue_notes(queues: Option<&Queues>) -> Vec<Note> {
    let Some(queues) = queues else {
        return Vec::new();
    };
    let notes = match queues {
        Queues::Read {
            sockets,
            from,
            unmatched,
        } => {
            let mut notes: Vec<QueueNote> = unmatched
                .iter()
                .map(|(spec, nearby)| QueueNote::Unmatched {
                    spec: spec.to_string(),
                    nearby: nearby.iter().map(ToString::to_string).collect(),
                })
                .collect();
            if !sockets.is_empty() {
                notes.push(QueueNote::From {
                    sockets: sockets.len(),
                    from: *from,
                });
            }
            notes
        }
        Queues::Unread(Unread::Dump(why)) => vec![QueueNote::NoList(why.clone())],
        Queues::Unread(Unread::FdsDenied(count)) => vec![
            QueueNote::FdsDenied,
            QueueNote::FdsDeniedDetail { count: *count },
        ],
        Queues::Unread(Unread::FdsCut) => vec![QueueNote::FdsCut],
        Queues::Unread(Unread::NoneHeld) => vec![QueueNote::NoneHeld],
    };
    notes.into_iter().map(Note::Queue).collect()
}

/// Where the sockets came from, for the note: `HeldBy` as the note words it.
pub fn held_by(from: HeldBy) -> String {
    match from {
        HeldBy::Listen => "named by --listen".to_string(),
        HeldBy::Masters(1) => "held by the master".to_string(),
        HeldBy::Masters(n) => format!("held by {n} masters"),
        HeldBy::Workers(1) => "held by the worker".to_string(),
        HeldBy::Workers(n) => format!("held by {n} workers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::Local;

    fn socket(port: u16, queue: u32, limit: u32) -> ListenSocket {
        ListenSocket {
            local: Local::Tcp(([127, 0, 0, 1], port).into()),
            inode: u64::from(port),
            queue,
            limit,
            v6only: None,
        }
    }

    fn read(sockets: Vec<ListenSocket>) -> Queues {
        Queues::Read {
            sockets,
            from: HeldBy::Masters(1),
            unmatched: Vec::new(),
        }
    }

    #[test]
    fn sums_and_the_fullest_socket() {
        let q = read(vec![
            socket(80, 20, 64),
            socket(81, 3, 4),
            socket(82, 0, 128),
        ]);
        assert_eq!(
            queue_values(Some(&q)),
            vec![
                (Queue, Some(23.0)),
                (QueueMax, Some(196.0)),
                (QueuePct, Some(75.0))
            ]
        );
    }

    // A queue can be one past its limit (and more after a second listen() with a smaller
    // backlog): full, never more than 100 %.
    #[test]
    fn a_queue_past_its_limit_is_100_percent() {
        assert_eq!(percent(65, 64), 100.0);
        assert_eq!(percent(500, 10), 100.0);
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 0), 100.0);
        assert_eq!(percent(16, 64), 25.0);
        assert_eq!(percent(u32::MAX, u32::MAX), 100.0);
    }

    #[test]
    fn nothing_read_is_no_figure_never_zero() {
        let none = vec![(Queue, None), (QueueMax, None), (QueuePct, None)];
        assert_eq!(queue_values(None), none);
        assert_eq!(queue_values(Some(&read(Vec::new()))), none);
        let denied = Queues::Unread(Unread::FdsDenied(3));
        assert_eq!(queue_values(Some(&denied)), none);
        let notes = queue_notes(Some(&denied));
        let at = |v| notes.iter().filter(|n| n.shown_at(v)).count();
        assert_eq!(
            (at(0), at(1)),
            (1, 2),
            "one line by default, its detail at -v"
        );
    }

    #[test]
    fn an_unmatched_listen_is_unknown() {
        let unmatched = Queues::Read {
            sockets: vec![socket(80, 0, 64)],
            from: HeldBy::Listen,
            unmatched: vec![(Spec::Tcp { ip: None, port: 81 }, Vec::new())],
        };
        assert!(unmet(Some(&unmatched), true));
        assert!(!unmet(Some(&read(vec![socket(80, 0, 64)])), true));
        let failed = Queues::Unread(Unread::Dump("EPERM".into()));
        assert!(unmet(Some(&failed), true));
        assert!(!unmet(Some(&failed), false), "not asked for: a note only");
        assert!(!unmet(None, false));
    }
}
