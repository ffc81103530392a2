//! Rule files and rule headers: [`parse_rules`] and [`parse_rule`].
//!
//! A rule is `action protocol src sport direction dst dport (options)`.
//! Header fields are separated by blanks, except inside `[...]`, so
//! `[80, 443]` is one field. Files are read the way Suricata's loader reads
//! them: blank lines and `#` lines (including commented-out rules) are
//! skipped, and a line ending in `\` continues on the next line (the `\` is
//! dropped and the next line appended as is; the rule keeps the number of its
//! first line). Unlike Suricata, a rule line that starts with blanks is
//! parsed rather than silently ignored.

use serde::{Deserialize, Serialize};

use super::addr::{AddrSpec, PortSpec};
use super::error::{RuleError, RuleErrorKind};
use super::options::{near, parse_options, RuleOption};
use super::vars::Vars;

/// A rule file's text and the name errors should show for it.
#[derive(Debug, Clone, Copy)]
pub struct RuleSource<'a> {
    /// Display name, e.g. `emerging-dns.rules`.
    pub file: &'a str,
    pub text: &'a str,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    Alert,
    Drop,
    /// `reject`, `rejectsrc`, `rejectdst` and `rejectboth`.
    Reject,
    Pass,
}

/// The rule's protocol field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// `ip` (and its alias `pkthdr`): any IP packet.
    Ip,
    Tcp,
    Udp,
    /// `icmp`: ICMPv4 and ICMPv6.
    Icmp,
    /// Any other protocol Suricata accepts here, lowercased: application
    /// layer (`http`, `dns`, `tls`, ...) or a packet-level variant
    /// (`tcp-pkt`, `tcp-stream`, `icmpv4`, `icmpv6`, `ipv4`, `ipv6`, `sctp`).
    AppLayer(String),
}

/// Protocol names Suricata 7/8 accepts besides ip/tcp/udp/icmp: packet-level
/// variants (`DetectProtoParse`) and application-layer parser names.
const OTHER_PROTOCOLS: &[&str] = &[
    // packet level
    "tcp-pkt",
    "tcp-stream",
    "icmpv4",
    "icmpv6",
    "ipv4",
    "ip4",
    "ipv6",
    "ip6",
    "sctp",
    "arp",
    // application layer
    "http",
    "http1",
    "http2",
    "ftp",
    "ftp-data",
    "smtp",
    "tls",
    "ssh",
    "imap",
    "pop3",
    "smb",
    "dcerpc",
    "dns",
    "modbus",
    "enip",
    "dnp3",
    "nfs",
    "ntp",
    "tftp",
    "ike",
    "ikev2",
    "krb5",
    "quic",
    "dhcp",
    "snmp",
    "sip",
    "rfb",
    "mqtt",
    "pgsql",
    "telnet",
    "rdp",
    "bittorrent-dht",
    "websocket",
    "ldap",
    "doh2",
    "mdns",
    "irc",
    "jabber",
    "template",
];

/// One parsed rule: header resolved against the vars, options split and
/// unescaped but not interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedRule {
    /// Display name of the rule file.
    pub file: String,
    /// 1-based line where the rule starts.
    pub line: usize,
    /// The rule text as written, continuation lines joined, trimmed.
    pub text: String,
    pub action: Action,
    pub protocol: Protocol,
    pub src: AddrSpec,
    pub src_ports: PortSpec,
    /// `<>` rather than `->`.
    pub bidirectional: bool,
    pub dst: AddrSpec,
    pub dst_ports: PortSpec,
    /// The options in the order written.
    pub options: Vec<RuleOption>,
    /// The `sid` option's value; always set on a parsed rule, since a rule
    /// without a valid sid is an error.
    pub sid: Option<u32>,
}

/// Parses every rule in a file. Returns one entry per rule (a rule continued
/// over several lines is one entry), in file order; blank and comment lines
/// produce nothing.
pub fn parse_rules(src: &RuleSource, vars: &Vars) -> Vec<Result<ParsedRule, RuleError>> {
    let mut out = Vec::new();
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(src.text);
    let mut pending: Option<(usize, String)> = None;
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let (start, mut joined) = match pending.take() {
            Some((start, joined)) => (start, joined),
            None => {
                let trimmed = line.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                (line_no, String::new())
            }
        };
        let body = line.trim_end();
        if let Some(head) = body.strip_suffix('\\') {
            joined.push_str(head);
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(line);
        out.push(parse_rule(&joined, src.file, start, vars));
    }
    if let Some((start, joined)) = pending {
        out.push(Err(RuleError {
            file: src.file.to_owned(),
            line: start,
            sid: scan_sid(&joined),
            kind: RuleErrorKind::UnterminatedContinuation,
        }));
    }
    out
}

