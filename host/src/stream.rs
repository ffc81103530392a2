//! TCP stream reassembly: per flow and direction, segments are put back in
//! sequence order so rules can match content split across segments.
//!
//! Behaviour follows Suricata's stream engine where it changes alerts:
//!
//! - **Start.** A direction's next expected sequence number comes from its
//!   SYN (client) or SYN/ACK (server; its ACK also starts the client side if
//!   the SYN was missed). A flow picked up mid-stream starts at its first
//!   data segment once the flow table calls it established. Payload on a
//!   SYN is not reassembled (it is still inspected as a packet).
//! - **Overlaps: first data wins.** Bytes already received — delivered, or
//!   buffered out of order — are never replaced by a later segment covering
//!   the same sequence range; the later bytes are ignored and the segment is
//!   counted in [`StreamStats::overlap_conflicts`] when they differ. This is
//!   what Suricata's streaming buffer does (since 4.0 it keeps data already
//!   inserted), and what Linux and the BSDs do for a retransmission of
//!   acknowledged data.
//! - **Out of order.** Segments ahead of a hole are buffered (at most
//!   [`StreamConfig::max_ooo_segments`] per direction) and delivered when the
//!   hole fills. When a segment of the direction brings no in-order data and
//!   the peer has acknowledged past the hole (the capture lost the segment;
//!   it will not come again), the sender's FIN or RST arrives, or the
//!   per-direction buffer is full, the first hole is given up on: counted
//!   in [`StreamStats::gaps`], and the contiguous buffered data after it
//!   delivered. A chunk never spans a hole and its overlap prefix is reset,
//!   so no match is made across one.
//! - **Depth.** After [`StreamConfig::depth`] bytes of a direction (Suricata's
//!   `stream.reassembly.depth`, default 1 MiB) that direction yields no more
//!   data; its packets are still inspected one by one.
//! - **Memory.** Buffered segments and overlap histories count against
//!   [`StreamConfig::memcap`]; a segment piece that would exceed it is not
//!   buffered and is counted in [`StreamStats::memcap_drops`] (its packet is
//!   then inspected on its own, without bit 4).
//! - **End.** FIN closes the sender's direction, RST both; buffered data
//!   still behind a hole is freed and counted in [`StreamStats::lost_bytes`].
//!   [`Reassembler::forget`] frees everything of flows the flow table expired.
//!
//! In-order data on the hot path is copied once, straight into the caller's
//! buffer (the batch buffer); only out-of-order segments are allocated.

use std::collections::HashMap;

use crate::decode::TcpInfo;
use crate::flow::Direction;

/// Reassembly settings; see the module doc for what each limit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes reassembled per direction; 0 = unlimited. Default 1 MiB
    /// (Suricata's `stream.reassembly.depth: 1mb`).
    pub depth: u64,
    /// Bytes of earlier stream data repeated at the start of each chunk, so
    /// a match spanning segments is found; it bounds the longest such match
    /// (beyond the new data). Default 1,024 — longer than any content in
    /// common rule sets, and cheap to copy per segment.
    pub overlap: usize,
    /// Bytes of buffered segments and overlap histories, all flows together.
    /// Default 64 MiB.
    pub memcap: usize,
    /// Out-of-order segments buffered per direction. Default 64.
    pub max_ooo_segments: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            depth: 1 << 20,
            overlap: 1024,
            memcap: 64 << 20,
            max_ooo_segments: 64,
        }
    }
}

