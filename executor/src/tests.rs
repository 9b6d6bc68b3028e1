//! Tests of the whole executor.
