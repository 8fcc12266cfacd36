//! One CloudWatch embedded-metric-format (EMF) line per invocation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use sqs_batch::Report;

/// The EMF document for one invocation.
pub fn document(
    namespace: &str,
    report: &Report,
    elapsed: Duration,
    now: SystemTime,
) -> serde_json::Value {
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "consumer".to_owned());
    json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "MessagesReceived", "Unit": "Count"},
                    {"Name": "MessagesProcessed", "Unit": "Count"},
                    {"Name": "MessagesFailed", "Unit": "Count"},
                    {"Name": "BatchDuration", "Unit": "Milliseconds"}
                ]
            }]
        },
        "FunctionName": function,
        "MessagesReceived": report.received,
        "MessagesProcessed": report.succeeded,
        "MessagesFailed": report.failures.len(),
        "BatchDuration": elapsed.as_secs_f64() * 1000.0,
    })
}

/// Writes the EMF line to stdout, where Lambda ships it to CloudWatch Logs.
pub fn emit(namespace: &str, report: &Report, elapsed: Duration) {
    println!(
        "{}",
        document(namespace, report, elapsed, SystemTime::now())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqs_batch::Failure;

    #[test]
    fn document_declares_and_carries_each_metric() {
        let report = Report {
            received: 4,
            succeeded: 3,
            duplicates: 0,
            failures: vec![("m".into(), Failure::new("dynamodb_unprocessed", ""))],
        };
        let doc = document(
            "NS",
            &report,
            Duration::from_millis(12),
            UNIX_EPOCH + Duration::from_secs(1),
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1000);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NS");
        let declared: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        for name in &declared {
            assert!(
                doc.get(*name).is_some(),
                "metric {name} declared but missing"
            );
        }
        assert_eq!(doc["MessagesProcessed"], 3);
        assert_eq!(doc["MessagesFailed"], 1);
        assert_eq!(doc["BatchDuration"], 12.0);
    }
}
