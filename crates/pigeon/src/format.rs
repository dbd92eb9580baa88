//! How `pigeon sub` (and `pigeon rr`) print a received message: the default
//! output (the payload, or `topic payload` with `-v`) and `-F` formats, byte
//! for byte as mosquitto_sub 2.0.11 prints them (with the libcjson 1.7.15 that
//! Debian builds it against doing the JSON of `%j` and `%J`).
//!
//! A `-F` format has three families of escapes:
//!
//! * `%` codes print a part of the message: `%% %t %p %x %X %l %q %r %m %A
//!   %C %D %E %F %P %R %S %I %U %j %J`. Between the `%` and the code may come
//!   a `-` (left-align) or `0` (zero-pad) flag, a width and a `.precision`,
//!   which each code uses or ignores as mosquitto does.
//! * `@` codes print the time the message arrived: `@X` is strftime's `%X`
//!   (the C locale's, in the local time zone), `@N` the nanoseconds and `@@`
//!   an `@`. Unknown conversions print as `%X`, as glibc does.
//! * Backslash escapes: `\\ \0 \a \e \n \r \t \v`.
//!
//! mosquitto's own oddities are kept, among them: `-v` prints `topic (null)`
//! for an empty payload while the plain output prints nothing at all for one;
//! `%10p` cuts the payload to 10 bytes and `%10x` to 5; `%-p` and `%-x`
//! without a width pad with as many spaces as the payload has bytes; `%E`
//! prints an expiry above 2^31-1 as a negative number; the `%j` time stamp
//! reads `2026-11-25T17:41:48.060766Z+0000`; `%j` cuts the payload string at
//! its first NUL byte and passes other bytes (invalid UTF-8 included) through
//! unescaped; `%J` reformats the payload as cJSON does (`1.0` becomes `1`,
//! `1e400` becomes `null`, `\u0000` ends a string, control characters count
//! as white space); and the JSON `topic-alias` property prints the length of
//! the correlation data, or 0 (mosquitto reads the wrong property there).
//!
//! Two differences cannot be helped: mosquitto prints its `%j`, `%J`, `%I`
//! and `%U` times from the clock when it prints, and `@` codes from one
//! reading per message; here every code uses [`Received::received_at`]. And
//! mosquitto lists the JSON properties in the order they came on the wire,
//! which [`Properties`] does not keep. They are printed in identifier order
//! (payload format indicator, message expiry interval, content type,
//! response topic, correlation data, subscription identifier, topic alias,
//! user properties), the order in which a Pigeon broker sends them, so
//! `pigeon sub` and mosquitto_sub print the same against Pigeon. A mosquitto
//! broker sends the subscription identifier first and the message expiry
//! interval last, so against it those two keys come out elsewhere.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Timelike};
use pigeon_proto::properties::Properties;

/// One received message, as the formatter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The topic it was published to.
    pub topic: &'a str,
    /// The payload, as received.
    pub payload: &'a [u8],
    /// The QoS it was delivered with.
    pub qos: u8,
    /// Whether it came with the retain flag.
    pub retain: bool,
    /// Packet identifier (0 for QoS 0), for %m.
    pub mid: u16,
    /// v5 properties (empty for 3.1.1).
    pub properties: &'a Properties,
    /// When it arrived.
    pub received_at: SystemTime,
}

/// A parsed -F format.
///
/// Like mosquitto_sub, [`Format::write`] ends every message with a newline
/// unless `-N` was given: pass that on with [`Format::no_eol`].
#[derive(Debug, Clone)]
pub struct Format {
    pieces: Vec<Piece>,
    /// The literal text of the format, escapes resolved; pieces index it.
    literal: Vec<u8>,
    eol: bool,
}

#[derive(Debug, Clone, Copy)]
enum Piece {
    /// `literal[start..end]`.
    Literal { start: usize, end: usize },
    /// A `%` code.
    Percent(Spec),
    /// An `@` code other than `@@`.
    Time(char),
}

/// A `%` code with its flags, width and precision.
#[derive(Debug, Clone, Copy)]
struct Spec {
    code: u8,
    left: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

impl Spec {
    /// The padding byte of numbers (and absent numeric properties).
    fn pad(&self) -> u8 {
        if self.zero {
            b'0'
        } else {
            b' '
        }
    }
}

/// The `%` codes mosquitto_sub 2.0.11 accepts.
const CODES: &[u8] = b"%ACDEFIlmPpqRSrtjJUxX";

/// The error for a format that ends inside a code.
const INCOMPLETE: &str = "Incomplete format specifier.";

impl Format {
    /// Parses a -F format string; Err(one-line message saying what is wrong)
    /// for one that mosquitto_sub rejects, with mosquitto's wording: it
    /// prints `Error: {message}`, then an empty line and `Use 'mosquitto_sub
    /// --help' to see usage.`, and exits with status 1.
    ///
    /// mosquitto rejects an unknown `%` code (`Invalid format specifier
    /// 'Z'.`), an unknown backslash escape (`Invalid escape specifier
    /// 'x'.`), and a `%`, `@` or `\` that the format ends in or inside of;
    /// any character may follow an `@`.
    pub fn parse(spec: &str) -> Result<Format, String> {
        let bytes = spec.as_bytes();
        let mut format = Format {
            pieces: Vec::new(),
            literal: Vec::with_capacity(bytes.len()),
            eol: true,
        };
        let char_at = |i: usize| spec.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'%' => {
                    let mut j = i + 1;
                    let mut left = false;
                    let mut zero = false;
                    // One flag; after a '-', a '0' (the start of the width to
                    // mosquitto's check) still turns on zero padding.
                    match bytes.get(j) {
                        None => return Err(INCOMPLETE.to_string()),
                        Some(b'-') => {
                            left = true;
                            j += 1;
                            zero = bytes.get(j) == Some(&b'0');
                        }
                        Some(b'0') => {
                            zero = true;
                            j += 1;
                        }
                        Some(_) => {}
                    }
                    let (width, next) = digits(bytes, j);
                    j = next;
                    let mut precision = None;
                    if bytes.get(j) == Some(&b'.') {
                        let (p, next) = digits(bytes, j + 1);
                        precision = Some(p);
                        j = next;
                    }
                    let Some(&code) = bytes.get(j) else {
                        return Err(INCOMPLETE.to_string());
                    };
                    if !CODES.contains(&code) {
                        return Err(format!("Invalid format specifier '{}'.", char_at(j)));
                    }
                    format.pieces.push(Piece::Percent(Spec {
                        code,
                        left,
                        zero,
                        width,
                        precision,
                    }));
                    i = j + 1;
                }
                b'@' => {
                    let Some(c) = spec.get(i + 1..).and_then(|s| s.chars().next()) else {
                        return Err(INCOMPLETE.to_string());
                    };
                    if c == '@' {
                        format.push_literal(b"@");
                    } else {
                        format.pieces.push(Piece::Time(c));
                    }
                    i += 1 + c.len_utf8();
                }
                b'\\' => {
                    let byte = match bytes.get(i + 1) {
                        None => return Err("Incomplete escape specifier.".to_string()),
                        Some(b'\\') => b'\\',
                        Some(b'0') => 0,
                        Some(b'a') => 0x07,
                        Some(b'e') => 0x1b,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'v') => 0x0b,
                        Some(_) => {
                            return Err(format!("Invalid escape specifier '{}'.", char_at(i + 1)))
                        }
                    };
                    format.push_literal(&[byte]);
                    i += 2;
                }
                _ => {
                    format.push_literal(&[b]);
                    i += 1;
                }
            }
        }
        Ok(format)
    }

    /// With `no_eol` (`-N`), messages are not followed by a newline. Unlike
    /// `-v`, which `-F` overrides, `-N` applies to `-F` formats too.
    pub fn no_eol(mut self, no_eol: bool) -> Format {
        self.eol = !no_eol;
        self
    }

    /// Appends the formatted message to `out`, followed by a newline unless
    /// [`Format::no_eol`] was set. `pretty` is --pretty (tab-indented JSON
    /// for %j/%J).
    ///
    /// Err(message) where mosquitto prints an error: `%J` with a payload
    /// that is not JSON (`Message payload is not valid JSON on topic a/b.`,
    /// which mosquitto prints as `Error: {message}` on stderr). Like
    /// mosquitto, that code then prints nothing but the rest of the format
    /// is still written to `out`, which the caller should print as well.
    /// With several such codes only the first error is returned.
    pub fn write(&self, message: &Received, pretty: bool, out: &mut Vec<u8>) -> Result<(), String> {
        self.write_in(message, pretty, out, Zone::Local)
    }

    fn write_in(
        &self,
        message: &Received,
        pretty: bool,
        out: &mut Vec<u8>,
        zone: Zone,
    ) -> Result<(), String> {
        let mut clock = None;
        let mut error = None;
        for piece in &self.pieces {
            match *piece {
                Piece::Literal { start, end } => {
                    out.extend_from_slice(self.literal.get(start..end).unwrap_or_default())
                }
                Piece::Time(c) => clock
                    .get_or_insert_with(|| Clock::new(message.received_at, zone))
                    .strftime(c, out),
                Piece::Percent(spec) => {
                    if let Err(e) = percent(spec, message, pretty, zone, &mut clock, out) {
                        error.get_or_insert(e);
                    }
                }
            }
        }
        if self.eol {
            out.push(b'\n');
        }
        error.map_or(Ok(()), Err)
    }

    fn push_literal(&mut self, bytes: &[u8]) {
        let start = self.literal.len();
        self.literal.extend_from_slice(bytes);
        let end = self.literal.len();
        match self.pieces.last_mut() {
            Some(Piece::Literal { end: last, .. }) if *last == start => *last = end,
            _ => self.pieces.push(Piece::Literal { start, end }),
        }
    }
}

/// Reads a run of decimal digits from `at`: (value, index after the run).
fn digits(bytes: &[u8], at: usize) -> (usize, usize) {
    let mut value: usize = 0;
    let mut i = at;
    while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        // mosquitto keeps the width in an int.
        value = value
            .saturating_mul(10)
            .saturating_add(usize::from(d - b'0'))
            .min(i32::MAX as usize);
        i += 1;
    }
    (value, i)
}

/// The output without -F: the payload (with -v, "topic payload"; an empty
/// payload with -v prints "topic (null)"), then a newline unless `no_eol`
/// (-N).
///
/// As in mosquitto_sub, an empty payload prints nothing at all without -v,
/// not even the newline, and nothing with -v and -N either.
pub fn write_default(message: &Received, verbose: bool, no_eol: bool, out: &mut Vec<u8>) {
    if message.payload.is_empty() {
        if verbose && !no_eol {
            out.extend_from_slice(c_str(message.topic.as_bytes()));
            out.extend_from_slice(b" (null)\n");
        }
        return;
    }
    if verbose {
        out.extend_from_slice(c_str(message.topic.as_bytes()));
        out.push(b' ');
    }
    out.extend_from_slice(message.payload);
    if !no_eol {
        out.push(b'\n');
    }
}

