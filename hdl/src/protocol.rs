//! The host command protocol: frame layout, opcodes, status codes and the CRC.
//!
//! This module is the single source of these numbers for the hardware (the `host_link`
//! block), the reference device model and the host driver. `docs/protocol.md` describes the
//! protocol in prose.

/// Protocol version reported by `INFO`. Bump on any incompatible change.
pub const PROTOCOL_VERSION: u8 = 1;

/// First byte of every host-to-device frame.
pub const REQUEST_SYNC: u8 = 0xA5;
/// First byte of every device-to-host reply.
pub const REPLY_SYNC: u8 = 0x5A;

/// Bytes in a frame besides its payload: sync, opcode/status, 2 length bytes, 2 CRC bytes.
pub const FRAME_OVERHEAD: usize = 6;

/// Commands the device understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Reply with the device configuration (`INFO_LEN` bytes).
    Info = 0x01,
    /// Abandon the configured layer and clear the last run's cycle count. Memories keep their contents.
    Reset = 0x02,
    /// Reply with the status block (`STATUS_LEN` bytes).
    Status = 0x03,
    /// Write words to a memory: `[mem u8, addr u16, data...]`.
    Write = 0x10,
    /// Read words from a memory: `[mem u8, addr u16, count u16]`.
    Read = 0x11,
    /// Set the layer to run: a `CONFIGURE_LEN`-byte layer descriptor.
    Configure = 0x20,
    /// Run the configured layer; the reply (sent when it is done) carries its cycle count.
    Run = 0x21,
}

impl Opcode {
    /// All opcodes, for tests and decoders.
    pub const ALL: [Opcode; 7] = [
        Opcode::Info,
        Opcode::Reset,
        Opcode::Status,
        Opcode::Write,
        Opcode::Read,
        Opcode::Configure,
        Opcode::Run,
    ];

    /// The opcode with this byte value, if any.
    pub fn from_u8(b: u8) -> Option<Opcode> {
        Opcode::ALL.into_iter().find(|o| *o as u8 == b)
    }
}

/// Status byte of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The command was carried out.
    Ok = 0x00,
    /// The frame's CRC did not match; nothing but (for WRITE) the words already received was done.
    BadCrc = 0x01,
    /// The opcode is not one of [`Opcode`].
    UnknownOpcode = 0x02,
    /// The payload length does not fit the command.
    BadLength = 0x03,
    /// A memory id, address range, shape or parameter is outside what the device supports.
    OutOfRange = 0x04,
    /// A WRITE carried a weight code 0b10 (not a ternary value); such words are not written.
    BadValue = 0x05,
    /// The frame stopped arriving before it was complete (no byte for `frame_timeout_cycles`).
    Truncated = 0x06,
    /// RUN was sent with no valid layer configured.
    NotConfigured = 0x07,
}

impl Status {
    /// All status codes.
    pub const ALL: [Status; 8] = [
        Status::Ok,
        Status::BadCrc,
        Status::UnknownOpcode,
        Status::BadLength,
        Status::OutOfRange,
        Status::BadValue,
        Status::Truncated,
        Status::NotConfigured,
    ];

    /// The status with this byte value, if any.
    pub fn from_u8(b: u8) -> Option<Status> {
        Status::ALL.into_iter().find(|s| *s as u8 == b)
    }

    /// A short human-readable explanation.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::BadCrc => "frame CRC mismatch",
            Status::UnknownOpcode => "unknown opcode",
            Status::BadLength => "payload length does not fit the command",
            Status::OutOfRange => "memory, address, shape or parameter out of range",
            Status::BadValue => "weight code 0b10 is not a ternary value",
            Status::Truncated => "frame truncated (device timed out waiting for bytes)",
            Status::NotConfigured => "RUN without a configured layer",
        }
    }
}

/// Memory ids used by WRITE and READ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Memory {
    /// Packed ternary weights; word = one array row (`cols / 4` bytes). Writable and readable.
    Weights = 0,
    /// int8 activations; word = `rows` bytes. Writable and readable.
    Activations = 1,
    /// int32 results; word = `cols` little-endian int32. Readable only.
    Results = 2,
}

impl Memory {
    /// The memory with this id, if any.
    pub fn from_u8(b: u8) -> Option<Memory> {
        match b {
            0 => Some(Memory::Weights),
            1 => Some(Memory::Activations),
            2 => Some(Memory::Results),
            _ => None,
        }
    }
}

