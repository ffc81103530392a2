//! Capture → decode → flow → EVE, end to end within the host crate: a
//! synthetic capture written to disk reads back, decodes, tracks flows and
//! yields EVE lines a JSON parser accepts.

use sandgate_host::capture::CaptureReader;
use sandgate_host::decode::{decode, DecodeError};
use sandgate_host::eve::{alert_table, AlertAction, AlertRecord, EveWriter, DEFAULT_SEVERITY};
use sandgate_host::flow::{Direction, FlowConfig, FlowTable};
use sandgate_host::synth::{IpPair, SynthCapture};

#[test]
fn synthetic_capture_flows_through_every_stage() -> Result<(), Box<dyn std::error::Error>> {
    let mut cap = SynthCapture::new(1_704_164_645_000_000);
    cap.arp_request([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut s = cap.tcp_v4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
    s.handshake();
    let request = s.client_sends(b"GET /admin/login.php?user=admin' OR 1=1-- HTTP/1.1\r\n\r\n");
    let response = s.server_sends(b"HTTP/1.1 200 OK\r\n\r\nuid=0(root)");
    s.close();
    let ips = IpPair::V4([10, 0, 0, 3].into(), [10, 0, 0, 4].into());
    let ping = cap.icmp_echo_request(ips, 1, 1, b"PING-TUNNEL")?;

    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("pipeline.pcap");
    cap.write_pcap(&pcap)?;

    let mut flows = FlowTable::new(FlowConfig::default());
    let mut alerts = Vec::new();
    let mut not_ip = 0;
    for frame in CaptureReader::open(&pcap)? {
        let frame = frame?;
        let d = match decode(frame.linktype, &frame.data) {
            Ok(d) => d,
            Err(DecodeError::NotIp(_)) => {
                not_ip += 1;
                continue;
            }
            Err(e) => return Err(format!("packet {}: {e}", frame.number).into()),
        };
        let view = flows.track(&d, frame.timestamp_us);
        let payload = frame.data.get(d.payload.clone()).unwrap_or_default();
        for (sid, needle) in [
            (1, &b"' OR 1=1"[..]),
            (2, b"uid=0(root)"),
            (3, b"PING-TUNNEL"),
        ] {
            if payload.windows(needle.len()).any(|w| w == needle) {
                alerts.push(AlertRecord {
                    timestamp_us: frame.timestamp_us,
                    flow_id: view.flow_id,
                    pcap_cnt: frame.number,
                    src_ip: d.src,
                    src_port: d.src_port,
                    dest_ip: d.dst,
                    dest_port: d.dst_port,
                    proto: d.protocol,
                    direction: view.direction,
                    action: AlertAction::Allowed,
                    gid: 1,
                    signature_id: sid,
                    rev: 1,
                    signature: format!("test {sid}"),
                    category: String::new(),
                    severity: DEFAULT_SEVERITY,
                    metadata: None,
                    app: None,
                });
            }
        }
    }
    assert_eq!(not_ip, 1);
    let hits: Vec<(u64, u32, Direction)> = alerts
        .iter()
        .map(|a| (a.pcap_cnt, a.signature_id, a.direction))
        .collect();
    assert_eq!(
        hits,
        [
            (request.start, 1, Direction::ToServer),
            (response.start, 2, Direction::ToClient),
            (ping, 3, Direction::ToServer),
        ]
    );

    let mut eve = EveWriter::new(Vec::new());
    for a in &alerts {
        eve.write_alert(a)?;
    }
    let text = String::from_utf8(eve.into_inner()?)?;
    for (line, alert) in text.lines().zip(&alerts) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        assert_eq!(v["pcap_cnt"], alert.pcap_cnt);
        assert_eq!(v["alert"]["signature_id"], alert.signature_id);
        assert!(v["timestamp"]
            .as_str()
            .is_some_and(|t| t.starts_with("2024-01-02T03:04:05.")));
    }
    assert_eq!(alert_table(&alerts).lines().count(), alerts.len() + 1);
    Ok(())
}
