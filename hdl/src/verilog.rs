//! Verilog emission of the whole top-level.

use crate::blocks::top::Top;
use crate::Config;
use rust_hdl::prelude::*;
use std::collections::HashMap;

/// Emits the complete top-level for `cfg` as Verilog. The top module is `top` with the plain
/// ports `clock, reset, in_data, in_valid, in_ready, out_data, out_valid, out_ready`.
pub fn emit_top(cfg: &Config) -> String {
    let mut top = Top::new(cfg);
    top.connect_all();
    share_identical_modules(&generate_verilog(&top))
}

/// One `module NAME(...); ... endmodule` block of rust-hdl's output.
struct ModuleText<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

/// The module type a line instantiates, if it is rust-hdl's `    TYPE instance(` line.
fn instance_type(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("    ")?;
    let (ty, inst) = rest.split_once(' ')?;
    let inst = inst.strip_suffix('(')?;
    let ident = |s: &str| !s.is_empty() && !s.contains([' ', '(', ')', ';', ',']);
    (ident(ty) && ident(inst)).then_some(ty)
}

/// Splits rust-hdl's output into its modules (dropping the comments between them), or `None`
/// if it is not in the expected shape.
fn split_modules(verilog: &str) -> Option<Vec<ModuleText<'_>>> {
    let mut modules = vec![];
    let mut current: Option<ModuleText> = None;
    for line in verilog.lines() {
        if let Some(rest) = line.strip_prefix("module ") {
            if current.is_some() {
                return None;
            }
            let name = &rest[..rest.find('(')?];
            current = Some(ModuleText {
                name,
                lines: vec![line],
            });
        } else if let Some(m) = current.as_mut() {
            m.lines.push(line);
            if line.starts_with("endmodule") {
                modules.push(current.take()?);
            }
        } else if !line.trim().is_empty() && !line.trim_start().starts_with("//") {
            return None; // comments between modules are dropped, anything else is unexpected
        }
    }
    current.is_none().then_some(modules)
}

