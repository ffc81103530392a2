//! Writes Sandgate's bundled example capture with `sandgate_host::synth`.
//!
//! ```text
//! cargo run -p sandgate-host --example make_capture -- OUT.pcap
//! ```
//!
//! The capture is deterministic: the same build always writes the same bytes,
//! so the example rules can name packet numbers. Timestamps start at
//! 2024-01-02T03:04:05.000000Z and advance 1 ms per packet.
//!
//! Packet listing (printed again when run):
//!
//! ```text
//! (387 packets, about 62 KB)
//!      1  ARP who-has 10.0.0.1 tell 10.0.0.10 (not IP: decoders count and skip it)
//!    2-4  TCP handshake 10.0.0.10:49152 -> 192.168.1.80:80
//!      5  HTTP GET "/admin/login.php?user=admin' OR 1=1--" (to_server, port 80)
//!      6  HTTP 403 Forbidden response (to_client)
//!    7-9  TCP FIN teardown
//!  10-12  TCP handshake 10.0.0.11:49153 -> 192.168.1.80:80
//!     13  HTTP GET /cgi-bin/status.cgi?cmd=id (to_server)
//!     14  HTTP 200 response body "uid=0(root) gid=0(root) groups=0(root)" (to_client)
//!  15-17  TCP FIN teardown
//!  18-20  TCP handshake 10.0.0.12:49200 -> 203.0.113.44:4444
//!     21  port 4444 payload |de ad be ef| "CMD:whoami" (to_server)
//!     22  port 4444 reply "root\n" (to_client)
//!     23  port 4444 payload |de ad be ef| "CMD:cat /etc/shadow" (to_server)
//!  24-26  TCP FIN teardown
//!     27  DNS query A evil-c2.example (|07|evil-c2|07|example|00|), UDP 10.0.0.13:53000 -> 192.168.1.53:53
//!     28  DNS answer evil-c2.example A 198.51.100.66 (to_client)
//!     29  ICMP echo request 10.0.0.14 -> 198.51.100.7, payload "PING-TUNNEL:exfil-chunk-0001:..."
//!     30  ICMP echo reply (same payload, to_client)
//!  31-33  TCP/IPv6 handshake [2001:db8:10::15]:50123 -> [2001:db8:20::80]:8080
//!     34  HTTP GET /api/health with header "X-Sandgate-Test: ipv6" (IPv6, to_server)
//!     35  HTTP 200 response (IPv6, to_client)
//!  36-38  TCP/IPv6 FIN teardown
//!  39-41  TCP handshake 10.0.0.16:49300 -> 192.168.1.90:9000
//!     42  "MALWARE-SIGN" (first half of "MALWARE-SIGNATURE-SPLIT", to_server)
//!     43  "ATURE-SPLIT" (second half, next segment, to_server)
//!     44  server ACK
//!  45-47  TCP FIN teardown
//! 48-387  benign: 40 HTTP sessions GET /index.html -> 200 OK (8 packets each), plus 10 DNS www.example.com query/answer pairs
//! ```

use std::net::Ipv6Addr;
use std::ops::Range;

use anyhow::{bail, Context, Result};
use sandgate_host::synth::{IpPair, SynthCapture};

/// 2024-01-02T03:04:05Z in microseconds since the epoch.
const START_US: u64 = 1_704_164_645_000_000;

const WEB: [u8; 4] = [192, 168, 1, 80];

/// Collects "which packets carry what" lines as the capture is built.
pub struct Listing(pub Vec<(String, String)>);

impl Listing {
    fn add(&mut self, packets: Range<u64>, what: impl Into<String>) {
        let range = match packets.end - packets.start {
            0 => return,
            1 => packets.start.to_string(),
            _ => format!("{}-{}", packets.start, packets.end - 1),
        };
        self.0.push((range, what.into()));
    }

    fn one(&mut self, packet: u64, what: impl Into<String>) {
        self.add(packet..packet + 1, what);
    }
}

fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nServer: nginx/1.24.0\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A DNS query for `name` (type A, class IN), as the bytes on the wire.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The answer to [`dns_query`]: one A record pointing at `addr`.
fn dns_answer(id: u16, name: &str, addr: [u8; 4]) -> Vec<u8> {
    let mut a = dns_query(id, name);
    a[2..4].copy_from_slice(&[0x81, 0x80]);
    a[6..8].copy_from_slice(&[0, 1]);
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
    a.extend_from_slice(&addr);
    a
}

