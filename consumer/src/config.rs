//! Configuration read once at start-up from the environment.

use std::time::Duration;

use lambda_batch::{DeadlinePolicy, FifoMode, Options, OptionsError};
use pipeline_aws::CallTimeouts;
use pipeline_core::env::{Env, EnvError};

/// Settings of the consumer, read from the environment at init.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `BUCKET_NAME`: bucket the record objects go to.
    pub bucket: String,
    /// `TABLE_NAME`: table the record items go to.
    pub table: String,
    /// `RECORDS_PREFIX`: key prefix of the record objects.
    pub records_prefix: String,
    /// The engine's settings: `MAX_CONCURRENCY` (messages, FIFO: groups, in
    /// flight), `FLUSH_CONCURRENCY` (BatchWriteItem calls in flight),
    /// `BATCH_LINGER_MS`, `BATCH_MAX_LINGER_MS`, `DEADLINE_MARGIN_PERCENT` /
    /// `_MIN_MS` / `_MAX_MS`, `STEP_TIMEOUT_MS`, `FIFO_MODE` (`group` or
    /// `batch`), `FAIL_ON_FULL_BATCH_FAILURE`. Every value the variables
    /// accept is a valid engine: the engine never refuses them per invocation.
    pub engine: Options,
    /// `CALL_ATTEMPT_TIMEOUT_MS` / `CALL_TIMEOUT_MS`: limits of one HTTP
    /// attempt and of one whole S3 or DynamoDB call. The engine also cuts
    /// every call off at the invocation's hard deadline.
    pub call_timeouts: CallTimeouts,
    /// `DYNAMODB_MAX_ATTEMPTS`: BatchWriteItem attempts per chunk (the one
    /// retry layer: unprocessed items, throttling, 5xx, timeouts) before its
    /// items become failures; the invocation's deadline also ends them.
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
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let env = Env(lookup);
        let backoff_base = env.number("DYNAMODB_BACKOFF_BASE_MS", 25, 1, 10_000)?;
        let backoff_cap = env.number("DYNAMODB_BACKOFF_CAP_MS", 1_000, 1, 60_000)?;
        if backoff_cap < backoff_base {
            return Err(EnvError::Invalid {
                name: "DYNAMODB_BACKOFF_CAP_MS",
                reason: format!("must not be below DYNAMODB_BACKOFF_BASE_MS ({backoff_base})"),
            });
        }
        let engine = engine_options(&env)?;
        let call_timeouts = CallTimeouts {
            attempt: Duration::from_millis(env.number(
                "CALL_ATTEMPT_TIMEOUT_MS",
                2_000,
                100,
                900_000,
            )?),
            operation: Duration::from_millis(env.number("CALL_TIMEOUT_MS", 6_000, 100, 900_000)?),
        };
        if call_timeouts.operation < call_timeouts.attempt {
            return Err(EnvError::Invalid {
                name: "CALL_TIMEOUT_MS",
                reason: "must not be below CALL_ATTEMPT_TIMEOUT_MS".to_owned(),
            });
        }
        Ok(Self {
            bucket: env.required("BUCKET_NAME")?,
            table: env.required("TABLE_NAME")?,
            records_prefix: (env.0)("RECORDS_PREFIX")
                .unwrap_or_else(|| pipeline_core::DEFAULT_RECORDS_PREFIX.to_owned()),
            engine,
            call_timeouts,
            dynamodb_max_attempts: env.number("DYNAMODB_MAX_ATTEMPTS", 10, 1, 50)? as u32,
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

/// The engine's options from their variables. Each variable's range is one
/// the engine accepts whatever the others say; what depends on another
/// variable is checked here, at start-up, naming both.
fn engine_options<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Options, EnvError> {
    let ms = |name, default, max| -> Result<Duration, EnvError> {
        Ok(Duration::from_millis(env.number(name, default, 0, max)?))
    };
    let deadline_floor = ms("DEADLINE_MARGIN_MIN_MS", 200, 600_000)?;
    let deadline_cap = ms("DEADLINE_MARGIN_MAX_MS", 2_000, 600_000)?;
    let fraction = env.number("DEADLINE_MARGIN_PERCENT", 10, 0, 50)? as f64 / 100.0;
    if deadline_cap < deadline_floor {
        return Err(EnvError::Invalid {
            name: "DEADLINE_MARGIN_MAX_MS",
            reason: format!(
                "must not be below DEADLINE_MARGIN_MIN_MS ({} ms), got {} ms",
                deadline_floor.as_millis(),
                deadline_cap.as_millis()
            ),
        });
    }
    let deadline = DeadlinePolicy::new(deadline_floor, fraction, deadline_cap)
        .map_err(|e| invalid("DEADLINE_MARGIN_PERCENT", &e))?;
    let linger = ms("BATCH_LINGER_MS", 5, 1_000)?;
    // Unset, max_linger follows a linger above its default of 100 ms.
    let max_linger_default = u64::try_from(linger.as_millis())
        .unwrap_or(u64::MAX)
        .max(100);
    let max_linger = ms("BATCH_MAX_LINGER_MS", max_linger_default, 10_000)?;
    if linger > max_linger {
        return Err(EnvError::Invalid {
            name: "BATCH_MAX_LINGER_MS",
            reason: format!(
                "must not be below BATCH_LINGER_MS ({} ms), got {} ms",
                linger.as_millis(),
                max_linger.as_millis()
            ),
        });
    }
    let step_timeout = match env.number("STEP_TIMEOUT_MS", 0, 0, 900_000)? {
        0 => None,
        n => Some(Duration::from_millis(n)),
    };
    let fifo = match env.text("FIFO_MODE").as_deref().map(str::trim) {
        None | Some("group") => FifoMode::StopGroup,
        Some("batch") => FifoMode::StopBatch,
        Some(other) => {
            return Err(EnvError::Invalid {
                name: "FIFO_MODE",
                reason: format!("expected group or batch, got {other:?}"),
            })
        }
    };
    Options::builder()
        .concurrency(env.number("MAX_CONCURRENCY", 64, 1, 10_000)? as usize)
        .flush_concurrency(env.number("FLUSH_CONCURRENCY", 4, 1, 400)? as usize)
        .linger(linger)
        .max_linger(max_linger)
        .deadline(deadline)
        .step_timeout(step_timeout)
        .fifo(fifo)
        .fail_on_full_batch_failure(env.flag_or("FAIL_ON_FULL_BATCH_FAILURE", true)?)
        .build()
        // Unreachable: every variable's range and the two cross-checks
        // above cover what the builder refuses.
        .map_err(|e| invalid("the engine options", &e))
}

fn invalid(name: &'static str, error: &OptionsError) -> EnvError {
    EnvError::Invalid {
        name,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config, EnvError> {
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
        assert_eq!(c.engine, Options::default());
        assert!(!c.s3_force_path_style);
    }

    #[test]
    fn engine_settings_come_from_their_variables() {
        let c = from(&[
            ("BUCKET_NAME", "b"),
            ("TABLE_NAME", "t"),
            ("FIFO_MODE", "batch"),
            ("FAIL_ON_FULL_BATCH_FAILURE", "false"),
            ("DEADLINE_MARGIN_PERCENT", "20"),
            ("FLUSH_CONCURRENCY", "2"),
        ])
        .expect("valid");
        assert_eq!(c.engine.fifo(), FifoMode::StopBatch);
        assert!(!c.engine.fail_on_full_batch_failure());
        assert_eq!(c.engine.flush_concurrency(), 2);
        assert_eq!(
            c.engine.deadline().margin(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        let err = from(&[
            ("BUCKET_NAME", "b"),
            ("TABLE_NAME", "t"),
            ("FIFO_MODE", "strict"),
        ])
        .expect_err("refused")
        .to_string();
        assert!(err.contains("FIFO_MODE"), "{err}");
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
