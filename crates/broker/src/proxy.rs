//! The PROXY protocol (HAProxy's v1 text and v2 binary headers), for
//! listeners behind a load balancer. `read_header` reads exactly one
//! header and not a byte more (v1 a byte at a time, at most 107; v2 its
//! announced length, at most 4096), so TLS, WebSocket or MQTT follows on
//! the same stream. Anything malformed is an error and the connection is
//! dropped; the caller bounds the time it may take.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte signature that starts every v2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line allowed by the spec, `PROXY` and the final CRLF included.
const V1_MAX_LINE: usize = 107;
/// Largest v2 address/TLV block accepted (the spec allows up to 65535).
const V2_MAX_LEN: usize = 4096;
/// Bytes read before deciding between v1 and v2.
const PREFIX_LEN: usize = 5;
/// Size of the v2 fixed header (signature, version/command, family, length).
const V2_FIXED_LEN: usize = 16;

/// What the proxy said about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The original client's address; None for v1 `UNKNOWN`, v2 `LOCAL` command, or v2
    /// AF_UNSPEC/AF_UNIX (then the caller keeps the TCP peer address).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, under the same rules as `source`.
    pub destination: Option<SocketAddr>,
    /// Protocol version of the header: 1 or 2.
    pub version: u8,
}

/// Why a PROXY header could not be read.
#[derive(Debug)]
pub enum ProxyError {
    /// The stream does not start with a PROXY v1 or v2 signature.
    NotProxy,
    /// No CRLF within the first 107 bytes of a v1 header.
    V1TooLong,
    /// A v1 line that breaks the grammar; the text says which part.
    V1Malformed(&'static str),
    /// A v2 header whose version nibble is not 2.
    V2UnsupportedVersion(u8),
    /// A v2 header whose command nibble is neither LOCAL (0) nor PROXY (1).
    V2UnsupportedCommand(u8),
    /// A v2 PROXY header with an address family/protocol byte the spec does not define.
    V2UnsupportedFamily(u8),
    /// A v2 header announcing more than 4096 bytes after the fixed part.
    V2TooLarge(usize),
    /// The v2 block is shorter than the addresses of its family.
    V2AddressTooShort {
        /// Length of the whole block after the fixed header.
        len: usize,
        /// "IPv4", "IPv6" or "UNIX".
        family: &'static str,
    },
    /// A TLV (or its 3-byte type/length) runs past the end of the v2 block.
    V2TlvOverrun,
    /// The peer closed the connection before the header was complete.
    Closed,
    /// Any other I/O error.
    Io(io::Error),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotProxy => write!(f, "not a PROXY protocol header"),
            Self::V1TooLong => write!(f, "PROXY v1 line longer than {V1_MAX_LINE} bytes"),
            Self::V1Malformed(what) => write!(f, "malformed PROXY v1 header: {what}"),
            Self::V2UnsupportedVersion(v) => write!(f, "PROXY v2 version {v} is not supported"),
            Self::V2UnsupportedCommand(c) => write!(f, "PROXY v2 command {c} is not supported"),
            Self::V2UnsupportedFamily(b) => {
                write!(
                    f,
                    "PROXY v2 address family/protocol 0x{b:02x} is not supported"
                )
            }
            Self::V2TooLarge(n) => write!(
                f,
                "PROXY v2 header of {n} bytes is larger than the {V2_MAX_LEN} allowed"
            ),
            Self::V2AddressTooShort { len, family } => write!(
                f,
                "PROXY v2 address block ({len} bytes) shorter than {family} addresses need"
            ),
            Self::V2TlvOverrun => write!(f, "PROXY v2 TLV length overruns the header"),
            Self::Closed => write!(f, "connection closed inside the PROXY header"),
            Self::Io(e) => write!(f, "I/O error while reading the PROXY header: {e}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ProxyError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Self::Closed
        } else {
            Self::Io(e)
        }
    }
}

/// Reads exactly one PROXY header from the start of `io` and nothing more
/// (the bytes after it belong to TLS/WebSocket/MQTT, so it must NOT over-read: no buffering beyond the header).
pub async fn read_header<R: AsyncRead + Unpin>(io: &mut R) -> Result<ProxyHeader, ProxyError> {
    let mut prefix = [0u8; PREFIX_LEN];
    io.read_exact(&mut prefix).await?;
    if &prefix == b"PROXY" {
        read_v1(io).await
    } else if prefix[..] == V2_SIGNATURE[..PREFIX_LEN] {
        read_v2(io, prefix).await
    } else {
        Err(ProxyError::NotProxy)
    }
}

