//! Pin constraint files written from a board definition: `.pcf` (iCE40, nextpnr-ice40) and
//! `.lpf` (ECP5, nextpnr-ecp5).
//!
//! Only pin locations and I/O standards are written: the clock constraint is given to nextpnr
//! with `--freq` (an `.lpf` `FREQUENCY` line would override it).

use crate::board::{Board, Family};

/// File extension of the constraint file of `family`.
pub fn extension(family: Family) -> &'static str {
    match family {
        Family::Ice40 => "pcf",
        Family::Ecp5 => "lpf",
    }
}

/// The constraint file of `board`, for its `board` top module.
pub fn constraints(board: &Board) -> String {
    let mut s = format!(
        "# {} ({}): pins of the trimac board top\n",
        board.title, board.part
    );
    for p in board.pins() {
        match board.family {
            Family::Ice40 => s.push_str(&format!("set_io {} {}\n", p.port, p.site)),
            Family::Ecp5 => {
                s.push_str(&format!(
                    "LOCATE COMP \"{}\" SITE \"{}\";\n",
                    p.port, p.site
                ));
                if !p.attrs.is_empty() {
                    s.push_str(&format!("IOBUF PORT \"{}\" {};\n", p.port, p.attrs));
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::board;

    #[test]
    fn icebreaker_pcf_and_ulx3s_lpf() {
        let pcf = constraints(board("icebreaker").unwrap());
        assert!(pcf.contains("set_io clk_osc 35\n"));
        assert!(pcf.contains("set_io uart_rx 6\n") && pcf.contains("set_io uart_tx 9\n"));
        assert!(pcf.contains("set_io btn_n 10\n"));
        let lpf = constraints(board("ulx3s-85f").unwrap());
        assert!(lpf.contains("LOCATE COMP \"clk_osc\" SITE \"G2\";"));
        assert!(lpf.contains("IOBUF PORT \"btn_fire1\" IO_TYPE=LVCMOS33 PULLMODE=DOWN;"));
        assert!(!lpf.contains("FREQUENCY"));
        assert_eq!(extension(Family::Ecp5), "lpf");
    }
}
