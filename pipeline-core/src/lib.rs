//! The message contract shared by the producer and the consumer.
//!
//! Both sides depend on this crate so they cannot drift apart on the record
//! id, the S3 key layout, the stored object, the DynamoDB item, or the
//! producer's request and response bodies. It has no AWS dependency.

pub mod env;

/// A boxed error, the source kept by the functions' error types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The `uuid` crate this contract's ids are made with.
pub use uuid;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace under which record ids are derived from SQS message ids.
///
/// Changing it changes every record id: treat it as part of the data format.
pub const RECORD_NAMESPACE: Uuid = Uuid::from_u128(0xb421b0b8_fab7_4ead_b809_fc2dff9d3b1a);

/// Largest message body SQS accepts, in bytes (1 MiB).
pub const MAX_SQS_MESSAGE_BYTES: usize = 1024 * 1024;

/// Default S3 key prefix under which records are written.
pub const DEFAULT_RECORDS_PREFIX: &str = "records/";

/// Names of the DynamoDB item attributes.
pub mod attr {
    /// Partition key: the record id.
    pub const ID: &str = "id";
    /// The SQS message id the record came from.
    pub const MESSAGE_ID: &str = "messageId";
    /// Key of the S3 object holding the record.
    pub const S3_KEY: &str = "s3Key";
    /// When SQS first handed the message to a consumer (RFC 3339).
    pub const RECEIVED_AT: &str = "receivedAt";
    /// Size of the original body in bytes.
    pub const BODY_BYTES: &str = "bodyBytes";
    /// When the consumer stored the record (RFC 3339).
    pub const STORED_AT: &str = "storedAt";
}

/// Record id for an SQS message id: UUID v5, so a redelivered message maps
/// to the same id and a retry overwrites rather than duplicates.
pub fn record_id(message_id: &str) -> Uuid {
    Uuid::new_v5(&RECORD_NAMESPACE, message_id.as_bytes())
}

/// Name of the SQS message attribute (type `String`) that carries a
/// message's idempotency key. The producer sets it; anyone sending straight
/// to the queue may set it too
/// (`--message-attributes '{"idempotency-key":{"DataType":"String","StringValue":"k"}}'`).
pub const IDEMPOTENCY_KEY_ATTRIBUTE: &str = "idempotency-key";

/// Longest idempotency key of one message (the limit of a FIFO
/// `MessageDeduplicationId`).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Prefix of the name a keyed record id is derived from. SQS message ids are
/// UUIDs and never contain `:`, so a key-derived id cannot equal an id
/// derived from a message id.
const KEY_PREFIX: &str = "idempotency-key:";

/// Record id of a message: from its idempotency key when it has one (so
/// every copy of a keyed message, however it was resent, is the same
/// record), from its SQS message id otherwise (see [`record_id`]).
pub fn message_record_id(message_id: &str, idempotency_key: Option<&str>) -> Uuid {
    match idempotency_key {
        Some(key) if !key.is_empty() => {
            let mut name = String::with_capacity(KEY_PREFIX.len() + key.len());
            name.push_str(KEY_PREFIX);
            name.push_str(key);
            Uuid::new_v5(&RECORD_NAMESPACE, name.as_bytes())
        }
        _ => record_id(message_id),
    }
}

/// Whether `key` may be an idempotency key or a message group id: 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] characters, each ASCII alphanumeric or
/// punctuation (what SQS takes in `MessageDeduplicationId` and
/// `MessageGroupId`).
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation())
}

/// S3 key of the object for a record id, under `prefix` (e.g. `records/`).
pub fn s3_key(prefix: &str, id: &Uuid) -> String {
    let mut key = String::with_capacity(prefix.len() + 41);
    key.push_str(prefix);
    key.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    key.push_str(".json");
    key
}

