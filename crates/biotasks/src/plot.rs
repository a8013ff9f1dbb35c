//! Line plots as PNG and SVG through `plotters`, with an embedded DejaVu Sans font so that text
//! renders on machines without system fonts. Files are written atomically.
//!
//! Line plots are for people: the legend sits in a strip right of the plot, never over the
//! data, and points get markers only on short curves (at most [`MAX_MARKED_POINTS`]), so a
//! 300-epoch history stays a readable line. Which plots an experiment writes is its business
//! (regression tasks write no accuracy plot: [`crate::fit`] records their accuracy as NaN and
//! the experiments skip a metric with no finite value).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        detail: format!("plotting failed: {e}"),
    }
}
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in, so registration can only fail if the bytes are corrupt.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            eprintln!("warning: the embedded font could not be registered; plot text may be missing");
        }
    });
}

/// One line of a plot.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
    /// Draw as a dashed reference line instead of a solid line (with markers when it has at
    /// most [`MAX_MARKED_POINTS`] points).
    pub reference: bool,
    /// A shaded band `(x, low, high)` (e.g. mean ± std over repeats), drawn under the line.
    pub band: Vec<(f64, f64, f64)>,
    /// Draw dashed in the colour of the previous solid series (e.g. the training curve of the
    /// setting whose validation curve precedes it).
    pub companion: bool,
}

/// A 2-D line chart.
#[derive(Debug, Clone)]
pub struct LinePlot<'a> {
    /// Caption.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// X range.
    pub x_range: (f64, f64),
    /// Y range.
    pub y_range: (f64, f64),
    /// The lines.
    pub series: Vec<Series>,
}

impl LinePlot<'_> {
    /// A y range covering every point and band with a 5 % margin.
    pub fn fit_y(mut self) -> Self {
        let ys = self
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| p.1)
                    .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
            })
            .filter(|v| v.is_finite());
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
        if lo.is_finite() && hi.is_finite() {
            let pad = ((hi - lo) * 0.05).max(1e-6);
            self.y_range = (lo - pad, hi + pad);
        }
        self
    }
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Curves with at most this many points get a marker at every point; longer ones (a 300-epoch
/// history) are drawn as lines only, where markers would merge into a thick smear.
pub const MAX_MARKED_POINTS: usize = 30;

/// Width of the plot itself in pixels; the legend, when there is one, is a strip to its right
/// (outside the data, so that it never hides a curve).
const PLOT_WIDTH: u32 = 720;
const PLOT_HEIGHT: u32 = 480;
const LEGEND_FONT: u32 = 14;
const LEGEND_ROW: i32 = 20;
/// Legend sample line, gap, text.
const LEGEND_SAMPLE: i32 = 22;

/// How one series is drawn (and shown in the legend).
struct SeriesStyle {
    color: RGBAColor,
    width: u32,
    dashed: bool,
}

/// The style of every series in order: solid series take the palette in turn, a companion the
/// colour of the solid series before it, references dashed grey.
fn series_styles(series: &[Series]) -> Vec<SeriesStyle> {
    let mut color_index: usize = 0;
    series
        .iter()
        .map(|s| {
            if s.companion {
                let color = PALETTE[color_index.saturating_sub(1) % PALETTE.len()];
                SeriesStyle {
                    color: color.to_rgba(),
                    width: 1,
                    dashed: true,
                }
            } else if s.reference {
                SeriesStyle {
                    color: BLACK.mix(0.6),
                    width: 1,
                    dashed: true,
                }
            } else {
                let color = PALETTE[color_index % PALETTE.len()];
                color_index += 1;
                SeriesStyle {
                    color: color.to_rgba(),
                    width: 2,
                    dashed: false,
                }
            }
        })
        .collect()
}

/// Width of the legend strip: the longest label plus the sample line and padding (0 without
/// labels), at most half the plot's width.
fn legend_width(p: &LinePlot) -> u32 {
    let font: FontDesc = ("sans-serif", LEGEND_FONT).into_font();
    let widest = p
        .series
        .iter()
        .filter(|s| !s.label.is_empty())
        .map(|s| {
            font.box_size(&s.label)
                .map(|(w, _)| w)
                // An estimate if the font cannot measure (it is embedded, so it should).
                .unwrap_or(8 * s.label.chars().count() as u32)
        })
        .max();
    match widest {
        Some(w) => (w + LEGEND_SAMPLE as u32 + 28).min(PLOT_WIDTH / 2),
        None => 0,
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    p: &LinePlot,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(PLOT_WIDTH);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(p.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(p.x_range.0..p.x_range.1, p.y_range.0..p.y_range.1)?;
    chart
        .configure_mesh()
        .x_desc(p.x_label)
        .y_desc(p.y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    let styles = series_styles(&p.series);
    for (s, style) in p.series.iter().zip(&styles) {
        let line = style.color.stroke_width(style.width);
        if !s.band.is_empty() {
            let mut poly: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.2)).collect();
            poly.extend(s.band.iter().rev().map(|b| (b.0, b.1)));
            chart.draw_series(std::iter::once(Polygon::new(poly, style.color.mix(0.2).filled())))?;
        }
        if style.dashed {
            let (dash, gap) = if s.reference { (6, 4) } else { (5, 4) };
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), dash, gap, line))?;
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), line))?;
            if s.points.len() <= MAX_MARKED_POINTS {
                chart.draw_series(s.points.iter().map(|&pt| Circle::new(pt, 3, style.color.filled())))?;
            }
        }
    }
    draw_legend(&legend_area, p, &styles)?;
    root.present()?;
    Ok(())
}

