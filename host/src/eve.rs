//! Alert output in Suricata's EVE JSON format, one object per line, and the
//! plain-text alert table the CLI prints.
//!
//! The field names, their order, the timestamp format
//! (`2024-01-02T03:04:05.123456+0000`, always UTC) and the protocol names match
//! what Suricata writes, so existing EVE consumers (jq scripts, SIEM parsers)
//! read Sandgate's alerts unchanged. Lines are serialised straight from a
//! borrowed view of the record; the only buffer is reused across alerts.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::decode::proto;
use crate::flow::Direction;

/// What the engine did with the packet, as Suricata's `alert.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertAction {
    /// IDS mode, or an `alert` rule: the packet went through.
    #[default]
    Allowed,
    /// Inline mode with `drop`/`reject`: the packet was stopped.
    Blocked,
}

impl AlertAction {
    /// The EVE string.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Allowed => "allowed",
            AlertAction::Blocked => "blocked",
        }
    }
}

/// Suricata's default severity (rule priority) when a rule sets none.
pub const DEFAULT_SEVERITY: u8 = 3;

/// One alert: which packet, which flow, which rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Packet time, microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Flow id (omitted from the output when 0).
    pub flow_id: u64,
    /// 1-based packet number in the capture (omitted when 0, e.g. live).
    pub pcap_cnt: u64,
    /// Source address.
    pub src_ip: IpAddr,
    /// Source port; the ICMP type for ICMP.
    pub src_port: u16,
    /// Destination address.
    pub dest_ip: IpAddr,
    /// Destination port; the ICMP code for ICMP.
    pub dest_port: u16,
    /// IP protocol number; written as Suricata's name or number.
    pub proto: u8,
    /// Packet direction within its flow (omitted when unknown).
    pub direction: Direction,
    /// Allowed or blocked.
    pub action: AlertAction,
    /// Generator id (1 for text rules).
    pub gid: u32,
    /// Rule `sid`.
    pub signature_id: u32,
    /// Rule `rev`.
    pub rev: u32,
    /// Rule `msg`.
    pub signature: String,
    /// Classtype description; may be empty.
    pub category: String,
    /// Rule priority; [`DEFAULT_SEVERITY`] unless set.
    pub severity: u8,
    /// Rule `metadata`, e.g. `{"created_at": ["2024_01_02"]}`.
    pub metadata: Option<serde_json::Value>,
    /// For a match on an application-layer transaction: `app_proto` and
    /// the transaction's fields (EVE's `http`/`dns`/`tls` object).
    pub app: Option<crate::app::AppEve>,
}

/// Errors writing EVE output; they name the output.
#[derive(Debug, thiserror::Error)]
pub enum EveError {
    /// Creating or writing the file failed.
    #[error("eve output {path}: {source}")]
    Io {
        /// The output file (or `<writer>`).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The record could not be serialised (a metadata value serde rejects).
    #[error("eve output {path}: packet {pcap_cnt}: {source}")]
    Json {
        /// The output file.
        path: PathBuf,
        /// Packet of the alert.
        pcap_cnt: u64,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// Protocol name as Suricata writes it (from its `known_proto` table), or the
/// number as a string.
pub fn proto_name(protocol: u8) -> ProtoName {
    ProtoName(protocol)
}

/// Displays an IP protocol the way EVE does; see [`proto_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoName(pub u8);

impl fmt::Display for ProtoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            proto::ICMP => "ICMP",
            2 => "IGMP",
            proto::TCP => "TCP",
            proto::UDP => "UDP",
            41 => "IPv6",
            47 => "GRE",
            50 => "ESP",
            51 => "AH",
            proto::ICMPV6 => "IPv6-ICMP",
            132 => "SCTP",
            other => return write!(f, "{other}"),
        };
        f.write_str(name)
    }
}

/// Formats microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffff+0000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EveTimestamp(pub u64);

