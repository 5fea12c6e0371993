//! Host driver for trimac: the protocol client, the `Device` trait, tiling and layout of
//! layers into device memory, model files, and inference end to end.
#![forbid(unsafe_code)]

pub mod client;
pub mod device;
pub mod error;
pub mod faults;
pub mod gemm;
pub mod layout;
pub mod mlp;
pub mod model;
pub mod npy;
pub mod serial;
