//! ECP5 block RAM and multiplier output registers, taken from the fabric flip-flops that
//! follow them.
//!
//! A DP16KD without its output register (`REGMODE = NOREG`) delivers read data about 5.8 ns
//! after the clock (speed grade 6); with it (`OUTREG`) about 0.95 ns, a cycle later. The
//! design's ECP5 configurations already register every block RAM read in the fabric (the
//! `Config::registered_*_reads` options), so each read bit goes to exactly one flip-flop, and
//! every path from that flip-flop starts 5.8 ns late only because of the routing between.
//! yosys does not merge such a flip-flop into the RAM (its memory mapper has no output-register
//! option; YosysHQ/yosys#5814), so this pass does, on the synthesized JSON netlist before
//! place and route: for every DP16KD whose port-B read data bits each drive one plain
//! flip-flop and nothing else (same clock as the port, no clock enable, no reset), it sets
//! `REGMODE_B = OUTREG`, connects the read data to the flip-flops' outputs and removes the
//! flip-flops. The RAM's output register then does what the flip-flop did, on the same edge.
//!
//! What changes: nothing a cycle sees after the first clock edge. The flip-flops' power-up
//! value (yosys's `REGSET`) is not the output register's, but nothing reads a memory before
//! the board top releases reset, some cycles after the PLL locks (see `lane_ram.rs` for the
//! same argument about the read register).
//!
//! The block multipliers (MULT18X18D) get the same treatment: yosys maps every product to a
//! multiplier without its registers, and the requantizers and the host link register every
//! product at once.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// What [`absorb_output_registers`] or [`absorb_multiplier_registers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutregStats {
    /// Cells (DP16KDs or MULT18X18Ds) now using their output register.
    pub cells: usize,
    /// Cells left as they were (an output bit with another load, or a flip-flop with an
    /// enable, a reset or another clock).
    pub cells_left: usize,
    /// Flip-flops removed.
    pub ffs_removed: usize,
}

/// One read bit's move: (read data port, the flip-flop it feeds, that flip-flop's `Q` net).
type ReadBitMove = (String, String, u64);

/// A net bit of a yosys JSON netlist: a number, or a constant `"0"`, `"1"`, `"x"`.
fn bit(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn port_bits<'a>(cell: &'a Value, port: &str) -> Option<&'a Vec<Value>> {
    cell.get("connections")?.get(port)?.as_array()
}

fn param<'a>(cell: &'a Value, name: &str) -> Option<&'a str> {
    cell.get("parameters")?.get(name)?.as_str()
}

/// The single net bit on `port`, if it is a net (not a constant).
fn single_net(cell: &Value, port: &str) -> Option<u64> {
    match port_bits(cell, port)?.as_slice() {
        [b] => bit(b),
        _ => None,
    }
}

/// `port` is unconnected or tied to the constant `value`.
fn tied_or_absent(cell: &Value, port: &str, value: &str) -> bool {
    match port_bits(cell, port).map(|v| v.as_slice()) {
        None => true,
        Some([b]) => b.as_str() == Some(value),
        Some(_) => false,
    }
}

/// A flip-flop that only copies `DI` to `Q` on the rising edge of `clock`.
fn is_plain_ff(cell: &Value, clock: u64) -> bool {
    cell.get("type").and_then(Value::as_str) == Some("TRELLIS_FF")
        && single_net(cell, "CLK") == Some(clock)
        && param(cell, "CLKMUX").map(str::trim) == Some("CLK")
        && param(cell, "CEMUX").map(str::trim) == Some("1")
        && tied_or_absent(cell, "CE", "1")
        && tied_or_absent(cell, "LSR", "0")
        && single_net(cell, "Q").is_some()
}

/// Every input pin on every net bit: (cell, port).
fn input_loads(cells: &serde_json::Map<String, Value>) -> HashMap<u64, Vec<(String, String)>> {
    let mut loads: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    for (name, cell) in cells.iter() {
        let dirs = cell.get("port_directions").and_then(Value::as_object);
        let conns = cell.get("connections").and_then(Value::as_object);
        let (Some(dirs), Some(conns)) = (dirs, conns) else {
            continue;
        };
        for (port, bits) in conns {
            if dirs.get(port).and_then(Value::as_str) == Some("output") {
                continue;
            }
            for b in bits.as_array().into_iter().flatten().filter_map(bit) {
                loads
                    .entry(b)
                    .or_default()
                    .push((name.clone(), port.clone()));
            }
        }
    }

    loads
}

