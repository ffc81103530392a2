//! TCP reassembly guarantees, proved on synthetic captures: content split
//! across segments arrives whole, reordering and retransmission cannot hide
//! or forge stream bytes (first data wins), holes and limits behave as
//! documented, and the inspector queues the chunks modules will see.

use std::path::Path;

use sandgate_host::capture::{CaptureReader, Frame, LinkType};
use sandgate_host::decode::decode;
use sandgate_host::flow::{FlowConfig, FlowTable};
use sandgate_host::inspect::{BatchLimits, Inspector, FLOW_PAYLOAD_IN_STREAM};
use sandgate_host::stream::{Delivery, Reassembler, StreamConfig, StreamStats};
use sandgate_host::synth::{tcp_flags as f, tcp_frame, IpPair, TcpHeader};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// Hand-built segments of one connection with chosen sequence numbers.
struct Conn {
    client_isn: u32,
    server_isn: u32,
    frames: Vec<Vec<u8>>,
}

impl Conn {
    fn new(client_isn: u32) -> Self {
        Conn {
            client_isn,
            server_isn: 0x8000_0000,
            frames: Vec::new(),
        }
    }

    fn frame(&mut self, from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
        let (ips, sp, dp) = if from_client {
            (IpPair::V4(CLIENT.into(), SERVER.into()), 40000, 80)
        } else {
            (IpPair::V4(SERVER.into(), CLIENT.into()), 80, 40000)
        };
        let hdr = TcpHeader {
            src_port: sp,
            dst_port: dp,
            seq,
            ack,
            flags,
            window: 65535,
        };
        self.frames.push(tcp_frame(ips, &hdr, payload).unwrap());
    }

    fn handshake(mut self) -> Self {
        let (c, s) = (self.client_isn, self.server_isn);
        self.frame(true, c, 0, f::SYN, b"");
        self.frame(false, s, c.wrapping_add(1), f::SYN | f::ACK, b"");
        self.frame(true, c.wrapping_add(1), s.wrapping_add(1), f::ACK, b"");
        self
    }

    /// Client data at stream offset `off` (0 = first byte after the SYN).
    fn data(mut self, off: u32, payload: &[u8]) -> Self {
        let seq = self.client_isn.wrapping_add(1).wrapping_add(off);
        let ack = self.server_isn.wrapping_add(1);
        self.frame(true, seq, ack, f::PSH | f::ACK, payload);
        self
    }

    /// Client FIN at stream offset `off`.
    fn fin(mut self, off: u32) -> Self {
        let seq = self.client_isn.wrapping_add(1).wrapping_add(off);
        let ack = self.server_isn.wrapping_add(1);
        self.frame(true, seq, ack, f::FIN | f::ACK, b"");
        self
    }

    /// Server ACK of client stream offset `off`.
    fn server_acks(mut self, off: u32) -> Self {
        let ack = self.client_isn.wrapping_add(1).wrapping_add(off);
        self.frame(false, self.server_isn.wrapping_add(1), ack, f::ACK, b"");
        self
    }
}

/// One segment's outcome: the delivery and the chunk bytes (prefix + new).
#[derive(Debug)]
struct Step {
    d: Delivery,
    chunk: Vec<u8>,
}

impl Step {
    fn new_data(&self) -> &[u8] {
        &self.chunk[self.d.prefix..]
    }
}

fn run_with(conn: &Conn, cfg: StreamConfig, flow_cfg: FlowConfig) -> (Vec<Step>, Reassembler) {
    let mut flows = FlowTable::new(flow_cfg);
    let mut r = Reassembler::new(cfg);
    let mut steps = Vec::new();
    for (i, frame) in conn.frames.iter().enumerate() {
        let d = decode(LinkType::ETHERNET, frame).unwrap();
        let view = flows.track(&d, i as u64 * 1000);
        let tcp = d.tcp.unwrap();
        let mut out = Vec::new();
        let delivery = r.segment(
            view.flow_id,
            view.direction,
            view.established,
            &tcp,
            &frame[d.payload.clone()],
            &mut out,
        );
        assert_eq!(out.len(), delivery.prefix + delivery.new, "step {i}");
        steps.push(Step {
            d: delivery,
            chunk: out,
        });
    }
    (steps, r)
}

fn run(conn: &Conn, cfg: StreamConfig) -> (Vec<Step>, StreamStats) {
    let (steps, r) = run_with(conn, cfg, FlowConfig::default());
    (steps, r.stats())
}

/// All new stream bytes, in delivery order.
fn stream_of(steps: &[Step]) -> Vec<u8> {
    steps.iter().flat_map(|s| s.new_data().to_vec()).collect()
}

#[test]
fn split_content_arrives_whole_with_the_earlier_segment_as_prefix() {
    let conn = Conn::new(1000)
        .handshake()
        .data(0, b"MALWARE-SIGN")
        .data(12, b"ATURE-SPLIT");
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert!(steps[..3].iter().all(|s| s.d.is_empty()), "handshake");
    assert_eq!((steps[3].d.prefix, steps[3].d.new), (0, 12));
    assert_eq!((steps[4].d.prefix, steps[4].d.new), (12, 11));
    assert_eq!(steps[4].chunk, b"MALWARE-SIGNATURE-SPLIT");
    assert_eq!(steps[4].d.offset, 12);
    assert!(steps[3].d.in_stream && steps[4].d.in_stream);
    assert_eq!((stats.chunks, stats.bytes), (2, 23));
}

