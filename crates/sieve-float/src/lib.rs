//! sieve-float (placeholder, being written).
