//! Application-layer side data of a batch (interface 1.2.0) and the two
//! forms a batch takes on its way into a module: the flat 1.2.0 descriptors
//! (`flat-inspector`) and, for 1.0.0 modules, the batch without its
//! application-layer transaction entries.
//!
//! The host puts a transaction entry (a [`Packet`] flagged [`FLOW_APP_TX`])
//! into the batch next to packets and stream chunks and describes its parsed
//! fields in [`AppData`]. Only 1.2.0 modules ever see those entries.

use crate::wit::{Batch, Direction, Packet};

/// Flow flag of an application-layer transaction entry (1.2.0).
pub const FLOW_APP_TX: u32 = 8;

/// u32 words per entry of the flat batch (1.2.0 `flat-inspector`).
pub const ENTRY_WORDS: usize = 24;

/// u32 words per application-buffer descriptor (id, offset, length).
pub const BUFFER_WORDS: usize = 3;

/// Application protocol of an entry (1.2.0 entry word 4, bits 16-23).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AppProto {
    /// No application protocol (packets, stream chunks).
    #[default]
    None = 0,
    /// HTTP/1.x.
    Http = 1,
    /// DNS over UDP or TCP.
    Dns = 2,
    /// TLS.
    Tls = 3,
}

impl AppProto {
    /// The Suricata `app_proto` name (`http`, `dns`, `tls`), `None` for none.
    pub fn name(self) -> Option<&'static str> {
        match self {
            AppProto::None => None,
            AppProto::Http => Some("http"),
            AppProto::Dns => Some("dns"),
            AppProto::Tls => Some("tls"),
        }
    }
}

/// One application-layer buffer: entry `entry` of the batch has buffer `id`
/// (the WIT table, `sandgate_matcher::app`) at `offset..offset + len` of the
/// batch buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppBuffer {
    /// Index into `batch.packets`.
    pub entry: u32,
    /// Buffer id (`1` = `http.uri`, ...).
    pub id: u32,
    /// Offset in `batch.buffer`.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// Application-layer side data of a batch (1.2.0 modules only).
#[derive(Default, Clone, Debug)]
pub struct AppData {
    /// (entry index, app proto) for entries that have one.
    pub protos: Vec<(u32, AppProto)>,
    /// Buffers, entries in ascending order (buffers of one entry together).
    pub buffers: Vec<AppBuffer>,
}

impl AppData {
    /// Forgets everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.protos.clear();
        self.buffers.clear();
    }
}

fn direction_code(d: Direction) -> u32 {
    match d {
        Direction::Unknown => 0,
        Direction::ToServer => 1,
        Direction::ToClient => 2,
    }
}

fn push_addr(out: &mut Vec<u32>, hi: u64, lo: u64) {
    // Word 6 (10) holds bytes 0-3 of the address read big-endian; `hi` is
    // bytes 0-7 in network order.
    out.extend_from_slice(&[(hi >> 32) as u32, hi as u32, (lo >> 32) as u32, lo as u32]);
}

/// Writes the flat 1.2.0 form of `batch` + `app` into `entries` and
/// `buffers` (cleared first; their capacity is reused, so a warmed-up caller
/// allocates nothing). Buffers naming an entry the batch lacks are left out;
/// buffers out of entry order are put in order (an allocation, on that
/// caller bug only).
pub fn flatten(batch: &Batch, app: &AppData, entries: &mut Vec<u32>, buffers: &mut Vec<u32>) {
    entries.clear();
    buffers.clear();
    let n = batch.packets.len();
    let sorted = app.buffers.windows(2).all(|w| w[0].entry <= w[1].entry);
    let owned;
    let list: &[AppBuffer] = if sorted {
        &app.buffers
    } else {
        let mut v = app.buffers.clone();
        v.sort_by_key(|b| b.entry);
        owned = v;
        &owned
    };
    let protos_sorted = app.protos.windows(2).all(|w| w[0].0 <= w[1].0);
    let mut next_buf = 0usize;
    let mut next_proto = 0usize;
    for (i, p) in batch.packets.iter().enumerate() {
        let i32_ = u32::try_from(i).unwrap_or(u32::MAX);
        let proto = if protos_sorted {
            while app.protos.get(next_proto).is_some_and(|(e, _)| *e < i32_) {
                next_proto += 1;
            }
            match app.protos.get(next_proto) {
                Some((e, pr)) if *e == i32_ => *pr as u32,
                _ => 0,
            }
        } else {
            app.protos
                .iter()
                .find(|(e, _)| *e == i32_)
                .map_or(0, |(_, pr)| *pr as u32)
        };
        while list.get(next_buf).is_some_and(|b| b.entry < i32_) {
            next_buf += 1;
        }
        let first = buffers.len() / BUFFER_WORDS;
        while let Some(b) = list.get(next_buf).filter(|b| b.entry == i32_) {
            buffers.extend_from_slice(&[b.id, b.offset, b.len]);
            next_buf += 1;
        }
        let count = buffers.len() / BUFFER_WORDS - first;
        entries.extend_from_slice(&[
            p.flow_id as u32,
            (p.flow_id >> 32) as u32,
            direction_code(p.direction),
            p.flow_flags,
            u32::from(p.ip_version) | u32::from(p.protocol) << 8 | (proto & 0xff) << 16,
            u32::from(p.src_port) | u32::from(p.dst_port) << 16,
        ]);
        push_addr(entries, p.src_addr.hi, p.src_addr.lo);
        push_addr(entries, p.dst_addr.hi, p.dst_addr.lo);
        entries.extend_from_slice(&[
            p.l3_offset,
            p.l3_len,
            p.l4_offset,
            p.payload_offset,
            p.payload_len,
            p.timestamp_us as u32,
            (p.timestamp_us >> 32) as u32,
            u32::try_from(first).unwrap_or(u32::MAX),
            u32::try_from(count).unwrap_or(0),
            0,
        ]);
    }
    debug_assert_eq!(entries.len(), n * ENTRY_WORDS);
}

