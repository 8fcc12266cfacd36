//! One CloudWatch embedded-metric-format (EMF) line per invocation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use lambda_batch::sqs::SqsEvent;
use lambda_batch::{FailureSummary, Report};

/// What one invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Records in the event.
    pub received: usize,
    /// Messages stored.
    pub succeeded: usize,
    /// Messages reported failed.
    pub failed: usize,
}

impl Counts {
    /// The counts of a processed batch.
    pub fn of(report: &Report<SqsEvent>) -> Self {
        Self {
            received: report.received(),
            succeeded: report.succeeded(),
            failed: report.failures().len(),
        }
    }

    /// The counts of a batch in which nothing succeeded.
    pub fn all_failed(summary: &FailureSummary) -> Self {
        Self {
            received: summary.received,
            succeeded: 0,
            failed: summary.failed,
        }
    }
}

/// The EMF document for one invocation.
pub fn document(
    namespace: &str,
    counts: Counts,
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
        "MessagesReceived": counts.received,
        "MessagesProcessed": counts.succeeded,
        "MessagesFailed": counts.failed,
        "BatchDuration": elapsed.as_secs_f64() * 1000.0,
    })
}

/// Writes the EMF line to stdout, where Lambda ships it to CloudWatch Logs.
pub fn emit(namespace: &str, counts: Counts, elapsed: Duration) {
    println!(
        "{}",
        document(namespace, counts, elapsed, SystemTime::now())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn document_declares_and_carries_each_metric() {
        let counts = Counts {
            received: 4,
            succeeded: 3,
            failed: 1,
        };
        let doc = document(
            "NS",
            counts,
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
