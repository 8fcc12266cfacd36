//! One CloudWatch embedded-metric-format (EMF) line per invocation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::handler::Report;

/// The EMF document for one invocation.
pub fn document(
    namespace: &str,
    received: usize,
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
        "MessagesReceived": received,
        "MessagesProcessed": report.stored,
        "MessagesFailed": report.failures.len(),
        "BatchDuration": elapsed.as_secs_f64() * 1000.0,
    })
}

/// Writes the EMF line to stdout, where Lambda ships it to CloudWatch Logs.
pub fn emit(namespace: &str, received: usize, report: &Report, elapsed: Duration) {
    println!(
        "{}",
        document(namespace, received, report, elapsed, SystemTime::now())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Failure;

    #[test]
    fn document_declares_and_carries_each_metric() {
        let report = Report {
            stored: 3,
            failures: vec![("m".into(), Failure::Unprocessed)],
        };
        let doc = document(
            "NS",
            4,
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
