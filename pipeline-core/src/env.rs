//! Reading the few configuration variables both functions take, with errors
//! that name the variable.

/// A configuration variable that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is not set (or blank).
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("invalid environment variable {name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Variables read through a lookup function (the process environment, or a
/// map in tests). Blank values count as unset.
pub struct Env<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value, if set and not blank.
    pub fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value, or an error naming the variable.
    pub fn required(&self, name: &'static str) -> Result<String, EnvError> {
        self.text(name).ok_or(EnvError::Missing(name))
    }

    /// A whole number from `min` to `max`, `default` when unset.
    pub fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, EnvError> {
        let Some(raw) = self.text(name) else {
            return Ok(default);
        };
        match raw.trim().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(EnvError::Invalid {
                name,
                reason: format!("expected a whole number from {min} to {max}, got {raw:?}"),
            }),
        }
    }

    /// `true`/`1` or `false`/`0`; `false` when unset.
    pub fn flag(&self, name: &'static str) -> Result<bool, EnvError> {
        self.flag_or(name, false)
    }

    /// `true`/`1` or `false`/`0`; `default` when unset.
    pub fn flag_or(&self, name: &'static str, default: bool) -> Result<bool, EnvError> {
        match self.text(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(EnvError::Invalid {
                name,
                reason: format!("expected true or false, got {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn errors_name_the_variable_and_the_value() {
        let e = env(&[("N", "lots"), ("F", "yes"), ("B", "  ")]);
        assert_eq!(e.required("B"), Err(EnvError::Missing("B")));
        let err = e
            .number("N", 1, 1, 10)
            .expect_err("not a number")
            .to_string();
        assert_eq!(
            err,
            "invalid environment variable N: expected a whole number from 1 to 10, got \"lots\""
        );
        assert!(e
            .flag("F")
            .expect_err("not a flag")
            .to_string()
            .contains("\"yes\""));
        assert_eq!(e.number("UNSET", 7, 1, 10), Ok(7));
        assert_eq!(e.number("N2", 7, 1, 10), Ok(7));
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        let e = env(&[("N", "0")]);
        assert!(e.number("N", 5, 1, 10).is_err());
    }
}