/// Writes one `%` code. Err only for `%J` with a payload that is not JSON.
fn percent(
    spec: Spec,
    m: &Received,
    pretty: bool,
    zone: Zone,
    clock: &mut Option<Clock>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let props = m.properties;
    match spec.code {
        b'%' => out.push(b'%'),
        b'A' => match props.topic_alias {
            Some(alias) => put_int(out, i64::from(alias), spec),
            None => put_blank(out, spec.pad(), spec.width),
        },
        b'C' => match &props.content_type {
            Some(ct) => put_str(out, ct.as_bytes(), spec),
            None => put_blank(out, b' ', spec.width),
        },
        b'D' => {
            if let Some(data) = &props.correlation_data {
                out.extend_from_slice(data);
            }
        }
        // mosquitto prints the u32 through an int.
        b'E' => match props.message_expiry_interval {
            Some(secs) => put_int(out, i64::from(secs as i32), spec),
            None => put_blank(out, spec.pad(), spec.width),
        },
        b'F' => match props.payload_format_indicator {
            Some(utf8) => put_int(out, i64::from(utf8), spec),
            None => put_blank(out, spec.pad(), spec.width),
        },
        b'I' => {
            let clock = clock.get_or_insert_with(|| Clock::new(m.received_at, zone));
            let start = out.len();
            clock.iso8601(out);
            finish_str(out, start, spec);
        }
        b'j' | b'J' => {
            let clock = clock.get_or_insert_with(|| Clock::new(m.received_at, zone));
            if !json(m, clock, spec.code == b'j', pretty, out) {
                let topic = m.topic.split('\0').next().unwrap_or_default();
                return Err(format!(
                    "Message payload is not valid JSON on topic {topic}."
                ));
            }
        }
        b'l' => put_int(out, m.payload.len() as i64, spec),
        b'm' => put_int(out, i64::from(m.mid), spec),
        b'P' => {
            for (i, (key, value)) in props.user_properties.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(key.as_bytes());
                out.push(b':');
                out.extend_from_slice(value.as_bytes());
            }
        }
        b'p' => put_payload(out, m.payload, Hex::No, spec),
        b'x' => put_payload(out, m.payload, Hex::Lower, spec),
        b'X' => put_payload(out, m.payload, Hex::Upper, spec),
        b'q' => out.push(b'0'.wrapping_add(m.qos)),
        b'R' => {
            if let Some(topic) = &props.response_topic {
                put_str(out, topic.as_str().as_bytes(), spec);
            }
        }
        b'r' => out.push(if m.retain { b'1' } else { b'0' }),
        b'S' => match props.subscription_identifiers.first() {
            Some(&id) => put_int(out, i64::from(id as i32), spec),
            None => put_blank(out, spec.pad(), spec.width),
        },
        b't' => put_str(out, c_str(m.topic.as_bytes()), spec),
        b'U' => {
            let clock = clock.get_or_insert_with(|| Clock::new(m.received_at, zone));
            push_int(out, clock.secs);
            out.push(b'.');
            push_padded(out, u64::from(clock.nanos), 9, b'0');
        }
        _ => {}
    }
    Ok(())
}

/// The bytes of `s` up to its first NUL, as C's string functions see it.
fn c_str(s: &[u8]) -> &[u8] {
    s.iter().position(|&b| b == 0).map_or(s, |end| &s[..end])
}

fn put_blank(out: &mut Vec<u8>, pad: u8, width: usize) {
    out.resize(out.len() + width, pad);
}

/// printf's `%d`, `%-*d`, `%0*d` or `%*d`, as mosquitto picks them.
fn put_int(out: &mut Vec<u8>, value: i64, spec: Spec) {
    let start = out.len();
    push_int(out, value);
    let len = out.len() - start;
    if spec.width <= len {
        return;
    }
    let fill = spec.width - len;
    if spec.left {
        put_blank(out, b' ', fill);
    } else if spec.zero {
        // After the sign, if any.
        let at = if value < 0 { start + 1 } else { start };
        out.splice(at..at, std::iter::repeat_n(b'0', fill));
    } else {
        out.splice(start..start, std::iter::repeat_n(b' ', fill));
    }
}

/// printf's `%s` with the width and precision (both in bytes); the `0` flag
/// does nothing here.
fn put_str(out: &mut Vec<u8>, s: &[u8], spec: Spec) {
    let start = out.len();
    out.extend_from_slice(s);
    finish_str(out, start, spec);
}

/// Applies a string's precision and width to `out[start..]`.
fn finish_str(out: &mut Vec<u8>, start: usize, spec: Spec) {
    if let Some(precision) = spec.precision {
        out.truncate(start + precision.min(out.len() - start));
    }
    let fill = spec.width.saturating_sub(out.len() - start);
    if spec.left {
        put_blank(out, b' ', fill);
    } else if fill > 0 {
        out.splice(start..start, std::iter::repeat_n(b' ', fill));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hex {
    No,
    Lower,
    Upper,
}

/// mosquitto's write_payload: a width also cuts the payload (to half as
/// many bytes in hex), and `-` without a width still pads.
fn put_payload(out: &mut Vec<u8>, payload: &[u8], hex: Hex, spec: Spec) {
    let width = spec.width as i64;
    let mut len = payload.len();
    let padlen = if width > 0 {
        len = len.min(spec.width);
        if hex == Hex::No {
            width - len as i64
        } else {
            len /= 2;
            width - 2 * len as i64
        }
    } else {
        -(len as i64)
    };
    let fill = usize::try_from(padlen.unsigned_abs()).unwrap_or(usize::MAX);
    if !spec.left && padlen > 0 {
        put_blank(out, spec.pad(), fill);
    }
    let bytes = &payload[..len];
    match hex {
        Hex::No => out.extend_from_slice(bytes),
        Hex::Lower => push_hex(out, bytes, b"0123456789abcdef"),
        Hex::Upper => push_hex(out, bytes, b"0123456789ABCDEF"),
    }
    if spec.left {
        // printf("%*s", padlen, ""): a negative width pads too.
        put_blank(out, b' ', fill);
    }
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8], digits: &[u8; 16]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
}

/// Writes `value` in decimal.
fn push_int(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    push_padded(out, value.unsigned_abs(), 1, b'0');
}

/// Writes `value` in decimal, padded on the left with `pad` to `width`.
fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize, pad: u8) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let len = buf.len() - i;
    if width > len {
        put_blank(out, pad, width - len);
    }
    out.extend_from_slice(&buf[i..]);
}

// ---------------------------------------------------------------------------
// Time

/// The time zone the codes print in: the local one, or (for tests) a fixed
/// offset.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Local,
    #[cfg(test)]
    Fixed {
        offset: i32,
        abbreviation: &'static str,
    },
}

/// A time broken down as C's `localtime` does.
struct Clock {
    /// Seconds since the epoch (floor).
    secs: i64,
    nanos: u32,
    /// Local date and time.
    local: NaiveDateTime,
    /// Seconds east of UTC.
    offset: i32,
    zone: Zone,
}