/// Shares one definition among modules whose text is the same but for their names.
///
/// rust-hdl writes one module per block instance (`top$core$array$pes$17`, each with its own
/// register modules), so an `R x C` array becomes about `6 R C` modules that differ only in
/// name: 7110 modules and 6.9 MB of Verilog at 32x32. This keeps the first of each group of
/// identical modules (identical once the modules they instantiate are themselves shared) and
/// points every instance at it: 33 modules and 1.5 MB at 32x32, the same circuit. Text that is
/// not in rust-hdl's shape is returned unchanged.
pub fn share_identical_modules(verilog: &str) -> String {
    let Some(modules) = split_modules(verilog) else {
        return verilog.to_string();
    };
    let index: HashMap<&str, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name, i))
        .collect();
    if index.len() != modules.len() {
        return verilog.to_string();
    }
    // The shared definition of every module: the first module with its text, once its
    // children are resolved (on demand, depth first).
    let mut shared: Vec<Option<usize>> = vec![None; modules.len()];
    let mut by_text: HashMap<String, usize> = HashMap::new();
    fn resolve(
        i: usize,
        modules: &[ModuleText],
        index: &HashMap<&str, usize>,
        shared: &mut Vec<Option<usize>>,
        by_text: &mut HashMap<String, usize>,
        depth: usize,
    ) -> Option<usize> {
        if let Some(s) = shared[i] {
            return Some(s);
        }
        if depth > modules.len() {
            return None; // a module instantiates itself: leave the text alone
        }
        let m = &modules[i];
        let last = m.lines.len() - 1;
        let mut key = String::new();
        for (n, line) in m.lines.iter().enumerate() {
            match instance_type(line).and_then(|t| index.get(t)) {
                Some(&child) => {
                    let c = resolve(child, modules, index, shared, by_text, depth + 1)?;
                    key.push_str(&line.replacen(modules[child].name, modules[c].name, 1));
                }
                // The `module NAME(` and `endmodule // NAME` lines, without the name.
                None if n == 0 || n == last => key.push_str(&line.replacen(m.name, "\u{0}", 1)),
                None => key.push_str(line),
            }
            key.push('\n');
        }
        let s = *by_text.entry(key).or_insert(i);
        shared[i] = Some(s);
        Some(s)
    }
    for i in 0..modules.len() {
        if resolve(i, &modules, &index, &mut shared, &mut by_text, 0).is_none() {
            return verilog.to_string();
        }
    }
    let mut out = String::with_capacity(verilog.len());
    for (i, m) in modules.iter().enumerate() {
        if shared[i] != Some(i) {
            continue;
        }
        for line in &m.lines {
            match instance_type(line).and_then(|t| index.get(t)) {
                Some(&child) => {
                    let to = modules[shared[child].unwrap_or(child)].name;
                    out.push_str(&line.replacen(modules[child].name, to, 1));
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_SAME: &str = "\
module top(clock,q);
    input wire  clock;
    output wire  [1:0] q;
    top$a a(
        .clock(clock),
        .q(q[0])
    );
    top$b b(
        .clock(clock),
        .q(q[1])
    );
endmodule // top

module top$a(clock,q);
    input wire  clock;
    output reg  q;
    top$a$r r(
        .clock(clock)
    );
endmodule // top$a

module top$a$r(clock);
    input wire  clock;
endmodule // top$a$r

module top$b(clock,q);
    input wire  clock;
    output reg  q;
    top$b$r r(
        .clock(clock)
    );
endmodule // top$b

module top$b$r(clock);
    input wire  clock;
endmodule // top$b$r
";

    #[test]
    fn shares_modules_that_differ_only_in_name() {
        let out = share_identical_modules(TWO_SAME);
        assert_eq!(out.matches("\nmodule ").count() + 1, 3, "{out}");
        assert!(!out.contains("top$b"), "{out}");
        assert_eq!(out.matches("    top$a a(").count(), 1, "{out}");
        assert_eq!(out.matches("    top$a b(").count(), 1, "{out}");
        assert_eq!(out.matches("    top$a$r r(").count(), 1, "{out}");
    }

    #[test]
    fn keeps_modules_that_differ() {
        let differ = TWO_SAME.replacen(
            "output reg  q;\n    top$b$r",
            "output wire q;\n    top$b$r",
            1,
        );
        let out = share_identical_modules(&differ);
        assert!(out.contains("module top$b("), "{out}");
        // Their children are still the same, so they are shared.
        assert!(!out.contains("module top$b$r("), "{out}");
        assert!(out.contains("    top$a$r r("), "{out}");
    }

    #[test]
    fn leaves_unexpected_text_alone() {
        for text in [
            "wire x;\n",
            "module a(x);\n",
            "module a(x);\nendmodule\nmodule a(x);\nendmodule\n",
        ] {
            assert_eq!(share_identical_modules(text), text);
        }
    }

    /// The elaborated design: every instance path from `top` with its module's text, the
    /// module names left out. Walks top-down, unlike `share_identical_modules`.
    fn elaborate(v: &str) -> Vec<String> {
        let modules = split_modules(v).expect("rust-hdl's shape");
        let by_name: HashMap<&str, &ModuleText> = modules.iter().map(|m| (m.name, m)).collect();
        let mut out = vec![];
        let mut stack = vec![("top".to_string(), "top")];
        while let Some((path, name)) = stack.pop() {
            let m = by_name[name];
            let mut text = path.clone();
            for line in &m.lines[1..m.lines.len() - 1] {
                match instance_type(line).filter(|t| by_name.contains_key(t)) {
                    Some(t) => {
                        let inst = line.trim().trim_start_matches(t).trim();
                        stack.push((format!("{path}.{inst}"), t));
                        text.push_str(inst);
                    }
                    None => text.push_str(line),
                }
                text.push('\n');
            }
            out.push(text);
        }
        out
    }

    #[test]
    fn the_top_level_shrinks_and_elaborates_the_same() {
        let cfg = Config::new(4, 4).unwrap();
        let mut top = Top::new(&cfg);
        top.connect_all();
        let full = generate_verilog(&top);
        let shared = share_identical_modules(&full);
        let count = |v: &str| v.lines().filter(|l| l.starts_with("module ")).count();
        assert!(
            count(&shared) * 5 < count(&full),
            "{} -> {}",
            count(&full),
            count(&shared)
        );
        let (a, b) = (elaborate(&full), elaborate(&shared));
        assert!(a.len() > 300, "{} instances", a.len());
        assert_eq!(a, b);
        assert_eq!(emit_top(&cfg), shared);
    }
}
