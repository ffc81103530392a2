//! Lowering packet-header keywords (`ttl`, `flags`, `itype`, `dsize`, ...)
//! into [`Check`]s, `flowbits` into named conditions and actions (numbered
//! later, across the rule set), and `threshold` / `detection_filter` into
//! [`Threshold`]s the engine applies.

use sandgate_matcher::{BitsModifier, Check, IpOption, NumCond, Threshold, ThresholdKind, TrackBy};

use super::{bad, RuleBuilder, SkipReason};

/// A flowbit action before its name is numbered.
#[derive(Debug, Clone, Copy)]
pub(super) enum ActionKind {
    Set,
    Unset,
    Toggle,
}

impl ActionKind {
    pub(super) fn with(self, bit: u16) -> sandgate_matcher::FlowbitAction {
        use sandgate_matcher::FlowbitAction as A;
        match self {
            ActionKind::Set => A::Set(bit),
            ActionKind::Unset => A::Unset(bit),
            ActionKind::Toggle => A::Toggle(bit),
        }
    }
}

/// A rule's flowbits by name: `(is_set, names)` conditions and actions.
#[derive(Debug, Default)]
pub(super) struct PendingFlowbits {
    pub checks: Vec<(bool, Vec<String>)>,
    pub actions: Vec<(ActionKind, String)>,
}

impl PendingFlowbits {
    pub(super) fn names(&self) -> impl Iterator<Item = &String> {
        self.checks
            .iter()
            .flat_map(|(_, n)| n.iter())
            .chain(self.actions.iter().map(|(_, n)| n))
    }
}

/// `flowbits:set|unset|toggle,name`, `isset|isnotset,a[|b...]`, `noalert`.
pub(super) fn flowbits(v: &str, b: &mut RuleBuilder) -> Result<(), SkipReason> {
    let kw = "flowbits";
    let (cmd, names) = match v.split_once(',') {
        Some((c, n)) => (c.trim(), Some(n.trim())),
        None => (v.trim(), None),
    };
    if cmd == "noalert" {
        if names.is_some() {
            return Err(bad(kw, "noalert takes no name"));
        }
        b.noalert = true;
        return Ok(());
    }
    let names = names
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad(kw, format!("`{cmd}` needs a name")))?;
    let valid =
        |n: &str| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c == ',' || c == '&');
    let list: Vec<String> = names.split('|').map(|n| n.trim().to_string()).collect();
    if !list.iter().all(|n| valid(n)) {
        return Err(bad(kw, format!("bad flowbit name list `{names}`")));
    }
    let single = || -> Result<String, SkipReason> {
        match list.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(bad(
                kw,
                format!("`{cmd}` takes one name (`|` lists are for isset/isnotset)"),
            )),
        }
    };
    match cmd {
        "isset" => b.flowbits.checks.push((true, list.clone())),
        "isnotset" => b.flowbits.checks.push((false, list.clone())),
        "set" => b.flowbits.actions.push((ActionKind::Set, single()?)),
        "unset" => b.flowbits.actions.push((ActionKind::Unset, single()?)),
        "toggle" => b.flowbits.actions.push((ActionKind::Toggle, single()?)),
        other => return Err(bad(kw, format!("unknown command `{other}`"))),
    }
    Ok(())
}

/// `threshold:type T, track K, count N, seconds M` and
/// `detection_filter:track K, count N, seconds M`.
pub(super) fn threshold(kw: &str, v: &str) -> Result<Threshold, SkipReason> {
    let (mut kind, mut track, mut count, mut seconds) = (None, None, None, None);
    if kw == "detection_filter" {
        kind = Some(ThresholdKind::DetectionFilter);
    }
    for part in v.split(',').map(str::trim) {
        let mut words = part.split_whitespace();
        let (key, val) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if words.next().is_some() {
            return Err(bad(kw, format!("`{part}`: expected `key value`")));
        }
        let num = |val: &str| {
            val.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                bad(
                    kw,
                    format!("`{key} {val}`: expected a number of at least 1"),
                )
            })
        };
        match key {
            "type" if kw == "threshold" => {
                kind = Some(match val {
                    "limit" => ThresholdKind::Limit,
                    "threshold" => ThresholdKind::Threshold,
                    "both" => ThresholdKind::Both,
                    other => return Err(bad(kw, format!("unknown type `{other}`"))),
                })
            }
            "track" => {
                track = Some(match val {
                    "by_src" => TrackBy::BySrc,
                    "by_dst" => TrackBy::ByDst,
                    "by_rule" => TrackBy::ByRule,
                    "by_both" => TrackBy::ByBoth,
                    "by_flow" => TrackBy::ByFlow,
                    other => return Err(bad(kw, format!("unknown track `{other}`"))),
                })
            }
            "count" => count = Some(num(val)?),
            "seconds" => seconds = Some(num(val)?),
            other => return Err(bad(kw, format!("unknown setting `{other}`"))),
        }
    }
    let missing = |what: &str| bad(kw, format!("missing `{what}`"));
    Ok(Threshold {
        kind: kind.ok_or_else(|| missing("type"))?,
        track: track.ok_or_else(|| missing("track"))?,
        count: count.ok_or_else(|| missing("count"))?,
        seconds: seconds.ok_or_else(|| missing("seconds"))?,
    })
}

