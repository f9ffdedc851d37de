//! The latency distributions as an SVG (plotters): one panel per profile, one line per
//! scenario, latency (log scale) against percentile on a "nines" axis so the tail that
//! matters (p99, p99.9) gets as much room as the median.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::load::Pace;
use crate::report::ProfileReport;

fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-6).log10()
}

const COLOURS: [RGBColor; 10] = [
    RGBColor(120, 120, 120),
    RGBColor(180, 180, 180),
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

pub fn latency_svg(path: &Path, profiles: &[ProfileReport]) -> Result<()> {
    let cols = 2usize;
    let rows = profiles.len().div_ceil(cols).max(1);
    let root = SVGBackend::new(path, (1200, 480 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((rows, cols));
    for (panel, p) in panels.iter().zip(profiles) {
        let lines: Vec<(&str, Vec<(f64, f64)>)> = p
            .rows
            .iter()
            .filter(|r| matches!(r.pace, Pace::Fixed { .. }))
            .map(|r| {
                let pts = r
                    .measured
                    .curve
                    .iter()
                    .filter(|(pct, ms)| *pct >= 10.0 && ms.is_finite() && *ms > 0.0)
                    .map(|(pct, ms)| (nines(*pct), *ms))
                    .collect();
                (r.scenario, pts)
            })
            .collect();
        let all = lines.iter().flat_map(|(_, v)| v.iter().map(|(_, y)| *y));
        let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
        if lo > hi {
            continue;
        }
        let y_range = (lo * 0.8).max(0.01)..(hi * 1.25);
        // The legend gets its own strip so it never hides a line.
        let (plot, legend) = panel.split_horizontally(440);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                format!("profile {}: latency at a fixed rate", p.profile.name),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0f64..4.2, y_range.log_scale())
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| match x.round() as i64 {
                0 => "p0".into(),
                1 => "p90".into(),
                2 => "p99".into(),
                3 => "p99.9".into(),
                4 => "p99.99".into(),
                _ => String::new(),
            })
            .y_desc("ms (log)")
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (name, pts)) in lines.into_iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?;
            let y = 60 + 22 * i as i32;
            legend
                .draw(&PathElement::new(
                    vec![(4, y), (28, y)],
                    colour.stroke_width(3),
                ))
                .map_err(|e| anyhow!("{e}"))?;
            legend
                .draw(&Text::new(
                    name.to_string(),
                    (34, y - 7),
                    ("sans-serif", 13).into_font(),
                ))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!(nines(100.0).is_finite());
    }
}
