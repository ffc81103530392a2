//! Application-layer buffer ids of `sandgate:pattern@1.2.0` (the table in
//! `wit/v1.2.0/pattern.wit`), shared by the host that fills buffers, the
//! compiler that parses rule keywords and the guest that matches them.
//!
//! Every name is Suricata's sticky-buffer keyword; [`by_keyword`] also knows
//! the legacy content modifiers (`http_uri`, `file_data`, ...).

/// `http.uri`: normalised (percent-decoded, `/./` and `/../` resolved).
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

/// Every id with its sticky-buffer keyword and legacy modifier (if any).
pub const TABLE: &[(u32, &str, Option<&str>)] = &[
    (HTTP_URI, "http.uri", Some("http_uri")),
    (HTTP_URI_RAW, "http.uri.raw", Some("http_raw_uri")),
    (HTTP_METHOD, "http.method", Some("http_method")),
    (HTTP_PROTOCOL, "http.protocol", None),
    (HTTP_REQUEST_LINE, "http.request_line", None),
    (HTTP_HOST, "http.host", Some("http_host")),
    (HTTP_HOST_RAW, "http.host.raw", Some("http_raw_host")),
    (HTTP_USER_AGENT, "http.user_agent", Some("http_user_agent")),
    (HTTP_HEADER, "http.header", Some("http_header")),
    (HTTP_HEADER_RAW, "http.header.raw", Some("http_raw_header")),
    (HTTP_COOKIE, "http.cookie", Some("http_cookie")),
    (
        HTTP_REQUEST_BODY,
        "http.request_body",
        Some("http_client_body"),
    ),
    (HTTP_CONTENT_TYPE, "http.content_type", None),
    (HTTP_CONTENT_LEN, "http.content_len", None),
    (HTTP_ACCEPT, "http.accept", None),
    (HTTP_REFERER, "http.referer", None),
    (HTTP_CONNECTION, "http.connection", None),
    (HTTP_ACCEPT_ENC, "http.accept_enc", None),
    (HTTP_ACCEPT_LANG, "http.accept_lang", None),
    (HTTP_HEADER_NAMES, "http.header_names", None),
    (HTTP_START, "http.start", None),
    (HTTP_STAT_CODE, "http.stat_code", Some("http_stat_code")),
    (HTTP_STAT_MSG, "http.stat_msg", Some("http_stat_msg")),
    (HTTP_RESPONSE_LINE, "http.response_line", None),
    (
        HTTP_RESPONSE_BODY,
        "http.response_body",
        Some("http_server_body"),
    ),
    (HTTP_SERVER, "http.server", None),
    (HTTP_LOCATION, "http.location", None),
    (DNS_QUERY, "dns.query", Some("dns_query")),
    (TLS_SNI, "tls.sni", Some("tls_sni")),
    (TLS_CERT_SUBJECT, "tls.cert_subject", None),
    (TLS_CERT_ISSUER, "tls.cert_issuer", None),
    (TLS_CERT_SERIAL, "tls.cert_serial", None),
    (TLS_CERT_FINGERPRINT, "tls.cert_fingerprint", None),
    (JA3_HASH, "ja3.hash", Some("ja3_hash")),
    (JA3_STRING, "ja3.string", None),
    (JA3S_HASH, "ja3s.hash", None),
    (JA3S_STRING, "ja3s.string", None),
    (FILE_DATA, "file.data", Some("file_data")),
];

/// Older spellings Suricata still accepts for a sticky buffer.
const ALIASES: &[(&str, u32)] = &[
    ("http_request_line", HTTP_REQUEST_LINE),
    ("http_response_line", HTTP_RESPONSE_LINE),
    ("http_accept", HTTP_ACCEPT),
    ("http_accept_enc", HTTP_ACCEPT_ENC),
    ("http_accept_lang", HTTP_ACCEPT_LANG),
    ("http_referer", HTTP_REFERER),
    ("http_connection", HTTP_CONNECTION),
    ("http_content_type", HTTP_CONTENT_TYPE),
    ("http_content_len", HTTP_CONTENT_LEN),
    ("http_header_names", HTTP_HEADER_NAMES),
    ("http_start", HTTP_START),
    ("http_protocol", HTTP_PROTOCOL),
    ("tls_cert_subject", TLS_CERT_SUBJECT),
    ("tls_cert_issuer", TLS_CERT_ISSUER),
    ("tls_cert_serial", TLS_CERT_SERIAL),
    ("tls_cert_fingerprint", TLS_CERT_FINGERPRINT),
    ("ja3_string", JA3_STRING),
    ("ja3s_hash", JA3S_HASH),
    ("ja3s_string", JA3S_STRING),
];

