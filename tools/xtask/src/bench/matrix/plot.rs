//! The matrix's SVG plots, drawn with plotters' SVG backend (no fonts to
//! load: the viewer renders the text): a scaling plot per workload (x =
//! CPUs, y = instructions per operation, one line per strategy) and a
//! grouped bar chart of per-fork counters by strategy. Only drawing lives
//! here; what to plot comes from `report`.
//!
//! For reading: CPU counts are categories (1, 2, 4 evenly spaced, no empty
//! 3), each series has its own marker and line style besides its colour, so
//! overlapping lines stay apart in print and for colour-blind readers, and
//! the legend sits in a column of its own, off the data.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::element::{DashedPathElement, DottedPathElement};
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
        legend_name(area, name, y)?;
    }
    Ok(())
}

fn legend_name(area: &DrawingArea<SVGBackend<'_>, Shift>, name: &str, y: i32) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    area.draw(&Text::new(name, (44, y), TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center))))
}

/// Marker shapes, as polygons around the point (pixels): circle-like
/// octagon, triangle, square, diamond, inverted triangle.
const MARKERS: [&[(i32, i32)]; 5] = [
    &[(-2, -5), (2, -5), (5, -2), (5, 2), (2, 5), (-2, 5), (-5, 2), (-5, -2)],
    &[(0, -6), (6, 5), (-6, 5)],
    &[(-5, -5), (5, -5), (5, 5), (-5, 5)],
    &[(0, -6), (6, 0), (0, 6), (-6, 0)],
    &[(0, 6), (6, -5), (-6, -5)],
];

/// How series `index` is drawn: its marker and its line style (0 solid, 1
/// dashed, 2 dotted). The first 15 series all differ in both together.
fn look(index: usize) -> (&'static [(i32, i32)], usize) {
    (MARKERS[index % MARKERS.len()], (index / MARKERS.len()) % 3)
}

/// The legend column of a scaling plot: a stretch of each series' line with
/// its marker, and its name.
fn line_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(String, usize)]) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    for (i, (name, index)) in entries.iter().enumerate() {
        let y = 60 + 22 * i as i32;
        let (shape, dash) = look(*index);
        let (color, stroke) = (color(*index), color(*index).stroke_width(2));
        let ends = [(6, y), (36, y)];
        match dash {
            0 => area.draw(&PathElement::new(ends.to_vec(), stroke))?,
            1 => area.draw(&DashedPathElement::new(ends, 6, 4, stroke))?,
            _ => area.draw(&DottedPathElement::new(ends, 0, 5, move |p| Circle::new(p, 1, color.filled())))?,
        }
        area.draw(&(EmptyElement::at((21, y)) + Polygon::new(shape.to_vec(), color.filled())))?;
        legend_name(area, name, y)?;
    }
    Ok(())
}

/// The CPU counts of `series`, in order: the categories of the x axis.
fn categories(series: &[Series]) -> Vec<f64> {
    let mut xs: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// A line per series over CPUs, from y = 0.
pub fn scaling(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let fail = plot_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&fail)?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let cpus = categories(series);
    let slot = |x: f64| cpus.iter().position(|&c| c == x).unwrap_or(0) as f64;
    let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..cpus.len().max(1) as f64 - 0.5, 0.0..y_max)
        .map_err(&fail)?;
    let count = |x: &f64| {
        let i = x.round();
        let exact = (x - i).abs() < 1e-9 && i >= 0.0;
        exact.then(|| cpus.get(i as usize).map(|c| format!("{c}"))).flatten().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .x_desc("CPUs")
        .y_desc(y_desc)
        .x_labels(cpus.len() + 1)
        .x_label_formatter(&count)
        .y_label_formatter(&|y| short(*y))
        .disable_x_mesh()
        .label_style((FONT, 14))
        .draw()
        .map_err(&fail)?;
    for (i, line) in series.iter().enumerate() {
        let (color, (shape, dash)) = (color(i), look(i));
        let points: Vec<(f64, f64)> = line.points.iter().map(|&(x, y)| (slot(x), y)).collect();
        let stroke = color.stroke_width(2);
        match dash {
            0 => chart.draw_series(LineSeries::new(points.iter().copied(), stroke)),
            1 => chart.draw_series(DashedLineSeries::new(points.iter().copied(), 8, 5, stroke)),
            _ => chart.draw_series(DottedLineSeries::new(points.iter().copied(), 0, 6, move |p| Circle::new(p, 1, color.filled()))),
        }
        .map_err(&fail)?;
        chart.draw_series(points.iter().map(|&p| EmptyElement::at(p) + Polygon::new(shape.to_vec(), color.filled()))).map_err(&fail)?;
    }
    let entries: Vec<(String, usize)> = series.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
    line_legend(&legend_area, &entries).map_err(&fail)?;
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
        chart.draw_series(placed.iter().map(|&(left, v)| Text::new(short(v), (left + width / 2.0, v), label.clone()))).map_err(&fail)?;
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
        // CPUs are categories: 1, 2 and 4 are labelled, no empty 3.
        let scaling_svg = std::fs::read_to_string(dir.join("scaling.svg")).unwrap();
        let labels: Vec<&str> = scaling_svg.lines().map(str::trim).collect();
        assert!(["1", "2", "4"].iter().all(|l| labels.contains(l)) && !labels.contains(&"3"), "{scaling_svg}");
        // Two series: two marker shapes (an octagon has 8 points, a triangle 3).
        let polygon_points = |svg: &str| -> Vec<usize> {
            let points =
                |polygon: &str| polygon.split("points=\"").nth(1).map_or(0, |p| p.split('"').next().unwrap().split_whitespace().count());
            svg.split("<polygon").skip(1).map(points).collect()
        };
        let shapes = polygon_points(&scaling_svg);
        assert!(shapes.contains(&8) && shapes.contains(&3), "{shapes:?}");
        let bars_svg = std::fs::read_to_string(dir.join("bars.svg")).unwrap();
        let texts: Vec<&str> = bars_svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"310") && texts.contains(&"257"), "bar values are labelled");
        std::fs::remove_dir_all(&dir).ok();
    }
}
