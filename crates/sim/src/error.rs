//! The simulator's errors.

/// What can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file is not valid (the message names the item and field).
    #[error("scenario: {0}")]
    Scenario(String),
    /// No shipped scenario has this name.
    #[error("no scenario named {name:?} (shipped: {known})")]
    UnknownScenario {
        /// The name asked for.
        name: String,
        /// The shipped ones.
        known: String,
    },
    /// The fleet catalog inside the scenario is not valid.
    #[error("scenario [fleet]: {0}")]
    Fleet(String),
    /// A run parameter is out of range.
    #[error("{0}")]
    Parameter(String),
    /// Building the PKI, eIM or an eUICC failed.
    #[error("setup: {0}")]
    Setup(String),
    /// A device's exchange with the eIM or its eUICC failed in a way the
    /// simulator cannot model (a bug, not a simulated failure).
    #[error("device: {0}")]
    Device(String),
    /// Writing the report failed.
    #[error("report: {0}")]
    Report(String),
}
