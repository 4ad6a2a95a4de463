//! The report's charts as inline SVG: changed decisions by transition
//! (bars), each rule's hits per hour of event time (lines) and the score
//! distribution of both sides (paired bars, log scale).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::html::esc;
use super::report::BUCKET_MS;

/// Colours of the chart series, in order.
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Horizontal bars, one per (label, value).
pub(super) fn bar_chart(bars: &[(String, f64)]) -> String {
    if bars.is_empty() {
        return "<p class=\"muted\">none</p>\n".to_owned();
    }
    let max = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let (width, row) = (720.0, 26.0);
    let height = row * bars.len() as f64 + 10.0;
    let mut s = format!("<svg width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"bar chart\">\n");
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = (width - 380.0) * value / max;
        let _ = writeln!(
            s,
            "<text x=\"5\" y=\"{:.1}\" font-size=\"12\">{}</text><rect x=\"330\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{value}</text>",
            y + 13.0,
            esc(label),
            COLOURS[i % COLOURS.len()],
            335.0 + w,
            y + 13.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One polyline per series over the hours any series has, with a legend.
pub(super) fn line_chart(series: &[(String, &BTreeMap<i64, u64>)]) -> String {
    let with_hits: BTreeSet<i64> = series.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    let (Some(&first), Some(&last)) = (with_hits.first(), with_hits.last()) else {
        return "<p class=\"muted\">no hits</p>\n".to_owned();
    };
    // Every hour from the first hit to the last, quiet hours at zero.
    let hours: Vec<i64> = (0..=(last - first) / BUCKET_MS).map(|k| first + k * BUCKET_MS).collect();
    let span = ((last - first) / BUCKET_MS).max(1) as f64;
    let max = series.iter().flat_map(|(_, m)| m.values().copied()).max().unwrap_or(1).max(1) as f64;
    let (w, hgt, left, bottom) = (900.0, 260.0, 50.0, 30.0);
    let x = |hour: i64| left + (w - left - 150.0) * ((hour - first) / BUCKET_MS) as f64 / span;
    let y = |v: f64| hgt - bottom - (hgt - bottom - 10.0) * v / max;
    let mut s = format!("<svg width=\"{w}\" height=\"{hgt}\" role=\"img\" aria-label=\"hits per hour\">\n");
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/><text x=\"5\" y=\"15\" font-size=\"11\">{max}</text><text x=\"5\" y=\"{:.1}\" font-size=\"11\">0</text>",
        y(0.0),
        w - 150.0,
        y(0.0),
        y(0.0)
    );
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{:.1}\" font-size=\"11\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
        hgt - 8.0,
        esc(&hour_label(first)),
        w - 150.0,
        hgt - 8.0,
        esc(&hour_label(last))
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut path = String::new();
        for hour in &hours {
            let v = points.get(hour).copied().unwrap_or(0) as f64;
            let _ = write!(path, "{:.1},{:.1} ", x(*hour), y(v));
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/><rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            path.trim_end(),
            w - 140.0,
            12.0 + 16.0 * i as f64,
            w - 125.0,
            21.0 + 16.0 * i as f64,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn hour_label(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&time::macros::format_description!("[year]-[month]-[day] [hour]:00Z")).ok())
        .unwrap_or_default()
}

/// Baseline and candidate bars side by side per score bucket.
pub(super) fn score_chart(baseline: &BTreeMap<u32, u64>, candidate: &BTreeMap<u32, u64>) -> String {
    let buckets: BTreeSet<u32> = baseline.keys().chain(candidate.keys()).copied().collect();
    if buckets.is_empty() {
        return "<p class=\"muted\">no decisions</p>\n".to_owned();
    }
    let max = baseline.values().chain(candidate.values()).copied().max().unwrap_or(1).max(1) as f64;
    let (hgt, bottom, slot) = (240.0, 30.0, 40.0);
    let w = 60.0 + slot * buckets.len() as f64 + 160.0;
    let mut s = format!("<svg width=\"{w}\" height=\"{hgt}\" role=\"img\" aria-label=\"score distribution\">\n");
    for (i, bucket) in buckets.iter().enumerate() {
        let x0 = 50.0 + slot * i as f64;
        for (k, (side, colour)) in [(baseline, COLOURS[0]), (candidate, COLOURS[1])].into_iter().enumerate() {
            let v = side.get(bucket).copied().unwrap_or(0) as f64;
            // A logarithmic scale: most decisions score 0.
            let bar = (hgt - bottom - 10.0) * (v + 1.0).ln() / (max + 1.0).ln();
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"16\" height=\"{bar:.1}\" fill=\"{colour}\"><title>{v}</title></rect>",
                x0 + 17.0 * k as f64,
                hgt - bottom - bar
            );
        }
        let label = if *bucket >= 200 { "200+".to_owned() } else { bucket.to_string() };
        let _ = writeln!(s, "<text x=\"{x0:.1}\" y=\"{:.1}\" font-size=\"11\">{label}</text>", hgt - 10.0);
    }
    let lx = w - 150.0;
    let _ = writeln!(
        s,
        "<rect x=\"{lx:.1}\" y=\"10\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"19\" font-size=\"11\">baseline</text><rect x=\"{lx:.1}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"35\" font-size=\"11\">candidate</text><text x=\"{lx:.1}\" y=\"55\" font-size=\"10\" fill=\"#777\">log scale</text>",
        COLOURS[0],
        lx + 15.0,
        COLOURS[1],
        lx + 15.0
    );
    s.push_str("</svg>\n");
    s
}