/// The sticky-buffer keyword of `id` (`http.uri`), or `"unknown"`.
pub fn name(id: u32) -> &'static str {
    TABLE
        .iter()
        .find(|(i, _, _)| *i == id)
        .map_or("unknown", |(_, n, _)| n)
}

/// The buffer a rule keyword selects: a sticky buffer (`http.uri`), a legacy
/// modifier (`http_uri`) or an older alias; `None` for anything else.
pub fn by_keyword(keyword: &str) -> Option<u32> {
    TABLE
        .iter()
        .find(|(_, n, legacy)| *n == keyword || *legacy == Some(keyword))
        .map(|(id, _, _)| *id)
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(n, _)| *n == keyword)
                .map(|(_, id)| *id)
        })
}

/// The application protocol a buffer belongs to ([`proto`] codes).
pub fn proto_of(id: u32) -> u8 {
    match id {
        1..=63 => proto::HTTP,
        64..=95 => proto::DNS,
        96..=127 => proto::TLS,
        FILE_DATA => proto::HTTP,
        _ => proto::NONE,
    }
}

/// Whether the legacy modifier `keyword` (`http_uri`) applies to the
/// content before it, as opposed to a sticky buffer that applies to the
/// keywords after it.
pub fn is_legacy_modifier(keyword: &str) -> bool {
    keyword.starts_with("http_") && TABLE.iter().any(|(_, _, legacy)| *legacy == Some(keyword))
}

/// The buffer a pcre buffer flag selects (`U` uri, `I` raw uri, `H` header,
/// `D` raw header, `M` method, `C` cookie, `P` request body, `S` stat code,
/// `Y` stat msg, `V` user agent, `W` host, `Q` file data).
pub fn by_pcre_flag(flag: char) -> Option<u32> {
    Some(match flag {
        'U' => HTTP_URI,
        'I' => HTTP_URI_RAW,
        'H' => HTTP_HEADER,
        'D' => HTTP_HEADER_RAW,
        'M' => HTTP_METHOD,
        'C' => HTTP_COOKIE,
        'P' => HTTP_REQUEST_BODY,
        'S' => HTTP_STAT_CODE,
        'Y' => HTTP_STAT_MSG,
        'V' => HTTP_USER_AGENT,
        'W' => HTTP_HOST,
        'Q' => FILE_DATA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_legacy_modifiers_name_the_same_buffer() {
        assert_eq!(by_keyword("http.uri"), Some(HTTP_URI));
        assert_eq!(by_keyword("http_uri"), Some(HTTP_URI));
        assert_eq!(by_keyword("http_client_body"), Some(HTTP_REQUEST_BODY));
        assert_eq!(by_keyword("file_data"), Some(FILE_DATA));
        assert_eq!(by_keyword("dns_query"), Some(DNS_QUERY));
        assert_eq!(by_keyword("content"), None);
        assert_eq!(name(TLS_SNI), "tls.sni");
        assert_eq!(name(9999), "unknown");
        assert!(is_legacy_modifier("http_uri"));
        assert!(!is_legacy_modifier("http.uri"));
        assert!(!is_legacy_modifier("file_data"));
        assert!(!is_legacy_modifier("dns_query"));
        assert_eq!(by_pcre_flag('U'), Some(HTTP_URI));
        assert_eq!(by_pcre_flag('i'), None);
        assert_eq!(proto_of(DNS_QUERY), proto::DNS);
        assert_eq!(proto_of(FILE_DATA), proto::HTTP);
    }

    #[test]
    fn ids_are_unique() {
        for (i, (a, _, _)) in TABLE.iter().enumerate() {
            assert!(TABLE[i + 1..].iter().all(|(b, _, _)| a != b), "id {a}");
        }
    }
}
