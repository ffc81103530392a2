//! Capture files: read pcap and pcapng (told apart by their magic number) and
//! write classic pcap.
//!
//! Reading is built on `pcap-file`, but the record walk is ours: we track the
//! byte offset of every record so a truncated or corrupt file gives an error that
//! names the file, the packet number and the offset, and we stop after the first
//! such error instead of repeating it. Per-record checks are more lenient than
//! `pcap-file`'s (an `orig_len` beyond the snap length is accepted, as tcpdump
//! and Wireshark do).

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter, RawPcapPacket};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{PcapNgReader, RawBlock};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

/// A link-layer type number from the tcpdump.org registry.
///
/// Kept as a number so captures with link types we do not decode still read;
/// [`crate::decode`] says which ones it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II, optionally with 802.1Q/802.1ad tags.
    pub const ETHERNET: LinkType = LinkType(1);
    /// PPP: an optional `ff 03` address/control pair, then the PPP protocol
    /// (one byte when compressed, else two).
    pub const PPP: LinkType = LinkType(9);
    /// Raw IP on some BSDs (DLT 12).
    pub const RAW_12: LinkType = LinkType(12);
    /// Raw IP on OpenBSD (DLT 14).
    pub const RAW_14: LinkType = LinkType(14);
    /// Raw IPv4 or IPv6, no link header.
    pub const RAW: LinkType = LinkType(101);
    /// PPP in HDLC-like framing (RFC 1662); decoded as [`LinkType::PPP`].
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux "cooked" capture v1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4, no link header (`LINKTYPE_IPV4`).
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6, no link header (`LINKTYPE_IPV6`).
    pub const IPV6: LinkType = LinkType(229);
    /// Linux "cooked" capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1-based position of the packet in the file (Suricata's `pcap_cnt`).
    pub number: u64,
    /// Capture time in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Link type of the interface the packet was captured on.
    pub linktype: LinkType,
    /// Length of the packet on the wire (may exceed `data.len()` when snapped).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

impl Default for Frame {
    fn default() -> Self {
        Frame {
            number: 0,
            timestamp_us: 0,
            linktype: LinkType::ETHERNET,
            orig_len: 0,
            data: Vec::new(),
        }
    }
}

/// What was wrong with one record of a capture file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes left than a record or block header needs.
    #[error("truncated record header ({needed} bytes needed, {left} left)")]
    TruncatedHeader {
        /// Header size.
        needed: u64,
        /// Bytes left in the file.
        left: u64,
    },
    /// The header announces more bytes than the file still has.
    #[error("truncated record (header says {claimed} bytes, {left} left)")]
    Truncated {
        /// Length announced by the record header.
        claimed: u64,
        /// Bytes left after the header.
        left: u64,
    },
    /// A record larger than the reader's buffer (8 MB): the file is corrupt.
    #[error("record of {claimed} bytes is larger than any real packet")]
    TooLarge {
        /// Length announced by the record header.
        claimed: u64,
    },
    /// A field holds an impossible value.
    #[error("{0}")]
    Invalid(String),
    /// An EPB or packet block names an interface that was never described.
    #[error("packet names interface {0}, which the file never described")]
    UnknownInterface(u32),
    /// Reading failed.
    #[error("read error: {0}")]
    Io(#[source] io::Error),
}

