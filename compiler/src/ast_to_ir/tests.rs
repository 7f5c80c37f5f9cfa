//! Tests of the checks and the lowering, on parsed text.
