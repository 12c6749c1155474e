//! Where the IPA's [`PendingState`] lives between sessions and across power
//! cuts.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::pending::PendingState;

/// Why the state could not be read or written.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold an IPA state.
    #[error("{path} is not an IPA state file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Stable storage for the state.
pub trait StateStore {
    /// Writes `state`; returns once it would survive a power cut.
    fn save(&mut self, state: &PendingState) -> Result<(), StoreError>;
}

/// The state in a JSON file, replaced atomically (written beside it,
/// synced, renamed over it).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store at `path` (created at the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state saved last, or the empty state when there is no file yet;
    /// a file that is not a state is an error (never silently reset: it may
    /// hold results).
    pub fn load(&self) -> Result<PendingState, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => PendingState::from_json(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PendingState::default()),
            Err(source) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

impl StateStore for FileStore {
    fn save(&mut self, state: &PendingState) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&state.to_json()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(dir) = std::fs::File::open(dir)
        {
            // Makes the rename durable where the platform allows it.
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// The state kept in memory only (tests, simulations): every save is
/// counted and the last one kept.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// The last state saved.
    pub last: Option<PendingState>,
    /// Saves made.
    pub saves: usize,
}

impl StateStore for MemoryStore {
    fn save(&mut self, state: &PendingState) -> Result<(), StoreError> {
        self.last = Some(state.clone());
        self.saves += 1;
        Ok(())
    }
}