/// Errors from reading or writing a capture file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened, created, or its header read.
    #[error("capture {path}: {source}")]
    Io {
        /// The capture file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is neither pcap nor pcapng.
    #[error("capture {path}: not a pcap or pcapng file (magic {magic:#010x})")]
    UnknownFormat {
        /// The capture file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// The file header is unreadable.
    #[error("capture {path}: bad file header: {reason}")]
    Header {
        /// The capture file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// One packet record is truncated or corrupt; reading stops here.
    #[error("capture {path}: packet {number}: {problem} (at byte offset {offset})")]
    Record {
        /// The capture file.
        path: PathBuf,
        /// The 1-based number the packet would have had.
        number: u64,
        /// Byte offset of the record in the file.
        offset: u64,
        /// What was wrong.
        problem: RecordError,
    },
    /// Writing a packet failed.
    #[error("capture {path}: writing packet {number}: {reason}")]
    Write {
        /// The capture file.
        path: PathBuf,
        /// The 1-based packet number being written.
        number: u64,
        /// What went wrong.
        reason: String,
    },
}

const PCAP_MAGICS: [u32; 4] = [0xA1B2_C3D4, 0xA1B2_3C4D, 0xD4C3_B2A1, 0x4D3C_B2A1];
const PCAPNG_MAGIC: u32 = 0x0A0D_0D0A;
/// `pcap-file` reads through an 8 MB buffer; a record cannot be larger.
const READ_BUFFER: u64 = 8_000_000;
const PCAP_HEADER_LEN: u64 = 24;
const PCAP_RECORD_HEADER_LEN: u64 = 16;
const PCAPNG_BLOCK_HEADER_LEN: u64 = 12;

enum Format {
    Pcap {
        reader: PcapReader<File>,
        linktype: LinkType,
        nanos: bool,
        endianness: Endianness,
    },
    PcapNg {
        reader: PcapNgReader<File>,
    },
}

/// Reads frames from a pcap or pcapng file.
///
/// ```no_run
/// use sandgate_host::capture::CaptureReader;
/// let mut reader = CaptureReader::open("traffic.pcap")?;
/// while let Some(frame) = reader.next_frame() {
///     let frame = frame?;
///     println!("{} {} bytes", frame.number, frame.data.len());
/// }
/// # Ok::<(), sandgate_host::capture::CaptureError>(())
/// ```
pub struct CaptureReader {
    path: PathBuf,
    format: Format,
    file_len: u64,
    /// Byte offset of the next record.
    offset: u64,
    /// Packets returned so far.
    count: u64,
    /// Set after an error or the end of file: the reader is fused.
    done: bool,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture file, detecting pcap or pcapng by its magic number.
    pub fn open(path: impl AsRef<Path>) -> Result<CaptureReader, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| CaptureError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut magic = [0u8; 4];
        if let Err(e) = file.read_exact(&mut magic) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                CaptureError::Header {
                    path,
                    reason: format!("file is {file_len} bytes, too short for a capture header"),
                }
            } else {
                io_err(e)
            });
        }
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let magic = u32::from_be_bytes(magic);
        let header_err = |e: PcapError| CaptureError::Header {
            path: path.clone(),
            reason: describe_pcap_error(&e),
        };
        let (format, offset) = if PCAP_MAGICS.contains(&magic) {
            let reader = PcapReader::new(file).map_err(header_err)?;
            let header = reader.header();
            let format = Format::Pcap {
                linktype: LinkType(u32::from(header.datalink)),
                nanos: header.ts_resolution == TsResolution::NanoSecond,
                endianness: header.endianness,
                reader,
            };
            (format, PCAP_HEADER_LEN)
        } else if magic == PCAPNG_MAGIC {
            let shb_len = read_u32_at(&path, 4, Endianness::Big).unwrap_or(0);
            let reader = PcapNgReader::new(file).map_err(header_err)?;
            // The SHB length was read big-endian; fix it for little-endian files.
            let shb_len = match reader.section().endianness {
                Endianness::Big => shb_len,
                Endianness::Little => shb_len.swap_bytes(),
            };
            (Format::PcapNg { reader }, u64::from(shb_len))
        } else {
            return Err(CaptureError::UnknownFormat { path, magic });
        };
        Ok(CaptureReader {
            path,
            format,
            file_len,
            offset,
            count: 0,
            done: false,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of packets returned so far.
    pub fn packets_read(&self) -> u64 {
        self.count
    }

    /// Returns the next frame, `None` at the end of the file, or the error that
    /// stopped reading (after which it returns `None`).
    ///
    /// Allocates a fresh buffer per frame; use [`CaptureReader::read_into`] on
    /// the hot path.
    pub fn next_frame(&mut self) -> Option<Result<Frame, CaptureError>> {
        let mut frame = Frame::default();
        match self.read_into(&mut frame) {
            Ok(true) => Some(Ok(frame)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads the next frame into `frame`, reusing its buffer. Returns
    /// `Ok(false)` at the end of the file.
    pub fn read_into(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        if self.done {
            return Ok(false);
        }
        let result = self.read_record(frame);
        match &result {
            Ok(true) => {
                self.count += 1;
                frame.number = self.count;
            }
            Ok(false) | Err(_) => self.done = true,
        }
        result
    }

    fn read_record(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        match &mut self.format {
            Format::Pcap {
                reader,
                linktype,
                nanos,
                endianness,
            } => {
                let (linktype, nanos, endianness) = (*linktype, *nanos, *endianness);
                let raw = match reader.next_raw_packet() {
                    None => return Ok(false),
                    Some(Ok(raw)) => raw,
                    Some(Err(e)) => {
                        let problem = self.diagnose(e, PCAP_RECORD_HEADER_LEN, 8, endianness);
                        return Err(self.record_error(problem));
                    }
                };
                let record_len = PCAP_RECORD_HEADER_LEN + u64::from(raw.incl_len);
                let problem = fill_from_pcap(frame, &raw, linktype, nanos);
                if let Err(problem) = problem {
                    return Err(self.record_error(problem));
                }
                self.offset += record_len;
                Ok(true)
            }
            Format::PcapNg { .. } => self.read_pcapng(frame),
        }
    }

    fn read_pcapng(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        loop {
            let Format::PcapNg { reader } = &mut self.format else {
                return Ok(false);
            };
            let endianness = reader.section().endianness;
            let raw: RawBlock<'_> = match reader.next_raw_block() {
                None => return Ok(false),
                Some(Ok(raw)) => raw,
                Some(Err(e)) => {
                    let problem = self.diagnose(e, PCAPNG_BLOCK_HEADER_LEN, 4, endianness);
                    return Err(self.record_error(problem));
                }
            };
            let block_len = u64::from(raw.initial_len);
            let packet = match parse_packet_block(raw.type_, &raw.body, endianness) {
                Ok(packet) => packet,
                Err(problem) => return Err(self.record_error(problem)),
            };
            let Some(PacketBlock {
                interface_id,
                ticks,
                orig_len,
                data,
            }) = packet
            else {
                self.offset += block_len;
                continue;
            };
            frame.orig_len = orig_len;
            frame.data.clear();
            frame.data.extend_from_slice(data);
            let Some(interface) = reader.interfaces().get(interface_id as usize) else {
                return Err(self.record_error(RecordError::UnknownInterface(interface_id)));
            };
            let tsresol = interface
                .options
                .iter()
                .find_map(|o| match o {
                    InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                    _ => None,
                })
                .unwrap_or(6);
            frame.linktype = LinkType(u32::from(interface.linktype));
            frame.timestamp_us = ticks_to_us(ticks, tsresol);
            self.offset += block_len;
            return Ok(true);
        }
    }

    fn record_error(&self, problem: RecordError) -> CaptureError {
        CaptureError::Record {
            path: self.path.clone(),
            number: self.count + 1,
            offset: self.offset,
            problem,
        }
    }

    /// Turns a `pcap-file` error at `self.offset` into a precise problem. For
    /// an unexpected end of file, re-reads the record header to say how many
    /// bytes it announced and how many were left.
    fn diagnose(
        &self,
        e: PcapError,
        header_len: u64,
        len_field_at: u64,
        endianness: Endianness,
    ) -> RecordError {
        match e {
            PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                let left = self.file_len.saturating_sub(self.offset);
                if left < header_len {
                    return RecordError::TruncatedHeader {
                        needed: header_len,
                        left,
                    };
                }
                let claimed = match read_u32_at(&self.path, self.offset + len_field_at, endianness)
                {
                    Ok(v) => u64::from(v),
                    Err(io) => return RecordError::Io(io),
                };
                // pcap: the length excludes the 16-byte header; pcapng: it is the
                // whole block.
                let (claimed, left) = if header_len == PCAP_RECORD_HEADER_LEN {
                    (claimed, left - header_len)
                } else {
                    (claimed, left)
                };
                if claimed >= READ_BUFFER {
                    RecordError::TooLarge { claimed }
                } else if claimed > left {
                    RecordError::Truncated { claimed, left }
                } else {
                    RecordError::Io(io)
                }
            }
            PcapError::IoError(io) => RecordError::Io(io),
            other => RecordError::Invalid(describe_pcap_error(&other)),
        }
    }
}

impl Iterator for CaptureReader {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

fn fill_from_pcap(
    frame: &mut Frame,
    raw: &RawPcapPacket<'_>,
    linktype: LinkType,
    nanos: bool,
) -> Result<(), RecordError> {
    let (frac_limit, us) = if nanos {
        (1_000_000_000, raw.ts_frac / 1000)
    } else {
        (1_000_000, raw.ts_frac)
    };
    if raw.ts_frac >= frac_limit {
        return Err(RecordError::Invalid(format!(
            "timestamp fraction {} out of range",
            raw.ts_frac
        )));
    }
    frame.linktype = linktype;
    frame.timestamp_us = u64::from(raw.ts_sec) * 1_000_000 + u64::from(us);
    frame.orig_len = raw.orig_len;
    frame.data.clear();
    frame.data.extend_from_slice(&raw.data);
    Ok(())
}

/// The fields of a pcapng packet block that a frame needs.
struct PacketBlock<'a> {
    interface_id: u32,
    ticks: u64,
    orig_len: u32,
    data: &'a [u8],
}

const EPB: u32 = 0x0000_0006;
const SPB: u32 = 0x0000_0003;
const OBSOLETE_PB: u32 = 0x0000_0002;

/// Parses the body of an enhanced, simple or obsolete packet block; other
/// block types give `Ok(None)`. Every length is checked against the body.
fn parse_packet_block(
    block_type: u32,
    body: &[u8],
    endianness: Endianness,
) -> Result<Option<PacketBlock<'_>>, RecordError> {
    let u32_at = |at: usize| -> Result<u32, RecordError> {
        let bytes = body
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or_else(|| {
                RecordError::Invalid(format!(
                    "packet block body of {} bytes is too short",
                    body.len()
                ))
            })?;
        Ok(match endianness {
            Endianness::Big => u32::from_be_bytes(bytes),
            Endianness::Little => u32::from_le_bytes(bytes),
        })
    };
    let data_at = |start: usize, caplen: u32| -> Result<&[u8], RecordError> {
        let caplen = caplen as usize;
        body.get(start..start.saturating_add(caplen))
            .ok_or_else(|| {
                RecordError::Invalid(format!(
                    "captured length {caplen} exceeds the block body ({} bytes)",
                    body.len()
                ))
            })
    };
    match block_type {
        EPB | OBSOLETE_PB => {
            let first = u32_at(0)?;
            // The obsolete block has a 16-bit interface id and a drop count.
            let interface_id = if block_type == EPB {
                first
            } else {
                match endianness {
                    Endianness::Big => first >> 16,
                    Endianness::Little => first & 0xffff,
                }
            };
            let ticks = (u64::from(u32_at(4)?) << 32) | u64::from(u32_at(8)?);
            let caplen = u32_at(12)?;
            let orig_len = u32_at(16)?;
            let data = data_at(20, caplen)?;
            Ok(Some(PacketBlock {
                interface_id,
                ticks,
                orig_len,
                data,
            }))
        }
        SPB => {
            let orig_len = u32_at(0)?;
            let room = body.len().saturating_sub(4);
            let caplen = u32::try_from(room).unwrap_or(u32::MAX).min(orig_len);
            let data = data_at(4, caplen)?;
            Ok(Some(PacketBlock {
                interface_id: 0,
                ticks: 0,
                orig_len,
                data,
            }))
        }
        _ => Ok(None),
    }
}

/// Converts pcapng timestamp units to microseconds. `tsresol` is the
/// `if_tsresol` option: high bit clear means 10^-n seconds, set means 2^-n.
fn ticks_to_us(ticks: u64, tsresol: u8) -> u64 {
    let exp = u32::from(tsresol & 0x7f);
    let per_second: u128 = if tsresol & 0x80 == 0 {
        10u128.checked_pow(exp).unwrap_or(u128::MAX)
    } else {
        1u128.checked_shl(exp).unwrap_or(u128::MAX)
    };
    let us = u128::from(ticks) * 1_000_000 / per_second.max(1);
    u64::try_from(us).unwrap_or(u64::MAX)
}

fn read_u32_at(path: &Path, offset: u64, endianness: Endianness) -> io::Result<u32> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = [0u8; 4];
    file.read_exact(&mut buf)?;
    Ok(match endianness {
        Endianness::Big => u32::from_be_bytes(buf),
        Endianness::Little => u32::from_le_bytes(buf),
    })
}

