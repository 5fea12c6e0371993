//! Simulation of trimac: the golden model, the reference device (the golden model behind the
//! real command protocol), and the cycle-accurate RTL backends.
#![forbid(unsafe_code)]

pub mod golden;
pub mod reference;
pub mod rtl;
pub mod stream;

pub use stream::{ByteStream, LinkError};
