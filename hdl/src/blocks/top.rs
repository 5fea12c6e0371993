//! `Top`: the whole accelerator behind its host byte stream, with plain port names.
//!
//! ```text
//!  in_data/in_valid/in_ready  -->  HostLink  <-->  Core (array, memories, lanes)
//!  out_data/out_valid/out_ready <--
//! ```
//! On a board a UART drives these ports; the simulators drive them directly.

use super::core::Core;
use super::host_link::HostLink;
use crate::config::Config;
use rust_hdl::prelude::*;

/// The top-level.
#[derive(LogicBlock)]
pub struct Top {
    /// Design clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset: abandons frames and runs (memories keep their contents).
    pub reset: Signal<In, bool>,
    /// Host to device byte.
    pub in_data: Signal<In, Bits<8>>,
    /// `in_data` valid.
    pub in_valid: Signal<In, bool>,
    /// The device takes `in_data` this cycle.
    pub in_ready: Signal<Out, bool>,
    /// Device to host byte.
    pub out_data: Signal<Out, Bits<8>>,
    /// `out_data` valid.
    pub out_valid: Signal<Out, bool>,
    /// The host takes `out_data` this cycle.
    pub out_ready: Signal<In, bool>,
    link: HostLink,
    core: Core,
}

impl Top {
    /// The accelerator for `cfg`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            clock: Default::default(),
            reset: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            link: HostLink::new(cfg),
            core: Core::new(cfg),
        }
    }
}

impl Logic for Top {
    #[hdl_gen]
    fn update(&mut self) {
        self.link.clock.next = self.clock.val();
        self.core.clock.next = self.clock.val();
        self.link.reset.next = self.reset.val();
        self.core.reset.next = self.reset.val();
        self.link.in_data.next = self.in_data.val();
        self.link.in_valid.next = self.in_valid.val();
        self.in_ready.next = self.link.in_ready.val();
        self.out_data.next = self.link.out_data.val();
        self.out_valid.next = self.link.out_valid.val();
        self.link.out_ready.next = self.out_ready.val();
        self.core.start.next = self.link.start.val();
        self.core.start_next.next = self.link.start_next.val();
        self.core.start_next2.next = self.link.start_next2.val();
        self.core.m.next = self.link.m.val();
        self.core.k_tiles.next = self.link.k_tiles.val();
        self.core.n_tiles.next = self.link.n_tiles.val();
        self.core.act_base.next = self.link.act_base.val();
        self.core.wt_base.next = self.link.wt_base.val();
        self.core.out_base.next = self.link.out_base.val();
        self.core.mult.next = self.link.mult.val();
        self.core.shift.next = self.link.shift.val();
        self.core.int8_out.next = self.link.int8_out.val();
        self.core.relu.next = self.link.relu.val();
        self.link.busy.next = self.core.busy.val();
        self.link.done.next = self.core.done.val();
        self.link.run_cycles.next = self.core.run_cycles.val();
        self.core.host_rd_addr_next.next = self.link.host_rd_addr_next.val();
        self.core.host_rd_weight_pos.next = self.link.host_rd_weight_pos.val();
        self.core.host_rd_act_pos.next = self.link.host_rd_act_pos.val();
        for k in 0..4 {
            self.core.host_rd_result_pos[k].next = self.link.host_rd_result_pos[k].val();
        }
        self.core.host_rd_load.next = self.link.host_rd_load.val();
        self.core.host_rd_first.next = self.link.host_rd_first.val();
        self.core.host_rd_results.next = self.link.host_rd_results.val();
        self.link.host_rd_byte.next = self.core.host_rd_byte.val();
        self.core.host_stage.next = self.link.host_stage.val();
        self.core.host_commit.next = self.link.host_commit.val();
        self.core.host_wr_acts.next = self.link.host_wr_acts.val();
        self.core.host_wr_addr.next = self.link.host_wr_addr.val();
        self.core.host_wr_byte.next = self.link.host_wr_byte.val();
        self.core.host_wr_sel.next = self.link.host_wr_sel.val();
    }
}