#[test]
fn overlap_prefix_is_bounded_by_the_configured_overlap() {
    let conn = Conn::new(1)
        .handshake()
        .data(0, b"0123456789")
        .data(10, b"abc");
    let cfg = StreamConfig {
        overlap: 4,
        ..StreamConfig::default()
    };
    let (steps, _) = run(&conn, cfg);
    assert_eq!(steps[4].chunk, b"6789abc");
    assert_eq!(steps[4].d.prefix, 4);
}

#[test]
fn out_of_order_segments_wait_for_the_hole_and_come_out_in_order() {
    let conn = Conn::new(5)
        .handshake()
        .data(8, b"-SPLIT")
        .data(4, b"WARE")
        .data(0, b"MAL-");
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert!(steps[3].d.is_empty() && steps[3].d.in_stream, "buffered");
    assert!(steps[4].d.is_empty() && steps[4].d.in_stream, "buffered");
    assert_eq!(steps[5].chunk, b"MAL-WARE-SPLIT");
    assert_eq!(steps[5].d.offset, 0);
    assert_eq!(stats.out_of_order, 2);
    assert_eq!(stats.memory, 2 * 1024, "only the overlap histories remain");
}

#[test]
fn retransmission_with_different_data_cannot_replace_delivered_bytes() {
    let conn = Conn::new(77)
        .handshake()
        .data(0, b"GET /a")
        .data(0, b"GET /a") // identical retransmission
        .data(0, b"XXXXXXb HTTP"); // overlaps with different data, then new
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert!(steps[4].d.is_empty() && steps[4].d.in_stream);
    assert_eq!(steps[5].new_data(), b"b HTTP");
    assert_eq!(stream_of(&steps), b"GET /ab HTTP");
    assert_eq!(stats.retransmissions, 1);
    assert_eq!(stats.overlap_conflicts, 1);
}

#[test]
fn overlap_with_a_buffered_segment_keeps_the_first_data() {
    // "XYZ" arrives first at offset 5; the later segment covering 0..8
    // brings "abc" for the same bytes: the buffered bytes win.
    let conn = Conn::new(9)
        .handshake()
        .data(5, b"XYZ")
        .data(0, b"01234abc")
        .data(8, b"!");
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert_eq!(steps[4].new_data(), b"01234XYZ");
    assert_eq!(stream_of(&steps), b"01234XYZ!");
    assert_eq!(stats.overlap_conflicts, 1);
}

#[test]
fn a_hole_the_receiver_acknowledged_is_skipped_as_a_gap() {
    let conn = Conn::new(100)
        .handshake()
        .data(0, b"abc")
        .data(10, b"later") // 3..10 never captured
        .server_acks(15)
        .data(15, b"more");
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert_eq!(steps[3].chunk, b"abc");
    assert!(steps[4].d.is_empty());
    assert_eq!(steps[6].d.prefix, 0, "no prefix across a hole");
    assert_eq!(steps[6].chunk, b"latermore");
    assert_eq!(steps[6].d.offset, 10);
    assert_eq!(stats.gaps, 1);
}

#[test]
fn an_unacknowledged_hole_is_kept_open() {
    let conn = Conn::new(100)
        .handshake()
        .data(0, b"abc")
        .data(10, b"later")
        .data(15, b"more");
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert!(steps[5].d.is_empty() && steps[5].d.in_stream);
    assert_eq!(stats.gaps, 0);
}

#[test]
fn fin_delivers_the_data_behind_a_hole() {
    let conn = Conn::new(3)
        .handshake()
        .data(0, b"abc")
        .data(6, b"tail")
        .fin(10);
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert_eq!(steps[5].chunk, b"tail");
    assert_eq!(stats.gaps, 1);
    assert_eq!(stats.memory, 1024, "the closed direction freed its buffers");
}

#[test]
fn full_out_of_order_buffer_gives_up_on_the_hole() {
    let conn = Conn::new(0xFFFF_0000)
        .handshake()
        .data(3, b"def")
        .data(6, b"ghi")
        .data(9, b"jkl");
    let cfg = StreamConfig {
        max_ooo_segments: 2,
        ..StreamConfig::default()
    };
    let (steps, stats) = run(&conn, cfg);
    assert!(steps[3].d.is_empty() && steps[4].d.is_empty());
    assert_eq!(steps[5].chunk, b"defghijkl");
    assert!(steps[5].d.in_stream);
    assert_eq!(stats.gaps, 1);
}

