//! Alert rendering (issue 3).