/// The legend, one row per labelled series, in the strip right of the plot, its first row level
/// with the top of the data area.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &LinePlot,
    styles: &[SeriesStyle],
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let x = 4;
    let mut y = 52;
    for (s, style) in p.series.iter().zip(styles).filter(|(s, _)| !s.label.is_empty()) {
        let line = style.color.stroke_width(style.width);
        if style.dashed {
            area.draw(&PathElement::new(vec![(x, y), (x + 8, y)], line))?;
            area.draw(&PathElement::new(vec![(x + 12, y), (x + 18, y)], line))?;
        } else {
            area.draw(&PathElement::new(vec![(x, y), (x + 18, y)], line))?;
        }
        let font = ("sans-serif", LEGEND_FONT).into_font().color(&BLACK);
        area.draw(&Text::new(s.label.clone(), (x + LEGEND_SAMPLE + 2, y - 8), font))?;
        y += LEGEND_ROW;
    }
    Ok(())
}

/// Renders `plot` to `<stem>.png` and `<stem>.svg` (each written atomically): a 720×480 plot,
/// widened by a legend strip on the right when any series has a label.
pub fn write_line_plot(stem: &Path, plot: &LinePlot) -> Result<()> {
    register_font();
    let (w, h) = (PLOT_WIDTH + legend_width(plot), PLOT_HEIGHT);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), plot).map_err(|e| plot_err(stem, e))?;
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| plot_err(stem, "plot buffer has the wrong size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| plot_err(stem, e))?;
    let mut svg = String::new();
    draw(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), plot).map_err(|e| plot_err(stem, e))?;
    bionpy::write_atomic(&stem.with_extension("png"), &png)?;
    bionpy::write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    Ok(())
}

/// One box of a [`BoxPlot`]: a label and its values.
#[derive(Debug, Clone, Default)]
pub struct BoxGroup {
    /// Category label (x axis).
    pub label: String,
    /// The values (non-finite ones are ignored).
    pub values: Vec<f64>,
}

/// A box plot: per group the quartiles (box), the median (line), whiskers to the furthest value
/// within 1.5 IQR of the box and the values beyond them as points (seaborn's defaults).
#[derive(Debug, Clone)]
pub struct BoxPlot<'a> {
    /// Caption.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// The boxes, left to right, coloured like the series of [`LinePlot`] (group `k` takes the
    /// `k`-th colour).
    pub groups: Vec<BoxGroup>,
}

/// The `q`-quantile of sorted values with linear interpolation (NumPy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn draw_boxes<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    p: &BoxPlot,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let finite: Vec<Vec<f64>> = p
        .groups
        .iter()
        .map(|g| {
            let mut v: Vec<f64> = g.values.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let (lo, hi) = finite
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let n = p.groups.len().max(1);
    let labels: Vec<String> = p.groups.iter().map(|g| g.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(p.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| {
            let r = x.round();
            if (x - r).abs() < 1e-6 && r >= 0.0 {
                labels.get(r as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(p.x_label)
        .y_desc(p.y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, v) in finite.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let x = i as f64;
        let (q1, med, q3) = (
            quantile_sorted(v, 0.25),
            quantile_sorted(v, 0.5),
            quantile_sorted(v, 0.75),
        );
        let iqr = q3 - q1;
        let low_w = v.iter().copied().find(|&a| a >= q1 - 1.5 * iqr).unwrap_or(q1);
        let high_w = v.iter().rev().copied().find(|&a| a <= q3 + 1.5 * iqr).unwrap_or(q3);
        let w = 0.3;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - w, q1), (x + w, q3)],
            color.mix(0.55).filled(),
        )))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - w, q1), (x + w, q3)],
            BLACK.mix(0.7).stroke_width(1),
        )))?;
        let line = |a: (f64, f64), b: (f64, f64)| PathElement::new(vec![a, b], BLACK.mix(0.7).stroke_width(1));
        chart.draw_series([
            PathElement::new(vec![(x - w, med), (x + w, med)], BLACK.stroke_width(2)),
            line((x, q3), (x, high_w)),
            line((x, q1), (x, low_w)),
            line((x - w / 2.0, high_w), (x + w / 2.0, high_w)),
            line((x - w / 2.0, low_w), (x + w / 2.0, low_w)),
        ])?;
        chart.draw_series(
            v.iter()
                .filter(|&&a| a < low_w || a > high_w)
                .map(|&a| Circle::new((x, a), 3, BLACK.mix(0.7).stroke_width(1))),
        )?;
    }
    root.present()?;
    Ok(())
}

/// Renders `plot` to `<stem>.png` and `<stem>.svg` (each written atomically).
pub fn write_box_plot(stem: &Path, plot: &BoxPlot) -> Result<()> {
    register_font();
    let (w, h) = (560u32, 480u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw_boxes(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), plot)
        .map_err(|e| plot_err(stem, e))?;
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| plot_err(stem, "plot buffer has the wrong size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| plot_err(stem, e))?;
    let mut svg = String::new();
    draw_boxes(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), plot).map_err(|e| plot_err(stem, e))?;
    bionpy::write_atomic(&stem.with_extension("png"), &png)?;
    bionpy::write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    Ok(())
}
