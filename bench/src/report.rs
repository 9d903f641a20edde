//! The Markdown written into BENCHMARKS.md.

use std::fmt::Write as _;

use crate::stats::Summary;

#[derive(Default)]
pub struct Report {
    pub body: String,
    pub headlines: Vec<Headline>,
}

pub struct Headline {
    pub what: String,
    pub measured: String,
    pub target: String,
    /// `None` where there is no target to meet.
    pub met: Option<bool>,
}

impl Report {
    pub fn section(&mut self, title: &str) {
        let _ = writeln!(self.body, "\n### {title}\n");
        eprintln!("== {title}");
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.body, "{}", text.as_ref());
    }

    pub fn headline(&mut self, what: &str, measured: String, target: &str, met: Option<bool>) {
        eprintln!("   headline: {what}: {measured} (target {target})");
        self.headlines.push(Headline { what: what.into(), measured, target: target.into(), met });
    }

    /// A table of variants; `ratio` is each row's mean time over the first row's.
    pub fn table(&mut self, unit: &str, rows: &[(String, Summary)]) {
        self.line(format!("| {unit} | n | mean µs | p50 µs | p99 µs | per second | time vs first row |"));
        self.line("|---|---:|---:|---:|---:|---:|---:|");
        let base = rows.first().map(|r| r.1.mean_us).unwrap_or(f64::NAN);
        for (name, s) in rows {
            let row = format!(
                "| {name} | {} | {} | {} | {} | {} | {:.2}× |",
                s.n,
                us(s.mean_us),
                us(s.p50_us),
                us(s.p99_us),
                per_sec(s.per_sec),
                s.mean_us / base
            );
            eprintln!("   {row}");
            self.line(row);
        }
        self.line("");
    }

    pub fn render_headlines(&self) -> String {
        let mut out = String::from("| what | measured | target | met |\n|---|---|---|---|\n");
        for h in &self.headlines {
            let met = match h.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(out, "| {} | {} | {} | {met} |", h.what, h.measured, h.target);
        }
        out
    }
}

pub fn us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn per_sec(v: f64) -> String {
    if v >= 10_000.0 { format!("{:.0}k", v / 1000.0) } else { format!("{v:.0}") }
}