/// INFO reply payload length.
pub const INFO_LEN: usize = 28;
/// STATUS reply payload length.
pub const STATUS_LEN: usize = 12;
/// CONFIGURE payload length.
pub const CONFIGURE_LEN: usize = 16;
/// RUN reply payload length (the run's cycle count, u32).
pub const RUN_REPLY_LEN: usize = 4;
/// Header bytes of a WRITE payload (mem, addr).
pub const WRITE_HEADER_LEN: usize = 3;
/// READ payload length (mem, addr, count).
pub const READ_LEN: usize = 5;

/// CONFIGURE flag: write requantized int8 results into activation memory (else int32 results
/// into result memory).
pub const FLAG_INT8_OUT: u8 = 0x01;
/// CONFIGURE flag: clamp requantized results at 0 (ReLU). Only with [`FLAG_INT8_OUT`].
pub const FLAG_RELU: u8 = 0x02;
/// Largest requantization shift.
pub const MAX_SHIFT: u8 = 31;

/// Two-bit weight codes (two's complement of the weight).
pub mod code {
    /// Weight 0: the PE skips the activation.
    pub const ZERO: u8 = 0b00;
    /// Weight +1: the PE adds the activation.
    pub const PLUS: u8 = 0b01;
    /// Not a ternary value: rejected by WRITE, treated as 0 by the PE.
    pub const INVALID: u8 = 0b10;
    /// Weight -1: the PE subtracts the activation.
    pub const MINUS: u8 = 0b11;
}

/// Encodes a ternary weight as its 2-bit code; `None` for anything but -1, 0, +1.
pub fn encode_weight(w: i8) -> Option<u8> {
    match w {
        0 => Some(code::ZERO),
        1 => Some(code::PLUS),
        -1 => Some(code::MINUS),
        _ => None,
    }
}

/// Decodes a 2-bit code; `None` for the invalid code.
pub fn decode_weight(c: u8) -> Option<i8> {
    match c & 3 {
        code::ZERO => Some(0),
        code::PLUS => Some(1),
        code::MINUS => Some(-1),
        _ => None,
    }
}

/// CRC-16/CCITT-FALSE generator polynomial.
pub const CRC_POLY: u16 = 0x1021;

/// One step of CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor).
pub fn crc16_update(crc: u16, byte: u8) -> u16 {
    let mut crc = crc ^ ((byte as u16) << 8);
    for _ in 0..8 {
        crc = if crc & 0x8000 != 0 {
            (crc << 1) ^ CRC_POLY
        } else {
            crc << 1
        };
    }
    crc
}

/// Initial CRC value.
pub const CRC_INIT: u16 = 0xFFFF;

/// CRC-16/CCITT-FALSE of a byte slice.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(CRC_INIT, |c, b| crc16_update(c, *b))
}

/// Builds a complete frame: `sync, code, len (LE), payload, crc (LE)`; the CRC covers code,
/// length and payload. Used for requests (`REQUEST_SYNC`) and replies (`REPLY_SYNC`).
///
/// # Panics
/// If the payload is longer than 65535 bytes (callers split longer transfers).
pub fn frame(sync: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= u16::MAX as usize,
        "payload too long for one frame"
    );
    let mut f = Vec::with_capacity(payload.len() + FRAME_OVERHEAD);
    f.push(sync);
    f.push(code);
    f.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let crc = crc16(&f[1..]);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn weight_codes_round_trip() {
        for w in [-1i8, 0, 1] {
            assert_eq!(decode_weight(encode_weight(w).unwrap()), Some(w));
        }
        assert_eq!(encode_weight(2), None);
        assert_eq!(decode_weight(code::INVALID), None);
    }

    #[test]
    fn codes_round_trip() {
        for o in Opcode::ALL {
            assert_eq!(Opcode::from_u8(o as u8), Some(o));
        }
        for s in Status::ALL {
            assert_eq!(Status::from_u8(s as u8), Some(s));
        }
        assert_eq!(Opcode::from_u8(0x7f), None);
    }

    #[test]
    fn frame_layout() {
        let f = frame(REQUEST_SYNC, Opcode::Info as u8, &[]);
        assert_eq!(f.len(), FRAME_OVERHEAD);
        assert_eq!(&f[..4], &[0xA5, 0x01, 0, 0]);
        assert_eq!(u16::from_le_bytes([f[4], f[5]]), crc16(&[0x01, 0, 0]));
    }
}