impl fmt::Display for EveTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0 % 1_000_000;
        let secs = self.0 / 1_000_000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn is_icmp(protocol: u8) -> bool {
    protocol == proto::ICMP || protocol == proto::ICMPV6
}

fn direction_str(direction: Direction) -> Option<&'static str> {
    match direction {
        Direction::ToServer => Some("to_server"),
        Direction::ToClient => Some("to_client"),
        Direction::Unknown => None,
    }
}

/// Top-level EVE object, in Suricata's field order.
struct EveLine<'a>(&'a AlertRecord);

/// The nested `alert` object.
struct EveAlert<'a>(&'a AlertRecord);

impl Serialize for EveLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut o = s.serialize_struct("eve", 14)?;
        o.serialize_field("timestamp", &Collect(EveTimestamp(r.timestamp_us)))?;
        if r.flow_id != 0 {
            o.serialize_field("flow_id", &r.flow_id)?;
        } else {
            o.skip_field("flow_id")?;
        }
        if r.pcap_cnt != 0 {
            o.serialize_field("pcap_cnt", &r.pcap_cnt)?;
        } else {
            o.skip_field("pcap_cnt")?;
        }
        o.serialize_field("event_type", "alert")?;
        o.serialize_field("src_ip", &Collect(r.src_ip))?;
        let icmp = is_icmp(r.proto);
        if !icmp {
            o.serialize_field("src_port", &r.src_port)?;
        }
        o.serialize_field("dest_ip", &Collect(r.dest_ip))?;
        if !icmp {
            o.serialize_field("dest_port", &r.dest_port)?;
        }
        o.serialize_field("proto", &Collect(ProtoName(r.proto)))?;
        if icmp {
            o.serialize_field("icmp_type", &r.src_port)?;
            o.serialize_field("icmp_code", &r.dest_port)?;
        }
        if let Some(direction) = direction_str(r.direction) {
            o.serialize_field("direction", direction)?;
        }
        o.serialize_field("alert", &EveAlert(r))?;
        if let Some(app) = &r.app {
            o.serialize_field(app.app_proto, &app.object)?;
            o.serialize_field("app_proto", app.app_proto)?;
        }
        o.end()
    }
}

impl Serialize for EveAlert<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut o = s.serialize_struct("alert", 8)?;
        o.serialize_field("action", r.action.as_str())?;
        o.serialize_field("gid", &r.gid)?;
        o.serialize_field("signature_id", &r.signature_id)?;
        o.serialize_field("rev", &r.rev)?;
        o.serialize_field("signature", &r.signature)?;
        o.serialize_field("category", &r.category)?;
        o.serialize_field("severity", &r.severity)?;
        if let Some(metadata) = &r.metadata {
            o.serialize_field("metadata", metadata)?;
        }
        o.end()
    }
}

/// Serialises any `Display` as a JSON string without an intermediate `String`.
struct Collect<T>(T);

impl<T: fmt::Display> Serialize for Collect<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// Writes alerts as EVE JSON lines.
///
/// ```
/// use sandgate_host::eve::{AlertAction, AlertRecord, EveWriter};
/// use sandgate_host::flow::Direction;
/// let alert = AlertRecord {
///     timestamp_us: 1_704_164_645_123_456,
///     flow_id: 1,
///     pcap_cnt: 5,
///     src_ip: "10.0.0.10".parse()?,
///     src_port: 49152,
///     dest_ip: "192.168.1.80".parse()?,
///     dest_port: 80,
///     proto: 6,
///     direction: Direction::ToServer,
///     action: AlertAction::Allowed,
///     gid: 1,
///     signature_id: 1_000_001,
///     rev: 1,
///     signature: "SQL injection attempt".into(),
///     category: String::new(),
///     severity: 3,
///     metadata: None,
///     app: None,
/// };
/// let mut eve = EveWriter::new(Vec::new());
/// eve.write_alert(&alert)?;
/// let line = String::from_utf8(eve.into_inner()?)?;
/// assert!(line.starts_with(r#"{"timestamp":"2024-01-02T03:04:05.123456+0000","flow_id":1,"pcap_cnt":5,"event_type":"alert""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EveWriter<W: Write = BufWriter<File>> {
    path: PathBuf,
    out: W,
    line: Vec<u8>,
    written: u64,
}

