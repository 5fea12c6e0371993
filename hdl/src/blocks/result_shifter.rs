//! `ResultShifter`: the bytes of a result word, one per load, from a chain of lane registers.
//!
//! A READ of results sends each word's bytes in order: lane 0's four (low byte first), then
//! lane 1's, and so on. Picking them with a multiplexer over every lane
//! ([`ReadSelect`](super::read_select::ReadSelect)) brings all `32 * cols` bits of the word to
//! one place, which at 32 columns is the largest group of congested wires on the ECP5 (docs/
//! boards.md, "Where the congestion is"). This block keeps the word in one 32-bit register per
//! lane instead and moves it a byte towards lane 0 per load, so every wire runs between
//! neighbouring lanes and only lane 0's low byte leaves the block:
//!
//! ```text
//!   words[0]   words[1]         words[c-1]        (each lane's registered RAM word)
//!      |          |                  |
//!   [lane 0] <- [lane 1] <- ... <- [lane c-1] <- 0   one byte per load (`chain[j] >> 8`,
//!      |                                             topped with lane j+1's low byte)
//!   next_byte = first ? words[0][7:0] : lane 0's [7:0]
//! ```
//!
//! The load that takes a word's first byte (`first`) takes it from `words[0]`; each later
//! load takes the byte after it. `next_byte` is what the load takes (combinational), so a
//! register behind it sees the same bytes, on the same loads, as behind the multiplexer.
//!
//! The chain moves a cycle *after* each load, from registered copies of `load` and
//! `load & first` (one per lane, each driving only its lane's 32 flip-flops), so the link's
//! load decision reaches two small registers per lane rather than every flip-flop of the
//! chain. Between a load and that move the chain lags the stream by one byte, and
//! `next_byte` takes the byte after the one lane 0 shows (or, after a first load, byte 1 of
//! `words[0]`). There is at most one load per cycle and one move per cycle, so the lag is
//! never more than one. `words` must hold from a word's first load until the cycle after it
//! (the core's registered RAM words hold until after the word's last byte).

use crate::blocks::fanout::FanoutRegister;
use crate::config::ACC_BITS;
use rust_hdl::prelude::*;

/// The chain of lane registers a READ of results takes its bytes from.
#[derive(LogicBlock)]
pub struct ResultShifter {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Each lane's result word, held from the word's first load until the cycle after it.
    pub words: Vec<Signal<In, Bits<ACC_BITS>>>,
    /// A byte is loaded this cycle (`next_byte` is taken; the chain moves on next cycle).
    pub load: Signal<In, bool>,
    /// The load takes a word's first byte (from `words`, which also fill the chain).
    pub first: Signal<In, bool>,
    /// The byte a load this cycle takes.
    pub next_byte: Signal<Out, Bits<8>>,
    chain: Vec<DFF<Bits<ACC_BITS>>>,
    // Per lane: the previous cycle loaded a byte (the chain moves now), and that load was a
    // word's first (the chain fills from `words` now).
    moves: FanoutRegister<bool>,
    fills: FanoutRegister<bool>,
    _lanes: usize,
}

impl ResultShifter {
    /// A chain of `lanes` lanes (at least one).
    pub fn new(lanes: usize) -> Self {
        assert!(lanes >= 1, "a result shifter needs at least one lane");
        Self {
            clock: Default::default(),
            words: (0..lanes).map(|_| Default::default()).collect(),
            load: Default::default(),
            first: Default::default(),
            next_byte: Default::default(),
            chain: (0..lanes).map(|_| Default::default()).collect(),
            moves: FanoutRegister::new(lanes),
            fills: FanoutRegister::new(lanes),
            _lanes: lanes,
        }
    }
}

