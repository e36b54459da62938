//! The benchmark's realistic card generator, also used by `xiansuo demo` to fill a database.

pub mod cards;
