//! Host driver for trimac.
