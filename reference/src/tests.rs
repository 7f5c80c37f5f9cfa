//! Evaluation tests on hand-built ASTs.
