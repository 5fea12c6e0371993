//! `HostLink`: the device side of the command protocol (docs/protocol.md).
//!
//! One stop-and-wait state machine: it receives a frame byte by byte (tracking the CRC and an
//! idle timeout), stages WRITE data into the core's lanes and commits whole words, checks the
//! finished frame, executes it, and sends the reply with its own CRC. Every protocol number
//! comes from [`crate::protocol`] and every size from the [`Config`].

use crate::config::{Config, PSUM_BITS};
use crate::protocol::{self, Opcode, Status};
use rust_hdl::prelude::*;

// The WRITE length check tests `len < WRITE_HEADER_LEN` bit by bit.
const _: () = assert!(protocol::WRITE_HEADER_LEN == 3);

/// Link state.
#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
pub enum LinkState {
    /// Discarding bytes until a request sync byte.
    WaitSync,
    /// Expecting the opcode.
    Opcode,
    /// Expecting the low length byte.
    LenLo,
    /// Expecting the high length byte.
    LenHi,
    /// Receiving the payload.
    Payload,
    /// Expecting the low CRC byte.
    CrcLo,
    /// Expecting the high CRC byte.
    CrcHi,
    /// Computing the products the checks need.
    Check,
    /// Deciding the status and carrying out the command.
    Decide,
    /// Two cycles before the core's start, only with a staged code bus
    /// (`Config::registered_code_bus`): the core's weight memories then read two cycles ahead,
    /// and their select copies `start_next2`, this state's decode.
    RunLead,
    /// The cycle before the core's start (the core's weight memories read a cycle ahead, and
    /// their select copies `start_next`, which this state makes a register).
    RunArm,
    /// Starting the core.
    RunStart,
    /// Waiting for the core to finish.
    RunWait,
    /// Sending the reply sync byte.
    TxSync,
    /// Sending the status.
    TxStatus,
    /// Sending the low length byte.
    TxLenLo,
    /// Sending the high length byte.
    TxLenHi,
    /// Waiting for memory read data: one cycle, or two with registered host reads.
    TxFetch,
    /// Sending payload bytes.
    TxPayload,
    /// Sending the low CRC byte.
    TxCrcLo,
    /// Sending the high CRC byte.
    TxCrcHi,
}

/// The protocol engine.
#[derive(LogicBlock)]
pub struct HostLink {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Abandon any frame or run and forget the configured layer.
    pub reset: Signal<In, bool>,
    /// Host byte in.
    pub in_data: Signal<In, Bits<8>>,
    /// `in_data` holds a byte.
    pub in_valid: Signal<In, bool>,
    /// The link takes `in_data` this cycle when `in_valid`.
    pub in_ready: Signal<Out, bool>,
    /// Reply byte out.
    pub out_data: Signal<Out, Bits<8>>,
    /// `out_data` holds a byte.
    pub out_valid: Signal<Out, bool>,
    /// The host takes `out_data` this cycle when `out_valid`.
    pub out_ready: Signal<In, bool>,
    /// To the core: start the configured layer.
    pub start: Signal<Out, bool>,
    /// `start` of the next cycle (for registered copies of it).
    pub start_next: Signal<Out, bool>,
    /// `start` two cycles later (for registered copies of `start_next`).
    pub start_next2: Signal<Out, bool>,
    /// To the core: layer rows.
    pub m: Signal<Out, Bits<16>>,
    /// To the core: K-tiles.
    pub k_tiles: Signal<Out, Bits<16>>,
    /// To the core: N-tiles.
    pub n_tiles: Signal<Out, Bits<16>>,
    /// To the core: first activation word.
    pub act_base: Signal<Out, Bits<16>>,
    /// To the core: first weight word.
    pub wt_base: Signal<Out, Bits<16>>,
    /// To the core: first output word.
    pub out_base: Signal<Out, Bits<16>>,
    /// To the core: requantization multiplier.
    pub mult: Signal<Out, Bits<16>>,
    /// To the core: requantization shift.
    pub shift: Signal<Out, Bits<5>>,
    /// To the core: int8 output.
    pub int8_out: Signal<Out, bool>,
    /// To the core: ReLU.
    pub relu: Signal<Out, bool>,
    /// From the core: a run is in progress.
    pub busy: Signal<In, bool>,
    /// From the core: last cycle of the run.
    pub done: Signal<In, bool>,
    /// From the core: cycles of the run.
    pub run_cycles: Signal<In, Bits<32>>,
    /// To the core: the read address (of the word the next load takes its byte from) of the
    /// next cycle; the core keeps registered copies of it.
    pub host_rd_addr_next: Signal<Out, Bits<16>>,
    /// To the core: one-hot position of the next load's byte in a weight word (all zero
    /// unless the READ is of weights).
    pub host_rd_weight_pos: Signal<Out, Bits<32>>,
    /// To the core: the same in an activation word.
    pub host_rd_act_pos: Signal<Out, Bits<32>>,
    /// To the core: the same in a result word, one vector per byte of a lane: bit `j` of
    /// entry `k` selects byte `k` of lane `j`.
    pub host_rd_result_pos: Vec<Signal<Out, Bits<32>>>,
    /// To the core: load the selected byte into `host_rd_byte`.
    pub host_rd_load: Signal<Out, bool>,
    /// To the core: this load takes a word's first byte.
    pub host_rd_first: Signal<Out, bool>,
    /// To the core: the READ (whose reply is going out) is of results.
    pub host_rd_results: Signal<Out, bool>,
    /// From the core: the byte of the last load (a register).
    pub host_rd_byte: Signal<In, Bits<8>>,
    /// To the core: stage a write byte (a register: the cycle after the byte arrived).
    pub host_stage: Signal<Out, bool>,
    /// To the core: commit the staged word (a register: two cycles after its last byte).
    pub host_commit: Signal<Out, bool>,
    /// To the core: writes go to activation memory.
    pub host_wr_acts: Signal<Out, bool>,
    /// To the core: write address (a register, with `host_commit`).
    pub host_wr_addr: Signal<Out, Bits<16>>,
    /// To the core: write byte (a register, with `host_stage`).
    pub host_wr_byte: Signal<Out, Bits<8>>,
    /// To the core: one-hot write byte select (a register, with `host_stage`).
    pub host_wr_sel: Signal<Out, Bits<32>>,
    // Protocol numbers (hdl_gen cannot name Rust constants, so they become Verilog localparams).
    k_status_ok: Constant<Bits<8>>,
    k_status_bad_crc: Constant<Bits<8>>,
    k_status_unknown: Constant<Bits<8>>,
    k_status_bad_length: Constant<Bits<8>>,
    k_status_out_of_range: Constant<Bits<8>>,
    k_status_bad_value: Constant<Bits<8>>,
    k_status_truncated: Constant<Bits<8>>,
    k_status_not_configured: Constant<Bits<8>>,
    k_op_info: Constant<Bits<8>>,
    k_op_reset: Constant<Bits<8>>,
    k_op_status: Constant<Bits<8>>,
    k_op_write: Constant<Bits<8>>,
    k_op_read: Constant<Bits<8>>,
    k_op_configure: Constant<Bits<8>>,
    k_op_run: Constant<Bits<8>>,
    k_request_sync: Constant<Bits<8>>,
    k_reply_sync: Constant<Bits<8>>,
    k_info_len: Constant<Bits<16>>,
    k_status_len: Constant<Bits<16>>,
    k_configure_len: Constant<Bits<16>>,
    k_run_reply_len: Constant<Bits<16>>,
    k_read_len: Constant<Bits<16>>,
    k_write_header_len: Constant<Bits<16>>,
    k_max_shift: Constant<Bits<8>>,
    k_crc_init: Constant<Bits<16>>,
    k_crc_poly: Constant<Bits<16>>,
    // Constants from the configuration.
    info0: Constant<Bits<32>>,
    weight_depth: Constant<Bits<32>>,
    act_depth: Constant<Bits<32>>,
    result_depth: Constant<Bits<32>>,
    max_m: Constant<Bits<32>>,
    clock_hz: Constant<Bits<32>>,
    frame_timeout: Constant<Bits<32>>,
    idle_before_last: Constant<Bits<32>>,
    // The limits again, 17 bits wide (every depth is at most 65536): a 32-bit value is over
    // a limit when its high 15 bits are not zero or its low 17 bits are over, which keeps
    // every range check's carry chain to 17 bits.
    act_limit: Constant<Bits<17>>,
    weight_limit: Constant<Bits<17>>,
    result_limit: Constant<Bits<17>>,
    weight_tiles_limit: Constant<Bits<17>>,
    max_m_limit: Constant<Bits<17>>,
    // For the region checks (`Config::lut_range_checks`): whether a limit is tested as a
    // power of two, and its log2; then `x > limit` is `x >> log2 != 0 && x != limit`, a few
    // LUTs instead of a carry chain.
    act_limit_pow2: Constant<bool>,
    act_limit_log2: Constant<Bits<5>>,
    weight_limit_pow2: Constant<bool>,
    weight_limit_log2: Constant<Bits<5>>,
    result_limit_pow2: Constant<bool>,
    result_limit_log2: Constant<Bits<5>>,
    tiles_limit_pow2: Constant<bool>,
    tiles_limit_log2: Constant<Bits<5>>,
    row_shift: Constant<Bits<5>>,
    w_word_shift: Constant<Bits<5>>,
    a_word_shift: Constant<Bits<5>>,
    r_word_shift: Constant<Bits<5>>,
    w_last_sel: Constant<Bits<32>>,
    w_word_mask: Constant<Bits<32>>,
    a_word_mask: Constant<Bits<32>>,
    a_last_sel: Constant<Bits<32>>,
    r_last_sel: Constant<Bits<32>>,
    w_pos_mask: Constant<Bits<32>>,
    a_pos_mask: Constant<Bits<32>>,
    r_pos_mask: Constant<Bits<32>>,
    square: Constant<bool>,
    // A RUN passes `RunLead` (only with a staged code bus, `Config::registered_code_bus`).
    k_run_lead: Constant<bool>,
    // Frame.
    state: DFF<LinkState>,
    // The opcode and the memory ids, decoded into flags when their byte arrives.
    op_info: DFF<bool>,
    op_reset: DFF<bool>,
    op_status: DFF<bool>,
    op_write: DFF<bool>,
    op_read: DFF<bool>,
    op_configure: DFF<bool>,
    op_run: DFF<bool>,
    r_is_w: DFF<bool>,
    r_is_a: DFF<bool>,
    r_is_r: DFF<bool>,
    w_is_w: DFF<bool>,
    w_is_a: DFF<bool>,
    len: DFF<Bits<16>>,
    // One-hot place in the WRITE header (bit 3: past it).
    w_hdr: DFF<Bits<4>>,
    remain: DFF<Bits<16>>,
    crc: DFF<Bits<16>>,
    crc_rx: DFF<Bits<16>>,
    tx_byte: DFF<Bits<8>>,
    tx_pend: DFF<bool>,
    // The byte received last cycle, and whether the CRC still has to absorb it.
    rx_byte: DFF<Bits<8>>,
    rx_pend: DFF<bool>,
    // Cycles without a byte inside a frame, and whether that count reached the timeout's last
    // cycle (computed a cycle ahead).
    idle: DFF<Bits<32>>,
    idle_hit: DFF<bool>,
    receiving: Signal<Local, bool>,
    status: DFF<Bits<8>>,
    reply_len: DFF<Bits<16>>,
    reply_last: DFF<Bits<16>>,
    // `reply_len == 0`, registered (read in TxLenHi, at least two cycles after the length).
    reply_empty: DFF<bool>,
    // WRITE.
    w_addr: DFF<Bits<16>>,
    w_range_bad: DFF<bool>,
    w_bad: DFF<bool>,
    w_word_bad: DFF<bool>,
    w_sel: DFF<Bits<32>>,
    w_pend: DFF<bool>,
    w_pend_good: DFF<bool>,
    // The write strobes to the core, registered: the payload byte's own cycle only decodes
    // it, and the fan-out to every staging register starts at a flip-flop.
    s_stage: DFF<bool>,
    s_byte: DFF<Bits<8>>,
    s_sel: DFF<Bits<32>>,
    s_commit: DFF<bool>,
    s_addr: DFF<Bits<16>>,
    w_data_len: DFF<Bits<16>>,
    w_room: DFF<Bits<17>>,
    w_no_room: DFF<bool>,
    w_len_bad: DFF<bool>,
    // READ.
    r_addr: DFF<Bits<16>>,
    r_count: DFF<Bits<16>>,
    r_bytes: DFF<Bits<32>>,
    // The next load's byte as one-hot positions (see the `host_rd_*_pos` ports); only the
    // READ's memory has a bit set.
    r_weight_pos: DFF<Bits<32>>,
    r_act_pos: DFF<Bits<32>>,
    r_result_pos0: DFF<Bits<32>>,
    r_result_pos1: DFF<Bits<32>>,
    r_result_pos2: DFF<Bits<32>>,
    r_result_pos3: DFF<Bits<32>>,
    r_end_addr: DFF<Bits<32>>,
    r_range_bad: DFF<bool>,
    // `r_cur_last`: the byte in `host_rd_byte` is its word's last; `r_end`: so is the byte
    // the next load takes.
    r_cur_last: DFF<bool>,
    r_end: DFF<bool>,
    // Registered host reads (`Config::registered_host_reads`): TxFetch lasts two cycles, the
    // second loading the byte (`fetch_waited`: the previous cycle was TxFetch).
    k_fetch_wait: Constant<bool>,
    fetch_waited: DFF<bool>,
    fetch_ready: Signal<Local, bool>,
    // With `Config::registered_read_strobe`, the READ's load strobes from registers, so that
    // `host_rd_load` (a clock enable of every position register and of the core's read
    // registers) is one LUT: each register holds, from the previous cycle's next-state
    // values, a term otherwise decoded from `state`. `rd_first`: this cycle is
    // `host_rd_first`; `rd_armed`: TxPayload of a READ whose byte out is not its word's last
    // (a load when `out_ready`); `at_decide`: the state is Decide.
    k_read_strobe_regs: Constant<bool>,
    rd_first: DFF<bool>,
    rd_armed: DFF<bool>,
    at_decide: DFF<bool>,
    // CONFIGURE: pending fields, products for the checks, and the active layer.
    p_m: DFF<Bits<16>>,
    p_kt: DFF<Bits<16>>,
    p_nt: DFF<Bits<16>>,
    p_act: DFF<Bits<16>>,
    p_wt: DFF<Bits<16>>,
    p_out: DFF<Bits<16>>,
    p_mult: DFF<Bits<16>>,
    p_shift: DFF<Bits<8>>,
    p_flags: DFF<Bits<8>>,
    prod_mk: DFF<Bits<32>>,
    prod_nk: DFF<Bits<32>>,
    prod_mn: DFF<Bits<32>>,
    act_end: DFF<Bits<32>>,
    wt_end: DFF<Bits<32>>,
    out_end: DFF<Bits<32>>,
    // CONFIGURE's checks, registered every cycle like the products and ends before them: of
    // the fields alone and `prod_nk` (final from Check), and of the ends (final from Decide,
    // which reads them as `cfg_bad`).
    fields_bad: DFF<bool>,
    act_end_bad: DFF<bool>,
    wt_end_bad: DFF<bool>,
    out_end_bad: DFF<bool>,
    // Decide's tests, registered in Check: CRC mismatch, wrong length for the opcode.
    crc_bad: DFF<bool>,
    len_bad: DFF<bool>,
    c_m: DFF<Bits<16>>,
    c_kt: DFF<Bits<16>>,
    c_nt: DFF<Bits<16>>,
    c_act: DFF<Bits<16>>,
    c_wt: DFF<Bits<16>>,
    c_out: DFF<Bits<16>>,
    c_mult: DFF<Bits<16>>,
    c_shift: DFF<Bits<8>>,
    c_flags: DFF<Bits<8>>,
    configured: DFF<bool>,
    // Counters and reply words.
    counter: DFF<Bits<32>>,
    snapshot: DFF<Bits<32>>,
    last_run: DFF<Bits<32>>,
    tx_idx: DFF<Bits<16>>,
    tx_word: DFF<Bits<4>>,
    tx_shift: DFF<Bits<5>>,
    // The reply word going out, its next byte lowest.
    tx_bytes: DFF<Bits<32>>,
    // Word `tx_word` of the reply, registered: what `tx_bytes` loads next.
    tx_next: DFF<Bits<32>>,
    // Combinational helpers.
    crc_in: Signal<Local, Bits<8>>,
    crc_next: Signal<Local, Bits<16>>,
    full_len: Signal<Local, Bits<16>>,
    hdr_addr: Signal<Local, Bits<32>>,
    w_words_a: Signal<Local, Bits<17>>,
    w_words_w: Signal<Local, Bits<17>>,
    byte_bad: Signal<Local, bool>,
    word_end: Signal<Local, bool>,
    cfg_bad: Signal<Local, bool>,
    word: Signal<Local, Bits<32>>,
    r_depth: Signal<Local, Bits<17>>,
    r_end_over: Signal<Local, bool>,
    act_end_over: Signal<Local, bool>,
    wt_end_over: Signal<Local, bool>,
    out_end_high: Signal<Local, bool>,
    out_end_over_acts: Signal<Local, bool>,
    out_end_over_results: Signal<Local, bool>,
    nk_over: Signal<Local, bool>,
    r_first_last: Signal<Local, bool>,
    r_weight_start: Signal<Local, Bits<32>>,
    r_act_start: Signal<Local, Bits<32>>,
    r_result_start: Signal<Local, Bits<32>>,
    r_word_start: Signal<Local, bool>,
    r_next_last: Signal<Local, bool>,
    rd_count: Signal<Local, Bits<16>>,
    w_go: Signal<Local, bool>,
}

