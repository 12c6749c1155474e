//! Signed parts of received messages (in progress).
