//! Shared helpers for the contract suite.
