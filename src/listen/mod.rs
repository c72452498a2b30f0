//! Acquisition, the accept queues: the kernel's list of listening sockets (sock_diag, what
//! `ss -l` reads), each with its accept queue and backlog limit, and which of them the
//! operator's `--listen` names. Reading which sockets the service holds is `sample`'s (it is
//! the reader of `/proc`); this module reads no file.
//!
//! `wire` is the byte layout, pure and tested on recorded replies; `netlink` the socket.
//! A leaf: it needs only the run's deadline and the output's escaping.

mod netlink;
mod wire;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

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

    /// The families whose dumps can hold what it names: an IPv4 address may be served by a
    /// dual-stack IPv6 socket, so it needs the IPv6 list too.
    fn families(&self) -> &'static [Family] {
        match self {
            Spec::Unix(_) => &[Family::Unix],
            Spec::Tcp { ip: Some(IpAddr::V6(_)), .. } => &[Family::V6],
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