/// Whether [`check`] lowers `kw`.
pub(super) fn is_header_keyword(kw: &str) -> bool {
    matches!(
        kw,
        "dsize"
            | "ttl"
            | "ip_proto"
            | "id"
            | "tos"
            | "flags"
            | "seq"
            | "ack"
            | "window"
            | "tcp.mss"
            | "fragbits"
            | "fragoffset"
            | "itype"
            | "icode"
            | "icmp_id"
            | "icmp_seq"
            | "sameip"
            | "ipopts"
    )
}

/// Lower one header keyword.
pub(super) fn check(kw: &str, v: &str) -> Result<Check, SkipReason> {
    let cond = |max: u64| num_cond(v, max).map_err(|why| bad(kw, why));
    Ok(match kw {
        "dsize" => Check::Dsize(cond(u16::MAX.into())?),
        "ttl" => Check::Ttl(cond(u8::MAX.into())?),
        "ip_proto" => Check::IpProto(ip_proto(v).map_err(|why| bad(kw, why))?),
        "id" => Check::IpId(cond(u16::MAX.into())?),
        "tos" => Check::Tos(cond(u8::MAX.into())?),
        "seq" => Check::TcpSeq(cond(u32::MAX.into())?),
        "ack" => Check::TcpAck(cond(u32::MAX.into())?),
        "window" => Check::TcpWindow(cond(u16::MAX.into())?),
        "tcp.mss" => Check::TcpMss(cond(u16::MAX.into())?),
        "fragoffset" => Check::FragOffset(cond(0x1fff)?),
        "itype" => Check::IcmpType(cond(u8::MAX.into())?),
        "icode" => Check::IcmpCode(cond(u8::MAX.into())?),
        "icmp_id" => Check::IcmpId(cond(u16::MAX.into())?),
        "icmp_seq" => Check::IcmpSeq(cond(u16::MAX.into())?),
        "flags" => tcp_flags(v).map_err(|why| bad(kw, why))?,
        "fragbits" => fragbits(v).map_err(|why| bad(kw, why))?,
        "sameip" => {
            if !v.is_empty() {
                return Err(bad(kw, "takes no value"));
            }
            Check::SameIp
        }
        // Suricata compares the name case-insensitively.
        "ipopts" => Check::IpOpts(match v.trim().to_ascii_lowercase().as_str() {
            "rr" => IpOption::Rr,
            "eol" => IpOption::Eol,
            "nop" => IpOption::Nop,
            "ts" => IpOption::Ts,
            "sec" => IpOption::Sec,
            "esec" => IpOption::Esec,
            "lsrr" => IpOption::Lsrr,
            "ssrr" => IpOption::Ssrr,
            "satid" => IpOption::Satid,
            "any" => IpOption::Any,
            other => return Err(bad(kw, format!("unknown option `{other}`"))),
        }),
        other => return Err(SkipReason::UnsupportedKeyword(other.to_string())),
    })
}

/// A number in decimal or `0x` hex, at most `max`.
fn number(s: &str, max: u64) -> Result<u64, String> {
    let s = s.trim();
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("`{s}` is not a number"))?;
    if n > max {
        return Err(format!("{n} is larger than {max}"));
    }
    Ok(n)
}

/// Suricata's integer syntax: `N`, `=N`, `!N`, `<N`, `<=N`, `>N`, `>=N`,
/// `N<>M` and `N-M` (exclusive ranges), `!N-M`.
fn num_cond(v: &str, max: u64) -> Result<NumCond, String> {
    let v = v.trim();
    let range = |s: &str, sep: &str| -> Result<Option<(u64, u64)>, String> {
        let Some((lo, hi)) = s.split_once(sep) else {
            return Ok(None);
        };
        let (lo, hi) = (number(lo, max)?, number(hi, max)?);
        if lo >= hi {
            return Err(format!("empty range {lo}{sep}{hi}"));
        }
        Ok(Some((lo, hi)))
    };
    if let Some(rest) = v.strip_prefix('!') {
        let rest = rest.trim();
        if let Some((lo, hi)) = range(rest, "<>")?.or(range(rest, "-")?) {
            return Ok(NumCond::NotBetween(lo, hi));
        }
        return Ok(NumCond::Ne(number(rest, max)?));
    }
    for (prefix, make) in [
        ("<=", NumCond::Le as fn(u64) -> NumCond),
        (">=", NumCond::Ge),
        ("<", NumCond::Lt),
        (">", NumCond::Gt),
        ("=", NumCond::Eq),
    ] {
        if let Some(rest) = v.strip_prefix(prefix) {
            if prefix == "<" && rest.starts_with('>') {
                break;
            }
            return Ok(make(number(rest, max)?));
        }
    }
    if let Some((lo, hi)) = range(v, "<>")?.or(range(v, "-")?) {
        return Ok(NumCond::Between(lo, hi));
    }
    Ok(NumCond::Eq(number(v, max)?))
}