impl Clock {
    fn new(at: SystemTime, zone: Zone) -> Clock {
        let (secs, nanos) = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
                match d.subsec_nanos() {
                    0 => (secs, 0),
                    n => (secs.saturating_sub(1), 1_000_000_000 - n),
                }
            }
        };
        let offset = match zone {
            Zone::Local => chrono::Local
                .timestamp_opt(secs, 0)
                .earliest()
                .map_or(0, |t| t.offset().local_minus_utc()),
            #[cfg(test)]
            Zone::Fixed { offset, .. } => offset,
        };
        let local = secs
            .checked_add(i64::from(offset))
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .map(|t| t.naive_utc())
            .unwrap_or_default();
        Clock {
            secs,
            nanos,
            local,
            offset,
            zone,
        }
    }

    /// `%FT%T%z`, mosquitto's `%I`.
    fn iso8601(&self, out: &mut Vec<u8>) {
        self.strftime('F', out);
        out.push(b'T');
        self.strftime('T', out);
        self.strftime('z', out);
    }

    /// glibc's strftime of one conversion in the C locale, plus `N` for the
    /// nanoseconds (mosquitto's `@N`); anything else prints as `%c`.
    fn strftime(&self, c: char, out: &mut Vec<u8>) {
        const DAYS: [&str; 7] = [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let t = &self.local;
        let day = DAYS[t.weekday().num_days_from_sunday() as usize];
        let month = MONTHS[t.month0() as usize];
        let two = |out: &mut Vec<u8>, v: u32| push_padded(out, u64::from(v), 2, b'0');
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let am = t.hour() < 12;
        match c {
            'a' => out.extend_from_slice(&day.as_bytes()[..3]),
            'A' => out.extend_from_slice(day.as_bytes()),
            'b' | 'h' => out.extend_from_slice(&month.as_bytes()[..3]),
            'B' => out.extend_from_slice(month.as_bytes()),
            'c' => {
                for (i, code) in ['a', 'b', 'e', 'T', 'Y'].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    self.strftime(code, out);
                }
            }
            'C' => push_year(out, i64::from(t.year()).div_euclid(100), 2),
            'd' => two(out, t.day()),
            'D' | 'x' => {
                two(out, t.month());
                out.push(b'/');
                two(out, t.day());
                out.push(b'/');
                two(out, t.year().rem_euclid(100) as u32);
            }
            'e' => push_padded(out, u64::from(t.day()), 2, b' '),
            'F' => {
                push_year(out, i64::from(t.year()), 4);
                out.push(b'-');
                two(out, t.month());
                out.push(b'-');
                two(out, t.day());
            }
            'g' => two(out, t.iso_week().year().rem_euclid(100) as u32),
            'G' => push_year(out, i64::from(t.iso_week().year()), 1),
            'H' => two(out, t.hour()),
            'I' => two(out, hour12),
            'j' => push_padded(out, u64::from(t.ordinal()), 3, b'0'),
            'k' => push_padded(out, u64::from(t.hour()), 2, b' '),
            'l' => push_padded(out, u64::from(hour12), 2, b' '),
            'm' => two(out, t.month()),
            'M' => two(out, t.minute()),
            'n' => out.push(b'\n'),
            'N' => push_padded(out, u64::from(self.nanos), 9, b'0'),
            'p' => out.extend_from_slice(if am { b"AM" } else { b"PM" }),
            'P' => out.extend_from_slice(if am { b"am" } else { b"pm" }),
            'r' => {
                two(out, hour12);
                out.push(b':');
                two(out, t.minute());
                out.push(b':');
                two(out, t.second());
                out.push(b' ');
                self.strftime('p', out);
            }
            'R' => {
                two(out, t.hour());
                out.push(b':');
                two(out, t.minute());
            }
            's' => push_int(out, self.secs),
            'S' => two(out, t.second()),
            't' => out.push(b'\t'),
            'T' | 'X' => {
                two(out, t.hour());
                out.push(b':');
                two(out, t.minute());
                out.push(b':');
                two(out, t.second());
            }
            'u' => push_int(out, i64::from(t.weekday().number_from_monday())),
            'U' => two(
                out,
                (t.ordinal0() + 7 - t.weekday().num_days_from_sunday()) / 7,
            ),
            'V' => two(out, t.iso_week().week()),
            'w' => push_int(out, i64::from(t.weekday().num_days_from_sunday())),
            'W' => two(
                out,
                (t.ordinal0() + 7 - t.weekday().num_days_from_monday()) / 7,
            ),
            'y' => two(out, t.year().rem_euclid(100) as u32),
            'Y' => push_year(out, i64::from(t.year()), 1),
            'z' => {
                out.push(if self.offset < 0 { b'-' } else { b'+' });
                let minutes = self.offset.unsigned_abs() / 60;
                two(out, minutes / 60);
                two(out, minutes % 60);
            }
            'Z' => match self.zone {
                Zone::Local => zone::abbreviation(self.offset, out),
                #[cfg(test)]
                Zone::Fixed { abbreviation, .. } => out.extend_from_slice(abbreviation.as_bytes()),
            },
            '%' => out.push(b'%'),
            other => {
                out.push(b'%');
                let mut buf = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// A year, zero-padded to `width` digits (after the sign).
fn push_year(out: &mut Vec<u8>, year: i64, width: usize) {
    if year < 0 {
        out.push(b'-');
    }
    push_padded(out, year.unsigned_abs(), width, b'0');
}

/// Time zone abbreviations for `@Z`, which chrono does not give: read from
/// the TZif file glibc uses (`$TZ`, else /etc/localtime) or a POSIX `$TZ`
/// string, once, and picked by UTC offset.
mod zone {
    use std::sync::OnceLock;

    /// (seconds east of UTC, abbreviation), the most recently used first.
    type Names = Vec<(i32, String)>;

    static NAMES: OnceLock<Names> = OnceLock::new();

    /// Writes the abbreviation of the local zone at `offset`.
    pub(super) fn abbreviation(offset: i32, out: &mut Vec<u8>) {
        let names = NAMES.get_or_init(load);
        match names.iter().find(|(o, _)| *o == offset) {
            Some((_, name)) => out.extend_from_slice(name.as_bytes()),
            None => numeric(offset, out),
        }
    }

    /// tzdata's style for zones without a letter abbreviation: `+04`,
    /// `-0330`.
    fn numeric(offset: i32, out: &mut Vec<u8>) {
        out.push(if offset < 0 { b'-' } else { b'+' });
        let minutes = offset.unsigned_abs() / 60;
        super::push_padded(out, u64::from(minutes / 60), 2, b'0');
        if minutes % 60 != 0 {
            super::push_padded(out, u64::from(minutes % 60), 2, b'0');
        }
    }

    fn load() -> Names {
        let utc = || vec![(0, "UTC".to_string())];
        let Some(tz) = std::env::var_os("TZ") else {
            return from_file("/etc/localtime").unwrap_or_else(utc);
        };
        let tz = tz.to_string_lossy();
        let tz = tz.strip_prefix(':').unwrap_or(&tz);
        if tz.is_empty() {
            return utc();
        }
        let path = if tz.starts_with('/') {
            tz.to_string()
        } else {
            let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".into());
            format!("{dir}/{tz}")
        };
        from_file(&path)
            .or_else(|| from_posix(tz))
            .unwrap_or_else(utc)
    }

    fn from_file(path: &str) -> Option<Names> {
        parse_tzif(&std::fs::read(path).ok()?)
    }

    fn be32(data: &[u8], at: usize) -> Option<u32> {
        let bytes = data.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// The abbreviations of a TZif file (RFC 8536), by offset.
    pub(super) fn parse_tzif(data: &[u8]) -> Option<Names> {
        // Header: magic, version, 15 unused bytes, six counts.
        let counts = |at: usize| -> Option<[usize; 6]> {
            if data.get(at..at + 4)? != b"TZif" {
                return None;
            }
            let mut c = [0; 6];
            for (i, n) in c.iter_mut().enumerate() {
                *n = be32(data, at + 20 + 4 * i)? as usize;
            }
            Some(c)
        };
        let mut c = counts(0)?;
        let mut body = 44;
        let mut time_size = 4;
        if *data.get(4)? >= b'2' {
            // Skip the 32-bit block for the 64-bit one.
            let [isut, isstd, leap, times, types, chars] = c;
            let v1 = times * 5 + types * 6 + chars + leap * 8 + isstd + isut;
            c = counts(body + v1)?;
            body += v1 + 44;
            time_size = 8;
        }
        let [_, _, _, times, types, chars] = c;
        let indices = data.get(body + times * time_size..body + times * (time_size + 1))?;
        let infos_at = body + times * (time_size + 1);
        let infos = data.get(infos_at..infos_at + types * 6)?;
        let names = data.get(infos_at + types * 6..infos_at + types * 6 + chars)?;
        let info = |i: usize| -> Option<(i32, String)> {
            let info = infos.get(i * 6..i * 6 + 6)?;
            let offset = i32::from_be_bytes(info.get(..4)?.try_into().ok()?);
            let name = names.get(usize::from(info[5])..)?;
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            Some((offset, String::from_utf8_lossy(name).into_owned()))
        };
        let mut result: Names = Vec::new();
        let order = indices
            .iter()
            .rev()
            .map(|&i| usize::from(i))
            .chain(0..types);
        for i in order {
            let (offset, name) = info(i)?;
            if !result.iter().any(|(o, _)| *o == offset) {
                result.push((offset, name));
            }
        }
        Some(result)
    }

    /// The abbreviations of a POSIX TZ string such as `EST5EDT,M3.2.0,M11.1.0`
    /// or `<+0530>-5:30`.
    pub(super) fn from_posix(tz: &str) -> Option<Names> {
        let (std_name, rest) = name(tz)?;
        let (std_west, rest) = offset(rest)?;
        let mut names = vec![(-std_west, std_name.to_string())];
        if let Some((dst_name, rest)) = name(rest) {
            let dst_west = offset(rest).map_or(std_west - 3600, |(o, _)| o);
            names.push((-dst_west, dst_name.to_string()));
        }
        Some(names)
    }

    fn name(s: &str) -> Option<(&str, &str)> {
        if let Some(quoted) = s.strip_prefix('<') {
            let end = quoted.find('>')?;
            return Some((&quoted[..end], &quoted[end + 1..]));
        }
        let end = s
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(s.len());
        (end >= 3).then(|| (&s[..end], &s[end..]))
    }

    /// `[+-]hh[:mm[:ss]]`: seconds west of UTC.
    fn offset(s: &str) -> Option<(i32, &str)> {
        let (sign, s) = match s.as_bytes().first()? {
            b'-' => (-1, &s[1..]),
            b'+' => (1, &s[1..]),
            _ => (1, s),
        };
        let mut seconds = 0;
        let mut rest = s;
        for (i, scale) in [3600, 60, 1].into_iter().enumerate() {
            if i > 0 {
                match rest.strip_prefix(':') {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            seconds += rest[..end].parse::<i32>().ok()? * scale;
            rest = &rest[end..];
        }
        Some((sign * seconds, rest))
    }
}

// ---------------------------------------------------------------------------
// JSON

/// cJSON's nesting limit (CJSON_NESTING_LIMIT).
const NESTING_LIMIT: usize = 1000;

/// Writes mosquitto's JSON object for `%j` (`escaped`) or `%J`; false, with
/// nothing written, if `%J` finds the payload is not JSON.
fn json(m: &Received, clock: &Clock, escaped: bool, pretty: bool, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut root = Object::open(out, pretty, 1);
    root.key(out, b"tst");
    // strftime("%Y-%m-%dT%H:%M:%S.000000Z%z") with the microseconds put in.
    out.push(b'"');
    push_year(out, i64::from(clock.local.year()), 1);
    out.push(b'-');
    clock.strftime('m', out);
    out.push(b'-');
    clock.strftime('d', out);
    out.push(b'T');
    clock.strftime('T', out);
    out.push(b'.');
    push_padded(out, u64::from(clock.nanos / 1000), 6, b'0');
    out.push(b'Z');
    clock.strftime('z', out);
    out.push(b'"');
    root.key(out, b"topic");
    json_string(out, m.topic.as_bytes());
    root.key(out, b"qos");
    push_int(out, i64::from(m.qos));
    root.key(out, b"retain");
    push_int(out, i64::from(m.retain));
    root.key(out, b"payloadlen");
    push_int(out, m.payload.len() as i64);
    if m.qos > 0 {
        root.key(out, b"mid");
        push_int(out, i64::from(m.mid));
    }
    if !m.properties.is_empty() {
        root.key(out, b"properties");
        json_properties(m.properties, pretty, out);
    }
    root.key(out, b"payload");
    if m.payload.is_empty() {
        out.extend_from_slice(b"null");
    } else if escaped {
        json_string(out, m.payload);
    } else if !JsonIn::new(m.payload).reformat(pretty, out) {
        out.truncate(start);
        return false;
    }
    root.close(out);
    true
}

/// The "properties" object (see the module documentation for the order).
fn json_properties(props: &Properties, pretty: bool, out: &mut Vec<u8>) {
    let mut obj = Object::open(out, pretty, 2);
    if let Some(utf8) = props.payload_format_indicator {
        obj.key(out, b"payload-format-indicator");
        push_int(out, i64::from(utf8));
    }
    if let Some(secs) = props.message_expiry_interval {
        obj.key(out, b"message-expiry-interval");
        push_int(out, i64::from(secs));
    }
    if let Some(ct) = &props.content_type {
        obj.key(out, b"content-type");
        json_string(out, ct.as_bytes());
    }
    if let Some(topic) = &props.response_topic {
        obj.key(out, b"response-topic");
        json_string(out, topic.as_str().as_bytes());
    }
    if let Some(data) = &props.correlation_data {
        obj.key(out, b"correlation-data");
        json_string(out, data);
    }
    for &id in &props.subscription_identifiers {
        obj.key(out, b"subscription-identifier");
        push_int(out, i64::from(id));
    }
    if props.topic_alias.is_some() {
        // mosquitto reads the alias with the wrong identifier, which fails,
        // and prints whatever its variable last held: the length of the
        // correlation data read before, or 0.
        obj.key(out, b"topic-alias");
        let stale = props.correlation_data.as_ref().map_or(0, |d| d.len());
        push_int(out, stale as i64);
    }
    if !props.user_properties.is_empty() {
        obj.key(out, b"user-properties");
        let mut user = Object::open(out, pretty, 3);
        for (key, value) in &props.user_properties {
            user.key(out, key.as_bytes());
            json_string(out, value.as_bytes());
        }
        user.close(out);
    }
    obj.close(out);
}

/// Writes an object the way cJSON prints it, one member at a time.
#[derive(Debug)]
struct Object {
    /// cJSON's print depth of the object: members get this many tabs.
    depth: usize,
    pretty: bool,
    empty: bool,
}

impl Object {
    fn open(out: &mut Vec<u8>, pretty: bool, depth: usize) -> Object {
        out.push(b'{');
        if pretty {
            out.push(b'\n');
        }
        Object {
            depth,
            pretty,
            empty: true,
        }
    }

    /// Starts a member: the separator and indentation before its key.
    fn member(&mut self, out: &mut Vec<u8>) {
        if !self.empty {
            out.push(b',');
            if self.pretty {
                out.push(b'\n');
            }
        }
        self.empty = false;
        if self.pretty {
            put_blank(out, b'\t', self.depth);
        }
    }

    /// Ends a member's key.
    fn colon(&self, out: &mut Vec<u8>) {
        out.push(b':');
        if self.pretty {
            out.push(b'\t');
        }
    }

    fn key(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        self.member(out);
        json_string(out, key);
        self.colon(out);
    }

    fn close(self, out: &mut Vec<u8>) {
        if self.pretty {
            if !self.empty {
                out.push(b'\n');
            }
            put_blank(out, b'\t', self.depth - 1);
        }
        out.push(b'}');
    }
}

/// A string as cJSON prints one: cut at the first NUL, `"` `\` and control
/// characters escaped, every other byte as it is.
fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in c_str(s) {
        json_byte(out, b);
    }
    out.push(b'"');
}

fn json_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0..=0x1f => {
            out.extend_from_slice(b"\\u00");
            push_hex(out, &[b], b"0123456789abcdef");
        }
        _ => out.push(b),
    }
}

/// A number as cJSON 1.7.15 prints one: `%1.15g`, or `%1.17g` when that
/// does not read back as (nearly) the same double; `null` for infinities.
fn json_number(out: &mut Vec<u8>, d: f64, buf: &mut String) {
    if !d.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    format_g(d, 15, buf);
    let back: f64 = buf.parse().unwrap_or(f64::NAN);
    let max = back.abs().max(d.abs());
    let recovered = (back - d).abs() <= max * f64::EPSILON;
    if !recovered {
        format_g(d, 17, buf);
    }
    out.extend_from_slice(buf.as_bytes());
}

/// C's `%1.{precision}g` of a finite double.
fn format_g(d: f64, precision: usize, buf: &mut String) {
    buf.clear();
    if d == 0.0 {
        buf.push_str(if d.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let _ = write!(buf, "{:.*e}", precision - 1, d);
    let Some(e) = buf.find('e') else { return };
    let exponent: i32 = buf[e + 1..].parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        buf.truncate(e);
        trim_fraction(buf);
        buf.push('e');
        buf.push(if exponent < 0 { '-' } else { '+' });
        let _ = write!(buf, "{:02}", exponent.unsigned_abs());
    } else {
        buf.clear();
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        let _ = write!(buf, "{d:.decimals$}");
        trim_fraction(buf);
    }
}

/// Drops trailing zeros of a fraction, and the point if nothing is left.
fn trim_fraction(buf: &mut String) {
    if buf.contains('.') {
        let keep = buf.trim_end_matches('0').trim_end_matches('.').len();
        buf.truncate(keep);
    }
}

/// An open array or object while reformatting a payload.
enum Frame {
    Array,
    Object(Object),
}

/// cJSON's parser over a payload, which it sees as a C string: the payload
/// (without NUL bytes) followed by a NUL at `s.len()`.
struct JsonIn<'a> {
    s: &'a [u8],
    pos: usize,
    number: String,
}

impl<'a> JsonIn<'a> {
    fn new(s: &'a [u8]) -> JsonIn<'a> {
        JsonIn {
            s,
            pos: 0,
            number: String::new(),
        }
    }

    /// cJSON's buffer length: the string and its NUL.
    fn len(&self) -> usize {
        self.s.len() + 1
    }

    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn peek(&self) -> Option<u8> {
        (self.pos < self.len()).then(|| self.at(self.pos))
    }

    /// Skips every byte up to the space, NUL and control characters too, but
    /// never past the NUL.
    fn skip_whitespace(&mut self) {
        if self.pos >= self.len() {
            return;
        }
        while self.pos < self.len() && self.at(self.pos) <= b' ' {
            self.pos += 1;
        }
        if self.pos == self.len() {
            self.pos -= 1;
        }
    }

    /// Parses the whole payload as cJSON_ParseWithOpts(require_null_terminated)
    /// and mosquitto's end check do, printing it as cJSON prints it as the
    /// value of a member of the root object. False if it is not JSON.
    fn reformat(mut self, pretty: bool, out: &mut Vec<u8>) -> bool {
        // mosquitto wants the parse to end at the payload's end; a NUL
        // inside ends cJSON's string first.
        if self.s.contains(&0) {
            return false;
        }
        if self.s.len() >= 4 && self.s.starts_with(b"\xEF\xBB\xBF") {
            self.pos = 3;
        }
        self.skip_whitespace();
        if !self.value(pretty, out) {
            return false;
        }
        self.skip_whitespace();
        self.pos == self.s.len()
    }

    /// One value, with everything nested in it.
    fn value(&mut self, pretty: bool, out: &mut Vec<u8>) -> bool {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            let rest = self.s.get(self.pos..).unwrap_or_default();
            if let Some(word) = [&b"null"[..], b"false", b"true"]
                .into_iter()
                .find(|w| rest.starts_with(w))
            {
                out.extend_from_slice(word);
                self.pos += word.len();
            } else {
                match self.peek() {
                    Some(b'"') => {
                        if !self.string(out) {
                            return false;
                        }
                    }
                    Some(b'-' | b'0'..=b'9') => {
                        if !self.number(out) {
                            return false;
                        }
                    }
                    Some(b'[') => {
                        if stack.len() >= NESTING_LIMIT {
                            return false;
                        }
                        self.pos += 1;
                        self.skip_whitespace();
                        out.push(b'[');
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            out.push(b']');
                        } else {
                            stack.push(Frame::Array);
                            continue 'value;
                        }
                    }
                    Some(b'{') => {
                        if stack.len() >= NESTING_LIMIT {
                            return false;
                        }
                        self.pos += 1;
                        self.skip_whitespace();
                        let mut obj = Object::open(out, pretty, stack.len() + 2);
                        if self.peek() == Some(b'}') {
                            self.pos += 1;
                            obj.close(out);
                        } else {
                            if !self.member_key(&mut obj, out) {
                                return false;
                            }
                            stack.push(Frame::Object(obj));
                            continue 'value;
                        }
                    }
                    _ => return false,
                }
            }
            // A value is done: go on in, or close, the containers around it.
            loop {
                self.skip_whitespace();
                let next = self.peek();
                match (stack.last_mut(), next) {
                    (None, _) => return true,
                    (Some(Frame::Array), Some(b',')) => {
                        self.pos += 1;
                        self.skip_whitespace();
                        out.push(b',');
                        if pretty {
                            out.push(b' ');
                        }
                        continue 'value;
                    }
                    (Some(Frame::Object(obj)), Some(b',')) => {
                        self.pos += 1;
                        if !self.member_key(obj, out) {
                            return false;
                        }
                        continue 'value;
                    }
                    (Some(Frame::Array), Some(b']')) => {
                        self.pos += 1;
                        out.push(b']');
                        stack.pop();
                    }
                    (Some(Frame::Object(_)), Some(b'}')) => {
                        self.pos += 1;
                        if let Some(Frame::Object(obj)) = stack.pop() {
                            obj.close(out);
                        }
                    }
                    _ => return false,
                }
            }
        }
    }

    /// A member's key and colon, leaving the position at its value.
    fn member_key(&mut self, obj: &mut Object, out: &mut Vec<u8>) -> bool {
        self.skip_whitespace();
        obj.member(out);
        if self.peek() != Some(b'"') || !self.string(out) {
            return false;
        }
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return false;
        }
        self.pos += 1;
        self.skip_whitespace();
        obj.colon(out);
        true
    }

    /// A string (at its opening quote), decoded and printed again; output
    /// stops at a decoded NUL, as cJSON's C string does.
    fn string(&mut self, out: &mut Vec<u8>) -> bool {
        let start = self.pos + 1;
        let mut end = start;
        while end < self.len() && self.at(end) != b'"' {
            if self.at(end) == b'\\' {
                if end + 1 >= self.len() {
                    return false;
                }
                end += 1;
            }
            end += 1;
        }
        if end >= self.len() || self.at(end) != b'"' {
            return false;
        }
        out.push(b'"');
        let mut ended = false;
        let mut emit = |out: &mut Vec<u8>, b: u8| {
            ended |= b == 0;
            if !ended {
                json_byte(out, b);
            }
        };
        let mut i = start;
        while i < end {
            let b = self.at(i);
            if b != b'\\' {
                emit(out, b);
                i += 1;
                continue;
            }
            let decoded = match self.at(i + 1) {
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                c @ (b'"' | b'\\' | b'/') => c,
                b'u' => {
                    let Some((c, len)) = self.utf16(i, end) else {
                        return false;
                    };
                    let mut buf = [0; 4];
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        emit(out, b);
                    }
                    i += len;
                    continue;
                }
                _ => return false,
            };
            emit(out, decoded);
            i += 2;
        }
        out.push(b'"');
        self.pos = end + 1;
        true
    }

    /// `\uXXXX` (or a surrogate pair of them) at `i`: the character and the
    /// length of the escape. An invalid hex digit makes the code 0.
    fn utf16(&self, i: usize, end: usize) -> Option<(char, usize)> {
        let hex4 = |at: usize| -> u32 {
            let mut code = 0;
            for k in 0..4 {
                match char::from(self.at(at + k)).to_digit(16) {
                    Some(d) => code = code << 4 | d,
                    None => return 0,
                }
            }
            code
        };
        if end < i + 6 {
            return None;
        }
        let first = hex4(i + 2);
        let (code, len) = match first {
            0xDC00..=0xDFFF => return None,
            0xD800..=0xDBFF => {
                let second_at = i + 6;
                if end < second_at + 6
                    || self.at(second_at) != b'\\'
                    || self.at(second_at + 1) != b'u'
                {
                    return None;
                }
                let second = hex4(second_at + 2);
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                (0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF)), 12)
            }
            _ => (first, 6),
        };
        Some((char::from_u32(code)?, len))
    }

    /// A number: cJSON takes the run of `0-9 + - e E .` and lets strtod read
    /// what it can of it.
    fn number(&mut self, out: &mut Vec<u8>) -> bool {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let run = rest
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'+' | b'-' | b'e' | b'E' | b'.'))
            .count();
        let len = strtod_prefix(&rest[..run]);
        let Some(value) = std::str::from_utf8(&rest[..len])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        else {
            return false;
        };
        self.pos += len;
        let mut buf = std::mem::take(&mut self.number);
        json_number(out, value, &mut buf);
        self.number = buf;
        true
    }
}