#[test]
fn data_beyond_the_depth_is_not_reassembled() {
    let conn = Conn::new(42)
        .handshake()
        .data(0, b"12345678")
        .data(8, b"9ABCDEFG")
        .data(16, b"more");
    let cfg = StreamConfig {
        depth: 10,
        ..StreamConfig::default()
    };
    let (steps, stats) = run(&conn, cfg);
    assert!(steps[3].d.in_stream);
    assert_eq!(steps[4].new_data(), b"9A");
    assert!(
        !steps[4].d.in_stream,
        "its tail is left to packet inspection"
    );
    assert!(steps[5].d.is_empty() && !steps[5].d.in_stream);
    assert_eq!(stats.depth_reached, 1);
    assert_eq!(stats.memory, 1024, "only the server side's history is left");
}

#[test]
fn memcap_refuses_to_buffer_and_counts_it() {
    let conn = Conn::new(1).handshake().data(4, b"ahead of a hole");
    let cfg = StreamConfig {
        overlap: 16,
        memcap: 40,
        ..StreamConfig::default()
    };
    let (steps, stats) = run(&conn, cfg);
    assert!(steps[3].d.is_empty());
    assert!(!steps[3].d.in_stream, "the packet is inspected on its own");
    assert_eq!(stats.memcap_drops, 1);
    assert!(stats.memory <= 40);
}

#[test]
fn sequence_numbers_wrap_at_2_pow_32() {
    let isn = u32::MAX - 5;
    let conn = Conn::new(isn)
        .handshake()
        .data(8, b"WRAPPED") // past the wrap, out of order
        .data(0, b"seq-wrap");
    let (steps, stats) = run(&conn, StreamConfig::default());
    assert_eq!(steps[4].chunk, b"seq-wrapWRAPPED");
    assert_eq!(stats.gaps, 0);
}

#[test]
fn midstream_flow_is_picked_up_at_its_first_established_data_segment() {
    let conn = Conn::new(500).data(0, b"first").data(5, b"second");
    let midstream = FlowConfig {
        midstream: true,
        ..FlowConfig::default()
    };
    let (steps, r) = run_with(&conn, StreamConfig::default(), midstream);
    // The flow table calls a picked-up flow established from its second packet.
    assert!(steps[0].d.is_empty() && !steps[0].d.in_stream);
    assert_eq!(steps[1].chunk, b"second");
    assert_eq!(r.stats().flows, 1);
    let (steps, r) = run_with(&conn, StreamConfig::default(), FlowConfig::default());
    assert!(steps.iter().all(|s| s.d.is_empty()));
    assert_eq!(r.stats().flows, 0, "untracked flows cost nothing");
}

#[test]
fn forgotten_flows_free_their_memory_and_count_lost_bytes() {
    let conn = Conn::new(1).handshake().data(5, b"stuck");
    let (_, mut r) = run_with(&conn, StreamConfig::default(), FlowConfig::default());
    assert_eq!(r.stats().memory, 2 * 1024 + 5);
    r.forget(&[1]);
    let stats = r.stats();
    assert_eq!((stats.flows, stats.memory, stats.lost_bytes), (0, 0, 5));
}

fn example_pcap() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../patterns/examples/example.pcap")
}

#[test]
fn example_capture_packet_43_chunk_carries_the_whole_split_string() {
    let mut reader = CaptureReader::open(example_pcap()).unwrap();
    let mut frame = Frame::default();
    let mut flows = FlowTable::new(FlowConfig::default());
    let mut inspector = Inspector::new(Vec::new(), BatchLimits::default());
    let mut alerts = Vec::new();
    let mut found = false;
    while reader.read_into(&mut frame).unwrap() {
        let Ok(d) = decode(frame.linktype, &frame.data) else {
            continue;
        };
        let view = flows.track(&d, frame.timestamp_us);
        if inspector.is_full() {
            inspector.flush(&mut alerts);
        }
        inspector.push(frame.number, frame.timestamp_us, &frame.data, &d, &view);
        if frame.number != 43 {
            continue;
        }
        let batch = inspector.batch();
        let n = batch.packets.len();
        let (packet, chunk) = (batch.packets[n - 2], batch.packets[n - 1]);
        assert_eq!(
            packet.flow_flags & FLOW_PAYLOAD_IN_STREAM,
            FLOW_PAYLOAD_IN_STREAM
        );
        assert_eq!(chunk.flow_flags, 1 | 2, "established stream chunk");
        let at = chunk.payload_offset as usize;
        let bytes = &batch.buffer[at..at + chunk.payload_len as usize];
        assert_eq!(bytes, b"MALWARE-SIGNATURE-SPLIT");
        assert_eq!((chunk.l3_offset, chunk.l3_len), (chunk.payload_offset, 12));
        assert_eq!(
            (
                chunk.flow_id,
                chunk.src_port,
                chunk.dst_port,
                chunk.timestamp_us
            ),
            (
                packet.flow_id,
                packet.src_port,
                packet.dst_port,
                packet.timestamp_us
            )
        );
        assert_eq!(chunk.direction, packet.direction);
        found = true;
    }
    assert!(found, "packet 43 is in the example capture");
    let verdicts = inspector.flush(&mut alerts).len();
    assert!(verdicts > 0 && alerts.is_empty());
    let stats = inspector.stream_stats();
    assert!(stats.chunks > 40 && stats.gaps == 0 && stats.overlap_conflicts == 0);
}
