//! Flow table: maps decoded packets to bidirectional flows, says which way
//! each packet goes and whether the flow is established, and evicts idle flows.
//!
//! The key is the 5-tuple normalised so both directions share one flow (ICMP
//! flows use addresses only). `established` follows Suricata's `flow:established`:
//! for TCP, from the first packet after the 3-way handshake (handshake packets
//! themselves are not established) until the flow ends, FIN and RST included;
//! for UDP, ICMP and other protocols, from the first reply onwards.
//!
//! Flows live in a slab threaded on a least-recently-used list, so the idle
//! flow evicted when the table is full is found in O(1), and [`FlowTable::expire`]
//! walks only flows that have been idle for at least the shortest timeout.
//! The map uses std's keyed SipHash: flow keys are attacker-chosen, and an
//! unkeyed fast hash (FxHash) would let crafted 5-tuples collide.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::decode::{proto, Decoded, TcpInfo};

/// Flow table settings. Defaults follow Suricata's `flow-timeouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// Most flows held at once; when full, the least recently seen flow is
    /// evicted (counted in [`FlowStats::evicted`]). Default 65,536; at least 1.
    pub max_flows: usize,
    /// Idle timeout of a flow that is not yet established (TCP before the
    /// handshake completes, UDP/ICMP before a reply). Default 30 s.
    pub new_timeout: Duration,
    /// Idle timeout of an established TCP flow. Default 600 s.
    pub tcp_timeout: Duration,
    /// Idle timeout of a TCP flow after RST or FIN in both directions.
    /// Default 60 s.
    pub tcp_closed_timeout: Duration,
    /// Idle timeout of an established UDP flow. Default 300 s.
    pub udp_timeout: Duration,
    /// Idle timeout of an established ICMP/ICMPv6 flow. Default 300 s.
    pub icmp_timeout: Duration,
    /// Idle timeout of an established flow of any other protocol. Default 300 s.
    pub other_timeout: Duration,
    /// Pick up TCP sessions whose handshake was not seen (Suricata's
    /// `stream.midstream`): established from the second packet on. Default
    /// false: such flows are never established.
    pub midstream: bool,
    /// High 16 bits of every flow id, so tables of different workers never
    /// hand out the same id. Default 0.
    pub worker_id: u16,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 65_536,
            new_timeout: Duration::from_secs(30),
            tcp_timeout: Duration::from_secs(600),
            tcp_closed_timeout: Duration::from_secs(60),
            udp_timeout: Duration::from_secs(300),
            icmp_timeout: Duration::from_secs(300),
            other_timeout: Duration::from_secs(300),
            midstream: false,
            worker_id: 0,
        }
    }
}

/// Which way a packet goes within its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the initiator (client) to the responder (server).
    ToServer,
    /// From the responder to the initiator.
    ToClient,
    /// Cannot tell: source and destination endpoints are identical.
    Unknown,
}

/// What the flow table knows about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowView {
    /// Never 0; unique for the lifetime of the table.
    pub flow_id: u64,
    /// Direction of this packet.
    pub direction: Direction,
    /// Suricata's `flow:established` for this packet.
    pub established: bool,
    /// This packet created the flow.
    pub new_flow: bool,
}

/// Counters since the table was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// Flows currently held.
    pub active: usize,
    /// Flows created.
    pub created: u64,
    /// Flows removed by [`FlowTable::expire`] after their idle timeout.
    pub expired: u64,
    /// Flows evicted early because the table was full.
    pub evicted: u64,
    /// Closed TCP flows replaced by a new SYN on the same 5-tuple.
    pub reused: u64,
}

/// One side of a flow.
type Endpoint = (IpAddr, u16);

/// The normalised flow key: both directions map to the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    protocol: u8,
    lo: Endpoint,
    hi: Endpoint,
}

