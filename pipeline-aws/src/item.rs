//! The DynamoDB item of a [`StoredRecord`], both ways, and the table both
//! functions use ([`RecordTable`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use pipeline_core::{attr, BoxError, StoredRecord};

/// The records table, written by the consumer and read by the producer.
/// One attempt per call: the retry policy is the caller's.
#[derive(Debug, Clone)]
pub struct RecordTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl RecordTable {
    /// The table `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes up to 25 records with distinct ids in one BatchWriteItem call
    /// and returns the ids of those DynamoDB left unprocessed: a 200 can
    /// still leave part of the batch undone.
    pub async fn put_batch(
        &self,
        records: &[StoredRecord],
    ) -> Result<Vec<String>, SdkError<BatchWriteItemError>> {
        let requests = records
            .iter()
            .map(|r| {
                let put = PutRequest::builder().set_item(Some(to_item(r))).build();
                put.map(|put| WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(SdkError::construction_failure)?;
        let output = self
            .client
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await?;
        Ok(output
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(&self.table))
            .unwrap_or_default()
            .into_iter()
            .filter_map(
                |request| match request.put_request?.item.remove(attr::ID)? {
                    AttributeValue::S(id) => Some(id),
                    _ => None,
                },
            )
            .collect())
    }

    /// The record with this id, if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<StoredRecord>, BoxError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(id.to_owned()))
            .send()
            .await?;
        match output.item {
            None => Ok(None),
            Some(item) => from_item(&item)
                .map(Some)
                .map_err(|reason| format!("item {id}: {reason}").into()),
        }
    }
}

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
