//! [`Table`]: the plain text tables of `workerpool status`.

/// A plain text table: columns separated by two spaces, numbers right-aligned.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

// ===== impl Table =====

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row after the title line, each ending in `\n`.
    /// A column whose cells are all numbers (or `-`) is right-aligned.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let width = |i: usize| {
            let cells = self.rows.iter().map(|r| r[i].chars().count());
            cells.chain([self.header[i].chars().count()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let numeric: Vec<bool> = (0..n)
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| is_number_cell(&r[i])))
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = (0..n)
                .map(|i| {
                    let w = widths[i];
                    if numeric[i] { format!("{:>w$}", row[i]) } else { format!("{:<w$}", row[i]) }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn is_number_cell(cell: &str) -> bool {
    cell == "-" || (!cell.is_empty() && cell.parse::<f64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let mut t = Table::new(&["NAME", "N", "AVG"]);
        t.row(vec!["text_processing".into(), "2".into(), "12.5".into()]);
        t.row(vec!["a".into(), "10".into(), "-".into()]);
        assert_eq!(
            t.render(),
            "NAME              N   AVG\ntext_processing   2  12.5\na                10     -\n"
        );
        let empty = Table::new(&["A", "B"]);
        assert_eq!(empty.render(), "A  B\n");
    }
}