/// How a message body is kept in the stored object.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum Body<'a> {
    /// The body is JSON and is embedded as it came (numbers and all).
    Json(&'a serde_json::value::RawValue),
    /// The body is not JSON and is kept as a string.
    Text(&'a str),
}

impl<'a> Body<'a> {
    /// Keeps a body as JSON when it parses as JSON, as a string otherwise.
    pub fn from_raw(raw: &'a str) -> Self {
        match serde_json::from_str::<&serde_json::value::RawValue>(raw) {
            Ok(value) if strictly_readable(raw) => Body::Json(value),
            _ => Body::Text(raw),
        }
    }

    /// Whether the body was kept as JSON.
    pub fn is_json(&self) -> bool {
        matches!(self, Body::Json(_))
    }
}

/// Deepest nesting of a body kept as JSON: serde_json reads at most 127
/// levels, and the stored object adds one.
pub const MAX_BODY_DEPTH: usize = 126;

/// Whether `raw` (already valid JSON) embedded in the stored object can be
/// read back by strict parsers such as serde_json's. Skipping over JSON does
/// not check nesting depth, `\u` escapes (a lone surrogate such as
/// "\ud800") or number ranges (`1e400`), so bodies nested too deep are
/// rejected here, and bodies that may hold an escape, an exponent or a long
/// number get a full parse (a false alarm, e.g. "3e" inside a string, only
/// costs that parse).
fn strictly_readable(raw: &str) -> bool {
    if nests_deeper_than(raw, MAX_BODY_DEPTH).is_some() {
        return false;
    }
    let bytes = raw.as_bytes();
    let exponent = bytes
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'e' | b'E'));
    // f64 holds every integer of up to 308 digits; 300 leaves a margin.
    let long_number = bytes
        .split(|b| !b.is_ascii_digit())
        .any(|run| run.len() > 300);
    let suspect = exponent || long_number || raw.contains("\\u");
    !suspect || serde_json::from_str::<serde_json::Value>(raw).is_ok()
}

/// Byte offset where `json` (already valid JSON) nests arrays and objects
/// deeper than `limit`; brackets inside strings do not count.
pub fn nests_deeper_than(json: &str, limit: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, byte) in json.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(at);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The S3 object written for each message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredObject<'a> {
    /// Record id (see [`record_id`]).
    pub id: Uuid,
    /// The SQS message id.
    pub message_id: &'a str,
    /// When SQS first handed the message out (RFC 3339, milliseconds, UTC).
    pub received_at: &'a str,
    /// The original body.
    pub body: Body<'a>,
    /// SQS's `SequenceNumber` of the message (FIFO queues only): its place
    /// in the queue, so an audit can check each group's order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<&'a str>,
}

impl StoredObject<'_> {
    /// The object as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing this struct cannot fail: every field is a string, a
        // UUID or already-validated JSON.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The DynamoDB item for a record, as read back by the producer's
/// `GET /messages/{messageId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecord {
    /// Record id, the table's partition key.
    pub id: String,
    /// The SQS message id.
    pub message_id: String,
    /// Key of the S3 object.
    pub s3_key: String,
    /// When SQS first handed the message out.
    pub received_at: String,
    /// Size of the original body in bytes.
    pub body_bytes: u64,
    /// When the consumer stored the record.
    pub stored_at: String,
}

/// One message the producer enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Position of the message in the request (0 for a single object).
    pub index: usize,
    /// The SQS message id.
    pub message_id: String,
    /// The record id the consumer will write.
    pub id: String,
}

/// One message the producer could not enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    /// Position of the message in the request.
    pub index: usize,
    /// SQS error code, or a code of ours.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Whether sending it again may succeed.
    pub retryable: bool,
}

/// Body of the producer's answer to `POST /messages`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EnqueueResponse {
    /// Messages now in the queue.
    pub accepted: Vec<Accepted>,
    /// Messages that are not in the queue; the caller must send them again.
    pub failed: Vec<Rejected>,
    /// Why nothing was enqueued, when the service itself is at fault
    /// (e.g. `queue_misconfigured`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Id of the request, to quote to an operator (also the `x-request-id` header).
    #[serde(default, rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// JSON error body for every rejected HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable error code, e.g. `malformed_json`.
    pub error: String,
    /// Human-readable explanation naming what was wrong.
    pub message: String,
    /// Id of the request, to quote to an operator.
    #[serde(default, rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with