/// Reads the rest of a v1 line (after `PROXY`) one byte at a time, then parses it.
async fn read_v1<R: AsyncRead + Unpin>(io: &mut R) -> Result<ProxyHeader, ProxyError> {
    let mut line = Vec::with_capacity(V1_MAX_LINE);
    line.extend_from_slice(b"PROXY");
    loop {
        if line.len() >= V1_MAX_LINE {
            return Err(ProxyError::V1TooLong);
        }
        let byte = io.read_u8().await?;
        line.push(byte);
        if byte == b'\n' {
            if line.ends_with(b"\r\n") {
                break;
            }
            return Err(ProxyError::V1Malformed("line feed without carriage return"));
        }
    }
    line.truncate(line.len() - 2);
    let text = std::str::from_utf8(&line)
        .map_err(|_| ProxyError::V1Malformed("line is not ASCII text"))?;
    parse_v1(text)
}

/// Parses a v1 line without its CRLF, e.g. `PROXY TCP4 1.2.3.4 5.6.7.8 1000 1883`.
fn parse_v1(line: &str) -> Result<ProxyHeader, ProxyError> {
    if line.contains('\r') {
        return Err(ProxyError::V1Malformed("stray carriage return"));
    }
    let rest = line.strip_prefix("PROXY ").ok_or(ProxyError::V1Malformed(
        "PROXY must be followed by one space",
    ))?;
    if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
        return Ok(ProxyHeader {
            source: None,
            destination: None,
            version: 1,
        });
    }
    let (proto, addrs) = rest
        .split_once(' ')
        .ok_or(ProxyError::V1Malformed("missing addresses"))?;
    let ipv6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyError::V1Malformed(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let fields: Vec<&str> = addrs.split(' ').collect();
    let [src_ip, dst_ip, src_port, dst_port] = fields[..] else {
        return Err(ProxyError::V1Malformed(
            "expected source and destination addresses and ports separated by single spaces",
        ));
    };
    let (bad_src, bad_dst) = if ipv6 {
        (
            "source address is not a valid IPv6 address",
            "destination address is not a valid IPv6 address",
        )
    } else {
        (
            "source address is not a valid IPv4 address",
            "destination address is not a valid IPv4 address",
        )
    };
    let src_ip = parse_v1_ip(src_ip, ipv6).ok_or(ProxyError::V1Malformed(bad_src))?;
    let dst_ip = parse_v1_ip(dst_ip, ipv6).ok_or(ProxyError::V1Malformed(bad_dst))?;
    let src_port = parse_v1_port(src_port)?;
    let dst_port = parse_v1_port(dst_port)?;
    Ok(ProxyHeader {
        source: Some(SocketAddr::new(src_ip, src_port)),
        destination: Some(SocketAddr::new(dst_ip, dst_port)),
        version: 1,
    })
}

