//! placeholder: design overview comes with the codec.
pub mod string;
pub mod topic;
