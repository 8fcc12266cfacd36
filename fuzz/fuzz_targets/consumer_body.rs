//! Any body becomes a stored object that serde_json reads back, whose `body`
//! is the JSON as parsed or else the text as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::{record_id, Body, StoredObject};
use serde_json::Value;

fuzz_target!(|raw: &str| {
    let object = StoredObject {
        id: record_id("m"),
        message_id: "m",
        received_at: "t",
        body: Body::from_raw(raw),
        sequence_number: None,
    };
    let stored: Value =
        serde_json::from_slice(&object.to_json()).expect("stored object readable by serde_json");
    let parsed = serde_json::from_str::<Value>(raw);
    if object.body.is_json() {
        let parsed = parsed.expect("a body kept as JSON parses");
        assert_eq!(stored["body"], parsed);
    } else {
        assert_eq!(stored["body"].as_str(), Some(raw), "text kept as sent");
        // JSON is kept as text only when one more level would be unreadable.
        assert!(
            parsed.is_err() || serde_json::from_str::<Value>(&format!("[{raw}]")).is_err(),
            "JSON body {raw:.80?} kept as text"
        );
    }
});
