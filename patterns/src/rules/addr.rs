//! Resolved rule addresses and ports: [`AddrSpec`] and [`PortSpec`].
//!
//! Both are exact sets, computed once at parse time from Suricata's list
//! syntax (see [`group`](super::group) for the evaluation rules) and stored as
//! sorted disjoint ranges so a packet is checked with one binary search.
//!
//! Addresses live in one `u128` space: IPv6 addresses as themselves, IPv4
//! `a.b.c.d` as the IPv4-mapped `::ffff:a.b.c.d` ([`ip_key`]). Like Suricata,
//! IPv4 and IPv6 are separate families: `!1.2.3.4` means "every IPv4 address
//! but 1.2.3.4" and matches no IPv6 address, `::/0` matches no IPv4 address,
//! and only `any` spans both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::group::{self, Domain, SpecError, VarGroup};
use super::set::RangeSet;
use super::vars::Vars;

/// First key of the IPv4 family in the address space (`::ffff:0.0.0.0`).
pub const IPV4_START: u128 = 0xffff_0000_0000;
/// Last key of the IPv4 family in the address space (`::ffff:255.255.255.255`).
pub const IPV4_END: u128 = 0xffff_ffff_ffff;

/// The address-space key of an IPv4 address (its IPv4-mapped IPv6 form).
pub fn ipv4_key(addr: Ipv4Addr) -> u128 {
    IPV4_START | u128::from(u32::from(addr))
}

/// The address-space key of any address. An IPv6 address that is itself
/// IPv4-mapped (`::ffff:a.b.c.d`) gets the same key as `a.b.c.d`.
pub fn ip_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => ipv4_key(v4),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A resolved source or destination address field.
///
/// ```
/// use sandgate_patterns::rules::{AddrSpec, Vars};
/// let vars = Vars::suricata_defaults();
/// let external = AddrSpec::parse("$EXTERNAL_NET", &vars).unwrap();
/// assert!(external.contains_ip("8.8.8.8".parse().unwrap()));
/// assert!(!external.contains_ip("10.1.2.3".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AddrSpec {
    ranges: RangeSet,
}

impl AddrSpec {
    /// `any`: every IPv4 and IPv6 address.
    pub fn any() -> Self {
        Self {
            ranges: RangeSet::range(0, u128::MAX),
        }
    }

    /// Parses and resolves an address field such as `[$HOME_NET,!10.0.0.1]`.
    pub fn parse(text: &str, vars: &Vars) -> Result<Self, SpecError> {
        group::resolve::<AddrDomain>(text, vars).map(|set| Self { ranges: set })
    }

    /// Builds a set from inclusive key ranges (see [`ip_key`]); overlapping
    /// or unsorted input is normalised.
    pub fn from_ranges(ranges: Vec<(u128, u128)>) -> Self {
        Self {
            ranges: RangeSet::from_ranges(ranges),
        }
    }

    /// Whether the address with key `addr` (see [`ip_key`]) is in the set.
    pub fn contains(&self, addr: u128) -> bool {
        self.ranges.contains(addr)
    }

    /// Whether `addr` is in the set.
    pub fn contains_ip(&self, addr: IpAddr) -> bool {
        self.contains(ip_key(addr))
    }

    /// True for `any` (or anything equivalent to it).
    pub fn is_any(&self) -> bool {
        self.ranges.covers(0, u128::MAX)
    }

    /// The sorted, disjoint, inclusive key ranges.
    pub fn ranges(&self) -> &[(u128, u128)] {
        self.ranges.ranges()
    }
}

/// A resolved source or destination port field.
///
/// ```
/// use sandgate_patterns::rules::{PortSpec, Vars};
/// let ports = PortSpec::parse("[1:100,!50]", &Vars::new()).unwrap();
/// assert!(ports.contains(49) && !ports.contains(50) && !ports.contains(101));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<(u16, u16)>", into = "Vec<(u16, u16)>")]
pub struct PortSpec {
    ranges: Vec<(u16, u16)>,
}

impl From<Vec<(u16, u16)>> for PortSpec {
    fn from(ranges: Vec<(u16, u16)>) -> Self {
        Self::from_ranges(ranges)
    }
}

impl From<PortSpec> for Vec<(u16, u16)> {
    fn from(spec: PortSpec) -> Self {
        spec.ranges
    }
}

impl PortSpec {
    /// `any`: every port 0..=65535.
    pub fn any() -> Self {
        Self {
            ranges: vec![(0, u16::MAX)],
        }
    }

    /// Parses and resolves a port field such as `[$HTTP_PORTS,8080:8090]`.
    pub fn parse(text: &str, vars: &Vars) -> Result<Self, SpecError> {
        group::resolve::<PortDomain>(text, vars).map(|set| Self::from_set(&set))
    }

    /// Builds a set from inclusive port ranges; overlapping or unsorted input
    /// is normalised.
    pub fn from_ranges(ranges: Vec<(u16, u16)>) -> Self {
        let wide = ranges
            .into_iter()
            .map(|(a, b)| (u128::from(a), u128::from(b)))
            .collect();
        Self::from_set(&RangeSet::from_ranges(wide))
    }

    fn from_set(set: &RangeSet) -> Self {
        let clamp = |v: u128| u16::try_from(v).unwrap_or(u16::MAX);
        Self {
            ranges: set
                .ranges()
                .iter()
                .map(|&(a, b)| (clamp(a), clamp(b)))
                .collect(),
        }
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        let idx = self.ranges.partition_point(|&(_, end)| end < port);
        self.ranges
            .get(idx)
            .is_some_and(|&(start, _)| start <= port)
    }

    /// True for `any` (or anything equivalent to it).
    pub fn is_any(&self) -> bool {
        self.ranges == [(0, u16::MAX)]
    }

