//! Native tests of the API: they run the same code the wasm module runs,
//! minus the host imports (no test here touches flow state or the log).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::__private::{describe, inspect};
use super::wit;
use super::*;

fn desc(payload: std::ops::Range<u32>, flags: u32) -> wit::Packet {
    let v4 = u128::from(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    wit::Packet {
        flow_id: 7,
        direction: wit::Direction::ToServer,
        flow_flags: flags,
        ip_version: 4,
        protocol: 17,
        src_addr: wit::IpAddress {
            hi: (v4 >> 64) as u64,
            lo: v4 as u64,
        },
        dst_addr: wit::IpAddress { hi: 0, lo: 1 },
        src_port: 5353,
        dst_port: 53,
        l3_offset: 0,
        l3_len: payload.end,
        l4_offset: 2,
        payload_offset: payload.start,
        payload_len: payload.end - payload.start,
        timestamp_us: 42,
    }
}

#[test]
fn packet_accessors_read_the_descriptor_and_never_leave_the_buffer() {
    let buffer = b"IPUUabcd".to_vec();
    let d = desc(4..8, FLOW_ESTABLISHED);
    let p = Packet::new(&d, &buffer);
    assert_eq!(p.payload(), b"abcd");
    assert_eq!(p.l3(), b"IPUUabcd");
    assert_eq!(p.l4(), b"UUabcd");
    assert_eq!(p.src_addr(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(p.dst_addr(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert!(p.is_udp() && !p.is_tcp() && p.to_server() && p.established());
    assert!(!p.is_stream_chunk() && p.stream_before().is_empty());
    assert_eq!(p.new_data(), b"abcd");

    // A stream chunk: 2 bytes carried before, then 2 new ones.
    let mut chunk = desc(4..8, FLOW_ESTABLISHED | FLOW_STREAM);
    (chunk.l3_offset, chunk.l3_len) = (4, 2);
    let p = Packet::new(&chunk, &buffer);
    assert_eq!(p.payload(), b"abcd");
    assert_eq!(p.stream_before(), b"ab");
    assert_eq!(p.new_data(), b"cd");
    assert!(p.l3().is_empty() && p.l4().is_empty());
    assert_eq!(
        (p.src_port(), p.dst_port(), p.timestamp_us()),
        (5353, 53, 42)
    );

    let bad = desc(6..30, 0);
    let p = Packet::new(&bad, &buffer);
    assert!(p.payload().is_empty() && p.l3().is_empty());
}

#[derive(Default)]
struct Counter {
    seen: u32,
}

impl Inspector for Counter {
    fn rules() -> Vec<Rule> {
        vec![
            Rule::new(100, "payload says abcd")
                .action(Action::Drop)
                .classtype("bad-unknown")
                .reference("url,example.com/abcd"),
            Rule::new(101, "third packet"),
        ]
    }

    fn inspect(&mut self, pkt: &Packet<'_>, hits: &mut Hits<'_>) {
        self.seen += 1;
        if pkt.payload() == b"abcd" {
            hits.alert(100);
            hits.alert(100);
        }
        if self.seen == 3 {
            hits.alert(101);
        }
        if pkt.payload() == b"oops" {
            hits.alert(999);
        }
    }
}

#[test]
fn describe_declares_every_rule_with_its_metadata() {
    let info = describe::<Counter>("counter", "0.1.0");
    assert_eq!(info.name, "counter");
    assert_eq!(info.rules.len(), 2);
    assert_eq!(info.rules[0].sid, 100);
    assert_eq!(info.rules[0].action, wit::Action::Drop);
    assert_eq!(info.rules[0].classtype.as_deref(), Some("bad-unknown"));
    assert_eq!(info.rules[0].references, ["url,example.com/abcd"]);
    assert_eq!(info.fuel_per_packet, Fuel::default().per_packet);
}

#[test]
fn hits_name_declared_rules_once_per_packet_and_state_persists() {
    let buffer = b"IPUUabcdIPUUxxxx".to_vec();
    let batch = wit::Batch {
        buffer: buffer.clone(),
        packets: vec![desc(4..8, 0), desc(12..16, 0)],
    };
    let hits = inspect::<Counter>(batch).expect("inspects");
    assert_eq!(hits.len(), 1, "sid 100 twice on one packet counts once");
    assert_eq!((hits[0].packet, hits[0].rule), (0, 0));
    assert_eq!(hits[0].action, wit::Action::Drop);

    // The third packet overall, in a second batch: the inspector kept count.
    let batch = wit::Batch {
        buffer: b"IPUUzzzz".to_vec(),
        packets: vec![desc(4..8, 0)],
    };
    let hits = inspect::<Counter>(batch).expect("inspects");
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].packet, hits[0].rule), (0, 1));

    let err = inspect::<Counter>(wit::Batch {
        buffer: b"IPUUoops".to_vec(),
        packets: vec![desc(4..8, 0)],
    })
    .expect_err("undeclared sid");
    assert!(err.contains("sid 999"), "{err}");

    let err = inspect::<Counter>(wit::Batch {
        buffer: b"IPUU".to_vec(),
        packets: vec![desc(4..8, 0)],
    })
    .expect_err("payload outside the buffer");
    assert!(err.contains("outside the batch buffer"), "{err}");
}
