//! Topics (being written).
