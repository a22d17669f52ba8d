//! The matrix's SVG plots, drawn with plotters' SVG backend (no fonts to
//! load: the viewer renders the text): a scaling plot per workload (x =
//! CPUs, y = instructions per operation, one line per strategy) and a
//! grouped bar chart of per-fork counters by strategy. Only drawing lives
//! here; what to plot comes from `report`.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const SIZE: (u32, u32) = (960, 520);
/// Width of the legend column at the right.
const LEGEND_WIDTH: u32 = 210;
const FONT: &str = "sans-serif";

/// One line of a scaling plot: (CPUs, value) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A short axis label: 5.6M, 12k, 310.
pub fn short(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if magnitude >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn color(index: usize) -> RGBColor {
    // Distinct, readable on white (Tableau 10).
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLORS[index % COLORS.len()]
}

fn plot_error<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |error| anyhow!("drawing {}: {error:?}", path.display())
}

/// The legend column: a swatch and a name per entry.
fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(String, RGBColor)]) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    for (i, (name, color)) in entries.iter().enumerate() {
        let y = 60 + 22 * i as i32;
        area.draw(&Rectangle::new([(8, y - 5), (28, y + 5)], color.filled()))?;
        area.draw(&Text::new(name.as_str(), (36, y), TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center))))?;
    }
    Ok(())
}

/// A line per series over CPUs, from y = 0.
pub fn scaling(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let fail = plot_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&fail)?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_min = xs.clone().fold(f64::INFINITY, f64::min).min(1.0);
    let x_max = xs.fold(1.0, f64::max);
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min - 0.5..x_max + 0.5, 0.0..y_max)
        .map_err(&fail)?;
    let whole = |x: &f64| if (x - x.round()).abs() < 1e-9 { format!("{}", x.round()) } else { String::new() };
    chart
        .configure_mesh()
        .x_desc("CPUs")
        .y_desc(y_desc)
        .x_labels((x_max - x_min) as usize + 2)
        .x_label_formatter(&whole)
        .y_label_formatter(&|y| short(*y))
        .disable_x_mesh()
        .label_style((FONT, 14))
        .draw()
        .map_err(&fail)?;
    for (i, line) in series.iter().enumerate() {
        let color = color(i);
        chart.draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2))).map_err(&fail)?;
        chart.draw_series(line.points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(&fail)?;
    }
    let entries: Vec<(String, RGBColor)> = series.iter().enumerate().map(|(i, s)| (s.name.clone(), color(i))).collect();
    legend(&legend_area, &entries).map_err(&fail)?;
    root.present().map_err(&fail)?;
    Ok(())
}

/// Bars grouped by category: in each category, one bar per group (its
/// value above it); a missing value leaves a gap.
pub fn bars(path: &Path, title: &str, y_desc: &str, categories: &[String], groups: &[(String, Vec<Option<f64>>)]) -> Result<()> {
    let fail = plot_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&fail)?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let n = categories.len().max(1);
    let y_max = groups.iter().flat_map(|(_, values)| values.iter().flatten()).fold(0.0, |a: f64, &b| a.max(b));
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..y_max)
        .map_err(&fail)?;
    let name = |x: &f64| {
        let i = x.round();
        let exact = (x - i).abs() < 1e-9 && i >= 0.0;
        exact.then(|| categories.get(i as usize).cloned()).flatten().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .x_labels(n + 1)
        .x_label_formatter(&name)
        .y_label_formatter(&|y| short(*y))
        .disable_x_mesh()
        .label_style((FONT, 14))
        .draw()
        .map_err(&fail)?;
    let width = 0.8 / groups.len().max(1) as f64;
    for (g, (_, values)) in groups.iter().enumerate() {
        let color = color(g);
        let placed: Vec<(f64, f64)> =
            values.iter().enumerate().filter_map(|(i, v)| Some((i as f64 - 0.4 + width * g as f64, (*v)?))).collect();
        chart
            .draw_series(placed.iter().map(|&(left, v)| Rectangle::new([(left + 0.02, 0.0), (left + width - 0.02, v)], color.filled())))
            .map_err(&fail)?;
        let label = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(placed.iter().map(|&(left, v)| Text::new(short(v), (left + width / 2.0, v), label.clone())))
            .map_err(&fail)?;
    }
    let entries: Vec<(String, RGBColor)> = groups.iter().enumerate().map(|(i, (name, _))| (name.clone(), color(i))).collect();
    legend(&legend_area, &entries).map_err(&fail)?;
    root.present().map_err(&fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_labels() {
        assert_eq!(short(5_568_706.0), "5.6M");
        assert_eq!(short(10_565.0), "11k");
        assert_eq!(short(1_043.0), "1.0k");
        assert_eq!(short(310.0), "310");
        assert_eq!(short(17.2), "17.2");
    }

    #[test]
    fn plots_are_well_formed_svg() {
        let dir = std::env::temp_dir().join(format!("xtask-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [
            Series { name: "deferred".into(), points: vec![(1.0, 100.0), (2.0, 110.0), (4.0, 130.0)] },
            Series { name: "atomic".into(), points: vec![(1.0, 120.0), (4.0, 150.0)] },
        ];
        let scaling_path = dir.join("scaling.svg");
        scaling(&scaling_path, "scaling", "instructions", &lines).unwrap();
        let bars_path = dir.join("bars.svg");
        let groups = [("IPC".to_string(), vec![Some(52.0), Some(310.0)]), ("copies".to_string(), vec![Some(257.0), None])];
        bars(&bars_path, "bars", "per fork", &["deferred".into(), "atomic".into()], &groups).unwrap();
        for path in [scaling_path, bars_path] {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", path.display());
            assert!(svg.contains("deferred") && svg.contains("atomic"));
        }
        let bars_svg = std::fs::read_to_string(dir.join("bars.svg")).unwrap();
        let texts: Vec<&str> = bars_svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"310") && texts.contains(&"257"), "bar values are labelled");
        std::fs::remove_dir_all(&dir).ok();
    }
}
