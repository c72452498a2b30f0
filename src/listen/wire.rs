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
        return Err(WireError::Malformed(
            "a socket message shorter than inet_diag_msg",
        ));
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
        return Err(WireError::Malformed(
            "a socket message shorter than unix_diag_msg",
        ));
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
        return Err(WireError::Malformed(
            "a unix socket name longer than sun_path",
        ));
    }
    let Some((queue, limit)) = rqlen else {
        return Err(WireError::Malformed(
            "a listening unix socket without its queue",
        ));
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
            return Err(WireError::Malformed(
                "an attribute length beyond its message",
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies recorded once on Linux 6.x (x86_64) with `/tmp/cap/cap.py`'s listeners: TCP
    /// 127.0.0.1:18091 (backlog 8, 3 waiting), dual-stack [::]:18092 (backlog 5, 1 waiting),
    /// unix /tmp/cap/php.sock (backlog 4, 2 waiting) and @check_workers (backlog 0, 1 waiting).
    /// Each is one datagram of sockets, then the NLMSG_DONE datagram.
    const V4: &str =
        "7c000000140002000100000015600000020a000046ab00007f000001000000000000000000000000\
        00000000000000000000000000000000000000000400000000000000000000000300000008000000\
        000000001c720000050008000000000008000f00000000000c001500010000000000000006001600\
        52000000";
    const V6: &str =
        "840000001400020002000000156000000a0a000046ac000000000000000000000000000000000000\
        00000000000000000000000000000000000000000500000000000000000000000100000005000000\
        000000001d720000050008000000000005000b000000000008000f00000000000c00150001000000\
        000000000600160012000000";
    const UNIX: &str = "4c00000014000200030000001560000001010a001e72000006000000000000001600000\
        02f746d702f6361702f7068702e736f636b0000000c000400020000000400000005000600000000004800000014\
        000200030000001560000001010a001f72000007000000000000001200000000636865636b5f776f726b657273\
        00000c00040001000000000000000500060000000000";
    /// NLMSG_DONE of sequence number 1.
    const DONE_1: &str = "1400000003000200010000001560000000000000";

    fn bytes(hex: &str) -> Vec<u8> {
        let hex: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
        hex.chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn parsed(
        hex: &str,
        seq: u32,
        family: Family,
    ) -> Result<(Progress, Vec<ListenSocket>), WireError> {
        let mut out = Vec::new();
        parse(&bytes(hex), seq, family, &mut out).map(|p| (p, out))
    }

    #[test]
    fn recorded_tcp_replies() {
        let (progress, v4) = parsed(V4, 1, Family::V4).unwrap();
        assert_eq!(progress, Progress::More);
        assert_eq!(
            v4,
            [ListenSocket {
                local: Local::Tcp("127.0.0.1:18091".parse().unwrap()),
                inode: 29212,
                queue: 3,
                limit: 8,
                v6only: None,
            }]
        );
        assert_eq!(
            parsed(DONE_1, 1, Family::V4).unwrap(),
            (Progress::Done, vec![])
        );
        let (_, v6) = parsed(V6, 2, Family::V6).unwrap();
        assert_eq!(v6[0].local, Local::Tcp("[::]:18092".parse().unwrap()));
        assert_eq!(
            (v6[0].queue, v6[0].limit, v6[0].v6only),
            (1, 5, Some(false))
        );
    }

    #[test]
    fn recorded_unix_reply() {
        let (_, unix) = parsed(UNIX, 3, Family::Unix).unwrap();
        let named: Vec<(String, u64, u32, u32)> = unix
            .iter()
            .map(|s| (s.local.to_string(), s.inode, s.queue, s.limit))
            .collect();
        assert_eq!(
            named,
            [
                ("/tmp/cap/php.sock".to_string(), 29214, 2, 4),
                ("@check_workers".to_string(), 29215, 1, 0),
            ]
        );
    }

    #[test]
    fn one_datagram_may_hold_sockets_and_done() {
        let both = format!("{V4}{DONE_1}");
        let (progress, sockets) = parsed(&both, 1, Family::V4).unwrap();
        assert_eq!((progress, sockets.len()), (Progress::Done, 1));
    }

    /// `V4` with its bytes changed: `at` offset, `with` the new bytes.
    fn broken(at: usize, with: &[u8]) -> Vec<u8> {
        let mut b = bytes(V4);
        b[at..at + with.len()].copy_from_slice(with);
        b
    }

    fn parse_bytes(b: &[u8]) -> Result<Progress, WireError> {
        parse(b, 1, Family::V4, &mut Vec::new())
    }

    #[test]
    fn hostile_lengths_are_errors_never_panics() {
        let whole = bytes(V4);
        // cut anywhere: a message claiming more than the datagram, or a short header
        for cut in 1..whole.len() {
            assert!(parse_bytes(&whole[..cut]).is_err(), "cut at {cut}");
        }
        // a length below the header, and one beyond the datagram
        assert!(parse_bytes(&broken(0, &4u32.to_ne_bytes())).is_err());
        assert!(parse_bytes(&broken(0, &u32::MAX.to_ne_bytes())).is_err());
        // a payload shorter than inet_diag_msg
        let mut short = broken(0, &(16u32 + 40).to_ne_bytes());
        short.truncate(56);
        assert_eq!(
            parse_bytes(&short),
            Err(WireError::Malformed(
                "a socket message shorter than inet_diag_msg"
            ))
        );
        // an attribute longer than its message, and one shorter than its own header
        assert!(parse_bytes(&broken(88, &200u16.to_ne_bytes())).is_err());
        assert!(parse_bytes(&broken(88, &2u16.to_ne_bytes())).is_err());
        // another family in the message than asked
        assert!(parse_bytes(&broken(16, &[10])).is_err());
        // a message of another request
        assert_eq!(
            parse_bytes(&broken(8, &7u32.to_ne_bytes())),
            Err(WireError::OtherSequence(7))
        );
    }

    #[test]
    fn errors_and_other_messages() {
        // NLMSG_ERROR with -EPERM, and one cut before its errno
        let mut error = bytes(DONE_1);
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse_bytes(&error), Err(WireError::Kernel(1)));
        error[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        assert_eq!(parse_bytes(&error), Err(WireError::Kernel(i32::MAX)));
        error[0..4].copy_from_slice(&16u32.to_ne_bytes());
        assert!(parse_bytes(&error[..16]).is_err());
        // NLMSG_NOOP is passed over; a socket not listening is skipped
        let mut noop = bytes(DONE_1);
        noop[4..6].copy_from_slice(&1u16.to_ne_bytes());
        assert_eq!(parse_bytes(&noop), Ok(Progress::More));
        let mut out = Vec::new();
        parse(&broken(17, &[1]), 1, Family::V4, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(parse_bytes(&[]), Ok(Progress::More));
    }

    #[test]
    fn a_listening_unix_socket_needs_its_queue_and_a_bounded_name() {
        let mut unix = bytes(UNIX);
        // the first socket's RQLEN attribute (at 16 + 16 + 24) renamed to an unknown one
        unix[16 + 16 + 24 + 2] = 9;
        let mut out = Vec::new();
        assert_eq!(
            parse(&unix, 3, Family::Unix, &mut out),
            Err(WireError::Malformed(
                "a listening unix socket without its queue"
            ))
        );
        let mut long = bytes(UNIX);
        // the name attribute claims 200 bytes: beyond the message
        long[32..34].copy_from_slice(&200u16.to_ne_bytes());
        assert!(parse(&long, 3, Family::Unix, &mut out).is_err());
    }

    #[test]
    fn requests_as_recorded() {
        let unix = request(Family::Unix, 3, &[]);
        assert_eq!(unix.len(), 16 + 24);
        assert_eq!(&unix[..8], &[40, 0, 0, 0, 20, 0, 1, 3]);
        let v4 = request(Family::V4, 1, &[18091, 18092]);
        // header, inet_diag_req_v2, the bytecode attribute: 2 blocks of 16 and a jump
        assert_eq!(v4.len(), 16 + 56 + 4 + 36);
        assert_eq!(&v4[16..20], &[2, 6, 0, 0]);
        assert_eq!(request(Family::V6, 1, &[]).len(), 16 + 56);
    }

    #[test]
    fn port_filter_chains_blocks_as_ss_does() {
        let op = |code: u8, yes: u8, no: u16| [[code, yes], no.to_ne_bytes()].concat();
        let one = [op(2, 8, 20), op(0, 0, 80), op(3, 8, 12), op(0, 0, 80)].concat();
        assert_eq!(port_filter(&[80]), one);
        let two = port_filter(&[80, 443]);
        assert_eq!(two.len(), 36);
        assert_eq!(&two[16..20], op(1, 4, 20).as_slice());
        assert!(port_filter(&[]).is_empty());
    }
}