/// How much of `s` (made of `0-9 + - e E .` only) strtod reads as a
/// decimal number; 0 if none.
fn strtod_prefix(s: &[u8]) -> usize {
    let count_digits = |from: usize| {
        s.iter()
            .skip(from)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let whole = count_digits(i);
    i += whole;
    let mut fraction = 0;
    if s.get(i) == Some(&b'.') {
        fraction = count_digits(i + 1);
        if whole + fraction > 0 {
            i += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return 0;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exponent = count_digits(j);
        if exponent > 0 {
            i = j + exponent;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    //! Expected outputs were captured from Debian's mosquitto_sub 2.0.11
    //! (libcjson 1.7.15) against a local `mosquitto -p 18830`; each test
    //! names the command. `ftcap` stands for running mosquitto_sub under a
    //! frozen clock, so that times are exact:
    //!
    //! ```sh
    //! ftcap ZONE TIME SUBARGS PUBARGS =
    //!   TZ=ZONE DONT_FAKE_MONOTONIC=1 faketime -f TIME \
    //!     mosquitto_sub -p 18830 -V 5 -C 1 -t a/b SUBARGS &
    //!   mosquitto_pub -p 18830 -V 5 -t a/b PUBARGS
    //! ```
    //!
    //! `P` is `-D publish payload-format-indicator 1 -D publish content-type
    //! text/plain -D publish response-topic r/t -D publish correlation-data
    //! abc -D publish user-property k1 v1 -D publish user-property k2 v2 -D
    //! publish user-property k1 v3 -D publish message-expiry-interval 30`.
    //! Messages mosquitto's broker cannot send (topic aliases, binary
    //! correlation data) came from a small fake broker written for the
    //! purpose, sending a hand-made PUBLISH (`fake PROPS PAYLOAD`, in hex).

    use super::*;
    use bytes::Bytes;
    use pigeon_proto::string::MqttStr;
    use pigeon_proto::topic::TopicName;
    use std::time::Duration;

    /// `faketime -f '2026-11-25 17:41:48.060766123'` in UTC.
    const T0: (u64, u32) = (1_795_628_508, 60_766_123);
    const UTC: Zone = Zone::Fixed {
        offset: 0,
        abbreviation: "UTC",
    };
    /// The JSON members before "properties" for T0, QoS 0, topic a/b.
    const HEAD: &str =
        "{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,";

    fn mqtt(s: &str) -> MqttStr {
        MqttStr::try_from(s).expect("a valid MQTT string")
    }

    struct Msg {
        topic: &'static str,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        mid: u16,
        props: Properties,
        at: SystemTime,
    }

    impl Msg {
        fn new(payload: &[u8]) -> Msg {
            Msg {
                topic: "a/b",
                payload: payload.to_vec(),
                qos: 0,
                retain: false,
                mid: 0,
                props: Properties::default(),
                at: UNIX_EPOCH + Duration::new(T0.0, T0.1),
            }
        }

        fn qos(mut self, qos: u8, mid: u16) -> Msg {
            self.qos = qos;
            self.mid = mid;
            self
        }

        fn at(mut self, secs: u64, nanos: u32) -> Msg {
            self.at = UNIX_EPOCH + Duration::new(secs, nanos);
            self
        }

        fn props(mut self, props: Properties) -> Msg {
            self.props = props;
            self
        }

        fn received(&self) -> Received<'_> {
            Received {
                topic: self.topic,
                payload: &self.payload,
                qos: self.qos,
                retain: self.retain,
                mid: self.mid,
                properties: &self.props,
                received_at: self.at,
            }
        }
    }

    /// The properties `P` (see above) gives, with subscription identifier 7.
    fn full_props() -> Properties {
        let mut p = Properties::default();
        p.subscription_identifiers = vec![7];
        p.payload_format_indicator = Some(true);
        p.content_type = Some(mqtt("text/plain"));
        p.response_topic = Some(TopicName::new(mqtt("r/t")).expect("a topic name"));
        p.correlation_data = Some(Bytes::from_static(b"abc"));
        p.user_properties = vec![
            (mqtt("k1"), mqtt("v1")),
            (mqtt("k2"), mqtt("v2")),
            (mqtt("k1"), mqtt("v3")),
        ];
        p.message_expiry_interval = Some(30);
        p
    }

    fn render_in(spec: &str, m: &Msg, pretty: bool, zone: Zone) -> (Vec<u8>, Result<(), String>) {
        let format = Format::parse(spec).expect("a valid format");
        let mut out = Vec::new();
        let result = format.write_in(&m.received(), pretty, &mut out, zone);
        (out, result)
    }

    /// Renders in UTC, expecting no error.
    fn render(spec: &str, m: &Msg) -> Vec<u8> {
        let (out, result) = render_in(spec, m, false, UTC);
        assert_eq!(result, Ok(()), "{spec}");
        out
    }

    fn render_pretty(spec: &str, m: &Msg) -> Vec<u8> {
        let (out, result) = render_in(spec, m, true, UTC);
        assert_eq!(result, Ok(()), "{spec}");
        out
    }

    /// Asserts that `actual` is `expected`, showing both as text.
    #[track_caller]
    fn same(actual: &[u8], expected: &[u8]) {
        assert_eq!(
            String::from_utf8_lossy(actual),
            String::from_utf8_lossy(expected)
        );
        assert_eq!(actual, expected);
    }

    // -- Parsing -------------------------------------------------------------

    #[test]
    fn rejects_what_mosquitto_rejects() {
        // mosquitto_sub -p 18830 -t x -F FORMAT: "Error: MESSAGE", exit 1.
        let incomplete = "Incomplete format specifier.";
        for spec in [
            "%", "%5", "%-", "%0", "%.", "%5.", "%5.3", "%-0", "%-5", "@", "a%",
        ] {
            assert_eq!(
                Format::parse(spec).err().as_deref(),
                Some(incomplete),
                "{spec}"
            );
        }
        let cases = [
            ("%Z", "Invalid format specifier 'Z'."),
            ("%f", "Invalid format specifier 'f'."),
            ("%d", "Invalid format specifier 'd'."),
            ("%0-5t", "Invalid format specifier '-'."),
            ("%1.2.3t", "Invalid format specifier '.'."),
            ("\\", "Incomplete escape specifier."),
            ("\\x", "Invalid escape specifier 'x'."),
            ("%é", "Invalid format specifier 'é'."),
        ];
        for (spec, error) in cases {
            assert_eq!(Format::parse(spec).err().as_deref(), Some(error), "{spec}");
        }
    }

    #[test]
    fn accepts_what_mosquitto_accepts() {
        // mosquitto_sub -p 18830 -t x -F FORMAT -W 1 runs (and times out).
        for spec in ["", "\\0", "%%", "@Q", "%.t", "%-05t", "%00t", "@é", "%-0t"] {
            assert!(Format::parse(spec).is_ok(), "{spec}");
        }
    }

    #[test]
    fn empty_format_prints_the_newline() {
        // cap: mosquitto_sub -F '' ; mosquitto_pub -m x  =>  "\n"
        same(&render("", &Msg::new(b"x")), b"\n");
    }

    // -- % codes ---------------------------------------------------------------

    #[test]
    fn every_code_with_v5_properties() {
        // ftcap UTC T0 "-q 1 -D subscribe subscription-identifier 7 -F
        //   '%%|%t|%p|%x|%X|%l|%q|%r|%m|%A|%C|%D|%E|%F|%P|%R|%S|%I|%U'" -q 1 -m 'hé' $P
        let m = Msg::new("hé".as_bytes()).qos(1, 1).props(full_props());
        let spec = "%%|%t|%p|%x|%X|%l|%q|%r|%m|%A|%C|%D|%E|%F|%P|%R|%S|%I|%U";
        same(
            &render(spec, &m),
            b"%|a/b|h\xc3\xa9|68c3a9|68C3A9|3|1|0|1||text/plain|abc|30|1|k1:v1 k2:v2 k1:v3|r/t|7|2026-11-25T17:41:48+0000|1795628508.060766123\n",
        );
    }

    #[test]
    fn no_eol_drops_the_newline() {
        // cap: mosquitto_sub -F 'x%ty' -N ; mosquitto_pub -m hello  =>  "xa/by"
        let format = Format::parse("x%ty").expect("valid").no_eol(true);
        let mut out = Vec::new();
        let m = Msg::new(b"hello");
        assert_eq!(format.write(&m.received(), false, &mut out), Ok(()));
        same(&out, b"xa/by");
        // and without -N: "xa/by\n"
        same(&render("x%ty", &m), b"xa/by\n");
    }

    #[test]
    fn string_widths_and_precisions() {
        // cap: -q 1 -F '[%10t][%-10t][%.2t][%10.2t][%-10.2t][%010t][%.0t][%5.10t]'; -q 1 -m hello
        let m = Msg::new(b"hello").qos(1, 1);
        same(
            &render(
                "[%10t][%-10t][%.2t][%10.2t][%-10.2t][%010t][%.0t][%5.10t]",
                &m,
            ),
            b"[       a/b][a/b       ][a/][        a/][a/        ][       a/b][][  a/b]\n",
        );
    }

    #[test]
    fn payload_widths_cut_and_pad() {
        // cap: -q 1 -F '[%10p][%-10p][%-p][%3p][%010p][%.2p][%0p][%-0p]'; -q 1 -m hello
        let m = Msg::new(b"hello").qos(1, 1);
        same(
            &render("[%10p][%-10p][%-p][%3p][%010p][%.2p][%0p][%-0p]", &m),
            b"[     hello][hello     ][hello     ][hel][00000hello][hello][hello][hello     ]\n",
        );
        // cap: -q 1 -F '[%10x][%-10x][%-x][%3x][%010X][%4x][%5X][%-3x][%1x]'; -q 1 -m hello
        same(
            &render("[%10x][%-10x][%-x][%3x][%010X][%4x][%5X][%-3x][%1x]", &m),
            b"[      6865][6865      ][68656c6c6f     ][ 68][0000006865][6865][ 6865][68 ][ ]\n",
        );
    }

    #[test]
    fn numeric_widths_and_absent_properties() {
        // cap: -q 1 -F '[%5l][%-5l][%05l][%-05l][%.1l][%5q][%05r][%5m][%05m][%-5m][%5A][%05A]
        //   [%-5A][%10C][%-10C][%.3C][%05C][%10D][%5E][%05E][%5F][%05F][%10R][%05R][%5S][%05S]
        //   [%5P]' (one line); -q 1 -m hello
        let m = Msg::new(b"hello").qos(1, 1);
        let spec = "[%5l][%-5l][%05l][%-05l][%.1l][%5q][%05r][%5m][%05m][%-5m][%5A][%05A][%-5A]\
                    [%10C][%-10C][%.3C][%05C][%10D][%5E][%05E][%5F][%05F][%10R][%05R][%5S][%05S][%5P]";
        same(
            &render(spec, &m),
            b"[    5][5    ][00005][5    ][5][1][0][    1][00001][1    ][     ][00000][     ]\
              [          ][          ][][     ][][     ][00000][     ][00000][][][     ][00000][]\n",
        );
    }

    #[test]
    fn widths_of_present_properties() {
        // cap: -q 1 -F '[%5l][%10C][%-10C][%.3C][%-6.3C][%05C][%10D][%-10D][%5E][%-5E][%05E]
        //   [%5F][%05F][%10R][%-10R][%.1R][%010R][%5P]'; -q 1 -m hello -D publish content-type
        //   text/plain -D publish correlation-data abc -D publish message-expiry-interval 30
        //   -D publish payload-format-indicator 0 -D publish response-topic r/t
        //   -D publish user-property k v
        let mut p = Properties::default();
        p.content_type = Some(mqtt("text/plain"));
        p.correlation_data = Some(Bytes::from_static(b"abc"));
        p.message_expiry_interval = Some(30);
        p.payload_format_indicator = Some(false);
        p.response_topic = Some(TopicName::new(mqtt("r/t")).expect("a topic name"));
        p.user_properties = vec![(mqtt("k"), mqtt("v"))];
        let m = Msg::new(b"hello").qos(1, 1).props(p);
        let spec = "[%5l][%10C][%-10C][%.3C][%-6.3C][%05C][%10D][%-10D][%5E][%-5E][%05E]\
                    [%5F][%05F][%10R][%-10R][%.1R][%010R][%5P]";
        same(
            &render(spec, &m),
            b"[    5][text/plain][text/plain][tex][tex   ][text/plain][abc][abc][   30][30   ][00030]\
              [    0][00000][       r/t][r/t       ][r][       r/t][k:v]\n",
        );
    }

    #[test]
    fn subscription_identifier() {
        // cap: -F '%S|%5S|%-5S|%05S|' -D subscribe subscription-identifier 7; -m x
        let mut p = Properties::default();
        p.subscription_identifiers = vec![7];
        same(
            &render("%S|%5S|%-5S|%05S|", &Msg::new(b"x").props(p)),
            b"7|    7|7    |00007|\n",
        );
    }

    #[test]
    fn expiry_above_i32_prints_negative() {
        // ftcap UTC T0 "-F '%E|%5E|%j'" -m x -D publish message-expiry-interval 4294967295
        let mut p = Properties::default();
        p.message_expiry_interval = Some(u32::MAX);
        let expected = format!(
            "-1|   -1|{HEAD}\"payloadlen\":1,\"properties\":{{\"message-expiry-interval\":4294967295}},\"payload\":\"x\"}}\n"
        );
        same(
            &render("%E|%5E|%j", &Msg::new(b"x").props(p)),
            expected.as_bytes(),
        );
    }

    #[test]
    fn topic_alias() {
        // fake 230005 6869, QoS 1, retained, packet id 1234:
        //   -F '%A|%5A|%-5A|%05A|%j'
        let mut p = Properties::default();
        p.topic_alias = Some(5);
        let mut m = Msg::new(b"hi").qos(1, 1234).props(p);
        m.retain = true;
        same(
            &render("%A|%5A|%-5A|%05A|%j", &m),
            b"5|    5|5    |00005|{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\
              \"qos\":1,\"retain\":1,\"payloadlen\":2,\"mid\":1234,\"properties\":{\"topic-alias\":0},\
              \"payload\":\"hi\"}\n",
        );
        // fake 090003610062230005 6869, QoS 1, packet id 1234: -F '%A|%D|%j'.
        // The JSON alias is the correlation data's length; its string stops
        // at the NUL, %D does not.
        let mut p = Properties::default();
        p.topic_alias = Some(5);
        p.correlation_data = Some(Bytes::from_static(b"a\0b"));
        let m = Msg::new(b"hi").qos(1, 1234).props(p);
        same(
            &render("%A|%D|%j", &m),
            b"5|a\x00b|{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":1,\
              \"retain\":0,\"payloadlen\":2,\"mid\":1234,\"properties\":{\"correlation-data\":\"a\",\
              \"topic-alias\":3},\"payload\":\"hi\"}\n",
        );
    }

    #[test]
    fn binary_correlation_data_and_escaped_content_type() {
        // fake 030003225c2f09000361ff62 00: -F '%D|%j|%C|%x|%l'
        let mut p = Properties::default();
        p.content_type = Some(mqtt("\"\\/"));
        p.correlation_data = Some(Bytes::from_static(b"a\xffb"));
        same(
            &render("%D|%j|%C|%x|%l", &Msg::new(b"\0").props(p)),
            b"a\xffb|{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":0,\
              \"retain\":0,\"payloadlen\":1,\"properties\":{\"content-type\":\"\\\"\\\\/\",\
              \"correlation-data\":\"a\xffb\"},\"payload\":\"\"}|\"\\/|00|1\n",
        );
    }

    #[test]
    fn empty_payload() {
        // cap: -q 2 -F '%r|%q|%m|%5x|%-5x|%05x|%5p|%-5p|%5X|%-p|%-x|%l'; -q 2 -n
        same(
            &render(
                "%r|%q|%m|%5x|%-5x|%05x|%5p|%-5p|%5X|%-p|%-x|%l",
                &Msg::new(b"").qos(2, 1),
            ),
            b"0|2|1|     |     |00000|     |     |     |||0\n",
        );
    }

    #[test]
    fn retained_message() {
        // mosquitto_pub -t r/t -r -q 2 -m ret; then
        // cap: -t r/t -q 2 -F '%r|%q|%m|%5x|%-5x|%05x|%5p|%-5p|%5X|'
        let mut m = Msg::new(b"ret").qos(2, 1);
        m.retain = true;
        same(
            &render("%r|%q|%m|%5x|%-5x|%05x|%5p|%-5p|%5X|", &m),
            b"1|2|1|   72|72   |00072|  ret|ret  |   72|\n",
        );
    }

    #[test]
    fn backslash_escapes() {
        // ftcap UTC T0 "-F 'a\\b\0c\ad\ee\nf\rg\th\vi'" -m x
        same(
            &render("a\\\\b\\0c\\ad\\ee\\nf\\rg\\th\\vi", &Msg::new(b"x")),
            b"a\\b\x00c\x07d\x1be\nf\x0dg\th\x0bi\n",
        );
    }

    // -- Time ------------------------------------------------------------------

    const ALL_AT: &str = "@a|@A|@b|@B|@c|@C|@d|@D|@e|@F|@g|@G|@h|@H|@I|@j|@k|@l|@m|@M|@n|@p|@P|\
                          @r|@R|@s|@S|@t|@T|@u|@U|@V|@w|@W|@x|@X|@y|@Y|@z|@Z|@%|@N";

    #[test]
    fn at_codes_in_utc() {
        // ftcap UTC T0 "-F 'ALL_AT|@@|@Q|@E|@O|@_|@1|@é'" -m x
        let spec = format!("{ALL_AT}|@@|@Q|@E|@O|@_|@1|@é");
        same(
            &render(&spec, &Msg::new(b"x")),
            b"Wed|Wednesday|Nov|November|Wed Nov 25 17:41:48 2026|20|25|11/25/26|25|2026-11-25|26|\
              2026|Nov|17|05|329|17| 5|11|41|\n|PM|pm|05:41:48 PM|17:41|1795628508|48|\t|17:41:48|3|\
              47|48|3|47|11/25/26|17:41:48|26|2026|+0000|UTC|%|060766123|@|%Q|%E|%O|%_|%1|%\xc3\xa9\n",
        );
    }

    #[test]
    fn at_codes_west_of_utc_on_new_years_day() {
        // ftcap America/New_York '2027-01-01 13:05:09.000000007' "-F 'ALL_AT|%I|%U|%j'" -m x
        // (faketime made the nanoseconds 8)
        let ny = Zone::Fixed {
            offset: -5 * 3600,
            abbreviation: "EST",
        };
        let m = Msg::new(b"x").at(1_798_826_709, 8);
        let (out, result) = render_in(&format!("{ALL_AT}|%I|%U|%j"), &m, false, ny);
        assert_eq!(result, Ok(()));
        same(
            &out,
            b"Fri|Friday|Jan|January|Fri Jan  1 13:05:09 2027|20|01|01/01/27| 1|2027-01-01|26|2026|\
              Jan|13|01|001|13| 1|01|05|\n|PM|pm|01:05:09 PM|13:05|1798826709|09|\t|13:05:09|5|00|53|5|\
              00|01/01/27|13:05:09|27|2027|-0500|EST|%|000000008|2027-01-01T13:05:09-0500|\
              1798826709.000000008|{\"tst\":\"2027-01-01T13:05:09.000000Z-0500\",\"topic\":\"a/b\",\
              \"qos\":0,\"retain\":0,\"payloadlen\":1,\"payload\":\"x\"}\n",
        );
    }

    #[test]
    fn at_codes_east_of_utc_at_midnight() {
        // ftcap Asia/Kolkata '2026-01-04 00:00:00.999999999'
        //   "-F 'ALL_AT|%I|%U|%j|%30I|%-30I|%.10I|%5.3I'" -m x
        let kolkata = Zone::Fixed {
            offset: 5 * 3600 + 1800,
            abbreviation: "IST",
        };
        let m = Msg::new(b"x").at(1_767_465_000, 999_999_999);
        let spec = format!("{ALL_AT}|%I|%U|%j|%30I|%-30I|%.10I|%5.3I");
        let (out, result) = render_in(&spec, &m, false, kolkata);
        assert_eq!(result, Ok(()));
        same(
            &out,
            b"Sun|Sunday|Jan|January|Sun Jan  4 00:00:00 2026|20|04|01/04/26| 4|2026-01-04|26|2026|\
              Jan|00|12|004| 0|12|01|00|\n|AM|am|12:00:00 AM|00:00|1767465000|00|\t|00:00:00|7|01|01|0|\
              00|01/04/26|00:00:00|26|2026|+0530|IST|%|999999999|2026-01-04T00:00:00+0530|\
              1767465000.999999999|{\"tst\":\"2026-01-04T00:00:00.999999Z+0530\",\"topic\":\"a/b\",\
              \"qos\":0,\"retain\":0,\"payloadlen\":1,\"payload\":\"x\"}|      2026-01-04T00:00:00+0530|\
              2026-01-04T00:00:00+0530      |2026-01-04|  202\n",
        );
    }

    #[test]
    fn local_zone_agrees_with_chrono() {
        // The public write() uses the machine's zone: check it against chrono's
        // own formatting, and the zone-free codes against the capture above.
        let m = Msg::new(b"x");
        let format = Format::parse("%I|%U|@s|@N|@Y-@m-@dT@H:@M:@S@z|@j|@a").expect("valid");
        let mut out = Vec::new();
        assert_eq!(format.write(&m.received(), false, &mut out), Ok(()));
        let local = chrono::Local
            .timestamp_opt(T0.0 as i64, T0.1)
            .single()
            .expect("a local time");
        let iso = local.format("%Y-%m-%dT%H:%M:%S%z").to_string();
        let expected = format!(
            "{iso}|1795628508.060766123|1795628508|060766123|{iso}|{}\n",
            local.format("%j|%a")
        );
        same(&out, expected.as_bytes());
    }

    #[test]
    fn times_before_the_epoch() {
        // ftcap UTC '1969-12-31 23:59:58.750000000' "-F '%U|@s|@N|%I|%j'" -m x
        let m = Msg {
            at: UNIX_EPOCH - Duration::new(1, 250_000_000),
            ..Msg::new(b"x")
        };
        same(
            &render("%U|@s|@N|%I|%j", &m),
            b"-2.750000000|-2|750000000|1969-12-31T23:59:58+0000|{\"tst\":\"1969-12-31T23:59:58.750000Z+0000\",\
              \"topic\":\"a/b\",\"qos\":0,\"retain\":0,\"payloadlen\":1,\"payload\":\"x\"}\n",
        );
    }

    #[test]
    fn zone_abbreviations_from_tzif() {
        // A version-2 TZif file as zic writes it: an empty 32-bit block, then
        // two transitions, CET and CEST.
        fn header(times: u32, types: u32, chars: u32) -> Vec<u8> {
            let mut h = b"TZif2".to_vec();
            h.extend_from_slice(&[0; 15]);
            for count in [0, 0, 0, times, types, chars] {
                h.extend_from_slice(&u32::to_be_bytes(count));
            }
            h
        }
        let mut data = header(0, 1, 4);
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        data.extend_from_slice(b"UTC\0");
        data.extend(header(2, 2, 10));
        data.extend_from_slice(&i64::to_be_bytes(1_000_000_000));
        data.extend_from_slice(&i64::to_be_bytes(1_100_000_000));
        data.extend_from_slice(&[1, 0]);
        data.extend_from_slice(&[0, 0, 0x0e, 0x10, 0, 0]); // +3600, CET
        data.extend_from_slice(&[0, 0, 0x1c, 0x20, 1, 4]); // +7200, CEST
        data.extend_from_slice(b"CET\0CEST\0\0");
        data.extend_from_slice(b"\nCET-1CEST,M3.5.0,M10.5.0/3\n");
        let names = zone::parse_tzif(&data).expect("a valid TZif");
        assert_eq!(
            names,
            vec![(3600, "CET".to_string()), (7200, "CEST".to_string())]
        );
        assert_eq!(zone::parse_tzif(b"TZif2 too short"), None);
        // The real file, where the machine has it: TZ=Europe/Berlin mosquitto_sub
        // -F '@Z' printed CET in November.
        if let Ok(data) = std::fs::read("/usr/share/zoneinfo/Europe/Berlin") {
            let names = zone::parse_tzif(&data).expect("a valid TZif");
            assert!(names.contains(&(3600, "CET".to_string())), "{names:?}");
            assert!(names.contains(&(7200, "CEST".to_string())), "{names:?}");
        }
    }

    #[test]
    fn zone_abbreviations_from_posix_strings() {
        assert_eq!(
            zone::from_posix("EST5EDT,M3.2.0,M11.1.0"),
            Some(vec![(-5 * 3600, "EST".into()), (-4 * 3600, "EDT".into())])
        );
        assert_eq!(
            zone::from_posix("<+0530>-5:30"),
            Some(vec![(19800, "+0530".into())])
        );
        assert_eq!(zone::from_posix("UTC0"), Some(vec![(0, "UTC".into())]));
        assert_eq!(zone::from_posix("Europe/Nowhere"), None);
    }

    // -- JSON ------------------------------------------------------------------

    #[test]
    fn j_with_v5_properties() {
        // ftcap UTC T0 "-q 1 -D subscribe subscription-identifier 7 -F '%j'" -q 1 -m '{"t":21.5}' $P
        // against a Pigeon broker (properties in identifier order on the wire)
        let m = Msg::new(br#"{"t":21.5}"#).qos(1, 1).props(full_props());
        same(
            &render("%j", &m),
            b"{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":0,\
              \"payloadlen\":10,\"mid\":1,\"properties\":{\"payload-format-indicator\":1,\"message-expiry-interval\":30,\
              \"content-type\":\"text/plain\",\"response-topic\":\"r/t\",\
              \"correlation-data\":\"abc\",\"subscription-identifier\":7,\"user-properties\":{\"k1\":\"v1\",\"k2\":\"v2\",\"k1\":\"v3\"}},\
              \"payload\":\"{\\\"t\\\":21.5}\"}\n",
        );
        // Same with -F '%J'.
        same(
            &render("%J", &m),
            b"{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":0,\
              \"payloadlen\":10,\"mid\":1,\"properties\":{\"payload-format-indicator\":1,\"message-expiry-interval\":30,\
              \"content-type\":\"text/plain\",\"response-topic\":\"r/t\",\
              \"correlation-data\":\"abc\",\"subscription-identifier\":7,\"user-properties\":{\"k1\":\"v1\",\"k2\":\"v2\",\"k1\":\"v3\"}},\
              \"payload\":{\"t\":21.5}}\n",
        );
    }

    #[test]
    fn j_pretty_with_v5_properties() {
        // ftcap UTC T0 "-q 1 -D subscribe subscription-identifier 7 -F '%j' --pretty"
        //   -q 1 -m '{"t":21.5}' $P
        let m = Msg::new(br#"{"t":21.5}"#).qos(1, 1).props(full_props());
        same(
            &render_pretty("%j", &m),
            b"{\n\t\"tst\":\t\"2026-11-25T17:41:48.060766Z+0000\",\n\t\"topic\":\t\"a/b\",\n\t\"qos\":\t1,\
              \n\t\"retain\":\t0,\n\t\"payloadlen\":\t10,\n\t\"mid\":\t1,\n\t\"properties\":\t{\n\t\t\
              \"payload-format-indicator\":\t1,\n\t\t\"message-expiry-interval\":\t30,\n\t\t\
              \"content-type\":\t\"text/plain\",\n\t\t\"response-topic\":\t\"r/t\",\n\t\t\
              \"correlation-data\":\t\"abc\",\n\t\t\"subscription-identifier\":\t7,\n\t\t\"user-properties\":\t{\n\t\t\t\"k1\":\t\"v1\",\n\t\t\t\
              \"k2\":\t\"v2\",\n\t\t\t\"k1\":\t\"v3\"\n\t\t}\n\t},\
              \n\t\"payload\":\t\"{\\\"t\\\":21.5}\"\n}\n",
        );
    }

    #[test]
    fn big_j_pretty_nested() {
        // ftcap UTC T0 "-q 1 -D subscribe subscription-identifier 7 -F '%J' --pretty" -q 1
        //   -m '{"t":21.5, "a":[1,2,{"b":null}], "s":"x\u00e9", "e":{}, "f":[], "g":[[],{}],
        //   "h":{"i":{"j":[true,false]}}}' $P   (one line)
        let payload = br#"{"t":21.5, "a":[1,2,{"b":null}], "s":"x\u00e9", "e":{}, "f":[], "g":[[],{}], "h":{"i":{"j":[true,false]}}}"#;
        let m = Msg::new(payload).qos(1, 1).props(full_props());
        same(
            &render_pretty("%J", &m),
            b"{\n\t\"tst\":\t\"2026-11-25T17:41:48.060766Z+0000\",\n\t\"topic\":\t\"a/b\",\n\t\"qos\":\t1,\
              \n\t\"retain\":\t0,\n\t\"payloadlen\":\t106,\n\t\"mid\":\t1,\n\t\"properties\":\t{\n\t\t\
              \"payload-format-indicator\":\t1,\n\t\t\"message-expiry-interval\":\t30,\n\t\t\
              \"content-type\":\t\"text/plain\",\n\t\t\"response-topic\":\t\"r/t\",\n\t\t\
              \"correlation-data\":\t\"abc\",\n\t\t\"subscription-identifier\":\t7,\n\t\t\"user-properties\":\t{\n\t\t\t\"k1\":\t\"v1\",\n\t\t\t\
              \"k2\":\t\"v2\",\n\t\t\t\"k1\":\t\"v3\"\n\t\t}\n\t},\
              \n\t\"payload\":\t{\n\t\t\"t\":\t21.5,\n\t\t\"a\":\t[1, 2, {\n\t\t\t\t\"b\":\tnull\n\t\t\t}],\
              \n\t\t\"s\":\t\"x\xc3\xa9\",\n\t\t\"e\":\t{\n\t\t},\n\t\t\"f\":\t[],\n\t\t\"g\":\t[[], {\n\t\t\t}],\
              \n\t\t\"h\":\t{\n\t\t\t\"i\":\t{\n\t\t\t\t\"j\":\t[true, false]\n\t\t\t}\n\t\t}\n\t}\n}\n",
        );
    }

    #[test]
    fn j_escapes_binary_payloads_as_cjson_does() {
        // printf 'a\tb"c\\d\001\x7f\xc3\xa9\xff/e' > bin1; ftcap UTC T0 "-F '%j|%p|%l|%x'" -f bin1
        let m = Msg::new(b"a\tb\"c\\d\x01\x7f\xc3\xa9\xff/e");
        same(
            &render("%j|%p|%l|%x", &m),
            b"{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\
              \"payloadlen\":14,\"payload\":\"a\\tb\\\"c\\\\d\\u0001\x7f\xc3\xa9\xff/e\"}|a\tb\"c\\d\x01\
              \x7f\xc3\xa9\xff/e|14|61096222635c64017fc3a9ff2f65\n",
        );
        // printf 'ab\0cd' > bin0; ftcap UTC T0 "-F '%j|%p|%l|%x' --pretty" -f bin0
        same(
            &render_pretty("%j|%p|%l|%x", &Msg::new(b"ab\0cd")),
            b"{\n\t\"tst\":\t\"2026-11-25T17:41:48.060766Z+0000\",\n\t\"topic\":\t\"a/b\",\n\t\"qos\":\t0,\
              \n\t\"retain\":\t0,\n\t\"payloadlen\":\t5,\n\t\"payload\":\t\"ab\"\n}|ab\x00cd|5|6162006364\n",
        );
    }

    #[test]
    fn json_of_an_empty_payload_is_null() {
        // ftcap UTC T0 "-F '%j|%J|%p|%x|%l|'" -n
        let null = "{\"tst\":\"2026-11-25T17:41:48.060766Z+0000\",\"topic\":\"a/b\",\"qos\":0,\"retain\":0,\
                    \"payloadlen\":0,\"payload\":null}";
        same(
            &render("%j|%J|%p|%x|%l|", &Msg::new(b"")),
            format!("{null}|{null}|||0|\n").as_bytes(),
        );
        // ftcap UTC T0 "-F '%j|%J' --pretty" -n
        let null = "{\n\t\"tst\":\t\"2026-11-25T17:41:48.060766Z+0000\",\n\t\"topic\":\t\"a/b\",\n\t\
                    \"qos\":\t0,\n\t\"retain\":\t0,\n\t\"payloadlen\":\t0,\n\t\"payload\":\tnull\n}";
        same(
            &render_pretty("%j|%J", &Msg::new(b"")),
            format!("{null}|{null}\n").as_bytes(),
        );
    }

    #[test]
    fn big_j_rejects_a_payload_that_is_not_json_and_prints_the_rest() {
        // ftcap UTC T0 "-F 'A%JB%tC'" -m '{"a":'
        //   stdout "ABa/bC\n", stderr "Error: Message payload is not valid JSON on topic a/b."
        let error = Err("Message payload is not valid JSON on topic a/b.".to_string());
        let (out, result) = render_in("A%JB%tC", &Msg::new(br#"{"a":"#), false, UTC);
        same(&out, b"ABa/bC\n");
        assert_eq!(result, error);
        // printf '1\0' > nul1; ftcap UTC T0 "-F '%J|%l'" -f nul1: "|2\n" and the error.
        let (out, result) = render_in("%J|%l", &Msg::new(b"1\0"), true, UTC);
        same(&out, b"|2\n");
        assert_eq!(result, error);
        // fake "" 00: -F '%J|%l': "|1\n"
        let (out, result) = render_in("%J|%l", &Msg::new(b"\0"), false, UTC);
        same(&out, b"|1\n");
        assert_eq!(result, error);
    }

    /// What `-F '%J'` printed for `payload` (published with -m or -f); None
    /// where it printed the JSON error.
    fn big_j(payload: &[u8]) -> Option<String> {
        let m = Msg::new(payload);
        let (out, result) = render_in("%J", &m, false, UTC);
        if result.is_err() {
            assert_eq!(out, b"\n");
            return None;
        }
        let prefix = format!("{HEAD}\"payloadlen\":{},\"payload\":", payload.len());
        let text = String::from_utf8_lossy(&out).into_owned();
        let inner = text
            .strip_prefix(&prefix)
            .and_then(|t| t.strip_suffix("}\n"));
        Some(inner.expect("the JSON around the payload").to_string())
    }

    #[test]
    fn big_j_numbers_print_as_cjson_prints_them() {
        // cap: -F '%J'; -m '[1, -0, 0.1, 1e3, ...]' (the payload below)
        let payload = "[1, -0, 0.1, 1e3, 1.5e300, 1e400, -1e400, 2147483647, 2147483648, \
                       -2147483648, -2147483649, 1e20, 123456789012345678, 0.30000000000000004, \
                       3.14159265358979, 1.0, 01, -0.0, 1E+2, 5e-324, 1.7976931348623157e308, \
                       100000000000000000000000, 0.1e1, 1.23456789012345678, 2.5, 1e-7, \
                       123456.789e3, 0.000001, 1e15, 1e16,1e17, 4.35, 0.1234567890123456789]";
        assert_eq!(
            big_j(payload.as_bytes()).as_deref(),
            Some(
                "[1,-0,0.1,1000,1.5e+300,null,null,2147483647,2147483648,-2147483648,-2147483649,\
                 1e+20,1.2345678901234568e+17,0.3,3.14159265358979,1,1,-0,100,4.94065645841247e-324,\
                 1.79769313486232e+308,1e+23,1,1.2345678901234567,2.5,1e-07,123456789,1e-06,1e+15,\
                 1e+16,1e+17,4.35,0.12345678901234568]"
            )
        );
        // cap: -F '%J'; -m '[1234567890123455, 1234567890123445, 0.5e-4, ...]'
        let payload = "[1234567890123455, 1234567890123445, 0.5e-4, 1e-5, 123456789012345.6, \
                       999999999999999.9, 0.0001, 0.00001234, 100000000000000000, 1e100, 2.5e-310, \
                       -1.5, 3.0000000000000004, 0.1e-3, 12345678901234567890, 1E400, -0e5, \
                       0.000123456789012345678, 9007199254740993, 1.00000000000000011]";
        assert_eq!(
            big_j(payload.as_bytes()).as_deref(),
            Some(
                "[1234567890123455,1234567890123445,5e-05,1e-05,123456789012345.59,1e+15,0.0001,\
                 1.234e-05,1e+17,1e+100,2.50000000000002e-310,-1.5,3,0.0001,1.2345678901234567e+19,\
                 null,-0,0.00012345678901234567,9.00719925474099e+15,1]"
            )
        );
    }

    #[test]
    fn big_j_accepts_and_rejects_what_cjson_does() {
        // cap: -F '%J'; -f FILE with each payload: what followed "payload": (None: the error).
        let cases: &[(&[u8], Option<&str>)] = &[
            (br#""a\u0000b""#, Some(r#""a""#)),
            (br#""a\uZZZZb""#, Some(r#""a""#)),
            (br#""a\u00G1b""#, Some(r#""a""#)),
            (b"\xef\xbb\xbf[1]", Some("[1]")),
            (b"[1,\x01 2]", Some("[1,2]")),
            (b"01", Some("1")),
            (b"-", None),
            (b"1.", Some("1")),
            (b".5", None),
            (b"-.5", Some("-0.5")),
            (b"1e5x", None),
            (b"1e", None),
            (b"[1,]", None),
            (br#"{"a":1,}"#, None),
            (br#""\ud800""#, None),
            (br#""\udc00""#, None),
            (br#""\ud800\u0041""#, None),
            (br#""\ud83d\ude00""#, Some("\"\u{1f600}\"")),
            (b"nul", None),
            (b"[]", Some("[]")),
            (b"{}", Some("{}")),
            (br#""x""#, Some(r#""x""#)),
            (b"true", Some("true")),
            (b"1E+2", Some("100")),
            (b"+1", None),
            (b"1-2", None),
            (b"0x10", None),
            (
                b"123456789012345678901234567890123456789012345678901234567890123456789",
                Some("1.2345678901234569e+68"),
            ),
            (b"\xef\xbb\xbf1", Some("1")),
            (b"\xef\xbb\xbf", None),
            (b"1 ", Some("1")),
            (b" 1", Some("1")),
            (br#""\/""#, Some(r#""/""#)),
            (br#"{"a":1 "b":2}"#, None),
            (br#"{"":1}"#, Some(r#"{"":1}"#)),
            (br#" {"a" : [ ] , "b":{}, "c":"\/\u00e9\ud83d\ude00\b\f\n\r\t\u001f", "d":true,"e":false,"f":null} "#,
             Some("{\"a\":[],\"b\":{},\"c\":\"/é\u{1f600}\\b\\f\\n\\r\\t\\u001f\",\"d\":true,\"e\":false,\"f\":null}")),
        ];
        for &(payload, expected) in cases {
            assert_eq!(
                big_j(payload).as_deref(),
                expected,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        // Raw control characters and invalid UTF-8 inside strings pass:
        // printf '"\001raw\377"' => "payload":"\u0001raw\377"
        let m = Msg::new(b"\"\x01raw\xff\"");
        let out = render("%J", &m);
        assert!(
            out.ends_with(b"\"payload\":\"\\u0001raw\xff\"}\n"),
            "{out:?}"
        );
    }

    #[test]
    fn big_j_nesting_limit_is_1000() {
        // python3 -c "print('['*1000 + ']'*1000, end='')" > n1000; -F '%J' -f n1000
        // prints it unchanged; with 1001 levels, the error. Same for objects.
        let arrays = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = |n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for text in [arrays(1000), objects(1000)] {
            assert_eq!(big_j(text.as_bytes()), Some(text));
        }
        assert_eq!(big_j(arrays(1001).as_bytes()), None);
        assert_eq!(big_j(objects(1001).as_bytes()), None);
    }

    #[test]
    fn big_j_error_keeps_no_eol() {
        // ftcap UTC T0 "-F 'A%JB%tC' -N" -m 'ab\0': "ABa/bC" and the error.
        let format = Format::parse("A%JB%tC").expect("valid").no_eol(true);
        let mut out = Vec::new();
        let m = Msg::new(b"ab\\0");
        let result = format.write_in(&m.received(), false, &mut out, UTC);
        same(&out, b"ABa/bC");
        assert!(result.is_err());
    }

    #[test]
    fn v311_message_has_no_properties() {
        // cap: -V 311 -F '%j|%P|%S|%5A|'; -m hello -D publish user-property a b
        let expected = format!("{HEAD}\"payloadlen\":5,\"payload\":\"hello\"}}|||     |\n");
        same(
            &render("%j|%P|%S|%5A|", &Msg::new(b"hello")),
            expected.as_bytes(),
        );
    }

    #[test]
    fn format_g_matches_printf() {
        // Expected: python3 -c "print('%1.{precision}g' % d)", which follows C's
        // printf, ties to even included.
        let mut buf = String::new();
        let cases: &[(f64, usize, &str)] = &[
            (0.1, 17, "0.10000000000000001"),
            (100.0, 15, "100"),
            (1e15, 15, "1e+15"),
            (123456789012345.0, 15, "123456789012345"),
            (0.0001, 15, "0.0001"),
            (0.00001, 15, "1e-05"),
            (-2.5e-300, 15, "-2.5e-300"),
            (1e100, 17, "1e+100"),
            (2.5, 1, "2"),
            (9.5, 1, "1e+01"),
            (0.125, 2, "0.12"),
            (1234567890123445.0, 15, "1.23456789012344e+15"),
            (1234567890123455.0, 15, "1.23456789012346e+15"),
            (5e-324, 17, "4.9406564584124654e-324"),
            (f64::MAX, 17, "1.7976931348623157e+308"),
            (123456.0, 5, "1.2346e+05"),
            (999.96, 4, "1000"),
            (-0.0, 15, "-0"),
        ];
        for &(d, precision, expected) in cases {
            format_g(d, precision, &mut buf);
            assert_eq!(buf, expected, "%1.{precision}g of {d:e}");
        }
    }

    // -- Default output --------------------------------------------------------

    #[test]
    fn default_output() {
        let out = |payload: &[u8], verbose, no_eol| {
            let m = Msg::new(payload);
            let mut out = Vec::new();
            write_default(&m.received(), verbose, no_eol, &mut out);
            out
        };
        // cap: (no options); -m hello  =>  "hello\n"
        same(&out(b"hello", false, false), b"hello\n");
        // cap: -v; -m hello  =>  "a/b hello\n"
        same(&out(b"hello", true, false), b"a/b hello\n");
        // cap: -N; -m hello  =>  "hello"
        same(&out(b"hello", false, true), b"hello");
        // cap: -v -N; -m hello  =>  "a/b hello"
        same(&out(b"hello", true, true), b"a/b hello");
        // cap: -v; -n  =>  "a/b (null)\n"
        same(&out(b"", true, false), b"a/b (null)\n");
        // cap: (no options); -n  =>  nothing;  cap: -v -N; -n  =>  nothing
        same(&out(b"", false, false), b"");
        same(&out(b"", true, true), b"");
        // cap: -N -v; -f bin0  =>  "a/b ab\0cd"
        same(&out(b"ab\0cd", true, true), b"a/b ab\x00cd");
    }
}
