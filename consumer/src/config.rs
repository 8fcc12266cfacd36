//! Configuration read once at start-up from the environment.

use std::time::Duration;

use pipeline_core::env::{Env, EnvError};

use crate::Error;

/// Settings of the consumer, read from the environment at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `BUCKET_NAME`: bucket the record objects go to.
    pub bucket: String,
    /// `TABLE_NAME`: table the record items go to.
    pub table: String,
    /// `RECORDS_PREFIX`: key prefix of the record objects.
    pub records_prefix: String,
    /// `MAX_CONCURRENCY`: messages (FIFO: message groups) in flight at once.
    pub max_concurrency: usize,
    /// `DEADLINE_MARGIN_MS`: stop starting new work this long before the
    /// invocation deadline.
    pub deadline_margin: Duration,
    /// `DYNAMODB_MAX_ATTEMPTS`: BatchWriteItem calls per chunk before its
    /// unprocessed items become failures.
    pub dynamodb_max_attempts: u32,
    /// `DYNAMODB_BACKOFF_BASE_MS`: first backoff before retrying unprocessed items.
    pub backoff_base: Duration,
    /// `DYNAMODB_BACKOFF_CAP_MS`: largest backoff.
    pub backoff_cap: Duration,
    /// `METRICS_NAMESPACE`: CloudWatch namespace of the EMF metrics.
    pub metrics_namespace: String,
    /// `S3_FORCE_PATH_STYLE`: path-style S3 addressing (local emulators).
    pub s3_force_path_style: bool,
    /// `REJECT_MARKER`: messages whose body contains this text are rejected
    /// unprocessed (and so end in the DLQ); empty turns it off. A kill switch
    /// for a known-bad payload, and how the tests make poison messages.
    pub reject_marker: Option<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let env = Env(lookup);
        let backoff_base = env.number("DYNAMODB_BACKOFF_BASE_MS", 25, 1, 10_000)?;
        let backoff_cap = env.number("DYNAMODB_BACKOFF_CAP_MS", 1_000, 1, 60_000)?;
        if backoff_cap < backoff_base {
            return Err(EnvError::Invalid {
                name: "DYNAMODB_BACKOFF_CAP_MS",
                reason: format!("must not be below DYNAMODB_BACKOFF_BASE_MS ({backoff_base})"),
            }
            .into());
        }
        Ok(Self {
            bucket: env.required("BUCKET_NAME")?,
            table: env.required("TABLE_NAME")?,
            records_prefix: (env.0)("RECORDS_PREFIX")
                .unwrap_or_else(|| pipeline_core::DEFAULT_RECORDS_PREFIX.to_owned()),
            max_concurrency: env.number("MAX_CONCURRENCY", 64, 1, 10_000)? as usize,
            deadline_margin: Duration::from_millis(env.number(
                "DEADLINE_MARGIN_MS",
                2_000,
                0,
                600_000,
            )?),
            dynamodb_max_attempts: env.number("DYNAMODB_MAX_ATTEMPTS", 5, 1, 20)? as u32,
            backoff_base: Duration::from_millis(backoff_base),
            backoff_cap: Duration::from_millis(backoff_cap),
            metrics_namespace: env
                .text("METRICS_NAMESPACE")
                .unwrap_or_else(|| "SqsPipeline".to_owned()),
            s3_force_path_style: env.flag("S3_FORCE_PATH_STYLE")?,
            reject_marker: (env.0)("REJECT_MARKER").filter(|v| !v.is_empty()),
        })
    }

    /// A configuration for tests: the given bucket and table, defaults elsewhere.
    pub fn for_tests(bucket: &str, table: &str) -> Self {
        let (bucket, table) = (bucket.to_owned(), table.to_owned());
        Self::from_lookup(|name| match name {
            "BUCKET_NAME" => Some(bucket.clone()),
            "TABLE_NAME" => Some(table.clone()),
            _ => None,
        })
        .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn missing_bucket_is_named_in_the_error() {
        let err = from(&[("TABLE_NAME", "t")]).expect_err("must be rejected");
        assert_eq!(err.to_string(), "missing environment variable BUCKET_NAME");
    }

    #[test]
    fn out_of_range_concurrency_is_rejected_with_its_name() {
        let err = from(&[
            ("BUCKET_NAME", "b"),
            ("TABLE_NAME", "t"),
            ("MAX_CONCURRENCY", "0"),
        ])
        .expect_err("must be rejected")
        .to_string();
        assert!(err.contains("MAX_CONCURRENCY"), "{err}");
        assert!(err.contains("\"0\""), "{err}");
    }

    #[test]
    fn defaults_apply_when_optional_variables_are_absent() {
        let c = from(&[("BUCKET_NAME", "b"), ("TABLE_NAME", "t")]).expect("valid");
        assert_eq!(c.records_prefix, "records/");
        assert_eq!(c.max_concurrency, 64);
        assert!(!c.s3_force_path_style);
    }

    #[test]
    fn bad_flag_is_rejected() {
        let err = from(&[
            ("BUCKET_NAME", "b"),
            ("TABLE_NAME", "t"),
            ("S3_FORCE_PATH_STYLE", "yes"),
        ])
        .expect_err("must be rejected")
        .to_string();
        assert!(err.contains("S3_FORCE_PATH_STYLE"), "{err}");
    }
}
