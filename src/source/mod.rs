//! Sources of case records (SPEC §5) and their normalisation into the case model.

pub mod normalize;
