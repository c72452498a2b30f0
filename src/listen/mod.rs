//! Acquisition, the accept queues: the kernel's list of listening sockets (sock_diag, what
//! `ss -l` reads), each with its accept queue and backlog limit, and which of them the
//! operator's `--listen` names. Reading which sockets the service holds is `sample`'s (it is
//! the reader of `/proc`); this module reads no file.
//!
//! `wire` is the byte layout, pure and tested on recorded replies; `netlink` the socket.
//! A leaf: it needs only the catalog's names, the run's deadline and the output's escaping.

mod netlink;
mod wire;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::catalog::{MetricName, MetricSet};
use crate::deadline::Deadline;
use crate::text::shown_bytes;

pub use netlink::{Diag, DumpError};

/// The most `--listen` options: each TCP one adds to the filter program the kernel runs,
/// whose length is a 16-bit field.
pub const MAX_SPECS: usize = 256;

/// An address family sock_diag lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
    Unix,
}

/// Where a listening socket listens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Local {
    /// TCP over IPv4 or IPv6
    Tcp(SocketAddr),
    /// a unix socket's name as the kernel gives it: a path, or a NUL and an abstract name;
    /// bytes, chosen by whoever bound it
    Unix(Vec<u8>),
}

impl Local {
    /// A unix path without the NUL some programs bind with; an abstract name as it is.
    fn unix_name(name: &[u8]) -> &[u8] {
        match name.first() {
            Some(0) | None => name,
            Some(_) => name.split(|&b| b == 0).next().unwrap_or(name),
        }
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`, `/run/php/php-fpm.sock`, `@abstract`: as `ss` shows them,
/// unix names escaped (they are outside text).
impl fmt::Display for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Local::Tcp(addr) => addr.fmt(f),
            Local::Unix(name) => match Local::unix_name(name) {
                [] => f.write_str("(unnamed)"),
                [0, rest @ ..] => write!(f, "@{}", shown_bytes(rest)),
                path => f.write_str(&shown_bytes(path)),
            },
        }
    }
}

/// One listening socket as sock_diag gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSocket {
    pub local: Local,
    /// the socket's inode, as `/proc/PID/fd` links name it (`socket:[INODE]`)
    pub inode: u64,
    /// connections waiting to be accepted
    pub queue: u32,
    /// the backlog limit (`listen()`'s, capped by `net.core.somaxconn`); Linux queues one
    /// connection more than this before it drops new ones
    pub limit: u32,
    /// for IPv6, whether it refuses IPv4 connections (IPV6_V6ONLY); None for the others
    pub v6only: Option<bool>,
}

/// A socket `--listen` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// TCP on `port`, at `ip`, or at any address (`*:PORT`)
    Tcp { ip: Option<IpAddr>, port: u16 },
    /// a unix socket's path, or NUL and the name for `@NAME` (abstract)
    Unix(Vec<u8>),
}

impl Spec {
    /// `ADDR:PORT`, `[ADDR6]:PORT`, `*:PORT` (or `:PORT`, or a bare `PORT`), `/PATH`, `@NAME`.
    pub fn parse(text: &[u8]) -> Result<Spec, String> {
        match text {
            [b'/', ..] => Ok(Spec::Unix(text.to_vec())),
            [b'@', name @ ..] if !name.is_empty() => Ok(Spec::Unix([&[0], name].concat())),
            _ => std::str::from_utf8(text)
                .ok()
                .and_then(tcp_spec)
                .ok_or_else(|| {
                    format!(
                        "--listen {}: not ADDR:PORT, [ADDR6]:PORT, *:PORT, /PATH or @NAME",
                        shown_bytes(text)
                    )
                }),
        }
    }

    /// Every `--listen` given, at most [`MAX_SPECS`] of them; None for `--listen none` (the
    /// service listens on nothing: no queue to measure, and nothing to say about it).
    pub fn parse_all(given: &[std::ffi::OsString]) -> Result<Option<Vec<Spec>>, String> {
        use std::os::unix::ffi::OsStrExt;
        if given.len() > MAX_SPECS {
            return Err(format!("--listen: at most {MAX_SPECS} of them"));
        }
        if given.iter().any(|s| s == "none") {
            return match given.len() {
                1 => Ok(None),
                _ => Err("--listen none: no other --listen with it".to_string()),
            };
        }
        given
            .iter()
            .map(|s| Spec::parse(s.as_bytes()))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The families whose dumps can hold what it names: an IPv4 address may be served by a
    /// dual-stack IPv6 socket, so it needs the IPv6 list too.
    fn families(&self) -> &'static [Family] {
        match self {
            Spec::Unix(_) => &[Family::Unix],
            Spec::Tcp {
                ip: Some(IpAddr::V6(_)),
                ..
            } => &[Family::V6],
            Spec::Tcp { .. } => &[Family::V4, Family::V6],
        }
    }

    /// The listening sockets that take the connections it names, of `sockets`: those bound to
    /// exactly it; for an address no socket is bound to, the socket of its family bound to
    /// any address on the port (`0.0.0.0`, `::`), and for IPv4 then a dual-stack `[::]`. For
    /// `*:PORT`, every socket on the port. Their positions in `sockets`.
    pub fn matching(&self, sockets: &[ListenSocket]) -> Vec<usize> {
        let on = |want: &dyn Fn(&ListenSocket) -> bool| -> Vec<usize> {
            let found = sockets.iter().enumerate().filter(|(_, s)| want(s));
            found.map(|(i, _)| i).collect()
        };
        match *self {
            Spec::Unix(ref path) => on(&|s| match &s.local {
                Local::Unix(name) => Local::unix_name(name) == path.as_slice(),
                Local::Tcp(_) => false,
            }),
            Spec::Tcp { ip: None, port } => on(&|s| tcp_port(s) == Some(port)),
            Spec::Tcp { ip: Some(ip), port } => {
                let bound = |want: IpAddr| move |s: &ListenSocket| s.local == tcp(want, port);
                let exact = on(&bound(ip));
                if !exact.is_empty() || ip.is_unspecified() {
                    return exact;
                }
                let any = match ip {
                    IpAddr::V4(_) => IpAddr::from([0u8; 4]),
                    IpAddr::V6(_) => IpAddr::from([0u16; 8]),
                };
                let wildcard = on(&bound(any));
                if !wildcard.is_empty() || ip.is_ipv6() {
                    return wildcard;
                }
                let dual = bound(IpAddr::from([0u16; 8]));
                on(&|s| dual(s) && s.v6only == Some(false))
            }
        }
    }
}

/// `127.0.0.1:8080` as a socket address.
fn tcp(ip: IpAddr, port: u16) -> Local {
    Local::Tcp(SocketAddr::new(ip, port))
}

/// A TCP socket's port.
fn tcp_port(s: &ListenSocket) -> Option<u16> {
    match s.local {
        Local::Tcp(addr) => Some(addr.port()),
        Local::Unix(_) => None,
    }
}

/// The TCP forms of `--listen`; port 0 is no port.
fn tcp_spec(text: &str) -> Option<Spec> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0);
    if let Ok(addr) = text.parse::<SocketAddr>() {
        // a scope (fe80::1%eth0) is not kept by the comparison: refuse rather than ignore it
        let scoped = matches!(addr, SocketAddr::V6(a) if a.scope_id() != 0);
        return (!scoped && addr.port() > 0).then(|| Spec::Tcp {
            ip: Some(addr.ip()),
            port: addr.port(),
        });
    }
    let bare = text
        .strip_prefix("*:")
        .or_else(|| text.strip_prefix(':'))
        .unwrap_or(text);
    Some(Spec::Tcp {
        ip: None,
        port: port(bare)?,
    })
}

/// As the operator would write it back: `*:8080`, `[::1]:8080`, the path escaped.
impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Tcp { ip: None, port } => write!(f, "*:{port}"),
            Spec::Tcp { ip: Some(ip), port } => SocketAddr::new(*ip, *port).fmt(f),
            Spec::Unix(name) => Local::Unix(name.clone()).fmt(f),
        }
    }
}

/// `--listen` as given: the specs, and the metrics a run measures (`set`; `--listen none` takes
/// the queue metrics out of it: a service that listens on nothing gets neither them nor a note
/// on every run, which operators would learn to ignore). A threshold on a queue metric
/// (`judged` are the metrics with one) contradicts `--listen none`.
pub fn options(
    given: &[std::ffi::OsString],
    set: MetricSet,
    mut judged: impl Iterator<Item = MetricName>,
) -> Result<(Vec<Spec>, MetricSet), String> {
    const QUEUE: [MetricName; 3] = [
        MetricName::Queue,
        MetricName::QueueMax,
        MetricName::QueuePct,
    ];
    match Spec::parse_all(given)? {
        Some(specs) => Ok((specs, set)),
        None => match judged.find(|m| QUEUE.contains(m)) {
            Some(m) => Err(format!(
                "--listen none: no queue to judge, yet a threshold on {}",
                m.label()
            )),
            None => Ok((Vec::new(), QUEUE.into_iter().fold(set, MetricSet::without))),
        },
    }
}

/// What to ask the kernel for `specs`: the families they need and, for TCP, their ports (the
/// kernel then copies out only sockets on those ports). No specs: every listening socket.
pub fn request_for(specs: &[Spec]) -> (Vec<Family>, Vec<u16>) {
    if specs.is_empty() {
        return (vec![Family::V4, Family::V6, Family::Unix], Vec::new());
    }
    let mut families: Vec<Family> = specs.iter().flat_map(|s| s.families()).copied().collect();
    families.sort_unstable();
    families.dedup();
    let mut ports: Vec<u16> = specs
        .iter()
        .filter_map(|s| match s {
            Spec::Tcp { port, .. } => Some(*port),
            Spec::Unix(_) => None,
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    (families, ports)
}

/// The listening sockets of `families` (TCP ones on `ports` only, when given), one dump per
/// family on one netlink socket, all within `deadline`.
pub fn list(
    families: &[Family],
    ports: &[u16],
    deadline: Deadline,
) -> Result<Vec<ListenSocket>, DumpError> {
    let mut diag = Diag::open()?;
    let mut sockets = Vec::new();
    for &family in families {
        sockets.extend(diag.dump(family, ports, deadline)?);
    }
    Ok(sockets)
}

/// What a run learned of the accept queues of the service's listening sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queues {
    /// these sockets, each once (a socket the master and its workers share is one)
    Read {
        sockets: Vec<ListenSocket>,
        /// where they were found
        from: HeldBy,
        /// `--listen` options that name no listening socket, with what listens on their
        /// port (at most a few), to show the operator what they may have meant
        unmatched: Vec<(Spec, Vec<Local>)>,
    },
    /// left out, and why
    Unread(Unread),
}

/// Where the listening sockets of a run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBy {
    /// `--listen`
    Listen,
    /// the fds of this many masters (the workers inherit theirs)
    Masters(usize),
    /// the fds of this many workers (no master, or none readable or holding one)
    Workers(usize),
}

/// Why the queues were left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// the kernel's list could not be read: why
    Dump(String),
    /// no `--listen`, and the fds of this many of the service's processes may not be read
    /// (another user's need root); none of those that could be read holds a listening socket
    FdsDenied(usize),
    /// the deadline came before the fds of the service were read
    FdsCut,
    /// the service holds no listening socket (TCP, unix stream)
    NoneHeld,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<Spec, String> {
        Spec::parse(text.as_bytes())
    }

    fn tcp_socket(addr: &str, v6only: Option<bool>) -> ListenSocket {
        ListenSocket {
            local: Local::Tcp(addr.parse().unwrap()),
            inode: 1,
            queue: 0,
            limit: 128,
            v6only,
        }
    }

    #[test]
    fn listen_forms() {
        let at = |ip: &str, port| Spec::Tcp {
            ip: Some(ip.parse().unwrap()),
            port,
        };
        let any = |port| Spec::Tcp { ip: None, port };
        assert_eq!(spec("127.0.0.1:8080"), Ok(at("127.0.0.1", 8080)));
        assert_eq!(spec("[::1]:8080"), Ok(at("::1", 8080)));
        assert_eq!(spec("0.0.0.0:80"), Ok(at("0.0.0.0", 80)));
        for star in ["*:8080", ":8080", "8080"] {
            assert_eq!(spec(star), Ok(any(8080)), "{star}");
        }
        assert_eq!(
            spec("/run/php/fpm.sock"),
            Ok(Spec::Unix(b"/run/php/fpm.sock".to_vec()))
        );
        assert_eq!(spec("@abstract"), Ok(Spec::Unix(b"\0abstract".to_vec())));
        for bad in [
            "",
            "@",
            "localhost:80",
            "127.0.0.1",
            "*:0",
            "*:65536",
            "::1:80",
            "[fe80::1%2]:80",
            "php.sock",
            "127.0.0.1:80x",
        ] {
            assert!(spec(bad).is_err(), "{bad:?}");
        }
        // a path is bytes; printed escaped
        let odd = Spec::parse(b"/tmp/a|b\n\xff").unwrap();
        assert_eq!(odd.to_string(), "/tmp/a\\x7cb\\x0a\\xff");
        assert_eq!(spec("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert_eq!(spec("80").unwrap().to_string(), "*:80");
        let all =
            |texts: &[&str]| Spec::parse_all(&texts.iter().map(|t| t.into()).collect::<Vec<_>>());
        assert_eq!(all(&["none"]), Ok(None));
        assert!(all(&["none", "*:80"]).is_err());
        assert_eq!(all(&[]), Ok(Some(vec![])));
        assert_eq!(all(&["80", "/a"]).unwrap().unwrap().len(), 2);
    }

    #[test]
    fn an_address_matches_the_socket_that_takes_its_connections() {
        let sockets = [
            tcp_socket("127.0.0.1:8080", None),
            tcp_socket("0.0.0.0:8080", None),
            tcp_socket("[::]:8080", Some(true)),
            tcp_socket("0.0.0.0:9000", None),
            tcp_socket("[::]:9443", Some(false)),
            tcp_socket("[::1]:9443", Some(true)),
        ];
        let matched = |text: &str| spec(text).unwrap().matching(&sockets);
        assert_eq!(matched("127.0.0.1:8080"), [0], "exact first");
        assert_eq!(matched("10.0.0.1:8080"), [1], "else the IPv4 wildcard");
        assert_eq!(matched("0.0.0.0:8080"), [1]);
        assert_eq!(matched("[::1]:8080"), [2], "the IPv6 wildcard");
        assert_eq!(matched("*:8080"), [0, 1, 2], "every socket on the port");
        assert_eq!(
            matched("10.0.0.1:9443"),
            [4],
            "a dual-stack [::] takes IPv4"
        );
        assert_eq!(matched("[::1]:9443"), [5]);
        assert!(matched("127.0.0.1:9001").is_empty());
        assert!(matched("[::1]:9000").is_empty(), "no IPv6 socket on 9000");
        // a v6-only [::] does not take IPv4
        let v6only = [tcp_socket("[::]:9443", Some(true))];
        assert!(spec("10.0.0.1:9443").unwrap().matching(&v6only).is_empty());
    }

    #[test]
    fn unix_names_match_without_the_trailing_nul() {
        let unix = |name: &[u8]| ListenSocket {
            local: Local::Unix(name.to_vec()),
            inode: 2,
            queue: 0,
            limit: 16,
            v6only: None,
        };
        let sockets = [unix(b"/run/fpm.sock\0"), unix(b"\0fpm"), unix(b"")];
        assert_eq!(spec("/run/fpm.sock").unwrap().matching(&sockets), [0]);
        assert_eq!(spec("@fpm").unwrap().matching(&sockets), [1]);
        assert!(spec("/run/fpm").unwrap().matching(&sockets).is_empty());
        assert!(spec("*:80").unwrap().matching(&sockets).is_empty());
        assert_eq!(sockets[2].local.to_string(), "(unnamed)");
    }

    #[test]
    fn requests_follow_the_specs() {
        let specs = |texts: &[&str]| texts.iter().map(|t| spec(t).unwrap()).collect::<Vec<_>>();
        let all = vec![Family::V4, Family::V6, Family::Unix];
        assert_eq!(request_for(&[]), (all, vec![]));
        assert_eq!(
            request_for(&specs(&["/run/a.sock"])),
            (vec![Family::Unix], vec![])
        );
        assert_eq!(
            request_for(&specs(&["[::1]:443", "[::1]:80", "[::]:80"])),
            (vec![Family::V6], vec![80, 443])
        );
        assert_eq!(
            request_for(&specs(&["127.0.0.1:80"])),
            (vec![Family::V4, Family::V6], vec![80])
        );
    }

    // The real kernel: the filter program is accepted, and lists the sockets of its ports
    // only (the unit tests above check its bytes; this that the kernel reads them so).
    #[test]
    fn the_kernel_lists_a_listener_and_filters_by_port() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
        let forever = Deadline::new(
            std::time::Instant::now(),
            std::time::Duration::from_secs(60),
        );
        let listed = match list(&[Family::V4], &[port(&a)], forever) {
            Ok(listed) => listed,
            Err(e) => {
                eprintln!("skipped: sock_diag is not available here ({e})");
                return;
            }
        };
        let ports: Vec<u16> = listed.iter().filter_map(tcp_port).collect();
        assert_eq!(ports, [port(&a)]);
        // std listens with a backlog of 128, capped by net.core.somaxconn
        assert!(listed[0].limit > 0 && listed[0].limit <= 128, "{listed:?}");
        assert_eq!(listed[0].queue, 0);
        let both = list(&[Family::V4], &[port(&a), port(&b)], forever).unwrap();
        assert_eq!(both.len(), 2, "{both:?}");
        let unfiltered = list(&[Family::V4], &[], forever).unwrap();
        assert!(unfiltered.len() >= 2);
        // a deadline already passed: an answer, never a wait
        let passed = Deadline::new(std::time::Instant::now(), std::time::Duration::ZERO);
        assert_eq!(list(&[Family::V4], &[], passed), Err(DumpError::TimedOut));
    }
}
