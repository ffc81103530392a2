//! Wire bytes → HTTP/DNS/TLS transactions, split at arbitrary points: no
//! panic, and splitting must not change what the parsers find.
//!
//! Byte 0 picks the direction and byte 1 the chunk size; the rest is fed to
//! the HTTP, TLS and DNS-over-TCP parsers whole and in chunks, to the DNS
//! message parser as one datagram, and to protocol detection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_host::app::{dns, http::HttpFlow, tls::TlsFlow, AppLayer, Transaction};
use sandgate_host::flow::Direction;

/// Buffers of every transaction, in order.
fn buffers(txs: &[Transaction]) -> Vec<(u32, Vec<u8>)> {
    txs.iter().flat_map(|t| t.buffers.clone()).collect()
}

fuzz_target!(|data: &[u8]| {
    let [pick, size, rest @ ..] = data else {
        return;
    };
    let side = usize::from(pick & 1);
    let chunk = 1 + usize::from(*size);

    let mut whole = HttpFlow::default();
    let mut split = HttpFlow::default();
    let mut a = whole.push(side, rest);
    a.extend(whole.close(side));
    let mut b = Vec::new();
    for c in rest.chunks(chunk) {
        b.extend(split.push(side, c));
    }
    b.extend(split.close(side));
    assert_eq!(buffers(&a), buffers(&b), "http: chunking changed buffers");

    let mut whole = TlsFlow::default();
    let mut split = TlsFlow::default();
    let a = whole.push(side, rest);
    let mut b = Vec::new();
    for c in rest.chunks(chunk) {
        b.extend(split.push(side, c));
    }
    assert_eq!(buffers(&a), buffers(&b), "tls: chunking changed buffers");

    let mut whole = dns::TcpFramer::default();
    let mut split = dns::TcpFramer::default();
    let a = whole.push(rest);
    let mut b = Vec::new();
    for c in rest.chunks(chunk) {
        b.extend(split.push(c));
    }
    assert_eq!(a, b, "dns/tcp: chunking changed messages");
    for m in &a {
        let _ = dns::parse(m);
    }
    if let Ok(m) = dns::parse(rest) {
        assert!(m.questions.iter().all(|q| q.name.len() <= dns::MAX_NAME));
    }

    let mut app = AppLayer::default();
    let dir = if side == 0 { Direction::ToServer } else { Direction::ToClient };
    for c in rest.chunks(chunk) {
        app.stream(1, dir, (40000, u16::from(*pick)), c);
    }
    app.close(1, dir);
    app.datagram(dir, (53, 40000), rest);
});