/// millisecond precision, e.g. `2026-11-27T00:12:03.456Z`.
pub fn rfc3339_millis(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    let millis = epoch_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date
/// (proleptic Gregorian calendar; eras of 400 years).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_is_stable_and_distinct_per_message() {
        let a = record_id("059f36b4-87a3-44ab-83d2-661975830a7d");
        assert_eq!(a, record_id("059f36b4-87a3-44ab-83d2-661975830a7d"));
        assert_ne!(a, record_id("059f36b4-87a3-44ab-83d2-661975830a7e"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn record_id_matches_the_documented_namespace() {
        // Python: uuid.uuid5(uuid.UUID("b421b0b8-fab7-4ead-b809-fc2dff9d3b1a"), "m-1")
        assert_eq!(
            record_id("m-1").to_string(),
            "ffed3c40-ced9-5479-a619-beccc737df40"
        );
    }

    #[test]
    fn keyed_record_ids_come_from_the_key_and_never_from_the_message_id() {
        let keyed = message_record_id("m-1", Some("order-7"));
        assert_eq!(keyed, message_record_id("m-2", Some("order-7")));
        assert_ne!(keyed, message_record_id("m-1", Some("order-8")));
        assert_eq!(message_record_id("m-1", None), record_id("m-1"));
        assert_eq!(message_record_id("m-1", Some("")), record_id("m-1"));
        // The key "m-1" is not the message id "m-1".
        assert_ne!(message_record_id("x", Some("m-1")), record_id("m-1"));
        // Python: uuid.uuid5(uuid.UUID("b421b0b8-fab7-4ead-b809-fc2dff9d3b1a"), "idempotency-key:k-1")
        assert_eq!(
            message_record_id("m", Some("k-1")).to_string(),
            "ec92679b-4b07-54a6-87fc-d35dd01389e4"
        );
    }

    #[test]
    fn keys_are_what_sqs_takes_as_a_deduplication_id() {
        assert!(valid_key("run-1/vu-2/seq-3"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key("caf\u{e9}"));
        assert!(!valid_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1)));
    }

    #[test]
    fn s3_key_puts_the_id_under_the_prefix() {
        let id = record_id("m-1");
        assert_eq!(s3_key("records/", &id), format!("records/{id}.json"));
    }

    #[test]
    fn json_bodies_are_embedded_and_text_bodies_are_strings() {
        let object = |raw| {
            let obj = StoredObject {
                id: record_id("m"),
                message_id: "m",
                received_at: "2026-01-01T00:00:00.000Z",
                body: Body::from_raw(raw),
                sequence_number: None,
            };
            serde_json::from_slice::<serde_json::Value>(&obj.to_json())
                .expect("stored object is JSON")["body"]
                .clone()
        };
        assert_eq!(object(r#"{"a":[1,2]}"#), serde_json::json!({"a": [1, 2]}));
        assert_eq!(object("hello"), serde_json::json!("hello"));
        assert_eq!(object("{truncated"), serde_json::json!("{truncated"));
        assert_eq!(
            object("\u{1F600} \"quoted\""),
            serde_json::json!("\u{1F600} \"quoted\"")
        );
        assert_eq!(object(""), serde_json::json!(""));
        assert_eq!(
            object(r#"{"lone":"\ud800"}"#),
            serde_json::json!(r#"{"lone":"\ud800"}"#)
        );
        assert_eq!(
            object(r#"{"pair":"\ud83d\ude00"}"#),
            serde_json::json!({"pair": "\u{1F600}"})
        );
    }

    #[test]
    fn stored_objects_stay_readable_by_serde_json() {
        // serde_json reads at most 127 levels and only finite numbers; bodies
        // beyond that are kept as text so the stored object stays readable.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let big_integer = format!(r#"{{"n":{}}}"#, "9".repeat(400));
        let cases = [
            (deep(MAX_BODY_DEPTH), true),
            (deep(MAX_BODY_DEPTH + 1), false),
            (deep(127), false),
            (r#"{"n":1e400}"#.to_owned(), false),
            (r#"{"n":-1E+999}"#.to_owned(), false),
            (big_integer, false),
            (r#"{"n":1e300,"t":true,"f":false}"#.to_owned(), true),
            (format!(r#"{{"s":"{}"}}"#, "[".repeat(300)), true),
        ];
        for (raw, embedded) in cases {
            let object = StoredObject {
                id: record_id("m"),
                message_id: "m",
                received_at: "t",
                body: Body::from_raw(&raw),
                sequence_number: None,
            };
            assert_eq!(object.body.is_json(), embedded, "{raw:.40}");
            let stored: serde_json::Value =
                serde_json::from_slice(&object.to_json()).expect("readable");
            if !embedded {
                assert_eq!(stored["body"].as_str(), Some(raw.as_str()));
            }
        }
    }

    #[test]
    fn the_sequence_number_is_kept_when_there_is_one() {
        let object = |sequence_number| StoredObject {
            id: record_id("m"),
            message_id: "m",
            received_at: "t",
            body: Body::from_raw("{}"),
            sequence_number,
        };
        let json = |o: StoredObject<'_>| -> serde_json::Value {
            serde_json::from_slice(&o.to_json()).expect("JSON")
        };
        let fifo = json(object(Some("18849496460467696128")));
        assert_eq!(fifo["sequenceNumber"], "18849496460467696128");
        let standard = json(object(None));
        assert!(standard.get("sequenceNumber").is_none(), "{standard}");
    }

    #[test]
    fn huge_numbers_survive_untouched() {
        let raw = r#"{"n":123456789012345678901234567890}"#;
        let obj = StoredObject {
            id: record_id("m"),
            message_id: "m",
            received_at: "t",
            body: Body::from_raw(raw),
            sequence_number: None,
        };
        let text = String::from_utf8(obj.to_json()).expect("utf-8");
        assert!(text.contains("123456789012345678901234567890"), "{text}");
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339_millis(1_798_329_723_456),
            "2026-12-27T00:02:03.456Z"
        );
    }
}