fn log2(x: usize) -> u64 {
    x.trailing_zeros() as u64
}

fn k32(x: u64) -> Constant<Bits<32>> {
    Constant::new(x.into())
}

fn k17(x: usize) -> Constant<Bits<17>> {
    assert!(x <= 1 << 16, "a memory depth or limit over 65536: {x}");
    Constant::new((x as u64).into())
}

fn k5(x: u64) -> Constant<Bits<5>> {
    Constant::new(x.into())
}

/// Whether the region check against `limit` is tested as a power of two
/// (`Config::lut_range_checks`).
fn pow2_check(cfg: &Config, limit: usize) -> Constant<bool> {
    Constant::new(cfg.lut_range_checks && limit.is_power_of_two())
}

impl HostLink {
    /// The link for `cfg`.
    pub fn new(cfg: &Config) -> Self {
        cfg.validate().expect("invalid configuration");
        let info0 = protocol::PROTOCOL_VERSION as u64
            | (cfg.rows as u64) << 8
            | (cfg.cols as u64) << 16
            | (PSUM_BITS as u64) << 24;
        Self {
            clock: Default::default(),
            reset: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            start: Default::default(),
            start_next: Default::default(),
            start_next2: Default::default(),
            m: Default::default(),
            k_tiles: Default::default(),
            n_tiles: Default::default(),
            act_base: Default::default(),
            wt_base: Default::default(),
            out_base: Default::default(),
            mult: Default::default(),
            shift: Default::default(),
            int8_out: Default::default(),
            relu: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            run_cycles: Default::default(),
            host_rd_addr_next: Default::default(),
            host_rd_weight_pos: Default::default(),
            host_rd_act_pos: Default::default(),
            host_rd_result_pos: (0..4).map(|_| Default::default()).collect(),
            host_rd_load: Default::default(),
            host_rd_first: Default::default(),
            host_rd_results: Default::default(),
            host_rd_byte: Default::default(),
            host_stage: Default::default(),
            host_commit: Default::default(),
            host_wr_acts: Default::default(),
            host_wr_addr: Default::default(),
            host_wr_byte: Default::default(),
            host_wr_sel: Default::default(),
            k_status_ok: Constant::new((Status::Ok as u64).into()),
            k_status_bad_crc: Constant::new((Status::BadCrc as u64).into()),
            k_status_unknown: Constant::new((Status::UnknownOpcode as u64).into()),
            k_status_bad_length: Constant::new((Status::BadLength as u64).into()),
            k_status_out_of_range: Constant::new((Status::OutOfRange as u64).into()),
            k_status_bad_value: Constant::new((Status::BadValue as u64).into()),
            k_status_truncated: Constant::new((Status::Truncated as u64).into()),
            k_status_not_configured: Constant::new((Status::NotConfigured as u64).into()),
            k_op_info: Constant::new((Opcode::Info as u64).into()),
            k_op_reset: Constant::new((Opcode::Reset as u64).into()),
            k_op_status: Constant::new((Opcode::Status as u64).into()),
            k_op_write: Constant::new((Opcode::Write as u64).into()),
            k_op_read: Constant::new((Opcode::Read as u64).into()),
            k_op_configure: Constant::new((Opcode::Configure as u64).into()),
            k_op_run: Constant::new((Opcode::Run as u64).into()),
            k_request_sync: Constant::new((protocol::REQUEST_SYNC as u64).into()),
            k_reply_sync: Constant::new((protocol::REPLY_SYNC as u64).into()),
            k_info_len: Constant::new((protocol::INFO_LEN as u64).into()),
            k_status_len: Constant::new((protocol::STATUS_LEN as u64).into()),
            k_configure_len: Constant::new((protocol::CONFIGURE_LEN as u64).into()),
            k_run_reply_len: Constant::new((protocol::RUN_REPLY_LEN as u64).into()),
            k_read_len: Constant::new((protocol::READ_LEN as u64).into()),
            k_write_header_len: Constant::new((protocol::WRITE_HEADER_LEN as u64).into()),
            k_max_shift: Constant::new((protocol::MAX_SHIFT as u64).into()),
            k_crc_init: Constant::new((protocol::CRC_INIT as u64).into()),
            k_crc_poly: Constant::new((protocol::CRC_POLY as u64).into()),
            info0: k32(info0),
            weight_depth: k32(cfg.weight_depth as u64),
            act_depth: k32(cfg.act_depth as u64),
            result_depth: k32(cfg.result_depth as u64),
            max_m: k32(cfg.max_m as u64),
            clock_hz: k32(cfg.clock_hz as u64),
            frame_timeout: k32(cfg.frame_timeout_cycles as u64),
            idle_before_last: k32(cfg.frame_timeout_cycles as u64 - 2),
            act_limit: k17(cfg.act_depth),
            weight_limit: k17(cfg.weight_depth),
            result_limit: k17(cfg.result_depth),
            weight_tiles_limit: k17(cfg.weight_depth / cfg.rows),
            max_m_limit: k17(cfg.max_m),
            act_limit_pow2: pow2_check(cfg, cfg.act_depth),
            act_limit_log2: k5(log2(cfg.act_depth)),
            weight_limit_pow2: pow2_check(cfg, cfg.weight_depth),
            weight_limit_log2: k5(log2(cfg.weight_depth)),
            result_limit_pow2: pow2_check(cfg, cfg.result_depth),
            result_limit_log2: k5(log2(cfg.result_depth)),
            tiles_limit_pow2: pow2_check(cfg, cfg.weight_depth / cfg.rows),
            tiles_limit_log2: k5(log2(cfg.weight_depth / cfg.rows)),
            row_shift: k5(log2(cfg.rows)),
            w_word_shift: k5(log2(cfg.weight_word_bytes())),
            a_word_shift: k5(log2(cfg.act_word_bytes())),
            r_word_shift: k5(log2(cfg.result_word_bytes())),
            w_last_sel: k32(1 << (cfg.weight_word_bytes() - 1)),
            w_word_mask: k32(cfg.weight_word_bytes() as u64 - 1),
            a_word_mask: k32(cfg.act_word_bytes() as u64 - 1),
            a_last_sel: k32(1 << (cfg.act_word_bytes() - 1)),
            r_last_sel: k32(1 << (cfg.cols - 1)),
            w_pos_mask: k32((1u64 << cfg.weight_word_bytes()) - 1),
            a_pos_mask: k32((1u64 << cfg.act_word_bytes()) - 1),
            r_pos_mask: k32((1u64 << cfg.cols) - 1),
            square: Constant::new(cfg.rows == cfg.cols),
            k_run_lead: Constant::new(cfg.registered_code_bus),
            state: Default::default(),
            op_info: Default::default(),
            op_reset: Default::default(),
            op_status: Default::default(),
            op_write: Default::default(),
            op_read: Default::default(),
            op_configure: Default::default(),
            op_run: Default::default(),
            r_is_w: Default::default(),
            r_is_a: Default::default(),
            r_is_r: Default::default(),
            w_is_w: Default::default(),
            w_is_a: Default::default(),
            len: Default::default(),
            w_hdr: Default::default(),
            remain: Default::default(),
            crc: Default::default(),
            crc_rx: Default::default(),
            tx_byte: Default::default(),
            tx_pend: Default::default(),
            rx_byte: Default::default(),
            rx_pend: Default::default(),
            idle: Default::default(),
            idle_hit: Default::default(),
            receiving: Default::default(),
            status: Default::default(),
            reply_len: Default::default(),
            reply_last: Default::default(),
            reply_empty: Default::default(),
            w_addr: Default::default(),
            w_range_bad: Default::default(),
            w_bad: Default::default(),
            w_word_bad: Default::default(),
            w_sel: Default::default(),
            w_pend: Default::default(),
            w_pend_good: Default::default(),
            s_stage: Default::default(),
            s_byte: Default::default(),
            s_sel: Default::default(),
            s_commit: Default::default(),
            s_addr: Default::default(),
            w_data_len: Default::default(),
            w_room: Default::default(),
            w_no_room: Default::default(),
            w_len_bad: Default::default(),
            r_addr: Default::default(),
            r_count: Default::default(),
            r_bytes: Default::default(),
            r_weight_pos: Default::default(),
            r_act_pos: Default::default(),
            r_result_pos0: Default::default(),
            r_result_pos1: Default::default(),
            r_result_pos2: Default::default(),
            r_result_pos3: Default::default(),
            r_end_addr: Default::default(),
            r_range_bad: Default::default(),
            r_cur_last: Default::default(),
            r_end: Default::default(),
            k_fetch_wait: Constant::new(cfg.registered_host_reads),
            fetch_waited: Default::default(),
            fetch_ready: Default::default(),
            k_read_strobe_regs: Constant::new(cfg.registered_read_strobe),
            rd_first: Default::default(),
            rd_armed: Default::default(),
            at_decide: Default::default(),
            p_m: Default::default(),
            p_kt: Default::default(),
            p_nt: Default::default(),
            p_act: Default::default(),
            p_wt: Default::default(),
            p_out: Default::default(),
            p_mult: Default::default(),
            p_shift: Default::default(),
            p_flags: Default::default(),
            prod_mk: Default::default(),
            prod_nk: Default::default(),
            prod_mn: Default::default(),
            act_end: Default::default(),
            wt_end: Default::default(),
            out_end: Default::default(),
            fields_bad: Default::default(),
            act_end_bad: Default::default(),
            wt_end_bad: Default::default(),
            out_end_bad: Default::default(),
            crc_bad: Default::default(),
            len_bad: Default::default(),
            c_m: Default::default(),
            c_kt: Default::default(),
            c_nt: Default::default(),
            c_act: Default::default(),
            c_wt: Default::default(),
            c_out: Default::default(),
            c_mult: Default::default(),
            c_shift: Default::default(),
            c_flags: Default::default(),
            configured: Default::default(),
            counter: Default::default(),
            snapshot: Default::default(),
            last_run: Default::default(),
            tx_idx: Default::default(),
            tx_word: Default::default(),
            tx_shift: Default::default(),
            tx_bytes: Default::default(),
            tx_next: Default::default(),
            crc_in: Default::default(),
            crc_next: Default::default(),
            full_len: Default::default(),
            hdr_addr: Default::default(),
            w_words_a: Default::default(),
            w_words_w: Default::default(),
            byte_bad: Default::default(),
            word_end: Default::default(),
            cfg_bad: Default::default(),
            word: Default::default(),
            r_depth: Default::default(),
            r_end_over: Default::default(),
            act_end_over: Default::default(),
            wt_end_over: Default::default(),
            out_end_high: Default::default(),
            out_end_over_acts: Default::default(),
            out_end_over_results: Default::default(),
            nk_over: Default::default(),
            r_first_last: Default::default(),
            r_weight_start: Default::default(),
            r_act_start: Default::default(),
            r_result_start: Default::default(),
            r_word_start: Default::default(),
            r_next_last: Default::default(),
            rd_count: Default::default(),
            w_go: Default::default(),
        }
    }
}

