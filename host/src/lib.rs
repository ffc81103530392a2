//! The Sandgate gateway: packets in, flows tracked, alerts out.
//!
//! Packets move through the modules left to right:
//!
//! - [`capture`] reads pcap/pcapng files into numbered [`capture::Frame`]s and
//!   writes classic pcap.
//! - [`decode`] turns a frame into a [`decode::Decoded`] view (addresses, ports,
//!   TCP fields, payload range) without allocating.
//! - [`defrag`] reassembles IPv4/IPv6 fragments into whole datagrams.
//! - [`flow`] maps decoded packets to bidirectional flows with direction and
//!   Suricata-style `established` state, and evicts idle flows.
//! - [`stream`] reassembles TCP streams per flow and direction, so content
//!   split across segments reaches the modules as one stream chunk.
//! - [`threshold`] applies rule thresholds and detection filters before an
//!   alert is emitted.
//! - [`eve`] writes alerts as Suricata EVE JSON lines and renders the CLI table.
//! - [`payload`] splits a reassembled TCP direction into what AV modules
//!   scan: HTTP/1.x message bodies, or the whole stream.
//! - [`app`] parses application-layer transactions (HTTP/1.x, DNS, TLS)
//!   out of reassembled streams and datagrams into the buffers of interface
//!   1.2.0 and the fields EVE alerts show.
//! - [`inspect`] queues decoded packets into batches, runs every module over
//!   them (fuel-limited), and turns hits and faults into alerts and verdicts.
//! - [`live`] runs the same path on real interfaces: passive IDS or an
//!   inline bridge (pnet), multi-worker, with fail policies and a bypass list.
//! - [`replay`] drives a capture file through the above (`sandgate replay`).
//! - [`update`] is the appliance side of safe updates: the update client,
//!   the activation pipeline, the last-good store, events and status
//!   (`sandgate run`, `sandgate status`).
//! - [`scan`] streams files through the bundle's AV modules and reports them
//!   the way clamscan does (`sandgate scan`).
//! - [`synth`] builds deterministic packets and captures for tests and the
//!   bundled example capture (`examples/make_capture.rs`).
//!
//! Start reading at [`decode::decode`] and [`flow::FlowTable::track`].

pub mod app;
pub mod capture;
pub mod decode;
pub mod defrag;
pub mod eve;
pub mod flow;
pub mod inspect;
pub mod live;
pub mod payload;
pub mod replay;
pub mod scan;
pub mod stream;
pub mod synth;
pub mod threshold;
pub mod update;
