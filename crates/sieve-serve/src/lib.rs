//! sieve-serve (placeholder, being written).
