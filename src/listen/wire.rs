//! The sock_diag wire format, pure: the dump requests as bytes, and the kernel's replies into
//! [`ListenSocket`]s. No socket here, so every reply can be tested as recorded bytes.
//!
//! The replies come from the kernel, but they are parsed as if anyone had written them: every
//! length is checked against what is left before it is used, a message that claims more bytes
//! than it has is an error (never a panic, never a read past the buffer), and numbers are
//! taken as the kernel defines them (native-endian, the ports and addresses big-endian).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Family, ListenSocket, Local};

/// `nlmsghdr`: length, type, flags, sequence number, port id.
const HEADER: usize = 16;
/// `NLMSG_ERROR`: an errno (0: an acknowledgement) and the request it answers.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`: data lost.
const NLMSG_OVERRUN: u16 = 4;
/// `SOCK_DIAG_BY_FAMILY`: a request, and each socket of the reply.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST | NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
const REQUEST_DUMP: u16 = 0x1 | 0x300;
/// `TCP_LISTEN`, the state unix sockets use too.
const LISTEN: u8 = 10;
/// `inet_diag_req_v2`: family, protocol, extensions, pad, states, `inet_diag_sockid`.
const INET_REQ: usize = 56;
/// `inet_diag_msg`: family, state, timer, retrans, `inet_diag_sockid` (48), expires, rqueue,
/// wqueue, uid, inode.
const INET_MSG: usize = 72;
/// `unix_diag_req`: family, protocol, pad, states, inode, show, cookie.
const UNIX_REQ: usize = 24;
/// `unix_diag_msg`: family, type, state, pad, inode, cookie.
const UNIX_MSG: usize = 16;
/// `IPPROTO_TCP`.
const TCP: u8 = 6;
/// `INET_DIAG_REQ_BYTECODE`: the request's filter program.
const REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_SKV6ONLY`: whether an IPv6 listening socket refuses IPv4 (IPV6_V6ONLY).
const SKV6ONLY: u16 = 11;
/// `UNIX_DIAG_NAME`: the path (or abstract name) a unix socket is bound to.
const UNIX_NAME: u16 = 0;
/// `UNIX_DIAG_RQLEN`: for a listening socket, its accept queue and backlog limit.
const UNIX_RQLEN: u16 = 4;
/// `UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN`.
const UNIX_SHOW: u32 = 0x01 | 0x10;
/// `SOCK_STREAM`, `SOCK_SEQPACKET`: the unix socket types that listen.
const UNIX_LISTENING_TYPES: [u8; 2] = [1, 5];
/// `INET_DIAG_BC_S_GE`, `INET_DIAG_BC_S_LE`, `INET_DIAG_BC_JMP`: the filter's operations.
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_JMP: u8 = 1;
/// The longest `sun_path`.
const UNIX_PATH_MAX: usize = 108;

/// Why a reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// the kernel refused the request: its errno
    Kernel(i32),
    /// the bytes are not a well-formed reply: what is wrong
    Malformed(&'static str),
    /// a message of another request (its sequence number)
    OtherSequence(u32),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Kernel(errno) => write!(
                f,
                "the kernel refused the request: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            WireError::Malformed(what) => write!(f, "malformed reply: {what}"),
            WireError::OtherSequence(seq) => {
                write!(f, "malformed reply: a message of another request ({seq})")
            }
        }
    }
}

/// How far a dump got after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// more datagrams follow
    More,
    /// `NLMSG_DONE` was read
    Done,
}

/// The dump request of the listening sockets of `family`, sequence number `seq`. For TCP,
/// `ports` (when not empty) become a filter program the kernel runs on each socket, so only
/// sockets on those ports are copied out.
pub fn request(family: Family, seq: u32, ports: &[u16]) -> Vec<u8> {
    let mut body = Vec::with_capacity(INET_REQ);
    match family {
        Family::Unix => {
            body.push(libc_family(family));
            body.extend_from_slice(&[0, 0, 0]);
            body.extend_from_slice(&(1u32 << LISTEN).to_ne_bytes());
            body.extend_from_slice(&0u32.to_ne_bytes());
            body.extend_from_slice(&UNIX_SHOW.to_ne_bytes());
            body.extend_from_slice(&[0xff; 8]);
            debug_assert_eq!(body.len(), UNIX_REQ);
        }
        Family::V4 | Family::V6 => {
            body.extend_from_slice(&[libc_family(family), TCP, 0, 0]);
            body.extend_from_slice(&(1u32 << LISTEN).to_ne_bytes());
            // inet_diag_sockid: all zero but the cookie, INET_DIAG_NOCOOKIE
            body.extend_from_slice(&[0; 40]);
            body.extend_from_slice(&[0xff; 8]);
            debug_assert_eq!(body.len(), INET_REQ);
            if !ports.is_empty() {
                let program = port_filter(ports);
                let len = 4 + program.len();
                body.extend_from_slice(&(len as u16).to_ne_bytes());
                body.extend_from_slice(&REQ_BYTECODE.to_ne_bytes());
                body.extend_from_slice(&program);
            }
        }
    }
    let mut message = Vec::with_capacity(HEADER + body.len());
    message.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&REQUEST_DUMP.to_ne_bytes());
    message.extend_from_slice(&seq.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&body);
    message
}

/// `AF_UNIX`, `AF_INET`, `AF_INET6`.
fn libc_family(family: Family) -> u8 {
    match family {
        Family::Unix => 1,
        Family::V4 => 2,
        Family::V6 => 10,
    }
}

/// The inet_diag filter program "local port is one of `ports`", as `ss` builds `sport = :A or
/// sport = :B`: per port a block `S_GE p; S_LE p` (a jump past the program's end + 4 rejects,
/// landing exactly on its end accepts), the blocks chained with a `JMP` so that a failing
/// block falls through to the next one and a matching one jumps to the end. The kernel's
/// audit walks the `yes` offsets, so they step through every operation in order.
pub fn port_filter(ports: &[u16]) -> Vec<u8> {
    let Some((&port, rest)) = ports.split_first() else {
        return Vec::new();
    };
    let mut program = Vec::new();
    let op = |program: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        program.push(code);
        program.push(yes);
        program.extend_from_slice(&no.to_ne_bytes());
    };
    // S_GE at 0 and S_LE at 8, each followed by the port in the `no` field of a second op
    op(&mut program, BC_S_GE, 8, 20);
    op(&mut program, 0, 0, port);
    op(&mut program, BC_S_LE, 8, 12);
    op(&mut program, 0, 0, port);
    if rest.is_empty() {
        return program;
    }
    let tail = port_filter(rest);
    // matched: over the rest to the end; its `yes` of 4 is what the audit walks
    op(&mut program, BC_JMP, 4, (tail.len() + 4) as u16);
    program.extend_from_slice(&tail);
    program
}