/// Counters since the reassembler was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Flows with reassembly state now.
    pub flows: usize,
    /// Bytes held now (buffered segments plus overlap histories).
    pub memory: usize,
    /// Deliveries of new in-order data (one per chunk).
    pub chunks: u64,
    /// New in-order bytes delivered.
    pub bytes: u64,
    /// Segments wholly before the next expected sequence number.
    pub retransmissions: u64,
    /// Segments overlapping kept data with different bytes (first data won).
    pub overlap_conflicts: u64,
    /// Segments buffered ahead of a hole.
    pub out_of_order: u64,
    /// Holes given up on (see the module doc).
    pub gaps: u64,
    /// Directions that reached the depth.
    pub depth_reached: u64,
    /// Segment pieces not buffered because the memcap was reached.
    pub memcap_drops: u64,
    /// Buffered bytes freed undelivered (flow closed or expired with a hole).
    pub lost_bytes: u64,
}

/// What one segment produced. When `new > 0`, the caller's buffer got
/// `prefix` bytes of earlier stream data followed by `new` in-order bytes;
/// otherwise nothing was appended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Bytes of already-delivered data at the start of the chunk.
    pub prefix: usize,
    /// Newly in-order bytes after the prefix.
    pub new: usize,
    /// Stream offset of the first new byte (0 = first byte after the SYN).
    pub offset: u64,
    /// Every payload byte of the segment is carried by the stream — in this
    /// chunk, an earlier one, or (buffered) a later one: WIT flow-flags bit 4.
    pub in_stream: bool,
}

impl Delivery {
    /// True when the segment brought no new in-order data (no chunk).
    pub fn is_empty(&self) -> bool {
        self.new == 0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// No SYN seen, not picked up yet.
    #[default]
    Unset,
    Open,
    /// FIN/RST seen or depth reached: no more data.
    Done,
}

/// An out-of-order segment piece, at its stream offset.
#[derive(Debug)]
struct Segment {
    off: u64,
    data: Vec<u8>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.off.saturating_add(self.data.len() as u64)
    }
}

/// One direction of a flow.
#[derive(Debug, Default)]
struct HalfStream {
    state: State,
    /// Sequence number of stream offset 0.
    base_seq: u32,
    /// Stream offset of the next expected byte.
    next_off: u64,
    /// The last `history_cap` delivered bytes (contiguous with `next_off`).
    history: Vec<u8>,
    history_cap: usize,
    /// Sorted by offset, non-overlapping, all at or after `next_off`.
    ooo: Vec<Segment>,
    ooo_bytes: usize,
    /// Highest ACK the other side sent for this direction's data.
    peer_ack: Option<u32>,
}

impl HalfStream {
    fn next_seq(&self) -> u32 {
        self.base_seq.wrapping_add(self.next_off as u32)
    }

    /// Memory this half holds, as counted against the memcap.
    fn memory(&self) -> usize {
        self.history_cap.saturating_add(self.ooo_bytes)
    }

    /// Frees buffers; returns (bytes released, buffered bytes lost).
    fn release(&mut self) -> (usize, usize) {
        let held = self.memory();
        let lost = self.ooo_bytes;
        self.ooo = Vec::new();
        self.ooo_bytes = 0;
        self.history = Vec::new();
        self.history_cap = 0;
        (held, lost)
    }

    /// Keeps the last `history_cap` bytes of the delivered stream.
    fn remember(&mut self, data: &[u8]) {
        let keep = self.history_cap;
        if data.len() >= keep {
            self.history.clear();
            self.history
                .extend_from_slice(data.get(data.len() - keep..).unwrap_or(&[]));
        } else {
            let excess = (self.history.len() + data.len()).saturating_sub(keep);
            self.history.drain(..excess.min(self.history.len()));
            self.history.extend_from_slice(data);
        }
    }

    /// Bytes of `payload` at stream offset `start` that differ from kept
    /// data (history, then buffered segments) — only where it can be told.
    fn differs(&self, start: u64, payload: &[u8]) -> bool {
        let hist_start = self.next_off.saturating_sub(self.history.len() as u64);
        let cmp = |off: u64, kept: &[u8]| -> bool {
            let lo = start.max(off);
            let hi = start
                .saturating_add(payload.len() as u64)
                .min(off.saturating_add(kept.len() as u64));
            if lo >= hi {
                return false;
            }
            let a = payload.get((lo - start) as usize..(hi - start) as usize);
            let b = kept.get((lo - off) as usize..(hi - off) as usize);
            a != b
        };
        cmp(hist_start, &self.history) || self.ooo.iter().any(|s| cmp(s.off, &s.data))
    }
}