/// Whether a cell is one [`absorb`] works on.
enum Candidate {
    /// Another kind of cell, or one already using its output register.
    Skip,
    /// The right kind, but its register cannot be used (counted in `cells_left`).
    Left,
    /// The right kind: its register runs on this clock net (`None`: on the flip-flops').
    Clock(Option<u64>),
}

/// One kind of cell whose output register takes over the flip-flops behind it.
struct Kind {
    /// Whether a cell is of this kind and free to take its register.
    candidate: fn(&Value) -> Candidate,
    /// The output ports the register sits behind.
    output: fn(&str) -> bool,
    /// Turns the register on, clocked by the given net.
    enable: fn(&mut Value, u64),
}

/// The cells of module `top` of a yosys JSON netlist.
fn top_cells<'a>(
    netlist: &'a mut Value,
    top: &str,
) -> Result<&'a mut serde_json::Map<String, Value>, String> {
    netlist
        .get_mut("modules")
        .and_then(|m| m.get_mut(top))
        .and_then(|m| m.get_mut("cells"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("the netlist has no module `{top}` with cells"))
}

/// For every cell of `kind` whose used output bits each drive one plain flip-flop and
/// nothing else, all on the register's clock: turns the register on, drives the
/// flip-flops' loads from the cell and removes the flip-flops.
fn absorb(netlist: &mut Value, top: &str, kind: &Kind) -> Result<OutregStats, String> {
    let cells = top_cells(netlist, top)?;
    let loads = input_loads(cells);
    let mut stats = OutregStats::default();
    let mut plans: Vec<(String, u64, Vec<ReadBitMove>)> = vec![];
    for (name, cell) in cells.iter() {
        let mut clock = match (kind.candidate)(cell) {
            Candidate::Skip => continue,
            Candidate::Left => {
                stats.cells_left += 1;
                continue;
            }
            Candidate::Clock(clock) => clock,
        };
        // (output port, flip-flop, its Q net) for every output bit that has a load.
        let mut moves = vec![];
        let mut ok = true;
        for (port, bits) in cell
            .get("connections")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if !(kind.output)(port) {
                continue;
            }
            let Some(net) = bits.as_array().and_then(|b| b.first()).and_then(bit) else {
                continue;
            };
            match loads.get(&net).map(Vec::as_slice) {
                None | Some([]) => {}
                Some([(ff, pin)]) if pin == "DI" => {
                    let want = clock.or_else(|| single_net(&cells[ff], "CLK"));
                    match want {
                        Some(c) if is_plain_ff(&cells[ff], c) => {
                            clock = Some(c);
                            let q = single_net(&cells[ff], "Q").expect("checked by is_plain_ff");
                            moves.push((port.clone(), ff.clone(), q));
                        }
                        _ => ok = false,
                    }
                }
                Some(_) => ok = false,
            }
        }
        match clock {
            Some(clock) if ok && !moves.is_empty() => plans.push((name.clone(), clock, moves)),
            _ => stats.cells_left += 1,
        }
    }
    let mut removed = HashSet::new();
    for (name, clock, moves) in plans {
        let cell = cells.get_mut(&name).expect("planned from this map");
        (kind.enable)(cell, clock);
        for (port, ff, q) in &moves {
            cell["connections"][port] = Value::Array(vec![Value::from(*q)]);
            removed.insert(ff.clone());
        }
        stats.cells += 1;
    }
    for ff in &removed {
        cells.remove(ff);
    }
    stats.ffs_removed = removed.len();
    Ok(stats)
}

/// Merges each DP16KD's port-B read register (see the module docs) in the top module
/// `top` of a yosys JSON netlist.
pub fn absorb_output_registers(netlist: &mut Value, top: &str) -> Result<OutregStats, String> {
    absorb(
        netlist,
        top,
        &Kind {
            candidate: |cell| {
                if cell.get("type").and_then(Value::as_str) != Some("DP16KD")
                    || param(cell, "REGMODE_B") != Some("NOREG")
                {
                    return Candidate::Skip;
                }
                match single_net(cell, "CLKB") {
                    Some(clock)
                        if tied_or_absent(cell, "OCEB", "1")
                            && tied_or_absent(cell, "RSTB", "0") =>
                    {
                        Candidate::Clock(Some(clock))
                    }
                    _ => Candidate::Left,
                }
            },
            output: |port| port.starts_with("DOB"),
            // The register runs on the read port's clock, enabled by OCEB and reset by RSTB,
            // which the candidate checked are tied off.
            enable: |cell, _| cell["parameters"]["REGMODE_B"] = Value::String("OUTREG".into()),
        },
    )
}