/// One datagram of the reply to request `seq` for `family`: its listening sockets are added
/// to `out`. Other sockets (another state or type) are skipped.
pub fn parse(
    bytes: &[u8],
    seq: u32,
    family: Family,
    out: &mut Vec<ListenSocket>,
) -> Result<Progress, WireError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < HEADER {
            return Err(WireError::Malformed("a message shorter than its header"));
        }
        let len = u32_at(rest, 0) as usize;
        if len < HEADER || len > rest.len() {
            return Err(WireError::Malformed("a message length beyond the datagram"));
        }
        let (kind, msg_seq) = (u16_at(rest, 4), u32_at(rest, 8));
        if msg_seq != seq {
            return Err(WireError::OtherSequence(msg_seq));
        }
        let payload = &rest[HEADER..len];
        match kind {
            NLMSG_DONE => return Ok(Progress::Done),
            NLMSG_ERROR => return Err(error(payload)),
            NLMSG_OVERRUN => return Err(WireError::Malformed("the kernel lost data (overrun)")),
            SOCK_DIAG_BY_FAMILY => out.extend(socket(payload, family)?),
            // NLMSG_NOOP and anything newer: nothing for us
            _ => {}
        }
        // messages are 4-byte aligned; the last one may end without its padding
        rest = &rest[align(len).min(rest.len())..];
    }
    Ok(Progress::More)
}

/// The errno of an `NLMSG_ERROR`; an acknowledgement (0) ends nothing we asked for.
fn error(payload: &[u8]) -> WireError {
    if payload.len() < 4 {
        return WireError::Malformed("an error message without its errno");
    }
    match i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]) {
        0 => WireError::Malformed("an acknowledgement where the dump was expected"),
        errno => WireError::Kernel(errno.checked_neg().unwrap_or(i32::MAX)),
    }
}