/// Whether the batch has application-layer transaction entries.
pub fn has_app_entries(batch: &Batch) -> bool {
    batch
        .packets
        .iter()
        .any(|p| p.flow_flags & FLOW_APP_TX != 0)
}

/// Copies `batch` without its transaction entries into `into` (buffer and
/// descriptor vectors reused) and records in `map` the original index of
/// each kept packet, so hits can be mapped back.
pub fn without_app_entries(batch: &Batch, into: &mut Batch, map: &mut Vec<u32>) {
    into.buffer.clear();
    into.buffer.extend_from_slice(&batch.buffer);
    into.packets.clear();
    map.clear();
    for (i, p) in batch.packets.iter().enumerate() {
        if p.flow_flags & FLOW_APP_TX == 0 {
            into.packets.push(Packet { ..*p });
            map.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::IpAddress;

    fn packet(flags: u32, payload: (u32, u32)) -> Packet {
        Packet {
            flow_id: 0x1_0000_0002,
            direction: Direction::ToClient,
            flow_flags: flags,
            ip_version: 4,
            protocol: 6,
            src_addr: IpAddress {
                hi: 0x0102_0304_0506_0708,
                lo: 0x090a_0b0c_0d0e_0f10,
            },
            dst_addr: IpAddress { hi: 0, lo: 7 },
            src_port: 80,
            dst_port: 40000,
            l3_offset: 0,
            l3_len: 0,
            l4_offset: 0,
            payload_offset: payload.0,
            payload_len: payload.1,
            timestamp_us: 0x5_0000_0006,
        }
    }

    #[test]
    fn flat_entries_follow_the_wit_layout() {
        let batch = Batch {
            buffer: b"GET /a HTTP/1.1\r\n\r\n/a".to_vec(),
            packets: vec![packet(1, (0, 19)), packet(1 | FLOW_APP_TX, (0, 19))],
        };
        let app = AppData {
            protos: vec![(1, AppProto::Http)],
            buffers: vec![AppBuffer {
                entry: 1,
                id: 1,
                offset: 19,
                len: 2,
            }],
        };
        let (mut e, mut b) = (Vec::new(), Vec::new());
        flatten(&batch, &app, &mut e, &mut b);
        assert_eq!(e.len(), 2 * ENTRY_WORDS);
        let second = &e[ENTRY_WORDS..];
        assert_eq!(&second[..4], &[2, 1, 2, 1 | FLOW_APP_TX]);
        assert_eq!(second[4], 4 | 6 << 8 | 1 << 16);
        assert_eq!(second[5], 80 | 40000 << 16);
        assert_eq!(
            &second[6..10],
            &[0x0102_0304, 0x0506_0708, 0x090a_0b0c, 0x0d0e_0f10]
        );
        assert_eq!(&second[17..23], &[0, 19, 6, 5, 0, 1]);
        assert_eq!(e[4] >> 16, 0, "the packet entry has no app proto");
        assert_eq!(&e[21..23], &[0, 0]);
        assert_eq!(b, vec![1, 19, 2]);
    }

    #[test]
    fn old_modules_get_the_batch_without_transactions() {
        let batch = Batch {
            buffer: b"xy".to_vec(),
            packets: vec![
                packet(FLOW_APP_TX, (0, 1)),
                packet(1, (0, 2)),
                packet(FLOW_APP_TX, (1, 1)),
                packet(2, (1, 1)),
            ],
        };
        let mut into = Batch {
            buffer: Vec::new(),
            packets: Vec::new(),
        };
        let mut map = Vec::new();
        assert!(has_app_entries(&batch));
        without_app_entries(&batch, &mut into, &mut map);
        assert_eq!(map, vec![1, 3]);
        assert_eq!(into.packets.len(), 2);
        assert_eq!(into.buffer, batch.buffer);
        assert!(!has_app_entries(&into));
    }
}
