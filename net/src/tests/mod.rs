//! Tests of the stack over the in-memory cable, on the sim's virtual time.