fn describe_pcap_error(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            "unexpected end of file".to_string()
        }
        PcapError::IoError(io) => format!("read error: {io}"),
        PcapError::InvalidField(what) => (*what).to_string(),
        PcapError::InvalidInterfaceId(id) => format!("unknown interface id {id}"),
        other => other.to_string(),
    }
}

/// Writes a classic pcap file (microsecond timestamps, Ethernet link type).
pub struct CaptureWriter<W: Write = BufWriter<File>> {
    path: PathBuf,
    writer: PcapWriter<W>,
    count: u64,
}

impl<W: Write> fmt::Debug for CaptureWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("path", &self.path)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl CaptureWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the pcap file header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| CaptureError::Io {
            path: path.clone(),
            source,
        })?;
        Self::with_name(BufWriter::new(file), path)
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Writes a pcap file header to `writer`; `name` is used in error messages.
    pub fn with_name(writer: W, name: impl Into<PathBuf>) -> Result<Self, CaptureError> {
        let path = name.into();
        let header = PcapHeader {
            snaplen: 262_144,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::Little,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(writer, header).map_err(|e| CaptureError::Header {
            path: path.clone(),
            reason: describe_pcap_error(&e),
        })?;
        Ok(CaptureWriter {
            path,
            writer,
            count: 0,
        })
    }

    /// Appends one Ethernet frame captured at `timestamp_us`.
    pub fn write_frame(&mut self, timestamp_us: u64, data: &[u8]) -> Result<(), CaptureError> {
        let number = self.count + 1;
        let err = |reason: String| CaptureError::Write {
            path: self.path.clone(),
            number,
            reason,
        };
        let len = u32::try_from(data.len())
            .map_err(|_| err(format!("frame of {} bytes is too large", data.len())))?;
        let packet = PcapPacket::new(Duration::from_micros(timestamp_us), len, data);
        self.writer
            .write_packet(&packet)
            .map_err(|e| err(describe_pcap_error(&e)))?;
        self.count = number;
        Ok(())
    }

    /// Number of frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.count
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> Result<W, CaptureError> {
        let path = self.path;
        let mut inner = self.writer.into_writer();
        inner
            .flush()
            .map_err(|source| CaptureError::Io { path, source })?;
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use std::borrow::Cow;

    fn sample_frames() -> Vec<(u64, Vec<u8>)> {
        (0..5u64)
            .map(|i| {
                let len = 60 + i as usize * 100;
                (1_700_000_000_000_000 + i * 1500, vec![i as u8; len])
            })
            .collect()
    }

    fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
        let mut w = CaptureWriter::create(path).unwrap();
        for (ts, data) in frames {
            w.write_frame(*ts, data).unwrap();
        }
        w.finish().unwrap();
    }

    fn read_all(path: &Path) -> (Vec<Frame>, Option<CaptureError>) {
        let mut r = CaptureReader::open(path).unwrap();
        let mut frames = Vec::new();
        let mut error = None;
        for item in &mut r {
            match item {
                Ok(f) => frames.push(f),
                Err(e) => error = Some(e),
            }
        }
        (frames, error)
    }

    #[test]
    fn pcap_round_trip_keeps_bytes_timestamps_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.pcap");
        let frames = sample_frames();
        write_pcap(&path, &frames);
        let (read, error) = read_all(&path);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(read.len(), frames.len());
        for (i, (f, (ts, data))) in read.iter().zip(&frames).enumerate() {
            assert_eq!(f.number, i as u64 + 1);
            assert_eq!(f.timestamp_us, *ts);
            assert_eq!(&f.data, data);
            assert_eq!(f.linktype, LinkType::ETHERNET);
        }
    }

    #[test]
    fn truncated_pcap_yields_earlier_frames_then_error_naming_packet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.pcap");
        let frames = sample_frames();
        write_pcap(&path, &frames);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();

        let (read, error) = read_all(&path);
        assert_eq!(read.len(), frames.len() - 1);
        let error = error.expect("an error for the cut packet");
        let msg = error.to_string();
        assert!(msg.contains("cut.pcap"), "{msg}");
        assert!(msg.contains("packet 5:"), "{msg}");
        let last_len = frames[4].1.len();
        assert!(
            msg.contains(&format!(
                "truncated record (header says {last_len} bytes, {} left)",
                last_len - 10
            )),
            "{msg}"
        );
        match error {
            CaptureError::Record {
                number,
                problem: RecordError::Truncated { .. },
                ..
            } => assert_eq!(number, 5),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cut_inside_record_header_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hdr.pcap");
        let frames = sample_frames();
        write_pcap(&path, &frames[..2]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
        std::fs::write(&path, &bytes).unwrap();
        let (read, error) = read_all(&path);
        assert_eq!(read.len(), 2);
        let msg = error.unwrap().to_string();
        assert!(
            msg.contains("packet 3: truncated record header (16 bytes needed, 5 left)"),
            "{msg}"
        );
    }

    #[test]
    fn every_prefix_of_a_capture_reads_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.pcap");
        write_pcap(&path, &sample_frames()[..3]);
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("prefix.pcap");
        for len in 0..bytes.len() {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            match CaptureReader::open(&cut) {
                Ok(mut r) => {
                    let mut n = 0;
                    while let Some(item) = r.next_frame() {
                        n += 1;
                        assert!(n < 10, "reader is not fused");
                        if let Err(e) = item {
                            assert!(e.to_string().contains("prefix.pcap"));
                        }
                    }
                }
                Err(e) => assert!(e.to_string().contains("prefix.pcap"), "{e}"),
            }
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.pcap");
        std::fs::write(&path, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let msg = CaptureReader::open(&path).unwrap_err().to_string();
        assert!(
            msg.contains("junk.pcap") && msg.contains("0x47455420"),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_timestamp_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ts.pcap");
        write_pcap(&path, &sample_frames()[..2]);
        let mut bytes = std::fs::read(&path).unwrap();
        // Second record's ts_frac (little-endian) at 24 + 16 + 60 + 4.
        let at = 24 + 16 + 60 + 4;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (read, error) = read_all(&path);
        assert_eq!(read.len(), 1);
        let msg = error.unwrap().to_string();
        assert!(
            msg.contains("packet 2:") && msg.contains("timestamp"),
            "{msg}"
        );
    }

    fn write_pcapng(path: &Path, tsresol: Option<u8>, frames: &[(u64, Vec<u8>)]) {
        let file = File::create(path).unwrap();
        let mut w = PcapNgWriter::with_endianness(file, Endianness::Little).unwrap();
        let options = tsresol
            .map(|r| vec![InterfaceDescriptionOption::IfTsResol(r)])
            .unwrap_or_default();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen: 0,
            options,
        })
        .unwrap();
        let per_us = match tsresol {
            Some(9) => 1000,
            _ => 1,
        };
        for (ts, data) in frames {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(ts * per_us),
                original_len: data.len() as u32,
                data: Cow::Borrowed(data),
                options: vec![],
            })
            .unwrap();
        }
    }

    #[test]
    fn pcapng_reads_with_interface_linktype_and_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let frames = sample_frames();
        for tsresol in [None, Some(9)] {
            let path = dir.path().join("t.pcapng");
            write_pcapng(&path, tsresol, &frames);
            let (read, error) = read_all(&path);
            assert!(error.is_none(), "{error:?}");
            assert_eq!(read.len(), frames.len());
            for (i, (f, (ts, data))) in read.iter().zip(&frames).enumerate() {
                assert_eq!(f.number, i as u64 + 1);
                assert_eq!(f.timestamp_us, *ts, "tsresol {tsresol:?}");
                assert_eq!(&f.data, data);
                assert_eq!(f.linktype, LinkType::RAW);
            }
        }
    }

    #[test]
    fn truncated_pcapng_names_packet_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.pcapng");
        let frames = sample_frames();
        write_pcapng(&path, None, &frames);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let (read, error) = read_all(&path);
        assert_eq!(read.len(), frames.len() - 1);
        let msg = error.unwrap().to_string();
        assert!(
            msg.contains("cut.pcapng: packet 5: truncated record (header says"),
            "{msg}"
        );
        // Every prefix must also be safe.
        let cut = dir.path().join("p.pcapng");
        for len in 0..bytes.len() {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            if let Ok(r) = CaptureReader::open(&cut) {
                assert!(r.count() <= frames.len());
            }
        }
    }

    #[test]
    fn ticks_convert_for_decimal_and_binary_resolutions() {
        assert_eq!(ticks_to_us(1_500_000, 6), 1_500_000);
        assert_eq!(ticks_to_us(1_500_000_000, 9), 1_500_000);
        assert_eq!(ticks_to_us(3, 0), 3_000_000);
        assert_eq!(ticks_to_us(1 << 20, 0x80 | 20), 1_000_000);
        assert_eq!(ticks_to_us(u64::MAX, 0x7f), 0);
    }
}
