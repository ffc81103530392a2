//! IP fragment reassembly, IPv4 and IPv6, after Suricata's `defrag`.
//!
//! [`Defragmenter::push`] takes every decoded packet; fragments are held per
//! datagram, keyed by (IP version, source, destination, identification,
//! protocol), until the datagram is complete. The reassembled datagram is
//! returned as an owned raw IP packet, to be decoded again with
//! [`LinkType::RAW`](crate::capture::LinkType::RAW):
//!
//! ```
//! use sandgate_host::capture::LinkType;
//! use sandgate_host::decode::decode;
//! use sandgate_host::defrag::{DefragConfig, DefragResult, Defragmenter};
//!
//! # fn frames() -> Vec<(u64, Vec<u8>)> { Vec::new() }
//! let mut defrag = Defragmenter::new(DefragConfig::default());
//! for (ts_us, frame) in frames() {
//!     let Ok(d) = decode(LinkType::ETHERNET, &frame) else { continue };
//!     // ... inspect `d` itself (Suricata inspects fragments too) ...
//!     if let DefragResult::Reassembled(ip) = defrag.push(&frame, &d, ts_us) {
//!         let whole = decode(LinkType::RAW, &ip)?;
//!         // ... track and inspect `whole`, with `&ip` as its frame ...
//!     }
//!     defrag.expire(ts_us);
//! }
//! # Ok::<(), sandgate_host::decode::DecodeError>(())
//! ```
//!
//! Behaviour, and where it follows Suricata:
//!
//! - **Overlaps** are resolved by [`OverlapPolicy`], default
//!   [`OverlapPolicy::Bsd`] (Suricata's `defrag.default-policy: bsd`): data
//!   already held wins, except where the new fragment starts before the
//!   fragment holding it. Duplicates change nothing.
//! - **Header.** The reassembled packet takes the IP header (IPv4 with
//!   options; IPv6 with the extension headers before the fragment header)
//!   of the fragment at offset 0; lengths are rewritten, the IPv4
//!   fragment field cleared and checksum recomputed, the IPv6 fragment
//!   header removed.
//! - **Timeout.** A datagram not completed within
//!   [`DefragConfig::timeout_us`] of its latest fragment is dropped
//!   (Suricata's `defrag.timeout`, 60 s).
//! - **Limits.** Fragment data held by all datagrams counts against
//!   [`DefragConfig::memcap`]; a fragment that would exceed it, or a new
//!   datagram beyond [`DefragConfig::max_trackers`], is not held
//!   ([`DefragResult::Dropped`]). A datagram whose payload would exceed
//!   65,535 bytes is dropped whole.
//!
//! Not modelled: VLAN ids in the key (Suricata keys on them too), and
//! Suricata's per-host policies.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::{Decoded, FragmentInfo};

/// How overlapping fragment data is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Held data wins unless the new fragment starts before the fragment
    /// holding it (BSD; Suricata's default).
    #[default]
    Bsd,
    /// Held data always wins (Windows, Solaris).
    First,
    /// New data always wins (Cisco IOS).
    Last,
}

/// Reassembly settings; see the module doc for what each does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefragConfig {
    /// Microseconds a datagram may wait for its next fragment. Default 60 s.
    pub timeout_us: u64,
    /// Bytes of held fragment data (plus 64 bytes per fragment), all
    /// datagrams together. Default 32 MiB (Suricata's `defrag.memcap`).
    pub memcap: usize,
    /// Datagrams in reassembly at once. Default 65,535 (`defrag.trackers`).
    pub max_trackers: usize,
    /// Overlap resolution. Default [`OverlapPolicy::Bsd`].
    pub policy: OverlapPolicy,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            timeout_us: 60_000_000,
            memcap: 32 << 20,
            max_trackers: 65_535,
            policy: OverlapPolicy::Bsd,
        }
    }
}

/// Why a fragment was not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DefragDrop {
    /// Holding it would exceed [`DefragConfig::memcap`].
    #[error("defrag memcap reached")]
    Memcap,
    /// A new datagram beyond [`DefragConfig::max_trackers`].
    #[error("too many datagrams in reassembly")]
    TooManyTrackers,
    /// The datagram would be longer than an IP packet can be; the whole
    /// datagram is dropped.
    #[error("reassembled datagram longer than 65535 bytes")]
    TooLarge,
    /// The fragment's ranges do not fit the frame it came with.
    #[error("fragment ranges outside the frame")]
    BadRanges,
}

/// What [`Defragmenter::push`] did with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefragResult {
    /// Not a fragment; nothing to do.
    NotFragment,
    /// Held until the rest of its datagram arrives.
    Held,
    /// The fragment completed its datagram: a raw IPv4 or IPv6 packet, to
    /// be decoded with [`LinkType::RAW`](crate::capture::LinkType::RAW).
    Reassembled(Vec<u8>),
    /// Not held (and any datagram it belonged to is unchanged, except for
    /// [`DefragDrop::TooLarge`], which drops the datagram).
    Dropped(DefragDrop),
}