    /// The sorted, disjoint, inclusive port ranges.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

fn ipv4_family() -> RangeSet {
    RangeSet::range(IPV4_START, IPV4_END)
}

fn ipv6_family() -> RangeSet {
    RangeSet::from_ranges(vec![(0, IPV4_START - 1), (IPV4_END + 1, u128::MAX)])
}

struct AddrDomain;

impl Domain for AddrDomain {
    const GROUP: VarGroup = VarGroup::Address;

    fn leaf(text: &str) -> Result<RangeSet, String> {
        if text.eq_ignore_ascii_case("any") {
            return Ok(RangeSet::range(0, u128::MAX));
        }
        if text.contains(':') {
            parse_ipv6(text)
        } else {
            parse_ipv4(text).map(|(a, b)| RangeSet::range(ipv4_key(a), ipv4_key(b)))
        }
    }

    fn fill(include: &mut RangeSet, exclude: &RangeSet) {
        for family in [ipv4_family(), ipv6_family()] {
            if include.intersect(&family).is_empty() && !exclude.intersect(&family).is_empty() {
                *include = include.union(&family);
            }
        }
    }

    fn everything_negated(exclude: &RangeSet) -> bool {
        // Suricata checks the IPv4 space only; `!::/0` fails later as
        // "nothing left".
        exclude.covers(IPV4_START, IPV4_END)
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/m.m.m.m` or `a.b.c.d-e.f.g.h`
/// to an inclusive range. Host bits under a prefix are masked, as Suricata does.
fn parse_ipv4(text: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let addr = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("\"{s}\" is not an IPv4 address"))
    };
    if let Some((ip, mask)) = text.split_once('/') {
        let ip = u32::from(addr(ip)?);
        let mask = mask.trim();
        let netmask = if !mask.is_empty() && mask.bytes().all(|b| b.is_ascii_digit()) {
            match mask.parse::<u32>() {
                Ok(0) => 0,
                Ok(len @ 1..=32) => u32::MAX << (32 - len),
                _ => return Err(format!("prefix length /{mask} is above 32")),
            }
        } else if mask.contains('.') {
            let m = u32::from(addr(mask)?);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(format!("netmask {mask} is not contiguous"));
            }
            m
        } else {
            return Err(format!(
                "\"/{mask}\" is neither a prefix length nor a netmask"
            ));
        };
        let start = ip & netmask;
        Ok((Ipv4Addr::from(start), Ipv4Addr::from(start | !netmask)))
    } else if let Some((a, b)) = text.split_once('-') {
        let (a, b) = (addr(a)?, addr(b)?);
        if a > b {
            return Err("range start above end".into());
        }
        Ok((a, b))
    } else {
        let a = addr(text)?;
        Ok((a, a))
    }
}

/// Parses `addr`, `addr/len` or `addr-addr` (IPv6). The result is kept in
/// the IPv6 family: a wide prefix such as `::/0` does not reach into the
/// IPv4-mapped block, but an address or range entirely inside it
/// (`::ffff:1.2.3.4`) is taken to mean that IPv4 address.
fn parse_ipv6(text: &str) -> Result<RangeSet, String> {
    let addr = |s: &str| {
        s.trim()
            .parse::<Ipv6Addr>()
            .map(u128::from)
            .map_err(|_| format!("\"{s}\" is not an IPv6 address"))
    };
    let (start, end) = if let Some((ip, len)) = text.split_once('/') {
        let ip = addr(ip)?;
        let len = len.trim();
        let len = match len.parse::<u32>() {
            Ok(l @ 0..=128) if len.bytes().all(|b| b.is_ascii_digit()) => l,
            _ => return Err(format!("prefix length /{len} is not 0..128")),
        };
        let netmask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        (ip & netmask, (ip & netmask) | !netmask)
    } else if let Some((a, b)) = text.split_once('-') {
        let (a, b) = (addr(a)?, addr(b)?);
        if a > b {
            return Err("range start above end".into());
        }
        (a, b)
    } else {
        let a = addr(text)?;
        (a, a)
    };
    if start >= IPV4_START && end <= IPV4_END {
        return Ok(RangeSet::range(start, end));
    }
    Ok(RangeSet::range(start, end).intersect(&ipv6_family()))
}

struct PortDomain;

impl Domain for PortDomain {
    const GROUP: VarGroup = VarGroup::Port;

    fn leaf(text: &str) -> Result<RangeSet, String> {
        let (start, end) = parse_port_range(text)?;
        Ok(RangeSet::range(u128::from(start), u128::from(end)))
    }

    fn fill(include: &mut RangeSet, exclude: &RangeSet) {
        if include.is_empty() && !exclude.is_empty() {
            *include = RangeSet::range(0, u128::from(u16::MAX));
        }
    }

    fn everything_negated(exclude: &RangeSet) -> bool {
        exclude.covers(0, u128::from(u16::MAX))
    }
}

/// Parses `any`, `80`, `1024:`, `:1023` or `1000:2000`.
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    if text.eq_ignore_ascii_case("any") {
        return Ok((0, u16::MAX));
    }
    let Some((a, b)) = text.split_once(':') else {
        let p = parse_port(text)?;
        return Ok((p, p));
    };
    let start = if a.trim().is_empty() {
        0
    } else {
        parse_port(a)?
    };
    let end = if b.trim().is_empty() {
        u16::MAX
    } else {
        parse_port(b)?
    };
    if start > end {
        return Err("range start above end".into());
    }
    Ok((start, end))
}

fn parse_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("\"{text}\" is not a port number"));
    }
    text.parse::<u16>()
        .map_err(|_| format!("port {text} is above 65535"))
}
