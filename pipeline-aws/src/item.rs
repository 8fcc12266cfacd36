//! The DynamoDB item of a [`StoredRecord`], both ways.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use pipeline_core::{attr, StoredRecord};

/// The item written for a record.
pub fn to_item(record: &StoredRecord) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    HashMap::from([
        (attr::ID.to_owned(), s(&record.id)),
        (attr::MESSAGE_ID.to_owned(), s(&record.message_id)),
        (attr::S3_KEY.to_owned(), s(&record.s3_key)),
        (attr::RECEIVED_AT.to_owned(), s(&record.received_at)),
        (
            attr::BODY_BYTES.to_owned(),
            AttributeValue::N(record.body_bytes.to_string()),
        ),
        (attr::STORED_AT.to_owned(), s(&record.stored_at)),
    ])
}

/// The record an item holds, or which attribute is missing or mistyped.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<StoredRecord, String> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(format!("attribute {name} is {other:?}, not a string")),
    };
    let body_bytes = match item.get(attr::BODY_BYTES) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|e| format!("attribute {} is {n:?}: {e}", attr::BODY_BYTES))?,
        other => {
            return Err(format!(
                "attribute {} is {other:?}, not a number",
                attr::BODY_BYTES
            ))
        }
    };
    Ok(StoredRecord {
        id: text(attr::ID)?,
        message_id: text(attr::MESSAGE_ID)?,
        s3_key: text(attr::S3_KEY)?,
        received_at: text(attr::RECEIVED_AT)?,
        body_bytes,
        stored_at: text(attr::STORED_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_round_trip_and_a_bad_item_names_its_attribute() {
        let record = StoredRecord {
            id: "x".into(),
            message_id: "m".into(),
            s3_key: "records/x.json".into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            body_bytes: 2,
            stored_at: "2026-01-01T00:00:01.000Z".into(),
        };
        let mut item = to_item(&record);
        assert_eq!(item.len(), 6);
        assert_eq!(item.get("bodyBytes"), Some(&AttributeValue::N("2".into())));
        assert_eq!(from_item(&item), Ok(record));
        item.insert(attr::S3_KEY.to_owned(), AttributeValue::N("1".into()));
        let err = from_item(&item).expect_err("mistyped");
        assert!(err.contains("s3Key"), "{err}");
    }
}