/// Counters since the defragmenter was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments received.
    pub fragments: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Fragments overlapping data already held (duplicates included).
    pub overlaps: u64,
    /// Datagrams dropped incomplete at their timeout.
    pub timeouts: u64,
    /// Fragments not held, for any [`DefragDrop`] reason.
    pub dropped: u64,
    /// Datagrams in reassembly now.
    pub trackers: usize,
    /// Bytes held now.
    pub memuse: usize,
}

/// Per-fragment bookkeeping charged against the memcap.
const FRAGMENT_OVERHEAD: usize = 64;
/// Largest IP payload a reassembled datagram may carry.
const MAX_PAYLOAD: u32 = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    protocol: u8,
}

#[derive(Debug)]
struct Piece {
    offset: u32,
    data: Vec<u8>,
}

/// One datagram in reassembly.
#[derive(Debug, Default)]
struct Tracker {
    /// Pieces in arrival order.
    pieces: Vec<Piece>,
    /// Header bytes of the offset-0 fragment, and the index in them of the
    /// next-header byte to rewrite (IPv6).
    header: Option<(Vec<u8>, usize)>,
    /// Payload length, once the last fragment (no MF) is seen.
    total: Option<u32>,
    /// Byte ranges held, sorted and merged.
    covered: Vec<(u32, u32)>,
    deadline: u64,
    bytes: usize,
}

/// Reassembles IP fragments; one per worker, like a flow table.
#[derive(Debug)]
pub struct Defragmenter {
    cfg: DefragConfig,
    trackers: HashMap<Key, Tracker>,
    stats: DefragStats,
}

impl Defragmenter {
    /// A defragmenter with no datagrams held.
    pub fn new(cfg: DefragConfig) -> Self {
        Defragmenter {
            cfg,
            trackers: HashMap::new(),
            stats: DefragStats::default(),
        }
    }

    /// Counters, with the current tracker count and memory use.
    pub fn stats(&self) -> DefragStats {
        DefragStats {
            trackers: self.trackers.len(),
            ..self.stats
        }
    }

    /// Offers packet `d`, decoded from `frame`, captured at `ts_us`.
    /// Allocates only for fragments: the held data and the result.
    pub fn push(&mut self, frame: &[u8], d: &Decoded, ts_us: u64) -> DefragResult {
        let Some(f) = d.fragment.filter(|_| d.is_fragment) else {
            return DefragResult::NotFragment;
        };
        self.stats.fragments += 1;
        match self.insert(frame, d, &f, ts_us) {
            Ok(r) => r,
            Err(why) => {
                self.stats.dropped += 1;
                DefragResult::Dropped(why)
            }
        }
    }

    /// Drops datagrams whose timeout passed by `now_us`; returns how many.
    pub fn expire(&mut self, now_us: u64) -> usize {
        let before = self.trackers.len();
        let mut freed = 0;
        self.trackers.retain(|_, t| {
            let keep = t.deadline >= now_us;
            if !keep {
                freed += t.bytes;
            }
            keep
        });
        self.stats.memuse -= freed;
        let gone = before - self.trackers.len();
        self.stats.timeouts += gone as u64;
        gone
    }

    fn insert(
        &mut self,
        frame: &[u8],
        d: &Decoded,
        f: &FragmentInfo,
        ts_us: u64,
    ) -> Result<DefragResult, DefragDrop> {
        let data = frame
            .get(f.data_start..d.l3.end)
            .ok_or(DefragDrop::BadRanges)?;
        let len = u32::try_from(data.len()).map_err(|_| DefragDrop::TooLarge)?;
        let end = f.offset.checked_add(len).ok_or(DefragDrop::TooLarge)?;
        let key = Key {
            src: d.src,
            dst: d.dst,
            id: f.id,
            protocol: f.protocol,
        };
        if self.trackers.get(&key).is_some_and(|t| t.deadline < ts_us) {
            self.remove(&key);
            self.stats.timeouts += 1;
        }
        if end > MAX_PAYLOAD {
            self.remove(&key);
            return Err(DefragDrop::TooLarge);
        }
        let header = if f.offset == 0 {
            let h = frame
                .get(d.l3.start..f.header_end)
                .ok_or(DefragDrop::BadRanges)?;
            let nh = f
                .next_header_field
                .checked_sub(d.l3.start)
                .filter(|&i| i < h.len())
                .ok_or(DefragDrop::BadRanges)?;
            Some((h.to_vec(), nh))
        } else {
            None
        };
        let cost = data.len() + FRAGMENT_OVERHEAD + header.as_ref().map_or(0, |h| h.0.len());
        if self.stats.memuse + cost > self.cfg.memcap {
            return Err(DefragDrop::Memcap);
        }
        if !self.trackers.contains_key(&key) && self.trackers.len() >= self.cfg.max_trackers {
            return Err(DefragDrop::TooManyTrackers);
        }
        let t = self.trackers.entry(key).or_default();
        t.deadline = ts_us.saturating_add(self.cfg.timeout_us);
        if covers_any(&t.covered, f.offset, end) {
            self.stats.overlaps += 1;
        }
        if t.header.is_none() {
            t.header = header;
        }
        if !f.more && t.total.is_none() {
            t.total = Some(end);
        }
        add_range(&mut t.covered, f.offset, end);
        t.pieces.push(Piece {
            offset: f.offset,
            data: data.to_vec(),
        });
        t.bytes += cost;
        self.stats.memuse += cost;
        let complete = match (t.total, t.covered.first(), &t.header) {
            (Some(total), Some(&(0, held)), Some(_)) => held >= total,
            _ => false,
        };
        if !complete {
            return Ok(DefragResult::Held);
        }
        let Some(t) = self.trackers.remove(&key) else {
            return Ok(DefragResult::Held);
        };
        self.stats.memuse -= t.bytes;
        let packet = reassemble(&t, d.ip_version, key.protocol, self.cfg.policy)?;
        self.stats.reassembled += 1;
        Ok(DefragResult::Reassembled(packet))
    }