/// Rust's parsers are strict already: no leading zeros in IPv4 octets, no IPv6 zone ids.
fn parse_v1_ip(text: &str, ipv6: bool) -> Option<IpAddr> {
    if ipv6 {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

fn parse_v1_port(text: &str) -> Result<u16, ProxyError> {
    let bad_port = || ProxyError::V1Malformed("port is not a decimal number 0-65535");
    // u16::from_str would accept a leading '+'; only plain digits are allowed.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_port());
    }
    text.parse().map_err(|_| bad_port())
}

/// Reads the rest of a v2 header whose first 5 bytes (`prefix`) matched the signature.
async fn read_v2<R: AsyncRead + Unpin>(
    io: &mut R,
    prefix: [u8; PREFIX_LEN],
) -> Result<ProxyHeader, ProxyError> {
    let mut fixed = [0u8; V2_FIXED_LEN];
    fixed[..PREFIX_LEN].copy_from_slice(&prefix);
    io.read_exact(&mut fixed[PREFIX_LEN..]).await?;
    if fixed[..12] != V2_SIGNATURE {
        return Err(ProxyError::NotProxy);
    }
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(ProxyError::V2UnsupportedVersion(version));
    }
    let local = match fixed[12] & 0x0F {
        0 => true,
        1 => false,
        other => return Err(ProxyError::V2UnsupportedCommand(other)),
    };
    let family = fixed[13];
    // Address bytes the family needs; None for AF_UNSPEC (nothing to parse).
    let addr_len = match family {
        0x00 => None,
        0x11 | 0x12 => Some((12, "IPv4")),
        0x21 | 0x22 => Some((36, "IPv6")),
        0x31 | 0x32 => Some((216, "UNIX")),
        // The spec says a LOCAL header's family must be ignored.
        _ if local => None,
        other => return Err(ProxyError::V2UnsupportedFamily(other)),
    };
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > V2_MAX_LEN {
        return Err(ProxyError::V2TooLarge(len));
    }
    let mut block = vec![0u8; len];
    io.read_exact(&mut block).await?;

    let unknown = ProxyHeader {
        source: None,
        destination: None,
        version: 2,
    };
    // LOCAL (health checks from the proxy itself): the whole block is to be discarded.
    if local {
        return Ok(unknown);
    }
    let Some((need, name)) = addr_len else {
        return Ok(unknown);
    };
    if block.len() < need {
        return Err(ProxyError::V2AddressTooShort { len, family: name });
    }
    check_tlvs(&block[need..])?;
    let (source, destination) = match family & 0xF0 {
        0x10 => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            (
                SocketAddr::new(ip(0), be16(&block, 8)),
                SocketAddr::new(ip(4), be16(&block, 10)),
            )
        }
        0x20 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            (
                SocketAddr::new(ip(0), be16(&block, 32)),
                SocketAddr::new(ip(16), be16(&block, 34)),
            )
        }
        // AF_UNIX: no IP address to report.
        _ => return Ok(unknown),
    };
    Ok(ProxyHeader {
        source: Some(source),
        destination: Some(destination),
        version: 2,
    })
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Walks the TLVs after the addresses; each must fit entirely inside the block.
fn check_tlvs(mut rest: &[u8]) -> Result<(), ProxyError> {
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(ProxyError::V2TlvOverrun);
        }
        let value_len = usize::from(be16(rest, 1));
        let end = 3 + value_len;
        if end > rest.len() {
            return Err(ProxyError::V2TlvOverrun);
        }
        rest = &rest[end..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncWriteExt, ReadBuf};

    /// An MQTT 3.1.1 CONNECT that must stay unread after the header.
    const CONNECT: &[u8] = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd";

    fn with_connect(header: &[u8]) -> Vec<u8> {
        let mut data = header.to_vec();
        data.extend_from_slice(CONNECT);
        data
    }

    /// Parses `header` followed by CONNECT and checks CONNECT is left unread.
    async fn parse_ok(header: &[u8]) -> ProxyHeader {
        let data = with_connect(header);
        let mut rd: &[u8] = &data;
        let parsed = read_header(&mut rd).await.expect("header should parse");
        assert_eq!(rd, CONNECT, "bytes after the header must stay unread");
        parsed
    }

    async fn parse_err(data: &[u8]) -> ProxyError {
        let mut rd: &[u8] = data;
        read_header(&mut rd)
            .await
            .expect_err("header should be rejected")
    }

    fn sa(text: &str) -> Option<SocketAddr> {
        Some(text.parse().expect("test address"))
    }

    /// Builds a v2 header: signature, version/command byte, family byte, block.
    fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(family);
        let len = u16::try_from(block.len()).expect("test block fits u16");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// 192.0.2.1:56324 -> 198.51.100.7:1883
    fn ipv4_block() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 1, 198, 51, 100, 7];
        b.extend_from_slice(&56324u16.to_be_bytes());
        b.extend_from_slice(&1883u16.to_be_bytes());
        b
    }

    /// [2001:db8::1]:40000 -> [2001:db8::2]:8883
    fn ipv6_block() -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::1".parse().expect("ip");
        let dst: Ipv6Addr = "2001:db8::2".parse().expect("ip");
        let mut b = src.octets().to_vec();
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(&40000u16.to_be_bytes());
        b.extend_from_slice(&8883u16.to_be_bytes());
        b
    }

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        let len = u16::try_from(value.len()).expect("tlv fits");
        t.extend_from_slice(&len.to_be_bytes());
        t.extend_from_slice(value);
        t
    }

    // ---- v1 ----

    #[tokio::test]
    async fn v1_tcp4() {
        let h = parse_ok(b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n").await;
        assert_eq!(
            h,
            ProxyHeader {
                source: sa("192.0.2.1:56324"),
                destination: sa("198.51.100.7:1883"),
                version: 1,
            }
        );
    }

    #[tokio::test]
    async fn v1_tcp6() {
        let h = parse_ok(b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n").await;
        assert_eq!(h.source, sa("[2001:db8::1]:0"));
        assert_eq!(h.destination, sa("[::ffff:10.0.0.1]:65535"));
        assert_eq!(h.version, 1);
    }

    #[tokio::test]
    async fn v1_unknown() {
        let bare = parse_ok(b"PROXY UNKNOWN\r\n").await;
        let trailing = parse_ok(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").await;
        let expected = ProxyHeader {
            source: None,
            destination: None,
            version: 1,
        };
        assert_eq!(bare, expected);
        assert_eq!(trailing, expected);
    }

    #[tokio::test]
    async fn v1_line_of_exactly_107_bytes_is_accepted() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LINE - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(line.len(), V1_MAX_LINE);
        assert_eq!(parse_ok(&line).await.source, None);
    }

    #[tokio::test]
    async fn v1_without_crlf_in_107_bytes_is_rejected_without_over_reading() {
        let mut data = b"PROXY UNKNOWN ".to_vec();
        data.resize(200, b'x');
        data.extend_from_slice(b"\r\n");
        let mut rd: &[u8] = &data;
        let err = read_header(&mut rd).await.expect_err("too long");
        assert!(matches!(err, ProxyError::V1TooLong));
        assert_eq!(err.to_string(), "PROXY v1 line longer than 107 bytes");
        assert_eq!(rd.len(), data.len() - V1_MAX_LINE);
    }

    #[tokio::test]
    async fn v1_garbage_is_rejected() {
        let cases: &[&[u8]] = &[
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 2001:db8::2 1 2\r\n",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY\r\n",
            b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n",
        ];
        for case in cases {
            let err = parse_err(&with_connect(case)).await;
            assert!(
                matches!(err, ProxyError::V1Malformed(_)),
                "{:?} gave {err:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[tokio::test]
    async fn v1_error_messages_name_the_problem() {
        let err = parse_err(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n").await;
        assert_eq!(
            err.to_string(),
            "malformed PROXY v1 header: source address is not a valid IPv4 address"
        );
        let err = parse_err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n").await;
        assert_eq!(
            err.to_string(),
            "malformed PROXY v1 header: port is not a decimal number 0-65535"
        );
    }

    // ---- v2 ----

    #[tokio::test]
    async fn v2_ipv4() {
        let h = parse_ok(&v2(0x21, 0x11, &ipv4_block())).await;
        assert_eq!(
            h,
            ProxyHeader {
                source: sa("192.0.2.1:56324"),
                destination: sa("198.51.100.7:1883"),
                version: 2,
            }
        );
        // UDP over IPv4 carries the same addresses.
        let udp = parse_ok(&v2(0x21, 0x12, &ipv4_block())).await;
        assert_eq!(udp.source, sa("192.0.2.1:56324"));
    }

    #[tokio::test]
    async fn v2_ipv4_with_tlvs() {
        let mut block = ipv4_block();
        block.extend(tlv(0x01, b"mqtt")); // ALPN
        block.extend(tlv(0x04, b"")); // NOOP, empty
        block.extend(tlv(0x20, &[0x01, 0, 0, 0, 0])); // SSL
        let h = parse_ok(&v2(0x21, 0x11, &block)).await;
        assert_eq!(h.source, sa("192.0.2.1:56324"));
        assert_eq!(h.destination, sa("198.51.100.7:1883"));
    }

    #[tokio::test]
    async fn v2_ipv6() {
        let h = parse_ok(&v2(0x21, 0x21, &ipv6_block())).await;
        assert_eq!(
            h,
            ProxyHeader {
                source: sa("[2001:db8::1]:40000"),
                destination: sa("[2001:db8::2]:8883"),
                version: 2,
            }
        );
    }

    #[tokio::test]
    async fn v2_ipv6_with_tlvs() {
        let mut block = ipv6_block();
        block.extend(tlv(0x02, b"broker.example"));
        block.extend(tlv(0xE0, &[7u8; 300]));
        let h = parse_ok(&v2(0x21, 0x21, &block)).await;
        assert_eq!(h.source, sa("[2001:db8::1]:40000"));
    }

    #[tokio::test]
    async fn v2_local_ignores_addresses() {
        let expected = ProxyHeader {
            source: None,
            destination: None,
            version: 2,
        };
        assert_eq!(parse_ok(&v2(0x20, 0x00, &[])).await, expected);
        assert_eq!(parse_ok(&v2(0x20, 0x11, &ipv4_block())).await, expected);
        // Even an odd family and a short block are discarded for LOCAL.
        assert_eq!(parse_ok(&v2(0x20, 0x77, &[1, 2, 3])).await, expected);
    }

    #[tokio::test]
    async fn v2_unspec_and_unix_have_no_address() {
        let h = parse_ok(&v2(0x21, 0x00, &[])).await;
        assert_eq!((h.source, h.destination, h.version), (None, None, 2));
        let mut unix = vec![0u8; 216];
        unix[..9].copy_from_slice(b"/tmp/sock");
        unix.extend(tlv(0x05, b"id"));
        let h = parse_ok(&v2(0x21, 0x31, &unix)).await;
        assert_eq!((h.source, h.destination), (None, None));
    }

    #[tokio::test]
    async fn v2_unknown_family_is_rejected() {
        let err = parse_err(&v2(0x21, 0x13, &ipv4_block())).await;
        assert!(matches!(err, ProxyError::V2UnsupportedFamily(0x13)));
    }

    #[tokio::test]
    async fn v2_version_3_is_rejected() {
        let err = parse_err(&v2(0x31, 0x11, &ipv4_block())).await;
        assert!(matches!(err, ProxyError::V2UnsupportedVersion(3)));
        assert_eq!(err.to_string(), "PROXY v2 version 3 is not supported");
    }

    #[tokio::test]
    async fn v2_unknown_command_is_rejected() {
        let err = parse_err(&v2(0x22, 0x11, &ipv4_block())).await;
        assert!(matches!(err, ProxyError::V2UnsupportedCommand(2)));
    }

    #[tokio::test]
    async fn v2_tlv_overrunning_the_block_is_rejected() {
        // mosquitto 21-proxy-v2-long-tlv: TLV claims more than the block holds.
        let mut block = ipv4_block();
        block.extend_from_slice(&[0x02, 0x00, 0x10, b'a', b'b']);
        let err = parse_err(&with_connect(&v2(0x21, 0x11, &block))).await;
        assert!(matches!(err, ProxyError::V2TlvOverrun));
        assert_eq!(err.to_string(), "PROXY v2 TLV length overruns the header");

        // A TLV cut inside its own type/length.
        let mut block = ipv6_block();
        block.extend_from_slice(&[0x02, 0x00]);
        let err = parse_err(&with_connect(&v2(0x21, 0x21, &block))).await;
        assert!(matches!(err, ProxyError::V2TlvOverrun));
    }

    #[tokio::test]
    async fn v2_length_above_cap_is_rejected_before_reading_it() {
        let block = vec![0u8; V2_MAX_LEN + 1];
        let data = v2(0x21, 0x11, &block);
        let mut rd: &[u8] = &data;
        let err = read_header(&mut rd).await.expect_err("too large");
        assert!(matches!(err, ProxyError::V2TooLarge(4097)));
        assert_eq!(
            err.to_string(),
            "PROXY v2 header of 4097 bytes is larger than the 4096 allowed"
        );
        assert_eq!(rd.len(), block.len(), "the block must not be read");

        // Exactly at the cap is fine.
        let mut block = ipv4_block();
        block.extend(tlv(0x04, &vec![0u8; V2_MAX_LEN - 12 - 3]));
        assert_eq!(block.len(), V2_MAX_LEN);
        assert!(parse_ok(&v2(0x21, 0x11, &block)).await.source.is_some());
    }

    #[tokio::test]
    async fn v2_address_block_too_short_is_rejected() {
        let err = parse_err(&with_connect(&v2(0x21, 0x21, &ipv4_block()))).await;
        assert!(matches!(
            err,
            ProxyError::V2AddressTooShort {
                len: 12,
                family: "IPv6"
            }
        ));
        assert_eq!(
            err.to_string(),
            "PROXY v2 address block (12 bytes) shorter than IPv6 addresses need"
        );
        let err = parse_err(&with_connect(&v2(0x21, 0x11, &[1, 2, 3, 4]))).await;
        assert!(matches!(
            err,
            ProxyError::V2AddressTooShort {
                len: 4,
                family: "IPv4"
            }
        ));
        let err = parse_err(&with_connect(&v2(0x21, 0x31, &[0u8; 100]))).await;
        assert!(matches!(
            err,
            ProxyError::V2AddressTooShort { family: "UNIX", .. }
        ));
    }

    #[tokio::test]
    async fn v2_signature_mismatch_after_prefix_is_not_proxy() {
        let mut data = v2(0x21, 0x11, &ipv4_block());
        data[9] = b'X'; // "QUIT" -> "QXIT"
        assert!(matches!(parse_err(&data).await, ProxyError::NotProxy));
    }

    // ---- neither ----

    #[tokio::test]
    async fn mqtt_connect_is_not_proxy() {
        let err = parse_err(CONNECT).await;
        assert!(matches!(err, ProxyError::NotProxy));
        assert_eq!(err.to_string(), "not a PROXY protocol header");
        // TLS ClientHello and an HTTP upgrade are not PROXY either.
        assert!(matches!(
            parse_err(b"\x16\x03\x01\x02\x00\x01").await,
            ProxyError::NotProxy
        ));
        assert!(matches!(
            parse_err(b"GET /mqtt HTTP/1.1\r\n").await,
            ProxyError::NotProxy
        ));
        assert!(matches!(
            parse_err(b"PROXZ TCP4\r\n").await,
            ProxyError::NotProxy
        ));
    }

    #[tokio::test]
    async fn closing_mid_header_is_reported() {
        let v1 = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 1883\r\n";
        let v2_full = v2(0x21, 0x11, &ipv4_block());
        let cases: Vec<&[u8]> = vec![
            b"",
            b"PRO",
            &v1[..20],
            &v1[..v1.len() - 1],
            &v2_full[..3],
            &v2_full[..10],
            &v2_full[..16],
            &v2_full[..v2_full.len() - 1],
        ];
        for case in cases {
            let err = parse_err(case).await;
            assert!(matches!(err, ProxyError::Closed), "{case:?} gave {err:?}");
            assert_eq!(err.to_string(), "connection closed inside the PROXY header");
        }
    }

    #[tokio::test]
    async fn other_io_errors_are_passed_through() {
        struct Failing;
        impl AsyncRead for Failing {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(io::Error::from(io::ErrorKind::ConnectionReset)))
            }
        }
        let err = read_header(&mut Failing).await.expect_err("io error");
        assert!(matches!(&err, ProxyError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset));
        assert!(std::error::Error::source(&err).is_some());
    }

    /// Sends `header` + CONNECT one byte per write through a duplex and parses it.
    async fn parse_trickled(header: Vec<u8>) -> ProxyHeader {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for byte in with_connect(&header) {
                client.write_all(&[byte]).await.expect("write");
                tokio::task::yield_now().await;
            }
            client
        });
        let parsed = read_header(&mut server).await.expect("parse");
        let client = writer.await.expect("writer task");
        drop(client);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.expect("read rest");
        assert_eq!(rest, CONNECT, "bytes after the header must stay unread");
        parsed
    }

    #[tokio::test]
    async fn byte_by_byte_delivery_parses() {
        let h = parse_trickled(b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 8883\r\n".to_vec()).await;
        assert_eq!(h.source, sa("[2001:db8::1]:40000"));
        let mut block = ipv4_block();
        block.extend(tlv(0x01, b"mqtt"));
        let h = parse_trickled(v2(0x21, 0x11, &block)).await;
        assert_eq!(h.source, sa("192.0.2.1:56324"));
        assert_eq!(h.version, 2);
    }
}
