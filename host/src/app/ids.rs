//! Buffer ids of `sandgate:pattern@1.2.0` (the WIT table), kept here until
//! `sandgate_matcher::app` lands from the appcomp branch.

#![allow(dead_code)]

pub const HTTP_URI: u32 = 1;
/// `http.uri.raw`.
pub const HTTP_URI_RAW: u32 = 2;
/// `http.method`.
pub const HTTP_METHOD: u32 = 3;
/// `http.protocol` (`HTTP/1.1`).
pub const HTTP_PROTOCOL: u32 = 4;
/// `http.request_line`.
pub const HTTP_REQUEST_LINE: u32 = 5;
/// `http.host`: lower-cased, without port.
pub const HTTP_HOST: u32 = 6;
/// `http.host.raw`.
pub const HTTP_HOST_RAW: u32 = 7;
/// `http.user_agent`.
pub const HTTP_USER_AGENT: u32 = 8;
/// `http.header`: every header but `Cookie`/`Set-Cookie`, `Name: value\r\n`.
pub const HTTP_HEADER: u32 = 9;
/// `http.header.raw`: the header block as sent.
pub const HTTP_HEADER_RAW: u32 = 10;
/// `http.cookie`: `Cookie` to server, `Set-Cookie` to client.
pub const HTTP_COOKIE: u32 = 11;
/// `http.request_body` (de-chunked).
pub const HTTP_REQUEST_BODY: u32 = 12;
/// `http.content_type`.
pub const HTTP_CONTENT_TYPE: u32 = 13;
/// `http.content_len`.
pub const HTTP_CONTENT_LEN: u32 = 14;
/// `http.accept`.
pub const HTTP_ACCEPT: u32 = 15;
/// `http.referer`.
pub const HTTP_REFERER: u32 = 16;
/// `http.connection`.
pub const HTTP_CONNECTION: u32 = 17;
/// `http.accept_enc`.
pub const HTTP_ACCEPT_ENC: u32 = 18;
/// `http.accept_lang`.
pub const HTTP_ACCEPT_LANG: u32 = 19;
/// `http.header_names`: `\r\nName1\r\nName2\r\n\r\n`.
pub const HTTP_HEADER_NAMES: u32 = 20;
/// `http.start`: request or response line plus headers, as sent.
pub const HTTP_START: u32 = 21;
/// `http.stat_code`.
pub const HTTP_STAT_CODE: u32 = 32;
/// `http.stat_msg`.
pub const HTTP_STAT_MSG: u32 = 33;
/// `http.response_line`.
pub const HTTP_RESPONSE_LINE: u32 = 34;
/// `http.response_body` (de-chunked).
pub const HTTP_RESPONSE_BODY: u32 = 35;
/// `http.server`.
pub const HTTP_SERVER: u32 = 36;
/// `http.location`.
pub const HTTP_LOCATION: u32 = 37;
/// `dns.query`: each question name, dotted, one buffer per name.
pub const DNS_QUERY: u32 = 64;
/// `tls.sni`.
pub const TLS_SNI: u32 = 96;
/// `tls.cert_subject`.
pub const TLS_CERT_SUBJECT: u32 = 97;
/// `tls.cert_issuer`.
pub const TLS_CERT_ISSUER: u32 = 98;
/// `tls.cert_serial`.
pub const TLS_CERT_SERIAL: u32 = 99;
/// `tls.cert_fingerprint`: SHA-1, lower-case hex with colons.
pub const TLS_CERT_FINGERPRINT: u32 = 100;
/// `ja3.hash`.
pub const JA3_HASH: u32 = 101;
/// `ja3.string`.
pub const JA3_STRING: u32 = 102;
/// `ja3s.hash`.
pub const JA3S_HASH: u32 = 103;
/// `ja3s.string`.
pub const JA3S_STRING: u32 = 104;
/// `file.data`: the HTTP body of the entry's direction, de-chunked.
pub const FILE_DATA: u32 = 128;
/// Application protocol codes of entry word 4, bits 16-23.
pub mod proto {
    /// No application protocol.
    pub const NONE: u8 = 0;
    /// HTTP/1.x.
    pub const HTTP: u8 = 1;
    /// DNS over UDP or TCP.
    pub const DNS: u8 = 2;
    /// TLS.
    pub const TLS: u8 = 3;
}