impl Logic for ResultShifter {
    #[hdl_gen]
    fn update(&mut self) {
        self.moves.clock.next = self.clock.val();
        self.fills.clock.next = self.clock.val();
        self.moves.d.next = self.load.val();
        self.fills.d.next = self.load.val() & self.first.val();
        // The byte lane 0 shows, or the one after it while the chain lags by one.
        self.next_byte.next = self.chain[0].q.val().get_bits::<8>(0);
        if self.moves.q[0].val() {
            self.next_byte.next = self.chain[0].q.val().get_bits::<8>(8);
            if self.fills.q[0].val() {
                self.next_byte.next = self.words[0].val().get_bits::<8>(8);
            }
        }
        if self.first.val() {
            self.next_byte.next = self.words[0].val().get_bits::<8>(0);
        }
        // Every lane moves a byte down; the last takes zeros at the top.
        for j in 0..self._lanes {
            self.chain[j].clock.next = self.clock.val();
            self.chain[j].d.next = self.chain[j].q.val();
            if self.moves.q[j].val() {
                self.chain[j].d.next = self.chain[j].q.val() >> 8;
                if self.fills.q[j].val() {
                    self.chain[j].d.next = self.words[j].val() >> 8;
                }
            }
        }
        // ... and every lane but the last takes its neighbour's low byte at the top.
        for j in 1..self._lanes {
            if self.moves.q[j - 1].val() {
                // (`x << 24` keeps exactly `x`'s low byte, at the top.)
                self.chain[j - 1].d.next =
                    (self.chain[j - 1].q.val() >> 8) | (self.chain[j].q.val() << 24);
                if self.fills.q[j - 1].val() {
                    self.chain[j - 1].d.next =
                        (self.words[j - 1].val() >> 8) | (self.words[j].val() << 24);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::testing::{settle, tick};

    /// Loads every byte of each word in turn (first loads on the word boundaries), with
    /// `idle(n)` idle cycles before load `n`, and returns what `next_byte` showed at each load.
    fn stream_with(lanes: usize, words: &[Vec<u32>], idle: impl Fn(usize) -> usize) -> Vec<u8> {
        let mut s = ResultShifter::new(lanes);
        s.connect_all();
        let mut out = Vec::new();
        let mut n = 0;
        for word in words {
            for (j, w) in word.iter().enumerate() {
                s.words[j].next = (*w as u64).into();
            }
            for b in 0..4 * lanes {
                s.load.next = false;
                s.first.next = false;
                for _ in 0..idle(n) {
                    tick(&mut s, |s| &mut s.clock);
                }
                s.load.next = true;
                s.first.next = b == 0;
                settle(&mut s);
                out.push(s.next_byte.val().to_u64() as u8);
                tick(&mut s, |s| &mut s.clock);
                n += 1;
            }
            // The RAM moves on to the next word once the last byte is loaded: the inputs
            // change under the chain.
            for w in s.words.iter_mut() {
                w.next = 0xDEAD_BEEFu64.into();
            }
        }
        out
    }

    /// [`stream_with`] with a load every cycle.
    fn stream(lanes: usize, words: &[Vec<u32>]) -> Vec<u8> {
        stream_with(lanes, words, |_| 0)
    }

    fn bytes(words: &[Vec<u32>]) -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| w.iter().flat_map(|v| v.to_le_bytes()))
            .collect()
    }

    #[test]
    fn sends_each_words_bytes_lane_by_lane_low_byte_first() {
        for lanes in [1, 2, 4, 32] {
            let words: Vec<Vec<u32>> = (0..3u32)
                .map(|w| {
                    (0..lanes as u32)
                        .map(|j| 0x0403_0201u32.wrapping_mul(j + 1) ^ (w << 28) ^ 0x8000_0080)
                        .collect()
                })
                .collect();
            assert_eq!(stream(lanes, &words), bytes(&words), "{lanes} lanes");
        }
    }

    #[test]
    fn sends_extreme_values_exactly() {
        let words = vec![
            vec![i32::MIN as u32, i32::MAX as u32, 0, u32::MAX],
            vec![0xFF, 0xFF00, 0xFF_0000, 0xFF00_0000],
        ];
        assert_eq!(stream(4, &words), bytes(&words));
    }

    #[test]
    fn any_pattern_of_idle_cycles_sends_the_same_bytes() {
        let words: Vec<Vec<u32>> = (0..4u32)
            .map(|w| {
                (0..4u32)
                    .map(|j| 0x9E37_79B9u32.wrapping_mul(w * 4 + j + 1))
                    .collect()
            })
            .collect();
        let patterns: [fn(usize) -> usize; 4] = [
            |_| 1,
            |n| n % 2,
            |n| (n % 3 == 0) as usize * 2,
            |n| (n * 7 + 3) % 5,
        ];
        for (p, idle) in patterns.into_iter().enumerate() {
            assert_eq!(stream_with(4, &words, idle), bytes(&words), "pattern {p}");
        }
    }

    #[test]
    fn holds_between_loads() {
        let mut s = ResultShifter::new(2);
        s.connect_all();
        s.words[0].next = 0x4433_2211u64.into();
        s.words[1].next = 0x8877_6655u64.into();
        s.load.next = true;
        s.first.next = true;
        settle(&mut s);
        assert_eq!(s.next_byte.val().to_u64(), 0x11);
        tick(&mut s, |s| &mut s.clock);
        s.load.next = false;
        s.first.next = false;
        for _ in 0..3 {
            tick(&mut s, |s| &mut s.clock);
            assert_eq!(s.next_byte.val().to_u64(), 0x22, "no load, no move");
        }
        s.load.next = true;
        tick(&mut s, |s| &mut s.clock);
        assert_eq!(s.next_byte.val().to_u64(), 0x33);
    }

    #[test]
    #[should_panic(expected = "at least one lane")]
    fn refuses_an_empty_chain() {
        let _ = ResultShifter::new(0);
    }
}
