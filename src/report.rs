//! Small helpers to print reports as aligned two-column tables.

use std::fmt;

/// A titled table of `label  value` rows.
pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    /// An empty table.
    pub fn new(title: String) -> Table {
        Table {
            title,
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, label: &str, value: String) {
        self.rows.push((label.to_string(), value));
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (label, value) in &self.rows {
            writeln!(f, "  {label:<width$}  {value}")?;
        }
        Ok(())
    }
}

/// `0.1234` as `12.34 %`.
pub fn percent(fraction: f64) -> String {
    format!("{:.2} %", 100.0 * fraction)
}

/// A duration in seconds with a readable unit.
pub fn seconds(s: f64) -> String {
    match s {
        s if s >= 1.0 => format!("{s:.3} s"),
        s if s >= 1e-3 => format!("{:.3} ms", s * 1e3),
        s if s >= 1e-6 => format!("{:.3} µs", s * 1e6),
        s => format!("{:.1} ns", s * 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_values() {
        let mut t = Table::new("title".into());
        t.row("a", "1".into());
        t.row("longer", "2".into());
        assert_eq!(t.to_string(), "title\n  a       1\n  longer  2\n");
    }

    #[test]
    fn units() {
        assert_eq!(percent(0.5), "50.00 %");
        assert_eq!(seconds(2.0), "2.000 s");
        assert_eq!(seconds(0.0025), "2.500 ms");
        assert_eq!(seconds(3e-6), "3.000 µs");
        assert_eq!(seconds(5e-9), "5.0 ns");
    }
}
