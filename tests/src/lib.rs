//! End-to-end tests that start Keyway's real processes arrive with the origin and edge.