fn ip_proto(v: &str) -> Result<NumCond, String> {
    let v = v.trim();
    let (prefix, name) = match v.find(|c: char| c.is_ascii_alphanumeric()) {
        Some(i) => v.split_at(i),
        None => return Err("missing protocol".into()),
    };
    let proto: Option<u8> = match name.to_ascii_lowercase().as_str() {
        "hopopt" => Some(0),
        "icmp" => Some(1),
        "igmp" => Some(2),
        "ipv4" | "ip-in-ip" => Some(4),
        "tcp" => Some(6),
        "udp" => Some(17),
        "ipv6" => Some(41),
        "ipv6-route" => Some(43),
        "ipv6-frag" => Some(44),
        "rsvp" => Some(46),
        "gre" => Some(47),
        "esp" => Some(50),
        "ah" => Some(51),
        "ipv6-icmp" | "icmpv6" => Some(58),
        "ipv6-nonxt" => Some(59),
        "ipv6-opts" => Some(60),
        "eigrp" => Some(88),
        "ospf" => Some(89),
        "pim" => Some(103),
        "vrrp" => Some(112),
        "l2tp" => Some(115),
        "sctp" => Some(132),
        _ => None,
    };
    match proto {
        Some(p) => num_cond(&format!("{prefix}{p}"), 255),
        None => num_cond(v, 255),
    }
}

/// `flags:[modifier]FLAGS[,IGNORED]`; letters F S R P A U C E (also 1, 2
/// for CWR and ECE), `0` for none.
fn tcp_flags(v: &str) -> Result<Check, String> {
    let (spec, ignore) = match v.split_once(',') {
        Some((s, i)) => (s.trim(), Some(i.trim())),
        None => (v.trim(), None),
    };
    let bit = |c: char| -> Option<u8> {
        Some(match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'C' | '1' => 0x80,
            'E' | '2' => 0x40,
            _ => return None,
        })
    };
    let mut flags = 0u8;
    let mut modifier = BitsModifier::Exact;
    let mut none = false;
    for c in spec.chars() {
        match c {
            '+' => modifier = BitsModifier::All,
            '*' => modifier = BitsModifier::Any,
            '!' => modifier = BitsModifier::Not,
            '0' => none = true,
            c if c.is_whitespace() => {}
            c => flags |= bit(c).ok_or_else(|| format!("unknown flag `{c}`"))?,
        }
    }
    if none && flags != 0 {
        return Err("`0` (no flags) combined with flags".into());
    }
    if !none && flags == 0 {
        return Err("no flags given".into());
    }
    let mut mask = 0xffu8;
    if let Some(ignore) = ignore {
        for c in ignore.chars().filter(|c| !c.is_whitespace()) {
            mask &= !bit(c).ok_or_else(|| format!("unknown flag `{c}` in the mask"))?;
        }
    }
    Ok(Check::TcpFlags {
        flags: flags & mask,
        mask,
        modifier,
    })
}

/// `fragbits:[+*!]BITS` with M (more fragments), D (don't fragment), R (reserved).
fn fragbits(v: &str) -> Result<Check, String> {
    let mut bits = 0u16;
    let mut modifier = BitsModifier::Exact;
    for c in v.trim().chars() {
        match c {
            '+' => modifier = BitsModifier::All,
            '*' => modifier = BitsModifier::Any,
            '!' => modifier = BitsModifier::Not,
            'M' | 'm' => bits |= 0x2000,
            'D' | 'd' => bits |= 0x4000,
            'R' | 'r' => bits |= 0x8000,
            c if c.is_whitespace() => {}
            c => return Err(format!("unknown fragment bit `{c}`")),
        }
    }
    if bits == 0 {
        return Err("no fragment bits given".into());
    }
    Ok(Check::FragBits { bits, modifier })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_syntax() {
        assert_eq!(num_cond("5", 255), Ok(NumCond::Eq(5)));
        assert_eq!(num_cond("!5", 255), Ok(NumCond::Ne(5)));
        assert_eq!(num_cond("<5", 255), Ok(NumCond::Lt(5)));
        assert_eq!(num_cond(">=5", 255), Ok(NumCond::Ge(5)));
        assert_eq!(num_cond("3<>9", 255), Ok(NumCond::Between(3, 9)));
        assert_eq!(num_cond("3-9", 255), Ok(NumCond::Between(3, 9)));
        assert_eq!(num_cond("!3-9", 255), Ok(NumCond::NotBetween(3, 9)));
        assert!(num_cond("9<>3", 255).is_err());
        assert!(num_cond("256", 255).is_err());
        assert!(num_cond("x", 255).is_err());
    }
}