impl FlowKey {
    /// The key of `d` and the packet's source endpoint as the key sees it.
    fn of(d: &Decoded) -> (FlowKey, Endpoint) {
        let (sp, dp) = match d.protocol {
            proto::ICMP | proto::ICMPV6 => (0, 0),
            _ => (d.src_port, d.dst_port),
        };
        let a = (d.src, sp);
        let b = (d.dst, dp);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let key = FlowKey {
            protocol: d.protocol,
            lo,
            hi,
        };
        (key, a)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpState {
    /// Not TCP.
    None,
    /// Client sent SYN.
    SynSent,
    /// Server answered SYN/ACK.
    SynRecv,
    /// Handshake complete (or picked up midstream).
    Established,
    /// First packet was not a SYN and midstream pickup is off.
    Untracked,
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Flow {
    key: FlowKey,
    id: u64,
    /// The initiator's endpoint (source of ToServer packets).
    client: Endpoint,
    last_seen_us: u64,
    tcp: TcpState,
    seen_to_server: bool,
    seen_to_client: bool,
    fin_to_server: bool,
    fin_to_client: bool,
    reset: bool,
    /// Neighbours on the LRU list (slab indices).
    prev: u32,
    next: u32,
}

impl Flow {
    fn closed(&self) -> bool {
        self.reset || (self.fin_to_server && self.fin_to_client)
    }

    fn established(&self) -> bool {
        match self.tcp {
            TcpState::None => self.seen_to_server && self.seen_to_client,
            state => state == TcpState::Established,
        }
    }
}

/// Bidirectional flow tracking with idle timeouts and a size bound.
///
/// ```
/// use sandgate_host::{capture::LinkType, decode::decode, synth::SynthCapture};
/// use sandgate_host::flow::{Direction, FlowConfig, FlowTable};
/// let mut cap = SynthCapture::new(0);
/// cap.udp_v4([10, 0, 0, 1], 5000, [10, 0, 0, 2], 53, b"q")?;
/// cap.udp_v4([10, 0, 0, 2], 53, [10, 0, 0, 1], 5000, b"a")?;
/// let mut table = FlowTable::new(FlowConfig::default());
/// let views: Vec<_> = cap.frames().iter().map(|(ts, f)| {
///     let d = decode(LinkType::ETHERNET, f).unwrap();
///     table.track(&d, *ts)
/// }).collect();
/// assert_eq!(views[0].flow_id, views[1].flow_id);
/// assert_eq!(views[1].direction, Direction::ToClient);
/// assert!(!views[0].established && views[1].established);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FlowTable {
    config: FlowConfig,
    map: HashMap<FlowKey, u32>,
    slab: Vec<Flow>,
    free: Vec<u32>,
    /// Least recently seen flow.
    head: u32,
    /// Most recently seen flow.
    tail: u32,
    next_id: u64,
    stats: FlowStats,
    /// Ids removed outside `expire` (capacity eviction, reuse), reported by
    /// the next `expire` call.
    removed: Vec<u64>,
}

impl FlowTable {
    /// An empty table. A `max_flows` of 0 is treated as 1.
    pub fn new(mut config: FlowConfig) -> FlowTable {
        config.max_flows = config.max_flows.clamp(1, NIL as usize - 1);
        FlowTable {
            config,
            map: HashMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            next_id: 1,
            stats: FlowStats::default(),
            removed: Vec::new(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    /// Counters; `active` is the current number of flows.
    pub fn stats(&self) -> FlowStats {
        FlowStats {
            active: self.map.len(),
            ..self.stats
        }
    }

    /// Number of flows held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Finds or creates the flow of `d`, seen at `ts_us`, and updates its
    /// state. Allocation-free except when the table grows.
    pub fn track(&mut self, d: &Decoded, ts_us: u64) -> FlowView {
        let (key, src) = FlowKey::of(d);
        let mut new_flow = false;
        let index = match self.map.get(&key).copied() {
            Some(index) if self.is_reuse(index, d) => {
                self.stats.reused += 1;
                self.remove(index, true);
                new_flow = true;
                self.insert(key, src, d, ts_us)
            }
            Some(index) => index,
            None => {
                new_flow = true;
                self.insert(key, src, d, ts_us)
            }
        };
        self.touch(index);
        let midstream = self.config.midstream;
        let Some(flow) = self.slab.get_mut(index as usize) else {
            // Unreachable: indices in the map always point into the slab.
            return FlowView {
                flow_id: 0,
                direction: Direction::Unknown,
                established: false,
                new_flow,
            };
        };
        flow.last_seen_us = flow.last_seen_us.max(ts_us);
        let direction = if key.lo == key.hi {
            Direction::Unknown
        } else if src == flow.client {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let established = match d.tcp {
            Some(tcp) if flow.tcp != TcpState::None => {
                let before = flow.established();
                advance_tcp(flow, direction, tcp.flags, new_flow, midstream);
                before
            }
            _ => {
                match direction {
                    Direction::ToClient => flow.seen_to_client = true,
                    _ => flow.seen_to_server = true,
                }
                flow.established()
            }
        };
        FlowView {
            flow_id: flow.id,
            direction,
            established,
            new_flow,
        }
    }

    /// Removes flows idle past their timeout at `now_us` and returns their
    /// ids, together with ids evicted or replaced since the last call, so
    /// other layers can drop per-flow state.
    pub fn expire(&mut self, now_us: u64) -> Vec<u64> {
        let mut ids = std::mem::take(&mut self.removed);
        let min_timeout = self.min_timeout_us();
        let mut index = self.head;
        while let Some(flow) = self.slab.get(index as usize) {
            let idle = now_us.saturating_sub(flow.last_seen_us);
            if idle < min_timeout {
                // Later flows on the LRU list were seen more recently.
                break;
            }
            let next = flow.next;
            if idle >= self.timeout_us(flow) {
                ids.push(flow.id);
                self.stats.expired += 1;
                self.remove(index, false);
            }
            index = next;
        }
        ids
    }

    /// Closed TCP flow and a fresh SYN: the 5-tuple is being reused.
    fn is_reuse(&self, index: u32, d: &Decoded) -> bool {
        let Some(tcp) = d.tcp else { return false };
        let syn_only = tcp.flags & (TcpInfo::SYN | TcpInfo::ACK) == TcpInfo::SYN;
        syn_only && self.slab.get(index as usize).is_some_and(Flow::closed)
    }

    fn timeout_us(&self, flow: &Flow) -> u64 {
        let c = &self.config;
        let timeout = if flow.tcp != TcpState::None && flow.closed() {
            c.tcp_closed_timeout
        } else if !flow.established() {
            c.new_timeout
        } else {
            match flow.key.protocol {
                proto::TCP => c.tcp_timeout,
                proto::UDP => c.udp_timeout,
                proto::ICMP | proto::ICMPV6 => c.icmp_timeout,
                _ => c.other_timeout,
            }
        };
        duration_us(timeout)
    }

    fn min_timeout_us(&self) -> u64 {
        let c = &self.config;
        [
            c.new_timeout,
            c.tcp_timeout,
            c.tcp_closed_timeout,
            c.udp_timeout,
            c.icmp_timeout,
            c.other_timeout,
        ]
        .into_iter()
        .map(duration_us)
        .min()
        .unwrap_or(0)
    }

    fn insert(&mut self, key: FlowKey, src: Endpoint, d: &Decoded, ts_us: u64) -> u32 {
        if self.map.len() >= self.config.max_flows {
            let oldest = self.head;
            if let Some(id) = self.slab.get(oldest as usize).map(|f| f.id) {
                self.removed.push(id);
                self.stats.evicted += 1;
                self.remove(oldest, false);
            }
        }
        let id = (u64::from(self.config.worker_id) << 48) | (self.next_id & 0xFFFF_FFFF_FFFF);
        self.next_id += 1;
        if self.next_id > 0xFFFF_FFFF_FFFF {
            self.next_id = 1;
        }
        let tcp = d.tcp.map(|t| t.flags);
        // A SYN/ACK as first packet comes from the server.
        let client = match tcp {
            Some(flags) if flags & (TcpInfo::SYN | TcpInfo::ACK) == TcpInfo::SYN | TcpInfo::ACK => {
                if src == key.lo {
                    key.hi
                } else {
                    key.lo
                }
            }
            _ => src,
        };
        let flow = Flow {
            key,
            id,
            client,
            last_seen_us: ts_us,
            tcp: if tcp.is_some() {
                TcpState::Untracked
            } else {
                TcpState::None
            },
            seen_to_server: false,
            seen_to_client: false,
            fin_to_server: false,
            fin_to_client: false,
            reset: false,
            prev: NIL,
            next: NIL,
        };
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(slot) = self.slab.get_mut(index as usize) {
                    *slot = flow;
                }
                index
            }
            None => {
                self.slab.push(flow);
                (self.slab.len() - 1) as u32
            }
        };
        self.map.insert(key, index);
        self.stats.created += 1;
        index
    }

    /// Unlinks and frees a slot; `report` queues its id for the next `expire`.
    fn remove(&mut self, index: u32, report: bool) {
        self.unlink(index);
        if let Some(flow) = self.slab.get(index as usize) {
            self.map.remove(&flow.key);
            if report {
                self.removed.push(flow.id);
            }
            self.free.push(index);
        }
    }

    fn unlink(&mut self, index: u32) {
        let Some((prev, next)) = self.slab.get(index as usize).map(|f| (f.prev, f.next)) else {
            return;
        };
        if prev == NIL && self.head != index {
            // Not on the list (a freshly inserted flow).
            return;
        }
        match self.slab.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slab.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(f) = self.slab.get_mut(index as usize) {
            f.prev = NIL;
            f.next = NIL;
        }
    }

    /// Moves a flow to the most-recently-seen end of the LRU list.
    fn touch(&mut self, index: u32) {
        if self.tail == index {
            return;
        }
        self.unlink(index);
        let old_tail = self.tail;
        if let Some(f) = self.slab.get_mut(index as usize) {
            f.prev = old_tail;
            f.next = NIL;
        }
        match self.slab.get_mut(old_tail as usize) {
            Some(t) => t.next = index,
            None => self.head = index,
        }
        self.tail = index;
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Suricata-like TCP handshake tracking; `established` is read before this
/// runs, so the packet completing the handshake is itself not established.
fn advance_tcp(flow: &mut Flow, direction: Direction, flags: u8, first: bool, midstream: bool) {
    let syn = flags & TcpInfo::SYN != 0;
    let ack = flags & TcpInfo::ACK != 0;
    let rst = flags & TcpInfo::RST != 0;
    if first {
        flow.tcp = match (syn, ack) {
            (true, false) => TcpState::SynSent,
            (true, true) => TcpState::SynRecv,
            _ if midstream => TcpState::Established,
            _ => TcpState::Untracked,
        };
    } else {
        flow.tcp = match (flow.tcp, direction) {
            (TcpState::SynSent, Direction::ToClient) if syn && ack && !rst => TcpState::SynRecv,
            (TcpState::SynRecv, Direction::ToServer) if ack && !syn && !rst => {
                TcpState::Established
            }
            (state, _) => state,
        };
    }
    match direction {
        Direction::ToClient => flow.seen_to_client = true,
        _ => flow.seen_to_server = true,
    }
    if rst {
        flow.reset = true;
    }
    if flags & TcpInfo::FIN != 0 {
        match direction {
            Direction::ToClient => flow.fin_to_client = true,
            _ => flow.fin_to_server = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::decode::decode;
    use crate::synth::{IpPair, SynthCapture};

    const C: [u8; 4] = [10, 0, 0, 1];
    const S: [u8; 4] = [10, 0, 0, 2];

    fn run(table: &mut FlowTable, cap: &SynthCapture) -> Vec<FlowView> {
        cap.frames()
            .iter()
            .map(|(ts, f)| table.track(&decode(LinkType::ETHERNET, f).unwrap(), *ts))
            .collect()
    }

    fn summary(views: &[FlowView]) -> Vec<(Direction, bool)> {
        views.iter().map(|v| (v.direction, v.established)).collect()
    }

    use Direction::{ToClient as TC, ToServer as TS};

    #[test]
    fn tcp_handshake_then_established_through_teardown() {
        let mut cap = SynthCapture::new(1_000);
        let mut s = cap.tcp_v4(C, 40000, S, 80);
        s.handshake(); // 1-3
        s.client_sends(b"GET / HTTP/1.1\r\n\r\n"); // 4
        s.server_sends(b"HTTP/1.1 200 OK\r\n\r\n"); // 5
        s.close(); // 6-8
        let mut table = FlowTable::new(FlowConfig::default());
        let views = run(&mut table, &cap);
        assert_eq!(
            summary(&views),
            [
                (TS, false), // SYN
                (TC, false), // SYN/ACK
                (TS, false), // ACK completing the handshake
                (TS, true),
                (TC, true),
                (TS, true), // FIN
                (TC, true),
                (TS, true),
            ]
        );
        assert!(views[0].new_flow && views[1..].iter().all(|v| !v.new_flow));
        assert!(views
            .iter()
            .all(|v| v.flow_id == views[0].flow_id && v.flow_id != 0));
    }

    #[test]
    fn midstream_session_is_not_established_unless_enabled() {
        let mut cap = SynthCapture::new(0);
        let mut s = cap.tcp_v4(C, 40000, S, 80);
        s.client_sends(b"data");
        s.server_sends(b"more");
        s.client_sends(b"again");
        let mut table = FlowTable::new(FlowConfig::default());
        assert_eq!(
            summary(&run(&mut table, &cap)),
            [(TS, false), (TC, false), (TS, false)]
        );
        let mut table = FlowTable::new(FlowConfig {
            midstream: true,
            ..FlowConfig::default()
        });
        assert_eq!(
            summary(&run(&mut table, &cap)),
            [(TS, false), (TC, true), (TS, true)]
        );
    }

    #[test]
    fn syn_ack_first_means_sender_is_server() {
        let mut cap = SynthCapture::new(0);
        let mut s = cap.tcp_v4(C, 40000, S, 80);
        s.raw_segment(false, TcpInfo::SYN | TcpInfo::ACK, b"");
        s.raw_segment(true, TcpInfo::ACK, b"");
        s.client_sends(b"x");
        let mut table = FlowTable::new(FlowConfig::default());
        assert_eq!(
            summary(&run(&mut table, &cap)),
            [(TC, false), (TS, false), (TS, true)]
        );
    }

    #[test]
    fn udp_request_reply_and_icmp() {
        let mut cap = SynthCapture::new(0);
        cap.udp_v4(C, 5000, S, 53, b"query").unwrap();
        cap.udp_v4(S, 53, C, 5000, b"answer").unwrap();
        cap.udp_v4(C, 5000, S, 53, b"again").unwrap();
        cap.icmp_echo_request_v4(C, S, 1, 1, b"ping").unwrap();
        cap.icmp_echo_reply_v4(S, C, 1, 1, b"ping").unwrap();
        let mut table = FlowTable::new(FlowConfig::default());
        let views = run(&mut table, &cap);
        assert_eq!(
            summary(&views),
            [(TS, false), (TC, true), (TS, true), (TS, false), (TC, true)]
        );
        assert_eq!(views[0].flow_id, views[2].flow_id);
        assert_ne!(views[0].flow_id, views[3].flow_id);
        assert_eq!(
            views[3].flow_id, views[4].flow_id,
            "icmp type must not split the flow"
        );
        assert_eq!(table.stats().created, 2);
    }

    #[test]
    fn same_endpoints_give_unknown_direction() {
        let mut cap = SynthCapture::new(0);
        cap.udp_v4(C, 7, C, 7, b"loop").unwrap();
        let mut table = FlowTable::new(FlowConfig::default());
        assert_eq!(run(&mut table, &cap)[0].direction, Direction::Unknown);
    }

    #[test]
    fn idle_flows_expire_by_protocol_and_state() {
        let mut cap = SynthCapture::with_step(0, 0);
        cap.udp_v4(C, 1, S, 2, b"no reply").unwrap();
        cap.udp_v4(C, 3, S, 4, b"q").unwrap();
        cap.udp_v4(S, 4, C, 3, b"a").unwrap();
        let mut table = FlowTable::new(FlowConfig::default());
        let views = run(&mut table, &cap);
        assert!(table.expire(29_000_000).is_empty());
        assert_eq!(table.expire(30_000_000), vec![views[0].flow_id]);
        assert!(table.expire(299_000_000).is_empty());
        assert_eq!(table.expire(300_000_000), vec![views[1].flow_id]);
        assert!(table.is_empty());
        assert_eq!(table.stats().expired, 2);
    }

    #[test]
    fn full_table_evicts_least_recently_seen() {
        let mut table = FlowTable::new(FlowConfig {
            max_flows: 2,
            ..FlowConfig::default()
        });
        let mut cap = SynthCapture::new(0);
        for port in [1, 2] {
            cap.udp_v4(C, port, S, 53, b"q").unwrap();
        }
        cap.udp_v4(C, 1, S, 53, b"q again").unwrap(); // flow 1 becomes recent
        cap.udp_v4(C, 3, S, 53, b"q").unwrap(); // evicts flow 2
        let views = run(&mut table, &cap);
        assert_eq!(table.len(), 2);
        assert_eq!(table.stats().evicted, 1);
        assert_eq!(table.expire(0), vec![views[1].flow_id]);
        let ids: std::collections::HashSet<u64> = views.iter().map(|v| v.flow_id).collect();
        assert_eq!(ids.len(), 3, "ids are never reused");
    }

    #[test]
    fn closed_tcp_flow_is_replaced_by_new_syn() {
        let mut cap = SynthCapture::new(0);
        let mut s = cap.tcp_v4(C, 40000, S, 80);
        s.handshake();
        s.close();
        let mut s = cap.tcp_v4(C, 40000, S, 80);
        s.handshake();
        s.client_sends(b"x");
        let mut table = FlowTable::new(FlowConfig::default());
        let views = run(&mut table, &cap);
        assert!(views[6].new_flow);
        assert_ne!(views[0].flow_id, views[6].flow_id);
        assert!(views[9].established);
        assert_eq!(table.expire(0), vec![views[0].flow_id]);
        assert_eq!(table.stats().reused, 1);
    }

    #[test]
    fn ipv6_and_worker_id() {
        let a = "2001:db8::1".parse().unwrap();
        let b = "2001:db8::2".parse().unwrap();
        let mut cap = SynthCapture::new(0);
        cap.udp(IpPair::V6(a, b), 1, 2, b"x").unwrap();
        let mut table = FlowTable::new(FlowConfig {
            worker_id: 3,
            ..FlowConfig::default()
        });
        let v = run(&mut table, &cap)[0];
        assert_eq!(v.flow_id, (3 << 48) | 1);
    }
}
