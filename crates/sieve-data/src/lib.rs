//! sieve-data (placeholder, being written).