impl Logic for HostLink {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            state,
            op_info,
            op_reset,
            op_status,
            op_write,
            op_read,
            op_configure,
            op_run,
            r_is_w,
            r_is_a,
            r_is_r,
            w_is_w,
            w_is_a,
            len,
            w_hdr,
            remain,
            crc,
            crc_rx,
            tx_byte,
            tx_pend,
            rx_byte,
            rx_pend,
            idle,
            idle_hit,
            status,
            reply_len,
            reply_last,
            reply_empty,
            w_addr,
            w_range_bad,
            w_bad,
            w_word_bad,
            w_sel,
            w_pend,
            w_pend_good,
            s_stage,
            s_byte,
            s_sel,
            s_commit,
            s_addr,
            w_data_len,
            w_room,
            w_no_room,
            w_len_bad,
            r_addr,
            r_count,
            r_bytes,
            r_weight_pos,
            r_act_pos,
            r_result_pos0,
            r_result_pos1,
            r_result_pos2,
            r_result_pos3,
            r_end_addr,
            r_range_bad,
            r_cur_last,
            r_end,
            fetch_waited,
            rd_first,
            rd_armed,
            at_decide,
            p_m,
            p_kt,
            p_nt,
            p_act,
            p_wt,
            p_out,
            p_mult,
            p_shift,
            p_flags,
            prod_mk,
            prod_nk,
            prod_mn,
            act_end,
            wt_end,
            out_end,
            fields_bad,
            act_end_bad,
            wt_end_bad,
            out_end_bad,
            crc_bad,
            len_bad,
            c_m,
            c_kt,
            c_nt,
            c_act,
            c_wt,
            c_out,
            c_mult,
            c_shift,
            c_flags,
            configured,
            counter,
            snapshot,
            last_run,
            tx_idx,
            tx_word,
            tx_shift,
            tx_bytes,
            tx_next
        );
        self.counter.d.next = self.counter.q.val() + 1;
        // The configured layer, to the core.
        self.m.next = self.c_m.q.val();
        self.k_tiles.next = self.c_kt.q.val();
        self.n_tiles.next = self.c_nt.q.val();
        self.act_base.next = self.c_act.q.val();
        self.wt_base.next = self.c_wt.q.val();
        self.out_base.next = self.c_out.q.val();
        self.mult.next = self.c_mult.q.val();
        self.shift.next = bit_cast::<5, 8>(self.c_shift.q.val());
        self.int8_out.next = self.c_flags.q.val().get_bit(0);
        self.relu.next = self.c_flags.q.val().get_bit(1);
        // Memory access, to the core.
        self.start.next = false;
        self.host_stage.next = self.s_stage.q.val();
        self.host_commit.next = self.s_commit.q.val();
        self.host_wr_acts.next = self.w_is_a.q.val();
        self.host_wr_addr.next = self.s_addr.q.val();
        self.host_wr_byte.next = self.s_byte.q.val();
        self.host_wr_sel.next = self.s_sel.q.val();
        // (`w_is_a` holds from the header to the next WRITE's header, long after the last
        // commit.)
        self.s_stage.d.next = false;
        self.s_commit.d.next = false;
        self.s_byte.d.next = self.in_data.val();
        self.s_sel.d.next = self.w_sel.q.val();
        self.s_addr.d.next = self.w_addr.q.val();
        self.host_rd_weight_pos.next = self.r_weight_pos.q.val();
        self.host_rd_act_pos.next = self.r_act_pos.q.val();
        self.host_rd_result_pos[0].next = self.r_result_pos0.q.val();
        self.host_rd_result_pos[1].next = self.r_result_pos1.q.val();
        self.host_rd_result_pos[2].next = self.r_result_pos2.q.val();
        self.host_rd_result_pos[3].next = self.r_result_pos3.q.val();

        // Reply words (INFO, STATUS, RUN), sent little-endian: `word` is word `tx_word` of the
        // reply, registered in `tx_next` and loaded from there into `tx_bytes` (from which the
        // bytes go out) when its first byte is due. The register costs no cycle: `tx_word`
        // moves on at a load and the next load is at least four bytes later; the first load
        // (TxLenHi) comes three cycles after Decide or RunWait set `tx_word`, the snapshot and
        // the run's cycle count.
        self.word.next = bits::<32>(0);
        if self.op_info.q.val() {
            if self.tx_word.q.val() == 0 {
                self.word.next = self.info0.val();
            }
            if self.tx_word.q.val() == 1 {
                self.word.next = self.weight_depth.val();
            }
            if self.tx_word.q.val() == 2 {
                self.word.next = self.act_depth.val();
            }
            if self.tx_word.q.val() == 3 {
                self.word.next = self.result_depth.val();
            }
            if self.tx_word.q.val() == 4 {
                self.word.next = self.max_m.val();
            }
            if self.tx_word.q.val() == 5 {
                self.word.next = self.clock_hz.val();
            }
            if self.tx_word.q.val() == 6 {
                self.word.next = self.frame_timeout.val();
            }
        }
        if self.op_status.q.val() {
            if (self.tx_word.q.val() == 0) & self.configured.q.val() {
                self.word.next = bits::<32>(1);
            }
            if self.tx_word.q.val() == 1 {
                self.word.next = self.snapshot.q.val();
            }
            if self.tx_word.q.val() == 2 {
                self.word.next = self.last_run.q.val();
            }
        }
        if self.op_run.q.val() {
            self.word.next = self.last_run.q.val();
        }
        self.tx_next.d.next = self.word.val();

        // CRC-16/CCITT-FALSE. Every byte is absorbed the cycle after it passed, from a register
        // (`rx_byte`, `tx_byte`), so the CRC's enable and input are flip-flops: no path runs from
        // the handshakes through the CRC. A frame's last payload byte is absorbed in CrcLo, long
        // before Decide compares; TxCrcLo sends the CRC with a pending byte folded in.
        self.crc_in.next = self.rx_byte.q.val();
        if self.tx_pend.q.val() {
            self.crc_in.next = self.tx_byte.q.val();
        }
        self.crc_next.next = self.crc.q.val() ^ (bit_cast::<16, 8>(self.crc_in.val()) << 8);
        for _bit in 0..8 {
            if self.crc_next.val().get_bit(15) {
                self.crc_next.next = (self.crc_next.val() << 1) ^ self.k_crc_poly.val();
            } else {
                self.crc_next.next = self.crc_next.val() << 1;
            }
        }

        // Outputs of the current state.
        self.in_ready.next = false;
        self.out_valid.next = false;
        self.out_data.next = bits::<8>(0);
        match self.state.q.val() {
            LinkState::WaitSync => {
                self.in_ready.next = true;
            }
            LinkState::Opcode => {
                self.in_ready.next = true;
            }
            LinkState::LenLo => {
                self.in_ready.next = true;
            }
            LinkState::LenHi => {
                self.in_ready.next = true;
            }
            LinkState::Payload => {
                self.in_ready.next = true;
            }
            LinkState::CrcLo => {
                self.in_ready.next = true;
            }
            LinkState::CrcHi => {
                self.in_ready.next = true;
            }
            LinkState::TxSync => {
                self.out_valid.next = true;
                self.out_data.next = self.k_reply_sync.val();
            }
            LinkState::TxStatus => {
                self.out_valid.next = true;
                self.out_data.next = self.status.q.val();
            }
            LinkState::TxLenLo => {
                self.out_valid.next = true;
                self.out_data.next = bit_cast::<8, 16>(self.reply_len.q.val());
            }
            LinkState::TxLenHi => {
                self.out_valid.next = true;
                self.out_data.next = bit_cast::<8, 16>(self.reply_len.q.val() >> 8);
            }
            LinkState::TxPayload => {
                self.out_valid.next = true;
                self.out_data.next = bit_cast::<8, 32>(self.tx_bytes.q.val());
                if self.op_read.q.val() {
                    self.out_data.next = self.host_rd_byte.val();
                }
            }
            LinkState::TxCrcLo => {
                // The CRC register absorbs the last payload byte in this state's first cycle
                // (`tx_pend`); the low byte goes out from the register after that, so the
                // reply path does not hold a CRC update.
                self.out_valid.next = !self.tx_pend.q.val();
                self.out_data.next = bit_cast::<8, 16>(self.crc.q.val());
            }
            LinkState::TxCrcHi => {
                self.out_valid.next = true;
                self.out_data.next = bit_cast::<8, 16>(self.crc.q.val() >> 8);
            }
            _ => {}
        }
        // A byte passes when `in_valid` (`out_ready`) is high in a receiving (sending) state, as
        // `in_ready` (`out_valid`) is then high: the state arms test the one signal alone, so
        // their enables need not decode `in_ready` from the state again.
        self.tx_byte.d.next = self.out_data.val();
        self.rx_byte.d.next = self.in_data.val();
        self.rx_pend.d.next = self.in_valid.val()
            & ((self.state.q.val() == LinkState::Opcode)
                | (self.state.q.val() == LinkState::LenLo)
                | (self.state.q.val() == LinkState::LenHi)
                | (self.state.q.val() == LinkState::Payload));
        self.tx_pend.d.next = self.out_ready.val()
            & ((self.state.q.val() == LinkState::TxStatus)
                | (self.state.q.val() == LinkState::TxLenLo)
                | (self.state.q.val() == LinkState::TxLenHi)
                | (self.state.q.val() == LinkState::TxPayload));
        // Checks, combinational.
        self.full_len.next = self.len.q.val() | (bit_cast::<16, 8>(self.in_data.val()) << 8);
        self.hdr_addr.next =
            bit_cast::<32, 16>(self.w_addr.q.val() | (bit_cast::<16, 8>(self.in_data.val()) << 8));
        // WRITE: whole words the payload holds, in the addressed memory's word size.
        // Both memories' word counts and room, chosen after the subtractions so the carry
        // chains start at the `w_data_len` register.
        self.w_words_a.next =
            bit_cast::<17, 16>(self.w_data_len.q.val()) >> self.a_word_shift.val();
        self.w_words_w.next =
            bit_cast::<17, 16>(self.w_data_len.q.val()) >> self.w_word_shift.val();
        // The header's length checks, registered every cycle from the registers its first
        // byte sets: final from the cycle its second byte arrives at the earliest, and held
        // until the next WRITE.
        self.w_len_bad.d.next =
            (bit_cast::<32, 16>(self.w_data_len.q.val()) & self.a_word_mask.val()) != 0;
        self.w_room.d.next = self.act_limit.val() - self.w_words_a.val();
        self.w_no_room.d.next = self.w_words_a.val() > self.act_limit.val();
        if self.w_is_w.q.val() {
            self.w_len_bad.d.next =
                (bit_cast::<32, 16>(self.w_data_len.q.val()) & self.w_word_mask.val()) != 0;
            self.w_room.d.next = self.weight_limit.val() - self.w_words_w.val();
            self.w_no_room.d.next = self.w_words_w.val() > self.weight_limit.val();
        }
        self.byte_bad.next = self.w_is_w.q.val()
            & ((self.in_data.val().get_bit(1) & !self.in_data.val().get_bit(0))
                | (self.in_data.val().get_bit(3) & !self.in_data.val().get_bit(2))
                | (self.in_data.val().get_bit(5) & !self.in_data.val().get_bit(4))
                | (self.in_data.val().get_bit(7) & !self.in_data.val().get_bit(6)));
        // (`w_sel` is one-hot, so testing the last select's bit is the equality.)
        self.word_end.next = (self.w_is_w.q.val()
            & ((self.w_sel.q.val() & self.w_last_sel.val()) != 0))
            | (self.w_is_a.q.val() & ((self.w_sel.q.val() & self.a_last_sel.val()) != 0));
        // WRITE: the header (valid once it is complete) names a memory, a whole number of
        // words, and room for them at its address.
        self.w_go.next = (self.w_is_w.q.val() | self.w_is_a.q.val())
            & !(self.w_len_bad.q.val() | self.w_no_room.q.val() | self.w_range_bad.q.val());
        self.r_depth.next = self.result_limit.val();
        if self.r_is_w.q.val() {
            self.r_depth.next = self.weight_limit.val();
        }
        if self.r_is_a.q.val() {
            self.r_depth.next = self.act_limit.val();
        }
        // Range checks on 32-bit ends, split as the `*_limit` constants say.
        self.r_end_over.next = (self.r_end_addr.q.val().get_bits::<15>(17) != 0)
            | (self.r_end_addr.q.val().get_bits::<17>(0) > self.r_depth.val());
        // The ends (and `prod_nk`) start at a block multiplier's output or a 32-bit adder: with
        // `Config::lut_range_checks` and a power-of-two limit their low half is tested without
        // a carry chain (see `act_limit_pow2`).
        self.act_end_over.next = (self.act_end.q.val().get_bits::<15>(17) != 0)
            | (self.act_end.q.val().get_bits::<17>(0) > self.act_limit.val());
        if self.act_limit_pow2.val() {
            self.act_end_over.next = (self.act_end.q.val().get_bits::<15>(17) != 0)
                | (((self.act_end.q.val().get_bits::<17>(0) >> self.act_limit_log2.val()) != 0)
                    & (self.act_end.q.val().get_bits::<17>(0) != self.act_limit.val()));
        }
        self.wt_end_over.next = (self.wt_end.q.val().get_bits::<15>(17) != 0)
            | (self.wt_end.q.val().get_bits::<17>(0) > self.weight_limit.val());
        if self.weight_limit_pow2.val() {
            self.wt_end_over.next = (self.wt_end.q.val().get_bits::<15>(17) != 0)
                | (((self.wt_end.q.val().get_bits::<17>(0) >> self.weight_limit_log2.val()) != 0)
                    & (self.wt_end.q.val().get_bits::<17>(0) != self.weight_limit.val()));
        }
        self.out_end_high.next = self.out_end.q.val().get_bits::<15>(17) != 0;
        self.out_end_over_acts.next = self.out_end_high.val()
            | (self.out_end.q.val().get_bits::<17>(0) > self.act_limit.val());
        if self.act_limit_pow2.val() {
            self.out_end_over_acts.next = self.out_end_high.val()
                | (((self.out_end.q.val().get_bits::<17>(0) >> self.act_limit_log2.val()) != 0)
                    & (self.out_end.q.val().get_bits::<17>(0) != self.act_limit.val()));
        }
        self.out_end_over_results.next = self.out_end_high.val()
            | (self.out_end.q.val().get_bits::<17>(0) > self.result_limit.val());
        if self.result_limit_pow2.val() {
            self.out_end_over_results.next = self.out_end_high.val()
                | (((self.out_end.q.val().get_bits::<17>(0) >> self.result_limit_log2.val()) != 0)
                    & (self.out_end.q.val().get_bits::<17>(0) != self.result_limit.val()));
        }
        self.nk_over.next = (self.prod_nk.q.val().get_bits::<15>(17) != 0)
            | (self.prod_nk.q.val().get_bits::<17>(0) > self.weight_tiles_limit.val());
        if self.tiles_limit_pow2.val() {
            self.nk_over.next = (self.prod_nk.q.val().get_bits::<15>(17) != 0)
                | (((self.prod_nk.q.val().get_bits::<17>(0) >> self.tiles_limit_log2.val()) != 0)
                    & (self.prod_nk.q.val().get_bits::<17>(0) != self.weight_tiles_limit.val()));
        }
        // `r_end`: the load position is its word's last byte, a register kept one step ahead:
        // a word's first byte is its last when words are one byte; otherwise the byte after
        // the position is last when the position is one before the last (for results, byte 2
        // of the last lane). Only the READ's memory has a position bit set, and it is
        // one-hot, so testing one bit is the comparison. A word's first byte: bit 0 of the
        // READ's memory.
        self.r_weight_start.next = 0.into();
        if self.r_is_w.q.val() {
            self.r_weight_start.next = 1.into();
        }
        self.r_act_start.next = 0.into();
        if self.r_is_a.q.val() {
            self.r_act_start.next = 1.into();
        }
        self.r_result_start.next = 0.into();
        if self.r_is_r.q.val() {
            self.r_result_start.next = 1.into();
        }
        self.r_first_last.next = (self.r_is_w.q.val() & (self.w_last_sel.val() == 1))
            | (self.r_is_a.q.val() & (self.a_last_sel.val() == 1));
        self.r_next_last.next = ((self.r_weight_pos.q.val() & (self.w_last_sel.val() >> 1)) != 0)
            | ((self.r_act_pos.q.val() & (self.a_last_sel.val() >> 1)) != 0)
            | ((self.r_result_pos2.q.val() & self.r_last_sel.val()) != 0);
        // READ replies send `host_rd_byte`, a register the core loads one byte ahead: in
        // TxFetch (the word's first byte, its address set since the previous word's last load)
        // and whenever a byte goes out that is not its word's last. After a word's last byte is
        // loaded the address moves on, so the memories read the next word while that byte waits.
        // The position moves to the next byte: the next bit of a weight or activation word,
        // the next byte of the lane in a result word (after byte 3, byte 0 of the next lane).
        self.fetch_waited.d.next = self.state.q.val() == LinkState::TxFetch;
        self.fetch_ready.next = !self.k_fetch_wait.val() | self.fetch_waited.q.val();
        self.host_rd_first.next =
            (self.state.q.val() == LinkState::TxFetch) & self.fetch_ready.val();
        self.host_rd_results.next = self.r_is_r.q.val();
        self.host_rd_load.next = self.host_rd_first.val()
            | ((self.state.q.val() == LinkState::TxPayload)
                & self.op_read.q.val()
                & self.out_ready.val()
                & !self.r_cur_last.q.val());
        // The same from registers set at the end of `update` (`Config::registered_read_strobe`).
        if self.k_read_strobe_regs.val() {
            self.host_rd_first.next = self.rd_first.q.val();
            self.host_rd_load.next =
                self.rd_first.q.val() | (self.rd_armed.q.val() & self.out_ready.val());
        }
        self.r_word_start.next = false;
        if self.host_rd_load.val() {
            self.r_cur_last.d.next = self.r_end.q.val();
            self.r_end.d.next = self.r_next_last.val();
            self.r_weight_pos.d.next = (self.r_weight_pos.q.val() << 1) & self.w_pos_mask.val();
            self.r_act_pos.d.next = (self.r_act_pos.q.val() << 1) & self.a_pos_mask.val();
            self.r_result_pos0.d.next = (self.r_result_pos3.q.val() << 1) & self.r_pos_mask.val();
            self.r_result_pos1.d.next = self.r_result_pos0.q.val();
            self.r_result_pos2.d.next = self.r_result_pos1.q.val();
            self.r_result_pos3.d.next = self.r_result_pos2.q.val();
            if self.r_end.q.val() {
                self.r_word_start.next = true;
                self.r_addr.d.next = self.r_addr.q.val() + 1;
            }
        }
        // CONFIGURE's range checks, a pipeline registered every cycle. The fields stop
        // changing with the payload's last byte (final in CrcLo, the cycle after it), so the
        // products are final from CrcHi, the region ends from Check and the checks of the
        // ends from Decide, which reads them: the same as if each stage were registered in
        // its state alone, with no frame waiting longer. Without enables, each block
        // multiplier can take its register as its own output register (ECP5; fpga's
        // `output_registers`).
        self.prod_mk.d.next = self.p_m.q.val() * self.p_kt.q.val();
        self.prod_nk.d.next = self.p_nt.q.val() * self.p_kt.q.val();
        self.prod_mn.d.next = self.p_m.q.val() * self.p_nt.q.val();
        self.act_end.d.next = bit_cast::<32, 16>(self.p_act.q.val()) + self.prod_mk.q.val();
        self.wt_end.d.next =
            bit_cast::<32, 16>(self.p_wt.q.val()) + (self.prod_nk.q.val() << self.row_shift.val());
        self.out_end.d.next = bit_cast::<32, 16>(self.p_out.q.val()) + self.prod_mn.q.val();
        self.fields_bad.d.next = (self.p_m.q.val() == 0)
            | (bit_cast::<17, 16>(self.p_m.q.val()) > self.max_m_limit.val())
            | (self.p_kt.q.val() == 0)
            | (self.p_nt.q.val() == 0)
            | self.nk_over.val()
            | (self.p_shift.q.val() > self.k_max_shift.val())
            | ((self.p_flags.q.val() & 0xFC) != 0)
            | (self.p_flags.q.val().get_bit(1) & !self.p_flags.q.val().get_bit(0))
            | (self.p_flags.q.val().get_bit(0) & !self.square.val());
        self.act_end_bad.d.next = self.act_end_over.val();
        self.wt_end_bad.d.next = self.wt_end_over.val();
        // The output region must fit its memory. An int8 one must also not overlap the input
        // rows: the region ends are 32-bit sums and the bases 16-bit, so `base < end` is
        // "end's high half is not zero, or base < end's low half", a 16-bit carry chain
        // instead of 32.
        self.out_end_bad.d.next = self.out_end_over_results.val();
        if self.p_flags.q.val().get_bit(0) {
            self.out_end_bad.d.next = self.out_end_over_acts.val()
                | (((self.act_end.q.val().get_bits::<16>(16) != 0)
                    | (self.p_out.q.val() < self.act_end.q.val().get_bits::<16>(0)))
                    & ((self.out_end.q.val().get_bits::<16>(16) != 0)
                        | (self.p_act.q.val() < self.out_end.q.val().get_bits::<16>(0))));
        }
        self.cfg_bad.next = self.fields_bad.q.val()
            | self.act_end_bad.q.val()
            | self.wt_end_bad.q.val()
            | self.out_end_bad.q.val();
        // The last payload index of the reply (valid from TxStatus on: reply_len is set before
        // TxSync and stays put while the reply goes out).
        self.reply_last.d.next = self.reply_len.q.val() - 1;
        self.reply_empty.d.next = self.reply_len.q.val() == 0;

        // Payload bytes shift through the CONFIGURE fields, byte 0 ending in `p_m`'s low byte
        // after the 16 bytes of a CONFIGURE (and READ's 5 bytes in the chain's last five
        // places), so capturing a byte needs no compare of its index.
        self.rd_count.next = bit_cast::<16, 8>(self.p_shift.q.val())
            | (bit_cast::<16, 8>(self.p_flags.q.val()) << 8);
        if self.in_valid.val() & (self.state.q.val() == LinkState::Payload) {
            self.p_m.d.next = (self.p_m.q.val() >> 8) | (self.p_kt.q.val() << 8);
            self.p_kt.d.next = (self.p_kt.q.val() >> 8) | (self.p_nt.q.val() << 8);
            self.p_nt.d.next = (self.p_nt.q.val() >> 8) | (self.p_act.q.val() << 8);
            self.p_act.d.next = (self.p_act.q.val() >> 8) | (self.p_wt.q.val() << 8);
            self.p_wt.d.next = (self.p_wt.q.val() >> 8) | (self.p_out.q.val() << 8);
            self.p_out.d.next = (self.p_out.q.val() >> 8) | (self.p_mult.q.val() << 8);
            self.p_mult.d.next =
                (self.p_mult.q.val() >> 8) | (bit_cast::<16, 8>(self.p_shift.q.val()) << 8);
            self.p_shift.d.next = self.p_flags.q.val();
            self.p_flags.d.next = self.in_data.val();
        }

        // A WRITE word completed last cycle: commit it next cycle (unless it held code 0b10),
        // move on.
        if self.w_pend.q.val() {
            self.s_commit.d.next = self.w_pend_good.q.val() & self.w_go.val();
            self.w_addr.d.next = self.w_addr.q.val() + 1;
            self.w_pend.d.next = false;
        }

        match self.state.q.val() {
            LinkState::WaitSync => {
                self.crc.d.next = self.k_crc_init.val();
                if self.in_valid.val() & (self.in_data.val() == self.k_request_sync.val()) {
                    self.state.d.next = LinkState::Opcode;
                }
            }
            LinkState::Opcode => {
                if self.in_valid.val() {
                    self.op_info.d.next = self.in_data.val() == self.k_op_info.val();
                    self.op_reset.d.next = self.in_data.val() == self.k_op_reset.val();
                    self.op_status.d.next = self.in_data.val() == self.k_op_status.val();
                    self.op_write.d.next = self.in_data.val() == self.k_op_write.val();
                    self.op_read.d.next = self.in_data.val() == self.k_op_read.val();
                    self.op_configure.d.next = self.in_data.val() == self.k_op_configure.val();
                    self.op_run.d.next = self.in_data.val() == self.k_op_run.val();
                    self.state.d.next = LinkState::LenLo;
                }
            }
            LinkState::LenLo => {
                if self.in_valid.val() {
                    self.len.d.next = bit_cast::<16, 8>(self.in_data.val());
                    self.state.d.next = LinkState::LenHi;
                }
            }
            LinkState::LenHi => {
                if self.in_valid.val() {
                    self.len.d.next = self.full_len.val();
                    self.w_hdr.d.next = 1.into();
                    self.remain.d.next = self.full_len.val();
                    self.w_bad.d.next = false;
                    self.w_word_bad.d.next = false;
                    self.w_sel.d.next = 1.into();
                    self.state.d.next = LinkState::Payload;
                    if self.full_len.val() == 0 {
                        self.state.d.next = LinkState::CrcLo;
                    }
                }
            }
            LinkState::Payload => {
                if self.in_valid.val() {
                    if !self.w_hdr.q.val().get_bit(3) {
                        self.w_hdr.d.next = self.w_hdr.q.val() << 1;
                    }
                    self.remain.d.next = self.remain.q.val() - 1;
                    if self.remain.q.val() == 1 {
                        self.state.d.next = LinkState::CrcLo;
                    }
                    if self.op_write.q.val() {
                        // The header's checks are spread over its three bytes, so no cycle
                        // chains more than one add or compare.
                        if self.w_hdr.q.val().get_bit(0) {
                            self.w_is_w.d.next = self.in_data.val() == 0;
                            self.w_is_a.d.next = self.in_data.val() == 1;
                            self.w_data_len.d.next =
                                self.len.q.val() - self.k_write_header_len.val();
                        }
                        if self.w_hdr.q.val().get_bit(1) {
                            self.w_addr.d.next = bit_cast::<16, 8>(self.in_data.val());
                        }
                        if self.w_hdr.q.val().get_bit(2) {
                            self.w_addr.d.next = bit_cast::<16, 32>(self.hdr_addr.val());
                            self.w_range_bad.d.next =
                                bit_cast::<17, 32>(self.hdr_addr.val()) > self.w_room.q.val();
                        }
                        // Data bytes are staged whatever the header said (staging changes no
                        // memory); a word is committed only under a good header.
                        if self.w_hdr.q.val().get_bit(3) {
                            self.s_stage.d.next = true;
                            self.w_word_bad.d.next = self.w_word_bad.q.val() | self.byte_bad.val();
                            self.w_sel.d.next = self.w_sel.q.val() << 1;
                            if self.word_end.val() {
                                self.w_pend.d.next = true;
                                self.w_pend_good.d.next =
                                    !(self.w_word_bad.q.val() | self.byte_bad.val());
                                self.w_bad.d.next = self.w_bad.q.val()
                                    | self.w_word_bad.q.val()
                                    | self.byte_bad.val();
                                self.w_word_bad.d.next = false;
                                self.w_sel.d.next = 1.into();
                            }
                        }
                    }
                }
            }
            LinkState::CrcLo => {
                // The payload is complete: start READ's checks (its end here, its compare in
                // Check; CONFIGURE's run in their own pipeline, above).
                // READ's five payload bytes sit in the last five places of the chain.
                self.r_is_w.d.next = (self.p_out.q.val() >> 8) == 0;
                self.r_is_a.d.next = (self.p_out.q.val() >> 8) == 1;
                self.r_is_r.d.next = (self.p_out.q.val() >> 8) == 2;
                self.r_addr.d.next = self.p_mult.q.val();
                self.r_count.d.next = self.rd_count.val();
                self.r_end_addr.d.next = bit_cast::<32, 16>(self.p_mult.q.val())
                    + bit_cast::<32, 16>(self.rd_count.val());
                if self.in_valid.val() {
                    self.crc_rx.d.next = bit_cast::<16, 8>(self.in_data.val());
                    self.state.d.next = LinkState::CrcHi;
                }
            }
            LinkState::CrcHi => {
                if self.in_valid.val() {
                    self.crc_rx.d.next =
                        self.crc_rx.q.val() | (bit_cast::<16, 8>(self.in_data.val()) << 8);
                    self.state.d.next = LinkState::Check;
                }
            }
            LinkState::Check => {
                // The CRC is final here: the last payload byte was absorbed in CrcLo.
                self.crc_bad.d.next = self.crc.q.val() != self.crc_rx.q.val();
                self.len_bad.d.next = self.len.q.val() != 0;
                if self.op_write.q.val() {
                    // len < 3 as bit tests (not on the carry chain of `len - 3`).
                    self.len_bad.d.next =
                        ((self.len.q.val() >> 2) == 0) & (self.len.q.val().get_bits::<2>(0) != 3);
                }
                if self.op_read.q.val() {
                    self.len_bad.d.next = self.len.q.val() != self.k_read_len.val();
                }
                if self.op_configure.q.val() {
                    self.len_bad.d.next = self.len.q.val() != self.k_configure_len.val();
                }
                self.r_range_bad.d.next =
                    !(self.r_is_w.q.val() | self.r_is_a.q.val() | self.r_is_r.q.val())
                        | self.r_end_over.val();
                self.r_bytes.d.next =
                    bit_cast::<32, 16>(self.r_count.q.val()) << self.r_word_shift.val();
                if self.r_is_w.q.val() {
                    self.r_bytes.d.next =
                        bit_cast::<32, 16>(self.r_count.q.val()) << self.w_word_shift.val();
                }
                if self.r_is_a.q.val() {
                    self.r_bytes.d.next =
                        bit_cast::<32, 16>(self.r_count.q.val()) << self.a_word_shift.val();
                }
                self.state.d.next = LinkState::Decide;
            }
            LinkState::Decide => {
                self.status.d.next = self.k_status_ok.val();
                self.reply_len.d.next = 0.into();
                self.tx_idx.d.next = 0.into();
                self.tx_word.d.next = 0.into();
                self.tx_shift.d.next = 0.into();
                if !self.k_read_strobe_regs.val() {
                    self.r_word_start.next = true;
                }
                self.state.d.next = LinkState::TxSync;
                if self.crc_bad.q.val() {
                    self.status.d.next = self.k_status_bad_crc.val();
                } else if self.op_info.q.val() {
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else {
                        self.reply_len.d.next = self.k_info_len.val();
                    }
                } else if self.op_reset.q.val() {
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else {
                        self.configured.d.next = false;
                        self.last_run.d.next = 0.into();
                    }
                } else if self.op_status.q.val() {
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else {
                        self.reply_len.d.next = self.k_status_len.val();
                        self.snapshot.d.next = self.counter.q.val();
                    }
                } else if self.op_write.q.val() {
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else if !(self.w_is_w.q.val() | self.w_is_a.q.val()) {
                        self.status.d.next = self.k_status_out_of_range.val();
                    } else if self.w_len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else if self.w_no_room.q.val() | self.w_range_bad.q.val() {
                        self.status.d.next = self.k_status_out_of_range.val();
                    } else if self.w_bad.q.val() {
                        self.status.d.next = self.k_status_bad_value.val();
                    }
                } else if self.op_read.q.val() {
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else if self.r_range_bad.q.val() | (self.r_bytes.q.val() > 0xFFFF) {
                        self.status.d.next = self.k_status_out_of_range.val();
                    } else {
                        self.reply_len.d.next = bit_cast::<16, 32>(self.r_bytes.q.val());
                    }
                } else if self.op_configure.q.val() {
                    self.configured.d.next = false;
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else if self.cfg_bad.val() {
                        self.status.d.next = self.k_status_out_of_range.val();
                    } else {
                        self.configured.d.next = true;
                        self.c_m.d.next = self.p_m.q.val();
                        self.c_kt.d.next = self.p_kt.q.val();
                        self.c_nt.d.next = self.p_nt.q.val();
                        self.c_act.d.next = self.p_act.q.val();
                        self.c_wt.d.next = self.p_wt.q.val();
                        self.c_out.d.next = self.p_out.q.val();
                        self.c_mult.d.next = self.p_mult.q.val();
                        self.c_shift.d.next = self.p_shift.q.val();
                        self.c_flags.d.next = self.p_flags.q.val();
                    }
                } else if self.op_run.q.val() {
                    if self.len_bad.q.val() {
                        self.status.d.next = self.k_status_bad_length.val();
                    } else if !self.configured.q.val() {
                        self.status.d.next = self.k_status_not_configured.val();
                    } else if self.k_run_lead.val() {
                        self.state.d.next = LinkState::RunLead;
                    } else {
                        self.state.d.next = LinkState::RunArm;
                    }
                } else {
                    self.status.d.next = self.k_status_unknown.val();
                }
            }
            LinkState::RunLead => {
                self.state.d.next = LinkState::RunArm;
            }
            LinkState::RunArm => {
                self.state.d.next = LinkState::RunStart;
            }
            LinkState::RunStart => {
                self.start.next = true;
                self.state.d.next = LinkState::RunWait;
            }
            LinkState::RunWait => {
                if self.done.val() {
                    self.last_run.d.next = self.run_cycles.val() + 1;
                    self.reply_len.d.next = self.k_run_reply_len.val();
                    self.state.d.next = LinkState::TxSync;
                }
            }
            LinkState::TxSync => {
                self.crc.d.next = self.k_crc_init.val();
                if self.out_ready.val() {
                    self.state.d.next = LinkState::TxStatus;
                }
            }
            LinkState::TxStatus => {
                if self.out_ready.val() {
                    self.state.d.next = LinkState::TxLenLo;
                }
            }
            LinkState::TxLenLo => {
                if self.out_ready.val() {
                    self.state.d.next = LinkState::TxLenHi;
                }
            }
            LinkState::TxLenHi => {
                if self.out_ready.val() {
                    self.tx_bytes.d.next = self.tx_next.q.val();
                    self.tx_word.d.next = self.tx_word.q.val() + 1;
                    self.state.d.next = LinkState::TxPayload;
                    if self.op_read.q.val() {
                        self.state.d.next = LinkState::TxFetch;
                    }
                    if self.reply_empty.q.val() {
                        self.state.d.next = LinkState::TxCrcLo;
                    }
                }
            }
            LinkState::TxFetch => {
                if self.fetch_ready.val() {
                    self.state.d.next = LinkState::TxPayload;
                }
            }
            LinkState::TxPayload => {
                if self.out_ready.val() {
                    self.tx_idx.d.next = self.tx_idx.q.val() + 1;
                    if self.op_read.q.val() {
                        if self.r_cur_last.q.val() {
                            self.state.d.next = LinkState::TxFetch;
                        }
                    } else {
                        self.tx_shift.d.next = self.tx_shift.q.val() + 8;
                        self.tx_bytes.d.next = self.tx_bytes.q.val() >> 8;
                        if self.tx_shift.q.val() == 24 {
                            self.tx_bytes.d.next = self.tx_next.q.val();
                            self.tx_word.d.next = self.tx_word.q.val() + 1;
                        }
                    }
                    if self.tx_idx.q.val() == self.reply_last.q.val() {
                        self.state.d.next = LinkState::TxCrcLo;
                    }
                }
            }
            LinkState::TxCrcLo => {
                if self.out_ready.val() & !self.tx_pend.q.val() {
                    self.state.d.next = LinkState::TxCrcHi;
                }
            }
            LinkState::TxCrcHi => {
                if self.out_ready.val() {
                    self.state.d.next = LinkState::WaitSync;
                }
            }
            _ => {
                self.state.d.next = LinkState::WaitSync;
            }
        }
        if self.tx_pend.q.val() | self.rx_pend.q.val() {
            self.crc.d.next = self.crc_next.val();
        }
        // A READ reply's first load position (set in Decide), and the next word's after a
        // word's last byte is loaded.
        if self.k_read_strobe_regs.val() & self.at_decide.q.val() {
            self.r_word_start.next = true;
        }
        if self.r_word_start.val() {
            self.r_end.d.next = self.r_first_last.val();
            self.r_weight_pos.d.next = self.r_weight_start.val();
            self.r_act_pos.d.next = self.r_act_start.val();
            self.r_result_pos0.d.next = self.r_result_start.val();
            self.r_result_pos1.d.next = 0.into();
            self.r_result_pos2.d.next = 0.into();
            self.r_result_pos3.d.next = 0.into();
        }
        // A frame that stops arriving is answered TRUNCATED. Outside a frame the count is
        // held at zero, so it starts from zero at every opcode byte.
        self.receiving.next = (self.state.q.val() == LinkState::Opcode)
            | (self.state.q.val() == LinkState::LenLo)
            | (self.state.q.val() == LinkState::LenHi)
            | (self.state.q.val() == LinkState::Payload)
            | (self.state.q.val() == LinkState::CrcLo)
            | (self.state.q.val() == LinkState::CrcHi);
        self.idle.d.next = self.idle.q.val() + 1;
        self.idle_hit.d.next = self.idle.q.val() == self.idle_before_last.val();
        if self.in_valid.val() | !self.receiving.val() {
            self.idle.d.next = 0.into();
            self.idle_hit.d.next = false;
        }
        if self.receiving.val() & !self.in_valid.val() & self.idle_hit.q.val() {
            self.status.d.next = self.k_status_truncated.val();
            self.reply_len.d.next = 0.into();
            self.state.d.next = LinkState::TxSync;
        }
        if self.reset.val() {
            self.state.d.next = LinkState::WaitSync;
            self.configured.d.next = false;
            self.w_pend.d.next = false;
        }
        // The read address's next value, for copies kept in the core (see `FanoutRegister`).
        self.host_rd_addr_next.next = self.r_addr.d.val();
        // RunLead (if used) always moves on to RunArm and RunArm to RunStart, unless reset: a
        // register's decode, not the next-state logic.
        self.start_next.next = (self.state.q.val() == LinkState::RunArm) & !self.reset.val();
        self.start_next2.next = (self.state.q.val() == LinkState::RunLead) & !self.reset.val();
        // The load terms of the next cycle, from the next-state values (final here, after
        // the reset above): TxFetch is ready in its first cycle, or with registered host
        // reads in its second (this cycle was TxFetch too).
        self.rd_first.d.next = (self.state.d.val() == LinkState::TxFetch)
            & (!self.k_fetch_wait.val() | (self.state.q.val() == LinkState::TxFetch));
        self.rd_armed.d.next = (self.state.d.val() == LinkState::TxPayload)
            & self.op_read.d.val()
            & !self.r_cur_last.d.val();
        self.at_decide.d.next = self.state.d.val() == LinkState::Decide;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::{settle, tick};
    use proptest::prelude::*;

    /// Sends `bytes` one per cycle after `gap` idle cycles each, then waits; returns the
    /// cycle (counted from the last byte's) on which the first reply byte appears, and that
    /// reply's status byte.
    fn first_reply_after(cfg: &Config, bytes: &[u8], gap: usize) -> (usize, u8) {
        let mut link = HostLink::new(cfg);
        link.connect_all();
        link.out_ready.next = false;
        for &b in bytes {
            for _ in 0..gap {
                link.in_valid.next = false;
                tick(&mut link, |l| &mut l.clock);
                assert!(
                    !link.out_valid.val(),
                    "a reply while the frame still arrives"
                );
            }
            link.in_valid.next = true;
            link.in_data.next = (b as u64).into();
            settle(&mut link);
            assert!(link.in_ready.val(), "the link refused a frame byte");
            tick(&mut link, |l| &mut l.clock);
        }
        link.in_valid.next = false;
        for cycle in 1..4 * cfg.frame_timeout_cycles as usize {
            if link.out_valid.val() {
                assert_eq!(link.out_data.val().index() as u8, protocol::REPLY_SYNC);
                link.out_ready.next = true;
                tick(&mut link, |l| &mut l.clock);
                return (cycle, link.out_data.val().index() as u8);
            }
            tick(&mut link, |l| &mut l.clock);
        }
        panic!("no reply");
    }

    #[test]
    fn read_address_next_is_the_next_cycles_read_address() {
        // A READ of 3 result words (16 bytes each at 4 columns) from word 5, the reply taken
        // one byte per cycle: every cycle's `host_rd_addr_next` must be the next cycle's read
        // address (`r_addr`), which the core's copies of it rely on.
        for registered in [false, true] {
            let cfg = Config {
                registered_host_reads: registered,
                ..Config::new(4, 4).unwrap()
            };
            let mut link = HostLink::new(&cfg);
            link.connect_all();
            link.out_ready.next = true;
            let request = protocol::frame(
                protocol::REQUEST_SYNC,
                Opcode::Read as u8,
                &[protocol::Memory::Results as u8, 5, 0, 3, 0],
            );
            let mut addresses = std::collections::BTreeSet::new();
            for cycle in 0..400 {
                link.in_valid.next = cycle < request.len();
                if cycle < request.len() {
                    link.in_data.next = (request[cycle] as u64).into();
                }
                settle(&mut link);
                let next = link.host_rd_addr_next.val();
                tick(&mut link, |l| &mut l.clock);
                assert_eq!(link.r_addr.q.val(), next, "cycle {cycle}");
                addresses.insert(link.r_addr.q.val().index());
            }
            assert!(
                [5, 6, 7].iter().all(|a| addresses.contains(a)),
                "the READ's words: {addresses:?}"
            );
        }
    }

    #[test]
    fn registered_read_strobe_gives_the_same_strobes_every_cycle() {
        // READs of each memory, the reply taken when `out_ready` (high two cycles in three):
        // a link with `registered_read_strobe` must drive the core exactly as one without,
        // cycle for cycle, with or without registered host reads.
        for registered in [false, true] {
            let links: Vec<HostLink> = [false, true]
                .into_iter()
                .map(|strobe| {
                    let cfg = Config {
                        registered_host_reads: registered,
                        registered_read_strobe: strobe,
                        ..Config::new(4, 4).unwrap()
                    };
                    let mut link = HostLink::new(&cfg);
                    link.connect_all();
                    link
                })
                .collect();
            let mut links = links;
            let requests: Vec<Vec<u8>> = [
                protocol::Memory::Results,
                protocol::Memory::Weights,
                protocol::Memory::Activations,
            ]
            .into_iter()
            .map(|mem| {
                protocol::frame(
                    protocol::REQUEST_SYNC,
                    Opcode::Read as u8,
                    &[mem as u8, 2, 0, 3, 0],
                )
            })
            .collect();
            let mut loads = 0;
            for cycle in 0..3000 {
                let mut seen = vec![];
                for link in links.iter_mut() {
                    link.out_ready.next = cycle % 3 != 0;
                    // Request `k` from cycle 1000 k, a byte every 40 cycles; its reply ends
                    // before the next request starts.
                    let byte = (cycle % 40 == 0)
                        .then(|| requests[cycle / 1000].get(cycle % 1000 / 40))
                        .flatten();
                    link.in_valid.next = byte.is_some();
                    link.in_data.next = (*byte.unwrap_or(&0) as u64).into();
                    settle(link);
                    let mut v = vec![
                        u64::from(link.host_rd_load.val()),
                        u64::from(link.host_rd_first.val()),
                        link.host_rd_weight_pos.val().to_u64(),
                        link.host_rd_act_pos.val().to_u64(),
                        link.host_rd_addr_next.val().to_u64(),
                        u64::from(link.out_valid.val()),
                        link.out_data.val().to_u64(),
                    ];
                    v.extend(link.host_rd_result_pos.iter().map(|p| p.val().to_u64()));
                    seen.push(v);
                    tick(link, |l| &mut l.clock);
                }
                assert_eq!(
                    seen[0], seen[1],
                    "cycle {cycle}, registered reads {registered}"
                );
                loads += seen[0][0];
            }
            // Three replies of 3 words each: 48 result bytes, 3 weight and 12 activation
            // bytes, each loaded once.
            assert_eq!(loads, 48 + 3 + 12, "registered reads {registered}");
        }
    }

    #[test]
    fn start_next_is_the_next_cycles_start_and_the_layer_is_set_before() {
        // CONFIGURE then RUN, the run finished by `done` a while after `start`: every cycle's
        // `start_next` must be the next cycle's `start` and, with a staged code bus,
        // `start_next2` the next cycle's `start_next` (the core's copies rely on them), and
        // the layer fields must hold the layer from two cycles before `start` (one without
        // the staged bus) until `done` (the controller's registers follow them while idle,
        // and the weight memories read up to two cycles ahead). Without the staged bus no
        // RUN passes `RunLead`: `start_next2` stays low.
        for staged in [false, true] {
            let cfg = Config {
                registered_weight_reads: staged,
                registered_code_bus: staged,
                ..Config::new(4, 4).unwrap()
            };
            start_next_run(&cfg, staged);
        }
    }

    fn start_next_run(cfg: &Config, staged: bool) {
        let mut link = HostLink::new(cfg);
        link.connect_all();
        link.out_ready.next = true;
        // m, K-tiles, N-tiles, activation, weight and output bases, multiplier.
        let fields = [3u16, 1, 2, 5, 7, 9, 1];
        let mut layer = vec![];
        for field in fields {
            layer.extend(field.to_le_bytes());
        }
        layer.extend([0, 0]);
        let mut bytes = protocol::frame(protocol::REQUEST_SYNC, Opcode::Configure as u8, &layer);
        bytes.extend(protocol::frame(
            protocol::REQUEST_SYNC,
            Opcode::Run as u8,
            &[],
        ));
        let layer_of = |link: &HostLink| {
            [
                &link.m,
                &link.k_tiles,
                &link.n_tiles,
                &link.act_base,
                &link.wt_base,
                &link.out_base,
            ]
            .map(|field| field.val().index() as u16)
        };
        let (mut sent, mut starts, mut since_start) = (0, 0, None);
        let mut layers_checked = 0;
        for cycle in 0..2000 {
            link.in_valid.next = sent < bytes.len();
            if sent < bytes.len() {
                link.in_data.next = (bytes[sent] as u64).into();
            }
            link.done.next = since_start == Some(20);
            settle(&mut link);
            if link.in_valid.val() && link.in_ready.val() {
                sent += 1;
            }
            let (next, next2) = (link.start_next.val(), link.start_next2.val());
            if next || next2 || since_start.is_some_and(|c| c <= 20) {
                assert_eq!(layer_of(&link), fields[..6], "cycle {cycle}");
                layers_checked += 1;
            }
            tick(&mut link, |l| &mut l.clock);
            assert_eq!(link.start.val(), next, "cycle {cycle}");
            if staged {
                assert_eq!(link.start_next.val(), next2, "cycle {cycle}");
            } else {
                assert!(
                    !next2,
                    "start_next2 without a staged code bus, cycle {cycle}"
                );
            }
            since_start = since_start.map(|c| c + 1);
            if link.start.val() {
                starts += 1;
                since_start = Some(0);
            }
        }
        assert_eq!(starts, 1, "staged {staged}");
        // The one or two cycles before `start`, `start`'s own and the 20 until `done`.
        assert_eq!(layers_checked, 22 + usize::from(staged), "staged {staged}");
    }

    /// CONFIGURE's acceptance as the protocol defines it, in 64-bit sums: the rule the link's
    /// split 17-bit checks must give exactly.
    fn layer_is_valid(cfg: &Config, f: &[u16; 7], shift: u8, flags: u8) -> bool {
        let [m, kt, nt, act, wt, out, _mult] = f.map(u64::from);
        let int8_out = flags & protocol::FLAG_INT8_OUT != 0;
        let (act_end, out_end) = (act + m * kt, out + m * nt);
        let out_depth = if int8_out {
            cfg.act_depth
        } else {
            cfg.result_depth
        } as u64;
        m != 0
            && m <= cfg.max_m as u64
            && kt != 0
            && nt != 0
            && act_end <= cfg.act_depth as u64
            && wt + nt * kt * cfg.rows as u64 <= cfg.weight_depth as u64
            && shift <= protocol::MAX_SHIFT
            && flags & !(protocol::FLAG_INT8_OUT | protocol::FLAG_RELU) == 0
            && (int8_out || flags & protocol::FLAG_RELU == 0)
            && (!int8_out || cfg.rows == cfg.cols)
            && out_end <= out_depth
            && !(int8_out && out < act_end && act < out_end)
    }

    /// Field values around every limit of `cfg` and of 16 and 17 bits, or any.
    fn field(cfg: &Config) -> impl Strategy<Value = u16> {
        let mut near = vec![0u64, 1, 2, 3, 255, 256, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF];
        for limit in [
            cfg.act_depth,
            cfg.weight_depth,
            cfg.result_depth,
            cfg.max_m,
            cfg.weight_depth / cfg.rows,
        ] {
            let limit = limit as u64;
            near.extend([
                limit.saturating_sub(2),
                limit - 1,
                limit,
                limit + 1,
                limit / 2,
            ]);
        }
        let near: Vec<u16> = near
            .into_iter()
            .filter_map(|v| u16::try_from(v).ok())
            .collect();
        prop_oneof![proptest::sample::select(near), any::<u16>(), 0u16..64]
    }

    fn configure_status(cfg: &Config, f: &[u16; 7], shift: u8, flags: u8) -> u8 {
        let mut payload = vec![];
        for v in f {
            payload.extend(v.to_le_bytes());
        }
        payload.extend([shift, flags]);
        let bytes = protocol::frame(protocol::REQUEST_SYNC, Opcode::Configure as u8, &payload);
        // Bytes on consecutive cycles: every stage of the checks is final just in time.
        first_reply_after(cfg, &bytes, 0).1
    }

    /// Checks one CONFIGURE on `cfg` in both forms of the region checks.
    fn check_configure(cfg: &Config, f: [u16; 7], shift: u8, flags: u8) {
        let want = if layer_is_valid(cfg, &f, shift, flags) {
            Status::Ok
        } else {
            Status::OutOfRange
        };
        for lut_range_checks in [false, true] {
            let cfg = Config {
                lut_range_checks,
                ..cfg.clone()
            };
            assert_eq!(
                configure_status(&cfg, &f, shift, flags),
                want as u8,
                "fields {f:?}, shift {shift}, flags {flags}, lut_range_checks {lut_range_checks}"
            );
        }
    }

    /// A small device (limits below the 16-bit fields, so bases can be past a memory) and
    /// one with every memory at 65536 words (products past 17 bits while the other checks
    /// pass).
    fn configure_configs() -> [Config; 3] {
        let base = Config::new(4, 4).unwrap();
        [
            Config {
                weight_depth: 64,
                act_depth: 32,
                result_depth: 16,
                max_m: 8,
                ..base.clone()
            },
            Config {
                weight_depth: 65536,
                act_depth: 65536,
                result_depth: 65536,
                max_m: 65536,
                ..base.clone()
            },
            // No limit a power of two: the carry-chain form even with `lut_range_checks`.
            Config {
                weight_depth: 52,
                act_depth: 24,
                result_depth: 20,
                max_m: 6,
                ..base
            },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
        #[test]
        fn configure_checks_match_the_rule_on_a_small_device(
            f in proptest::array::uniform7(field(&configure_configs()[0])),
            shift in 0u8..34,
            flags in 0u8..4,
        ) {
            check_configure(&configure_configs()[0], f, shift, flags);
        }

        #[test]
        fn configure_checks_match_the_rule_on_a_large_device(
            f in proptest::array::uniform7(field(&configure_configs()[1])),
            shift in 0u8..34,
            flags in 0u8..4,
        ) {
            check_configure(&configure_configs()[1], f, shift, flags);
        }

        #[test]
        fn configure_checks_match_the_rule_on_a_device_of_odd_depths(
            f in proptest::array::uniform7(field(&configure_configs()[2])),
            shift in 0u8..34,
            flags in 0u8..4,
        ) {
            check_configure(&configure_configs()[2], f, shift, flags);
        }
    }

    #[test]
    fn configure_checks_at_the_edges_of_each_region() {
        // (m, kt, nt, act, wt, out, mult), shift, flags: the products past 17 bits, a base
        // past its memory, regions ending at and one past a memory, int8 outputs touching
        // and overlapping the inputs, on both devices.
        let [small, large, _] = configure_configs();
        let int8 = protocol::FLAG_INT8_OUT;
        for (cfg, f, flags) in [
            (&small, [8, 4, 1, 0, 0, 0, 1], 0),
            (&small, [8, 4, 1, 1, 0, 0, 1], 0),
            (&small, [1, 1, 1, 40, 0, 0, 1], 0),
            (&small, [1, 4, 4, 0, 0, 0, 1], 0),
            (&small, [1, 4, 4, 0, 1, 0, 1], 0),
            (&small, [2, 1, 8, 0, 0, 0, 1], 0),
            (&small, [2, 1, 8, 0, 0, 1, 1], 0),
            (&small, [2, 1, 8, 2, 0, 16, 1], int8),
            (&small, [2, 1, 8, 2, 0, 17, 1], int8),
            (&small, [4, 2, 1, 0, 0, 8, 1], int8),
            (&small, [4, 2, 1, 0, 0, 7, 1], int8),
            (&small, [4, 1, 2, 8, 0, 0, 1], int8),
            (&small, [4, 1, 2, 7, 0, 0, 1], int8),
            (&large, [65535, 2, 1, 0, 0, 0, 1], 0),
            (&large, [32768, 2, 1, 0, 0, 0, 1], 0),
            (&large, [32768, 2, 1, 1, 0, 0, 1], 0),
            (&large, [1, 16384, 1, 0, 0, 0, 1], 0),
            (&large, [1, 16384, 1, 0, 1, 0, 1], 0),
            (&large, [2, 1, 32768, 0, 0, 0, 1], 0),
            (&large, [2, 1, 32769, 0, 0, 0, 1], 0),
            (&large, [65535, 3, 1, 0, 0, 0, 1], 0),
            (&large, [4096, 64, 1, 0, 0, 0, 1], 0),
            (&large, [1, 512, 512, 0, 0, 0, 1], 0),
            (&large, [512, 1, 512, 0, 0, 0, 1], int8),
            (&large, [256, 256, 1, 0, 0, 0, 1], 0),
            (&large, [256, 257, 1, 0, 0, 0, 1], 0),
            (&large, [256, 1, 256, 0, 0, 0, 1], int8),
            (&large, [256, 1, 257, 0, 0, 0, 1], int8),
            (&large, [256, 1, 1, 0, 0, 256, 1], int8),
            (&large, [256, 1, 1, 0, 0, 255, 1], int8),
            (&large, [256, 1, 1, 300, 0, 44, 1], int8),
            (&large, [256, 1, 1, 300, 0, 45, 1], int8),
        ] {
            check_configure(cfg, f, 0, flags);
        }
        // Both outcomes are among the cases.
        assert!(layer_is_valid(&small, &[8, 4, 1, 0, 0, 0, 1], 0, 0));
        assert!(!layer_is_valid(&large, &[65535, 2, 1, 0, 0, 0, 1], 0, 0));
    }

    #[test]
    fn a_frame_that_stops_is_answered_truncated_after_exactly_the_timeout() {
        let cfg = Config {
            frame_timeout_cycles: 20,
            ..Config::new(4, 4).unwrap()
        };
        let t = cfg.frame_timeout_cycles as usize;
        // The sync byte, the STATUS opcode and half its length; then nothing. The link counts
        // `t` cycles without a byte and starts the reply on the next.
        let cut = [protocol::REQUEST_SYNC, Opcode::Status as u8, 0];
        assert_eq!(
            first_reply_after(&cfg, &cut, 0),
            (t + 1, Status::Truncated as u8)
        );
        // Gaps one cycle short of the timeout keep the frame alive, and the same count runs
        // after its last byte.
        assert_eq!(
            first_reply_after(&cfg, &cut, t - 1),
            (t + 1, Status::Truncated as u8)
        );
        // A whole frame with such gaps is answered normally.
        let mut status = cut.to_vec();
        status.push(0);
        let crc = protocol::crc16(&status[1..]);
        status.extend_from_slice(&crc.to_le_bytes());
        let (_, code) = first_reply_after(&cfg, &status, t - 1);
        assert_eq!(code, Status::Ok as u8);
    }
}
