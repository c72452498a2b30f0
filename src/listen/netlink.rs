//! The sock_diag socket itself: one netlink socket per run, one dump per address family,
//! every reply bounded in size, in count and by the run's [`Deadline`].
//!
//! Raw netlink over `rustix` (already the check's syscall layer for its `/proc` reads), rather
//! than the rust-netlink crates: three fixed request layouts and two reply layouts are a few
//! dozen lines of byte handling that can be tested as recorded bytes, where the crates would
//! bring a dozen dependencies, a build-time cost, and their own view of which attributes
//! matter.

use std::fmt;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};
use rustix::net::sockopt::{set_socket_timeout, Timeout};
use rustix::net::{
    recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

use crate::deadline::Deadline;

use super::wire::{self, Progress, WireError};
use super::{Family, ListenSocket};

/// One datagram at most: the kernel fills dump datagrams up to 32 KiB.
const DATAGRAM: usize = 64 * 1024;
/// The most sockets one dump may list: a host with more listening sockets than this is not
/// one this check can judge within its time, and the memory they take stays bounded.
const MAX_SOCKETS: usize = 1 << 20;
/// The most datagrams one dump may take (each holds at least one message, usually hundreds).
const MAX_DATAGRAMS: usize = 1 << 16;

/// Why the listening sockets could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpError {
    /// a system call failed: which, and the OS's reason
    Os(&'static str, String),
    /// the reply was refused or not understood
    Wire(WireError),
    /// the deadline came first
    TimedOut,
    /// more sockets or datagrams than the bounds allow
    TooLarge,
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Os(call, why) => write!(f, "{call}: {why}"),
            DumpError::Wire(why) => why.fmt(f),
            DumpError::TimedOut => f.write_str("no reply before the deadline"),
            DumpError::TooLarge => write!(f, "more than {MAX_SOCKETS} listening sockets"),
        }
    }
}

impl From<WireError> for DumpError {
    fn from(why: WireError) -> DumpError {
        DumpError::Wire(why)
    }
}

fn os(call: &'static str) -> impl Fn(rustix::io::Errno) -> DumpError {
    move |e| DumpError::Os(call, std::io::Error::from(e).to_string())
}

/// A `NETLINK_SOCK_DIAG` socket, which lists sockets for any user.
pub struct Diag {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Diag {
    pub fn open() -> Result<Diag, DumpError> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(SOCK_DIAG),
        )
        .map_err(os("socket(AF_NETLINK, NETLINK_SOCK_DIAG)"))?;
        Ok(Diag {
            fd,
            seq: 0,
            buf: vec![0; DATAGRAM],
        })
    }

    /// The listening sockets of `family` (on `ports` only, when given, for TCP).
    pub fn dump(
        &mut self,
        family: Family,
        ports: &[u16],
        deadline: Deadline,
    ) -> Result<Vec<ListenSocket>, DumpError> {
        self.seq = self.seq.wrapping_add(1);
        let request = wire::request(family, self.seq, ports);
        sendto(
            &self.fd,
            &request,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(os("sendto(sock_diag)"))?;
        let mut sockets = Vec::new();
        for _ in 0..MAX_DATAGRAMS {
            let n = self.receive(deadline)?;
            if wire::parse(&self.buf[..n], self.seq, family, &mut sockets)? == Progress::Done {
                return Ok(sockets);
            }
            if sockets.len() > MAX_SOCKETS {
                return Err(DumpError::TooLarge);
            }
        }
        Err(DumpError::TooLarge)
    }

    /// One datagram into `buf`, waiting no longer than the deadline allows; its length.
    fn receive(&mut self, deadline: Deadline) -> Result<usize, DumpError> {
        let left = deadline.remaining();
        if left.is_zero() {
            return Err(DumpError::TimedOut);
        }
        // zero would mean "wait forever"
        let wait = left.max(Duration::from_millis(1));
        set_socket_timeout(&self.fd, Timeout::Recv, Some(wait)).map_err(os("SO_RCVTIMEO"))?;
        match recv(&self.fd, &mut self.buf[..], RecvFlags::TRUNC) {
            Ok((_, n)) if n > DATAGRAM => Err(WireError::Malformed("a datagram too large").into()),
            Ok((_, n)) => Ok(n),
            Err(e) if e == rustix::io::Errno::AGAIN => Err(DumpError::TimedOut),
            // a signal: nothing read, the loop asks again within its bounds
            Err(e) if e == rustix::io::Errno::INTR => Ok(0),
            Err(e) => Err(os("recv(sock_diag)")(e)),
        }
    }
}