/// Merges each MULT18X18D's output register the same way: for every block multiplier whose
/// product bits each drive one plain flip-flop and nothing else, all on one clock, the
/// multiplier gets `REG_OUTPUT_CLK = CLK0` (clock enable and reset tied off) and the
/// flip-flops are removed. The product then leaves the multiplier's own register instead of
/// its array (3.9 ns) and the routing to a slice.
pub fn absorb_multiplier_registers(netlist: &mut Value, top: &str) -> Result<OutregStats, String> {
    absorb(
        netlist,
        top,
        &Kind {
            candidate: |cell| {
                if cell.get("type").and_then(Value::as_str) != Some("MULT18X18D")
                    || param(cell, "REG_OUTPUT_CLK").is_some_and(|v| v != "NONE")
                    || port_bits(cell, "CLK0").is_some_and(|b| b.iter().any(|v| v.is_u64()))
                {
                    Candidate::Skip
                } else {
                    Candidate::Clock(None)
                }
            },
            output: |port| port.starts_with('P') && port[1..].chars().all(|c| c.is_ascii_digit()),
            enable: |cell, clock| {
                for (k, v) in [
                    ("REG_OUTPUT_CLK", "CLK0"),
                    ("REG_OUTPUT_CE", "CE0"),
                    ("REG_OUTPUT_RST", "RST0"),
                ] {
                    cell["parameters"][k] = Value::String(v.into());
                }
                for (port, value) in [
                    ("CLK0", Value::from(clock)),
                    ("CE0", Value::from("1")),
                    ("RST0", Value::from("0")),
                ] {
                    cell["connections"][port] = Value::Array(vec![value]);
                    cell["port_directions"][port] = Value::String("input".into());
                }
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ff(clk: u64, d: u64, q: u64) -> Value {
        json!({
            "type": "TRELLIS_FF",
            "parameters": {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR",
                           "REGSET": "RESET"},
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"},
            "connections": {"CLK": [clk], "DI": [d], "LSR": ["0"], "Q": [q]}
        })
    }

    fn ram(clk: u64, dob: &[u64]) -> Value {
        let mut conns = serde_json::Map::new();
        let mut dirs = serde_json::Map::new();
        conns.insert("CLKB".into(), json!([clk]));
        dirs.insert("CLKB".into(), json!("input"));
        conns.insert("OCEB".into(), json!(["1"]));
        dirs.insert("OCEB".into(), json!("input"));
        conns.insert("RSTB".into(), json!(["0"]));
        dirs.insert("RSTB".into(), json!("input"));
        for (i, b) in dob.iter().enumerate() {
            conns.insert(format!("DOB{i}"), json!([b]));
            dirs.insert(format!("DOB{i}"), json!("output"));
        }
        json!({
            "type": "DP16KD",
            "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG"},
            "port_directions": dirs,
            "connections": conns
        })
    }

    fn lut(input: u64, out: u64) -> Value {
        json!({
            "type": "LUT4",
            "parameters": {},
            "port_directions": {"A": "input", "Z": "output"},
            "connections": {"A": [input], "Z": [out]}
        })
    }

    fn netlist(cells: Value) -> Value {
        json!({"modules": {"board": {"cells": cells}}})
    }

    #[test]
    fn absorbs_the_flip_flops_behind_a_ram_and_rewires_their_loads() {
        // Clock 2; read bits 10, 11 (12 unused) into flip-flops with outputs 20, 21, which a
        // LUT reads.
        let mut n = netlist(json!({
            "ram": ram(2, &[10, 11, 12]),
            "ff0": ff(2, 10, 20),
            "ff1": ff(2, 11, 21),
            "use": lut(20, 30),
        }));
        let stats = absorb_output_registers(&mut n, "board").unwrap();
        assert_eq!(
            stats,
            OutregStats {
                cells: 1,
                cells_left: 0,
                ffs_removed: 2
            }
        );
        let cells = &n["modules"]["board"]["cells"];
        assert_eq!(cells["ram"]["parameters"]["REGMODE_B"], "OUTREG");
        assert_eq!(cells["ram"]["connections"]["DOB0"], json!([20]));
        assert_eq!(cells["ram"]["connections"]["DOB1"], json!([21]));
        assert_eq!(cells["ram"]["connections"]["DOB2"], json!([12]));
        assert!(cells.get("ff0").is_none() && cells.get("ff1").is_none());
        assert_eq!(cells["use"]["connections"]["A"], json!([20]));
    }

    #[test]
    fn leaves_a_ram_whose_read_data_has_other_loads_or_other_registers() {
        let cases = [
            // A read bit that also feeds logic.
            json!({"ram": ram(2, &[10, 11]), "ff0": ff(2, 10, 20), "ff1": ff(2, 11, 21),
                   "use": lut(11, 30)}),
            // A read bit into logic only.
            json!({"ram": ram(2, &[10, 11]), "ff0": ff(2, 10, 20), "use": lut(11, 30)}),
            // A flip-flop on another clock.
            json!({"ram": ram(2, &[10]), "ff0": ff(3, 10, 20)}),
        ];
        for (k, cells) in cases.into_iter().enumerate() {
            let before = netlist(cells);
            let mut n = before.clone();
            let stats = absorb_output_registers(&mut n, "board").unwrap();
            assert_eq!(
                (stats.cells, stats.cells_left, stats.ffs_removed),
                (0, 1, 0),
                "case {k}"
            );
            assert_eq!(n, before, "case {k}");
        }
        // A flip-flop with a clock enable or a reset.
        for (port, value) in [("CE", json!([7])), ("LSR", json!([7]))] {
            let mut f = ff(2, 10, 20);
            f["connections"][port] = value;
            f["port_directions"][port] = json!("input");
            if port == "CE" {
                f["parameters"]["CEMUX"] = json!("CE");
            }
            let before = netlist(json!({"ram": ram(2, &[10]), "ff0": f}));
            let mut n = before.clone();
            let stats = absorb_output_registers(&mut n, "board").unwrap();
            assert_eq!(stats.cells, 0, "{port}");
            assert_eq!(n, before, "{port}");
        }
    }

    fn mult(p: &[u64]) -> Value {
        let mut conns = serde_json::Map::new();
        let mut dirs = serde_json::Map::new();
        conns.insert("A0".into(), json!([5]));
        dirs.insert("A0".into(), json!("input"));
        for (i, b) in p.iter().enumerate() {
            conns.insert(format!("P{i}"), json!([b]));
            dirs.insert(format!("P{i}"), json!("output"));
        }
        json!({"type": "MULT18X18D", "parameters": {}, "port_directions": dirs,
               "connections": conns})
    }

    #[test]
    fn a_multiplier_takes_its_product_register_and_others_are_left() {
        let mut n = netlist(json!({
            "m": mult(&[10, 11, 12]),
            "ff0": ff(2, 10, 20),
            "ff1": ff(2, 11, 21),
            "use": lut(21, 30),
        }));
        let stats = absorb_multiplier_registers(&mut n, "board").unwrap();
        assert_eq!(
            (stats.cells, stats.cells_left, stats.ffs_removed),
            (1, 0, 2)
        );
        let m = &n["modules"]["board"]["cells"]["m"];
        assert_eq!(m["parameters"]["REG_OUTPUT_CLK"], "CLK0");
        assert_eq!(m["connections"]["CLK0"], json!([2]));
        assert_eq!(m["connections"]["CE0"], json!(["1"]));
        assert_eq!(m["connections"]["RST0"], json!(["0"]));
        assert_eq!(m["connections"]["P0"], json!([20]));
        assert_eq!(m["connections"]["P1"], json!([21]));
        assert_eq!(m["connections"]["P2"], json!([12]));
        // Two clocks, or a product bit that feeds logic: left alone.
        for cells in [
            json!({"m": mult(&[10, 11]), "ff0": ff(2, 10, 20), "ff1": ff(3, 11, 21)}),
            json!({"m": mult(&[10, 11]), "ff0": ff(2, 10, 20), "use": lut(11, 30)}),
        ] {
            let before = netlist(cells);
            let mut n = before.clone();
            let stats = absorb_multiplier_registers(&mut n, "board").unwrap();
            assert_eq!((stats.cells, stats.cells_left), (0, 1));
            assert_eq!(n, before);
        }
    }

    #[test]
    fn a_netlist_without_the_module_is_an_error() {
        let mut n = json!({"modules": {}});
        assert!(absorb_output_registers(&mut n, "board")
            .unwrap_err()
            .contains("board"));
    }
}
