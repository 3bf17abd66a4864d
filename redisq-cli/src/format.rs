//! Plain-text rendering for the terminal: padded tables, times, ages and figures.

use std::fmt::Write as _;

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table of padded columns separated by two spaces, headed by upper-case names.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub(crate) fn new(header: &[(&'static str, Align)]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The header and rows, each line ending in a newline, without trailing spaces.
    pub(crate) fn render(&self) -> String {
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_owned();
        let widths: Vec<usize> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                self.rows
                    .iter()
                    .map(|row| width(&cell(row, i)))
                    .chain([width(name)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|(n, _)| (*n).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.header.iter().enumerate() {
                let text = cell(row, i);
                let pad = " ".repeat(widths[i].saturating_sub(width(&text)));
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(&text);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(&text);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width, counting one column per character.
fn width(text: &str) -> usize {
    text.chars().count()
}

/// The current Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A Unix time in milliseconds as RFC 3339 in UTC: `2023-11-14T22:13:20.500Z` (the bare
/// number when it is past what a date can say).
pub(crate) fn rfc3339(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

/// A span of milliseconds, short: `850ms`, `12s`, `3m05s`, `2h03m`, `4d02h`.
pub(crate) fn span(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// How long ago `then` was at `now` (both Unix ms): `3s ago`, or `in 3s` for a future time.
pub(crate) fn age(now: u64, then: u64) -> String {
    if then <= now {
        format!("{} ago", span(now - then))
    } else {
        format!("in {}", span(then - now))
    }
}

/// A time as RFC 3339 and its age: `2023-11-14T22:13:20.500Z (3s ago)`.
pub(crate) fn time_and_age(now: u64, then: u64) -> String {
    format!("{} ({})", rfc3339(then), age(now, then))
}

/// A figure with a precision that suits its size: `0.25`, `12.5`, `340`.
pub(crate) fn figure(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A byte count in binary units: `512 B`, `1.5 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Labelled lines, the labels padded to one width: `status:   done`.
pub(crate) fn fields(rows: &[(&str, String)]) -> String {
    let w = rows.iter().map(|(k, _)| width(k)).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in rows {
        let label = format!("{key}:");
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{label:<w$}  {value}", w = w);
    }
    out
}

/// The first line of `text`, marked with `…` when more followed or it was cut at `max`
/// characters.
pub(crate) fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let more = line.len() < text.trim_end().len();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else if more {
        format!("{line} …")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn spans_and_ages() {
        assert_eq!(span(850), "850ms");
        assert_eq!(span(12_000), "12s");
        assert_eq!(span(185_000), "3m05s");
        assert_eq!(span(7_380_000), "2h03m");
        assert_eq!(span(352_800_000), "4d02h");
        assert_eq!(age(10_000, 7_000), "3s ago");
        assert_eq!(age(7_000, 10_000), "in 3s");
    }

    #[test]
    fn figures_and_bytes() {
        assert_eq!(figure(0.0), "0");
        assert_eq!(figure(0.25), "0.25");
        assert_eq!(figure(12.54), "12.5");
        assert_eq!(figure(340.4), "340");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
    }

    #[test]
    fn table_pads_and_aligns() {
        let mut t = Table::new(&[("QUEUE", Align::Left), ("DEAD", Align::Right)]);
        t.row(vec!["emails".into(), "3".into()]);
        t.row(vec!["q".into(), "1200".into()]);
        assert_eq!(t.render(), "QUEUE   DEAD\nemails     3\nq       1200\n");
    }

    #[test]
    fn fields_and_first_lines() {
        assert_eq!(
            fields(&[("id", "a".into()), ("status", "done".into())]),
            "id:      a\nstatus:  done\n"
        );
        assert_eq!(first_line("one\ntwo", 80), "one …");
        assert_eq!(first_line("abcdef", 4), "abc…");
        assert_eq!(first_line("abc", 4), "abc");
    }
}
