//! sieve-nn (placeholder, being written).