impl<W: Write> fmt::Debug for EveWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EveWriter")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl EveWriter<BufWriter<File>> {
    /// Creates (or truncates) the EVE file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, EveError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| EveError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(EveWriter {
            path,
            out: BufWriter::new(file),
            line: Vec::with_capacity(512),
            written: 0,
        })
    }
}

impl<W: Write> EveWriter<W> {
    /// Writes to any writer (named `<writer>` in errors).
    pub fn new(out: W) -> Self {
        EveWriter {
            path: PathBuf::from("<writer>"),
            out,
            line: Vec::with_capacity(512),
            written: 0,
        }
    }

    /// Writes one alert as one line.
    pub fn write_alert(&mut self, alert: &AlertRecord) -> Result<(), EveError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &EveLine(alert)).map_err(|source| {
            EveError::Json {
                path: self.path.clone(),
                pcap_cnt: alert.pcap_cnt,
                source,
            }
        })?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|source| EveError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.written += 1;
        Ok(())
    }

    /// Number of alerts written.
    pub fn alerts_written(&self) -> u64 {
        self.written
    }

    /// Flushes buffered lines.
    pub fn flush(&mut self) -> Result<(), EveError> {
        self.out.flush().map_err(|source| EveError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, EveError> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Renders `addr:port` (`[addr]:port` for IPv6, no port for ICMP).
fn endpoint(addr: IpAddr, port: u16, protocol: u8) -> String {
    match (addr, is_icmp(protocol)) {
        (addr, true) => addr.to_string(),
        (IpAddr::V4(a), false) => format!("{a}:{port}"),
        (IpAddr::V6(a), false) => format!("[{a}]:{port}"),
    }
}

/// A fixed-width table of alerts for the CLI summary: packet number, sid,
/// protocol, endpoints and message, one alert per line under a header.
pub fn alert_table(alerts: &[AlertRecord]) -> String {
    let rows: Vec<[String; 5]> = alerts
        .iter()
        .map(|a| {
            [
                a.pcap_cnt.to_string(),
                a.signature_id.to_string(),
                ProtoName(a.proto).to_string(),
                format!(
                    "{} -> {}",
                    endpoint(a.src_ip, a.src_port, a.proto),
                    endpoint(a.dest_ip, a.dest_port, a.proto)
                ),
                match &a.app {
                    Some(app) => format!("{} [{}]", a.signature, app.summary),
                    None => a.signature.clone(),
                },
            ]
        })
        .collect();
    let header = ["PACKET", "SID", "PROTO", "FLOW", "MESSAGE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let [pkt, sid, proto, flow, msg] = cells;
        let _ = writeln!(
            out,
            "{pkt:>w0$}  {sid:>w1$}  {proto:<w2$}  {flow:<w3$}  {msg}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    };
    line(header);
    for row in &rows {
        let [a, b, c, d, e] = row;
        line([a, b, c, d, e]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn record() -> AlertRecord {
        AlertRecord {
            timestamp_us: 1_704_164_645_123_456, // 2024-01-02T03:04:05.123456Z
            flow_id: 42,
            pcap_cnt: 4,
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 40000,
            dest_ip: "10.0.0.2".parse().unwrap(),
            dest_port: 80,
            proto: proto::TCP,
            direction: Direction::ToServer,
            action: AlertAction::Allowed,
            gid: 1,
            signature_id: 1_000_001,
            rev: 2,
            signature: "SQL injection \"OR 1=1\"".to_string(),
            category: "Web Application Attack".to_string(),
            severity: 1,
            metadata: Some(serde_json::json!({"created_at": ["2024_01_02"]})),
            app: None,
        }
    }

    fn line_of(r: &AlertRecord) -> String {
        let mut w = EveWriter::new(Vec::new());
        w.write_alert(r).unwrap();
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn eve_line_has_suricata_fields_in_order() {
        let line = line_of(&record());
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        assert!(line.starts_with(
            "{\"timestamp\":\"2024-01-02T03:04:05.123456+0000\",\"flow_id\":42,\"pcap_cnt\":4,\
             \"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"src_port\":40000,\
             \"dest_ip\":\"10.0.0.2\",\"dest_port\":80,\"proto\":\"TCP\",\"direction\":\"to_server\",\
             \"alert\":{\"action\":\"allowed\",\"gid\":1,\"signature_id\":1000001,\"rev\":2,"
        ), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        let alert = &v["alert"];
        assert_eq!(alert["signature"], "SQL injection \"OR 1=1\"");
        assert_eq!(alert["category"], "Web Application Attack");
        assert_eq!(alert["severity"], 1);
        assert_eq!(alert["metadata"]["created_at"][0], "2024_01_02");
    }

    #[test]
    fn icmp_alerts_carry_type_and_code_instead_of_ports() {
        let r = AlertRecord {
            proto: proto::ICMP,
            src_port: 8,
            dest_port: 0,
            direction: Direction::Unknown,
            action: AlertAction::Blocked,
            metadata: None,
            flow_id: 0,
            ..record()
        };
        let v: Value = serde_json::from_str(&line_of(&r)).unwrap();
        let o = v.as_object().unwrap();
        for absent in ["src_port", "dest_port", "direction", "flow_id"] {
            assert!(!o.contains_key(absent), "{absent} must be omitted");
        }
        assert_eq!(v["proto"], "ICMP");
        assert_eq!(
            (v["icmp_type"].as_u64(), v["icmp_code"].as_u64()),
            (Some(8), Some(0))
        );
        assert_eq!(v["alert"]["action"], "blocked");
        assert!(v["alert"].get("metadata").is_none());
    }

    #[test]
    fn protocol_names_match_suricata() {
        for (p, want) in [
            (1, "ICMP"),
            (6, "TCP"),
            (17, "UDP"),
            (58, "IPv6-ICMP"),
            (132, "SCTP"),
            (253, "253"),
        ] {
            assert_eq!(ProtoName(p).to_string(), want);
        }
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        for (us, want) in [
            (0, "1970-01-01T00:00:00.000000+0000"),
            (951_782_400_000_001, "2000-02-29T00:00:00.000001+0000"),
            (1_704_164_645_123_456, "2024-01-02T03:04:05.123456+0000"),
            (4_107_542_399_999_999, "2100-02-28T23:59:59.999999+0000"),
        ] {
            assert_eq!(EveTimestamp(us).to_string(), want);
        }
    }

    #[test]
    fn table_aligns_columns() {
        let v6 = AlertRecord {
            src_ip: "2001:db8::1".parse().unwrap(),
            dest_ip: "2001:db8::2".parse().unwrap(),
            dest_port: 8080,
            pcap_cnt: 123,
            signature: "ipv6 test".into(),
            ..record()
        };
        let icmp = AlertRecord {
            proto: proto::ICMP,
            signature: "ping tunnel".into(),
            ..record()
        };
        let table = alert_table(&[record(), v6, icmp]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("PACKET") && lines[0].ends_with("MESSAGE"));
        assert!(lines[2].contains("[2001:db8::1]:40000 -> [2001:db8::2]:8080"));
        assert!(lines[3].contains("10.0.0.1 -> 10.0.0.2"));
        let msg_col = lines[0].find("MESSAGE").unwrap();
        for l in &lines[1..] {
            assert!(l.is_char_boundary(msg_col));
            assert_ne!(&l[msg_col - 1..msg_col], "-", "{l}");
        }
        assert_eq!(lines[1].find("SQL").unwrap(), msg_col);
        assert_eq!(lines[2].find("ipv6 test").unwrap(), msg_col);
    }
}