/// Reassembles TCP streams of many flows; see the module doc.
///
/// ```
/// use sandgate_host::decode::TcpInfo;
/// use sandgate_host::flow::Direction;
/// use sandgate_host::stream::{Reassembler, StreamConfig};
/// let mut r = Reassembler::new(StreamConfig::default());
/// let tcp = |seq, flags| TcpInfo { seq, ack: 0, flags, window: 0 };
/// let mut out = Vec::new();
/// r.segment(1, Direction::ToServer, false, &tcp(99, TcpInfo::SYN), b"", &mut out);
/// let d = r.segment(1, Direction::ToServer, true, &tcp(106, TcpInfo::ACK), b"WORLD", &mut out);
/// assert!(d.is_empty() && d.in_stream); // ahead of a hole: buffered
/// let d = r.segment(1, Direction::ToServer, true, &tcp(100, TcpInfo::ACK), b"HELLO ", &mut out);
/// assert_eq!((d.prefix, d.new), (0, 11));
/// assert_eq!(out, b"HELLO WORLD");
/// ```
#[derive(Debug)]
pub struct Reassembler {
    config: StreamConfig,
    flows: HashMap<u64, [HalfStream; 2]>,
    memory: usize,
    stats: StreamStats,
}

impl Reassembler {
    pub fn new(config: StreamConfig) -> Self {
        Reassembler {
            config,
            flows: HashMap::new(),
            memory: 0,
            stats: StreamStats::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Counters, with the current flow count and memory.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            flows: self.flows.len(),
            memory: self.memory,
            ..self.stats
        }
    }

