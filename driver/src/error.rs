//! Errors of the host driver, worded so that a user can act on them.

use crate::model::ModelError;
use crate::npy::NpyError;
use trimac_hdl::config::ConfigError;
use trimac_hdl::protocol::{Opcode, Status};
use trimac_sim::stream::LinkError;

/// Everything that can go wrong between the user's files and the device's replies.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The byte link failed (timeout, device not accepting bytes, I/O) and retrying did not help.
    #[error(
        "{command}: {source} (after {attempts} attempt(s); is the device connected and running?)"
    )]
    Link {
        /// Command in flight (`INFO`, `WRITE`, ...).
        command: &'static str,
        /// Attempts made, including the first.
        attempts: usize,
        /// The link failure of the last attempt.
        source: LinkError,
    },

    /// The device answered a command with an error status.
    #[error("{command}: device replied {} ({})", status_name(*.status), .status.describe())]
    Status {
        /// Command the device refused.
        command: &'static str,
        /// The status it replied with.
        status: Status,
    },

    /// The device's replies do not follow the protocol (bad CRC, wrong sync, wrong length,
    /// unknown status) and retrying did not help.
    #[error("{command}: protocol violation: {detail}")]
    Protocol {
        /// Command in flight.
        command: &'static str,
        /// What was wrong with the reply.
        detail: String,
    },

    /// The device is not the one the user asked for (protocol version or array shape).
    #[error("{0}")]
    ConfigMismatch(String),

    /// An invalid configuration (array shape on the command line, or reported by a device).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),

    /// Inputs whose shapes or values do not fit together (K mismatch, non-ternary weights, ...).
    #[error("{0}")]
    Shape(String),

    /// The work does not fit the device's memories even when split up.
    #[error("{0}")]
    Capacity(String),

    /// The backend could not be opened (unknown name, simulator failed to build, ...).
    #[error("{0}")]
    Backend(String),

    /// A model or test-set file could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),

    /// A `.npy` file could not be read or written.
    #[error(transparent)]
    Npy(#[from] NpyError),
}

/// The protocol name of a status code, as written in docs/protocol.md (`BAD_CRC`, ...).
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "OK",
        Status::BadCrc => "BAD_CRC",
        Status::UnknownOpcode => "UNKNOWN_OPCODE",
        Status::BadLength => "BAD_LENGTH",
        Status::OutOfRange => "OUT_OF_RANGE",
        Status::BadValue => "BAD_VALUE",
        Status::Truncated => "TRUNCATED",
        Status::NotConfigured => "NOT_CONFIGURED",
    }
}

/// The protocol name of an opcode, as written in docs/protocol.md (`INFO`, `WRITE`, ...).
pub fn opcode_name(op: Opcode) -> &'static str {
    match op {
        Opcode::Info => "INFO",
        Opcode::Reset => "RESET",
        Opcode::Status => "STATUS",
        Opcode::Write => "WRITE",
        Opcode::Read => "READ",
        Opcode::Configure => "CONFIGURE",
        Opcode::Run => "RUN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_names_command_and_status() {
        let e = DriverError::Status {
            command: "RUN",
            status: Status::NotConfigured,
        };
        let s = e.to_string();
        assert!(s.contains("RUN") && s.contains("NOT_CONFIGURED"), "{s}");
    }

    #[test]
    fn every_code_has_a_name() {
        for s in Status::ALL {
            assert!(!status_name(s).is_empty());
        }
        for o in Opcode::ALL {
            assert!(!opcode_name(o).is_empty());
        }
    }
}