pub fn build(list: &mut Listing) -> Result<SynthCapture> {
    let mut cap = SynthCapture::new(START_US);

    let n = cap.arp_request([10, 0, 0, 10], [10, 0, 0, 1]);
    list.one(
        n,
        "ARP who-has 10.0.0.1 tell 10.0.0.10 (not IP: decoders count and skip it)",
    );

    // SQL injection in an HTTP request line.
    let mut s = cap.tcp_v4([10, 0, 0, 10], 49152, WEB, 80);
    list.add(
        s.handshake(),
        "TCP handshake 10.0.0.10:49152 -> 192.168.1.80:80",
    );
    let r = s.client_sends(
        b"GET /admin/login.php?user=admin' OR 1=1-- HTTP/1.1\r\nHost: intranet.example\r\n\
          User-Agent: Mozilla/5.0 (sandgate-synth)\r\nAccept: */*\r\n\r\n",
    );
    list.add(
        r,
        "HTTP GET \"/admin/login.php?user=admin' OR 1=1--\" (to_server, port 80)",
    );
    let r = s.server_sends(&http_response(
        "403 Forbidden",
        "text/html",
        "<h1>Forbidden</h1>\n",
    ));
    list.add(r, "HTTP 403 Forbidden response (to_client)");
    list.add(s.close(), "TCP FIN teardown");

    // Command output in an HTTP response.
    let mut s = cap.tcp_v4([10, 0, 0, 11], 49153, WEB, 80);
    list.add(
        s.handshake(),
        "TCP handshake 10.0.0.11:49153 -> 192.168.1.80:80",
    );
    let r = s.client_sends(
        b"GET /cgi-bin/status.cgi?cmd=id HTTP/1.1\r\nHost: intranet.example\r\nAccept: */*\r\n\r\n",
    );
    list.add(r, "HTTP GET /cgi-bin/status.cgi?cmd=id (to_server)");
    let r = s.server_sends(&http_response(
        "200 OK",
        "text/plain",
        "uid=0(root) gid=0(root) groups=0(root)\n",
    ));
    list.add(
        r,
        "HTTP 200 response body \"uid=0(root) gid=0(root) groups=0(root)\" (to_client)",
    );
    list.add(s.close(), "TCP FIN teardown");

    // Backdoor on port 4444: magic bytes then a command.
    let mut s = cap.tcp_v4([10, 0, 0, 12], 49200, [203, 0, 113, 44], 4444);
    list.add(
        s.handshake(),
        "TCP handshake 10.0.0.12:49200 -> 203.0.113.44:4444",
    );
    let mut cmd = vec![0xde, 0xad, 0xbe, 0xef];
    cmd.extend_from_slice(b"CMD:whoami");
    list.add(
        s.client_sends(&cmd),
        "port 4444 payload |de ad be ef| \"CMD:whoami\" (to_server)",
    );
    list.add(
        s.server_sends(b"root\n"),
        "port 4444 reply \"root\\n\" (to_client)",
    );
    let mut cmd = vec![0xde, 0xad, 0xbe, 0xef];
    cmd.extend_from_slice(b"CMD:cat /etc/shadow");
    let r = s.client_sends(&cmd);
    list.add(
        r,
        "port 4444 payload |de ad be ef| \"CMD:cat /etc/shadow\" (to_server)",
    );
    list.add(s.close(), "TCP FIN teardown");

    // DNS lookup of a command-and-control name.
    let q = cap.udp_v4(
        [10, 0, 0, 13],
        53000,
        [192, 168, 1, 53],
        53,
        &dns_query(0x1337, "evil-c2.example"),
    )?;
    list.one(q, "DNS query A evil-c2.example (|07|evil-c2|07|example|00|), UDP 10.0.0.13:53000 -> 192.168.1.53:53");
    let a = cap.udp_v4(
        [192, 168, 1, 53],
        53,
        [10, 0, 0, 13],
        53000,
        &dns_answer(0x1337, "evil-c2.example", [198, 51, 100, 66]),
    )?;
    list.one(a, "DNS answer evil-c2.example A 198.51.100.66 (to_client)");

    // ICMP tunnel.
    let mut ping = b"PING-TUNNEL:exfil-chunk-0001:".to_vec();
    ping.extend((0u8..27).map(|i| b'a' + i % 26));
    let ips = IpPair::V4([10, 0, 0, 14].into(), [198, 51, 100, 7].into());
    let r = cap.icmp_echo_request(ips, 0x0bad, 1, &ping)?;
    list.one(
        r,
        "ICMP echo request 10.0.0.14 -> 198.51.100.7, payload \"PING-TUNNEL:exfil-chunk-0001:...\"",
    );
    let r = cap.icmp_echo_reply(ips.reversed(), 0x0bad, 1, &ping)?;
    list.one(r, "ICMP echo reply (same payload, to_client)");

    // IPv6 HTTP on 8080.
    let client: Ipv6Addr = "2001:db8:10::15".parse()?;
    let server: Ipv6Addr = "2001:db8:20::80".parse()?;
    let mut s = cap.tcp_v6(client, 50123, server, 8080);
    list.add(
        s.handshake(),
        "TCP/IPv6 handshake [2001:db8:10::15]:50123 -> [2001:db8:20::80]:8080",
    );
    let r = s.client_sends(
        b"GET /api/health HTTP/1.1\r\nHost: [2001:db8:20::80]:8080\r\nX-Sandgate-Test: ipv6\r\n\r\n",
    );
    list.add(
        r,
        "HTTP GET /api/health with header \"X-Sandgate-Test: ipv6\" (IPv6, to_server)",
    );
    let r = s.server_sends(&http_response(
        "200 OK",
        "application/json",
        "{\"status\":\"ok\"}",
    ));
    list.add(r, "HTTP 200 response (IPv6, to_client)");
    list.add(s.close(), "TCP/IPv6 FIN teardown");

    // A signature split across two segments: only stream reassembly sees it.
    let mut s = cap.tcp_v4([10, 0, 0, 16], 49300, [192, 168, 1, 90], 9000);
    list.add(
        s.handshake(),
        "TCP handshake 10.0.0.16:49300 -> 192.168.1.90:9000",
    );
    let r = s.client_sends_segments(&[b"MALWARE-SIGN", b"ATURE-SPLIT"]);
    list.one(
        r.start,
        "\"MALWARE-SIGN\" (first half of \"MALWARE-SIGNATURE-SPLIT\", to_server)",
    );
    list.one(
        r.start + 1,
        "\"ATURE-SPLIT\" (second half, next segment, to_server)",
    );
    list.add(s.server_ack(), "server ACK");
    list.add(s.close(), "TCP FIN teardown");

    // Benign traffic, so throughput figures mean something.
    let page = format!(
        "<!doctype html>\n<html><head><title>Welcome</title></head><body>\n{}</body></html>\n",
        "<p>Nothing to see here, just an ordinary page of ordinary text.</p>\n".repeat(8)
    );
    let benign_start = cap.next_number();
    for i in 0..40u16 {
        let client = [10, 0, 1, 1 + i as u8];
        let mut s = cap.tcp_v4(client, 50000 + i, WEB, 80);
        s.handshake();
        s.client_sends(
            b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n\
              User-Agent: Mozilla/5.0 (sandgate-synth)\r\nAccept: text/html\r\n\r\n",
        );
        s.server_sends(&http_response("200 OK", "text/html", &page));
        s.close();
        if i % 4 == 3 {
            let id = 0x2000 + i;
            let name = "www.example.com";
            cap.udp_v4(
                client,
                40000 + i,
                [192, 168, 1, 53],
                53,
                &dns_query(id, name),
            )?;
            cap.udp_v4(
                [192, 168, 1, 53],
                53,
                client,
                40000 + i,
                &dns_answer(id, name, WEB),
            )?;
        }
    }
    list.add(
        benign_start..cap.next_number(),
        "benign: 40 HTTP sessions GET /index.html -> 200 OK (8 packets each), \
         plus 10 DNS www.example.com query/answer pairs",
    );
    Ok(cap)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: make_capture OUT.pcap");
    };
    let mut list = Listing(Vec::new());
    let cap = build(&mut list)?;
    cap.write_pcap(&out)
        .with_context(|| format!("writing {out}"))?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!("wrote {out}: {} packets, {bytes} bytes", cap.len());
    let width = list.0.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    for (range, what) in &list.0 {
        println!("{range:>width$}  {what}");
    }
    Ok(())
}