    /// Feeds one TCP segment of `flow_id` going `direction`; appends the
    /// chunk (overlap prefix, then new in-order data) to `out` when there is
    /// new data. `established` is the flow table's view of the packet: it
    /// lets a flow without a seen SYN be picked up mid-stream.
    pub fn segment(
        &mut self,
        flow_id: u64,
        direction: Direction,
        established: bool,
        tcp: &TcpInfo,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Delivery {
        let d = match direction {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
            Direction::Unknown => return Delivery::default(),
        };
        let syn = tcp.has(TcpInfo::SYN);
        let ack = tcp.has(TcpInfo::ACK);
        let pickup = established && !payload.is_empty();
        if !(syn || pickup || self.flows.contains_key(&flow_id)) {
            return Delivery::default();
        }
        let overlap = self.config.overlap;
        let halves = self.flows.entry(flow_id).or_default();
        if syn {
            let [a, b] = halves;
            let (this, other) = if d == 0 { (a, b) } else { (b, a) };
            let fresh = this.state == State::Unset
                || (this.state == State::Open && this.next_off == 0 && this.ooo.is_empty());
            if fresh {
                open(
                    this,
                    tcp.seq.wrapping_add(1),
                    overlap,
                    &mut self.memory,
                    &self.config,
                );
            }
            if ack && other.state == State::Unset {
                open(other, tcp.ack, overlap, &mut self.memory, &self.config);
            }
            return Delivery::default();
        }
        let [a, b] = halves;
        let (this, other) = if d == 0 { (a, b) } else { (b, a) };
        if ack && other.state == State::Open {
            other.peer_ack = Some(match other.peer_ack {
                Some(prev) if (tcp.ack.wrapping_sub(prev) as i32) <= 0 => prev,
                _ => tcp.ack,
            });
        }
        if this.state == State::Unset {
            if !established || payload.is_empty() {
                return Delivery::default();
            }
            open(this, tcp.seq, overlap, &mut self.memory, &self.config);
        }
        let rst = tcp.has(TcpInfo::RST);
        let closing = tcp.has(TcpInfo::FIN) || rst;
        let mut delivery = Delivery::default();
        if this.state == State::Open && (!payload.is_empty() || (closing && !this.ooo.is_empty())) {
            delivery = self.accept(flow_id, d, tcp.seq, payload, closing, out);
        }
        if closing {
            if let Some(halves) = self.flows.get_mut(&flow_id) {
                for (i, h) in halves.iter_mut().enumerate() {
                    if (i == d || rst) && h.state != State::Done {
                        h.state = State::Done;
                        let (held, lost) = h.release();
                        self.memory = self.memory.saturating_sub(held);
                        self.stats.lost_bytes += lost as u64;
                    }
                }
            }
        }
        delivery
    }

    /// Frees the state of flows the flow table removed.
    pub fn forget(&mut self, flow_ids: &[u64]) {
        for id in flow_ids {
            if let Some(mut halves) = self.flows.remove(id) {
                for h in &mut halves {
                    let (held, lost) = h.release();
                    self.memory = self.memory.saturating_sub(held);
                    self.stats.lost_bytes += lost as u64;
                }
            }
        }
    }

    /// Places a data segment of an open direction; see [`Reassembler::segment`].
    fn accept(
        &mut self,
        flow_id: u64,
        d: usize,
        seq: u32,
        payload: &[u8],
        closing: bool,
        out: &mut Vec<u8>,
    ) -> Delivery {
        let Some(h) = self.flows.get_mut(&flow_id).and_then(|f| f.get_mut(d)) else {
            return Delivery::default();
        };
        let cfg = &self.config;
        let stats = &mut self.stats;
        let memory = &mut self.memory;
        let out_start = out.len();
        out.extend_from_slice(&h.history);
        let prefix = h.history.len();
        let first_off = h.next_off;
        let (mut in_stream, refused) = place(h, cfg, stats, memory, seq, payload, out);
        let mut new = out.len() - out_start - prefix;
        let mut prefix = prefix;
        let mut offset = first_off;
        if new == 0 && !h.ooo.is_empty() {
            let acked = h
                .peer_ack
                .is_some_and(|a| (a.wrapping_sub(h.next_seq()) as i32) > 0);
            if acked || closing || refused {
                // Give up on the first hole: deliver the contiguous run after
                // it, without a prefix (a match must not span a hole), then
                // place the segment again if a piece was refused for room.
                out.truncate(out_start);
                h.history.clear();
                prefix = 0;
                let seg = h.ooo.remove(0);
                stats.gaps += 1;
                offset = seg.off;
                h.ooo_bytes = h.ooo_bytes.saturating_sub(seg.data.len());
                *memory = memory.saturating_sub(seg.data.len());
                out.extend_from_slice(&seg.data);
                h.next_off = seg.end();
                drain_ready(h, memory, out);
                if refused {
                    in_stream = place(h, cfg, stats, memory, seq, payload, out).0;
                }
                new = out.len() - out_start;
            }
        }
        if new == 0 {
            out.truncate(out_start);
            return Delivery {
                in_stream,
                ..Delivery::default()
            };
        }
        h.remember(out.get(out_start + prefix..).unwrap_or(&[]));
        stats.chunks += 1;
        stats.bytes += new as u64;
        if cfg.depth != 0 && h.next_off >= cfg.depth && h.state != State::Done {
            h.state = State::Done;
            stats.depth_reached += 1;
            let (held, lost) = h.release();
            *memory = memory.saturating_sub(held);
            stats.lost_bytes += lost as u64;
        }
        Delivery {
            prefix,
            new,
            offset,
            in_stream,
        }
    }
}

/// Opens a direction whose next expected sequence number is `next_seq`.
fn open(h: &mut HalfStream, next_seq: u32, overlap: usize, memory: &mut usize, cfg: &StreamConfig) {
    let (held, _) = h.release();
    *memory = memory.saturating_sub(held);
    *h = HalfStream {
        state: State::Open,
        base_seq: next_seq,
        ..HalfStream::default()
    };
    if memory.saturating_add(overlap) <= cfg.memcap {
        h.history = Vec::with_capacity(overlap);
        h.history_cap = overlap;
        *memory += overlap;
    }
}

/// Puts the bytes of a segment in place: in-order pieces are appended to
/// `out` (and buffered segments they reach drained after them), pieces ahead
/// of a hole are buffered. First data wins everywhere. Returns whether every
/// byte is accounted for by the stream (bit 4), and whether a piece was
/// refused because the direction's out-of-order buffer is full.
fn place(
    h: &mut HalfStream,
    cfg: &StreamConfig,
    stats: &mut StreamStats,
    memory: &mut usize,
    seq: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> (bool, bool) {
    if payload.is_empty() {
        return (true, false);
    }
    let rel = i64::from(seq.wrapping_sub(h.next_seq()) as i32);
    let next = h.next_off as i64;
    let start = next.saturating_add(rel);
    let len = payload.len() as i64;
    let end = start.saturating_add(len);
    let limit = if cfg.depth == 0 {
        i64::MAX
    } else {
        i64::try_from(cfg.depth).unwrap_or(i64::MAX)
    };
    let mut accounted = end <= limit && start >= 0;
    let seg_start = start.max(0) as u64;
    let skip = (start.max(0) - start) as usize;
    let visible = payload.get(skip..).unwrap_or(&[]);
    if end <= next {
        stats.retransmissions += 1;
    }
    if h.differs(seg_start, visible) {
        stats.overlap_conflicts += 1;
    }
    let usable_end = end.min(limit).max(0) as u64;
    let mut pos = seg_start.max(h.next_off);
    let mut buffered = false;
    let mut refused = false;
    loop {
        drain_ready(h, memory, out);
        pos = pos.max(h.next_off);
        if pos >= usable_end {
            break;
        }
        let covering = h.ooo.iter().find(|s| s.end() > pos);
        let piece_end = match covering {
            Some(s) if s.off <= pos => {
                pos = s.end();
                continue;
            }
            Some(s) => s.off.min(usable_end),
            None => usable_end,
        };
        let from = (pos - seg_start) as usize;
        let to = (piece_end - seg_start) as usize;
        let bytes = visible.get(from..to).unwrap_or(&[]);
        if pos == h.next_off {
            out.extend_from_slice(bytes);
            h.next_off = piece_end;
        } else if h.ooo.len() >= cfg.max_ooo_segments {
            accounted = false;
            refused = true;
        } else if memory.saturating_add(bytes.len()) > cfg.memcap {
            stats.memcap_drops += 1;
            accounted = false;
        } else {
            let at = h.ooo.partition_point(|s| s.off < pos);
            h.ooo.insert(
                at,
                Segment {
                    off: pos,
                    data: bytes.to_vec(),
                },
            );
            h.ooo_bytes += bytes.len();
            *memory += bytes.len();
            buffered = true;
        }
        pos = piece_end;
    }
    if buffered {
        stats.out_of_order += 1;
    }
    (accounted, refused)
}

/// Appends buffered segments that the in-order data has reached.
fn drain_ready(h: &mut HalfStream, memory: &mut usize, out: &mut Vec<u8>) {
    while h.ooo.first().is_some_and(|s| s.off <= h.next_off) {
        let seg = h.ooo.remove(0);
        let skip = h.next_off.saturating_sub(seg.off) as usize;
        out.extend_from_slice(seg.data.get(skip..).unwrap_or(&[]));
        h.next_off = h.next_off.max(seg.end());
        h.ooo_bytes = h.ooo_bytes.saturating_sub(seg.data.len());
        *memory = memory.saturating_sub(seg.data.len());
    }
}