/// Parses one rule whose text starts on `line` of `file`.
pub fn parse_rule(
    text: &str,
    file: &str,
    line: usize,
    vars: &Vars,
) -> Result<ParsedRule, RuleError> {
    let text = text.trim();
    parse_rule_inner(text, file, line, vars).map_err(|kind| RuleError {
        file: file.to_owned(),
        line,
        sid: scan_sid(text),
        kind,
    })
}

fn parse_rule_inner(
    text: &str,
    file: &str,
    line: usize,
    vars: &Vars,
) -> Result<ParsedRule, RuleErrorKind> {
    let header_err = |what: String| RuleErrorKind::BadHeader { what };
    let open = text
        .find('(')
        .ok_or_else(|| header_err("no '(' starting the rule options".into()))?;
    let fields = split_header(&text[..open]).map_err(header_err)?;
    let [action, protocol, src, sport, direction, dst, dport] = fields.as_slice() else {
        return Err(header_err(format!(
            "expected 7 fields (action protocol src sport direction dst dport), found {}",
            fields.len()
        )));
    };
    let action = parse_action(action)?;
    let protocol = parse_protocol(protocol)?;
    let src = AddrSpec::parse(src, vars)?;
    let src_ports = PortSpec::parse(sport, vars)?;
    let bidirectional = match *direction {
        "->" => false,
        "<>" => true,
        other => {
            return Err(RuleErrorKind::BadDirection {
                direction: other.to_owned(),
            })
        }
    };
    let dst = AddrSpec::parse(dst, vars)?;
    let dst_ports = PortSpec::parse(dport, vars)?;

    let body = text[open + 1..].trim_end();
    let body = body
        .strip_suffix(')')
        .ok_or_else(|| RuleErrorKind::BadOptionSyntax {
            near: near(&text[open..]),
            why: "rule options do not end with ')'".into(),
        })?;
    let options = parse_options(body)?;
    let sid = find_sid(&options)?;
    Ok(ParsedRule {
        file: file.to_owned(),
        line,
        text: text.to_owned(),
        action,
        protocol,
        src,
        src_ports,
        bidirectional,
        dst,
        dst_ports,
        options,
        sid: Some(sid),
    })
}

/// Splits the header at blanks outside brackets.
fn split_header(header: &str) -> Result<Vec<&str>, String> {
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (i, c) in header.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unmatched ']' in \"{}\"", near(header.trim())))?
            }
            _ => {}
        }
        if c.is_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                fields.push(&header[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if depth > 0 {
        return Err(format!("unclosed '[' in \"{}\"", near(header.trim())));
    }
    if let Some(s) = start {
        fields.push(&header[s..]);
    }
    Ok(fields)
}

fn parse_action(text: &str) -> Result<Action, RuleErrorKind> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "alert" => Action::Alert,
        "drop" => Action::Drop,
        "reject" | "rejectsrc" | "rejectdst" | "rejectboth" => Action::Reject,
        "pass" => Action::Pass,
        _ => return Err(RuleErrorKind::UnknownAction { action: near(text) }),
    })
}

fn parse_protocol(text: &str) -> Result<Protocol, RuleErrorKind> {
    let lower = text.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "ip" | "pkthdr" => Protocol::Ip,
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        other if OTHER_PROTOCOLS.contains(&other) => Protocol::AppLayer(lower),
        _ => {
            return Err(RuleErrorKind::UnknownProtocol {
                protocol: near(text),
            })
        }
    })
}

/// The value of the one `sid` option.
fn find_sid(options: &[RuleOption]) -> Result<u32, RuleErrorKind> {
    let mut sids = options.iter().filter(|o| o.keyword == "sid");
    let first = sids.next().ok_or(RuleErrorKind::MissingSid)?;
    let value = first.value.as_deref().unwrap_or("").trim();
    let bad = |why: &str| RuleErrorKind::BadSid {
        value: near(value),
        why: why.to_owned(),
    };
    if sids.next().is_some() {
        return Err(bad("sid given more than once"));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a number"));
    }
    match value.parse::<u32>() {
        Ok(0) => Err(bad("sid 0 is not allowed")),
        Ok(sid) => Ok(sid),
        Err(_) => Err(bad("above 4294967295")),
    }
}

/// Best-effort sid for error messages: the first `sid:N` whose `sid` follows
/// `(` or `;` (blanks allowed around it and the `:`).
pub(crate) fn scan_sid(text: &str) -> Option<u32> {
    let mut from = 0;
    while let Some(pos) = text.get(from..)?.find("sid") {
        let at = from + pos;
        from = at + 3;
        let before = text[..at].trim_end().as_bytes().last().copied();
        if !matches!(before, Some(b'(' | b';')) {
            continue;
        }
        let rest = text[at + 3..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(sid) = digits.parse::<u32>() {
            return Some(sid);
        }
    }
    None
}