    fn remove(&mut self, key: &Key) {
        if let Some(t) = self.trackers.remove(key) {
            self.stats.memuse -= t.bytes;
        }
    }
}

/// True when `[start, end)` meets a held range.
fn covers_any(covered: &[(u32, u32)], start: u32, end: u32) -> bool {
    covered.iter().any(|&(s, e)| start < e && s < end)
}

/// Adds `[start, end)` to the sorted, merged range list.
fn add_range(covered: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    if start >= end {
        return;
    }
    let (mut s, mut e) = (start, end);
    covered.retain(|&(a, b)| {
        if a <= e && s <= b {
            s = s.min(a);
            e = e.max(b);
            false
        } else {
            true
        }
    });
    let at = covered.partition_point(|&(a, _)| a < s);
    covered.insert(at, (s, e));
}

/// Builds the datagram: the offset-0 header, then the payload with each
/// byte taken from the piece the policy prefers.
fn reassemble(
    t: &Tracker,
    ip_version: u8,
    protocol: u8,
    policy: OverlapPolicy,
) -> Result<Vec<u8>, DefragDrop> {
    let (header, nh_at) = t.header.as_ref().ok_or(DefragDrop::BadRanges)?;
    let total = t.total.ok_or(DefragDrop::BadRanges)?;
    let payload_len = usize::try_from(total).map_err(|_| DefragDrop::TooLarge)?;
    // Order pieces by preference; the first to claim a byte keeps it.
    let mut order: Vec<usize> = (0..t.pieces.len()).collect();
    match policy {
        OverlapPolicy::Bsd => order.sort_by_key(|&i| (t.pieces.get(i).map_or(0, |p| p.offset), i)),
        OverlapPolicy::First => {}
        OverlapPolicy::Last => order.reverse(),
    }
    let mut payload = vec![0u8; payload_len];
    let mut claimed = vec![false; payload_len];
    for piece in order.iter().filter_map(|&i| t.pieces.get(i)) {
        let start = piece.offset as usize;
        for (i, &b) in piece.data.iter().enumerate() {
            let at = start + i;
            match claimed.get_mut(at) {
                Some(c) if !*c => {
                    *c = true;
                    if let Some(slot) = payload.get_mut(at) {
                        *slot = b;
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    let mut packet = Vec::with_capacity(header.len() + payload_len);
    packet.extend_from_slice(header);
    packet.extend_from_slice(&payload);
    if ip_version == 4 {
        let total = u16::try_from(packet.len()).map_err(|_| DefragDrop::TooLarge)?;
        set_be16(&mut packet, 2, total);
        set_be16(&mut packet, 6, 0);
        set_be16(&mut packet, 10, 0);
        let sum = ipv4_checksum(packet.get(..header.len()).unwrap_or_default());
        set_be16(&mut packet, 10, sum);
    } else {
        let plen =
            u16::try_from(packet.len().saturating_sub(40)).map_err(|_| DefragDrop::TooLarge)?;
        set_be16(&mut packet, 4, plen);
        // The fragment header is gone: its next header moves up a level.
        if let Some(slot) = packet.get_mut(*nh_at) {
            *slot = protocol;
        }
    }
    Ok(packet)
}

fn set_be16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The IPv4 header checksum of `header` (checksum field zeroed).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| {
            let hi = c.first().copied().unwrap_or(0);
            u32::from(u16::from_be_bytes([hi, c.get(1).copied().unwrap_or(0)]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