/// One socket's message.
fn socket(payload: &[u8], family: Family) -> Result<Option<ListenSocket>, WireError> {
    match family {
        Family::Unix => unix_socket(payload),
        Family::V4 | Family::V6 => inet_socket(payload, family),
    }
}

/// An `inet_diag_msg`: for a listening socket `idiag_rqueue` is the accept queue and
/// `idiag_wqueue` its backlog limit.
fn inet_socket(payload: &[u8], family: Family) -> Result<Option<ListenSocket>, WireError> {
    if payload.len() < INET_MSG {
        return Err(WireError::Malformed("a socket message shorter than inet_diag_msg"));
    }
    if payload[0] != libc_family(family) {
        return Err(WireError::Malformed("a socket of another family"));
    }
    if payload[1] != LISTEN {
        return Ok(None);
    }
    let port = u16::from_be_bytes([payload[4], payload[5]]);
    let src = &payload[8..24];
    let ip = match family {
        Family::V4 => Ipv4Addr::new(src[0], src[1], src[2], src[3]).into(),
        _ => Ipv6Addr::from(<[u8; 16]>::try_from(src).unwrap_or_default()).into(),
    };
    let mut v6only = None;
    each_attribute(&payload[INET_MSG..], |kind, value| {
        if kind == SKV6ONLY && !value.is_empty() {
            v6only = Some(value[0] != 0);
        }
    })?;
    Ok(Some(ListenSocket {
        local: Local::Tcp(SocketAddr::new(ip, port)),
        inode: u64::from(u32_at(payload, 68)),
        queue: u32_at(payload, 56),
        limit: u32_at(payload, 60),
        v6only,
    }))
}

/// A `unix_diag_msg` and its attributes: the name, and `UNIX_DIAG_RQLEN` (accept queue,
/// backlog limit). A listening socket without the latter is malformed: its queue is unknown.
fn unix_socket(payload: &[u8]) -> Result<Option<ListenSocket>, WireError> {
    if payload.len() < UNIX_MSG {
        return Err(WireError::Malformed("a socket message shorter than unix_diag_msg"));
    }
    if payload[0] != libc_family(Family::Unix) {
        return Err(WireError::Malformed("a socket of another family"));
    }
    if payload[2] != LISTEN || !UNIX_LISTENING_TYPES.contains(&payload[1]) {
        return Ok(None);
    }
    let mut name = Vec::new();
    let mut rqlen = None;
    let mut bad_name = false;
    each_attribute(&payload[UNIX_MSG..], |kind, value| match kind {
        UNIX_NAME if value.len() <= UNIX_PATH_MAX => name = value.to_vec(),
        UNIX_NAME => bad_name = true,
        UNIX_RQLEN if value.len() >= 8 => rqlen = Some((u32_at(value, 0), u32_at(value, 4))),
        _ => {}
    })?;
    if bad_name {
        return Err(WireError::Malformed("a unix socket name longer than sun_path"));
    }
    let Some((queue, limit)) = rqlen else {
        return Err(WireError::Malformed("a listening unix socket without its queue"));
    };
    Ok(Some(ListenSocket {
        local: Local::Unix(name),
        inode: u64::from(u32_at(payload, 4)),
        queue,
        limit,
        v6only: None,
    }))
}

/// Calls `each` with the type and value of every attribute (`struct rtattr`: length, type,
/// value, padded to 4 bytes) of `bytes`.
fn each_attribute(mut bytes: &[u8], mut each: impl FnMut(u16, &[u8])) -> Result<(), WireError> {
    while bytes.len() >= 4 {
        let len = usize::from(u16_at(bytes, 0));
        if len < 4 || len > bytes.len() {
            return Err(WireError::Malformed("an attribute length beyond its message"));
        }
        // the top bits are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER)
        each(u16_at(bytes, 2) & 0x3fff, &bytes[4..len]);
        bytes = &bytes[align(len).min(bytes.len())..];
    }
    Ok(())
}

fn align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Callers have checked that `bytes` holds `at + 2`.
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

/// Callers have checked that `bytes` holds `at + 4`.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
