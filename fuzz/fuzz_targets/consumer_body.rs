//! Any body becomes a valid stored object whose `body` is the JSON or the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::{record_id, Body, StoredObject};

fuzz_target!(|raw: &str| {
    let object = StoredObject {
        id: record_id("m"),
        message_id: "m",
        received_at: "t",
        body: Body::from_raw(raw),
    };
    let bytes = object.to_json();
    // Always JSON by the grammar; JSON bodies are embedded, others kept as text.
    assert!(serde_json::from_slice::<&serde_json::value::RawValue>(&bytes).is_ok());
    let is_json = serde_json::from_str::<&serde_json::value::RawValue>(raw).is_ok();
    assert!(
        object.body.is_json() || !is_json || raw.contains("\\u"),
        "JSON body {raw:?} kept as text"
    );
    // Where a strict parser reads the body, it reads the same from the object.
    if let Ok(parsed) = serde_json::from_str::<serde_json::Value>(raw) {
        let stored: serde_json::Value = serde_json::from_slice(&bytes).expect("strictly readable");
        assert_eq!(stored["body"], parsed);
    } else if !object.body.is_json() {
        let stored: serde_json::Value =
            serde_json::from_slice(&bytes).expect("text bodies are strictly readable");
        assert_eq!(stored["body"].as_str(), Some(raw));
    }
});
