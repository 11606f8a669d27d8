//! The error every configuration section reports, kept apart from the whole-daemon
//! [`Config`](super::Config) struct so that each area's section can name it without
//! importing the struct that gathers all the sections (which imports the areas):
//! this file imports nothing of the crate, so no module cycle runs through it.

/// A configuration problem, always naming the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// The field's name as written in the TOML file (dotted for nested sections).
    pub field: String,
    /// What is wrong with it, in words a user can act on.
    pub problem: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
