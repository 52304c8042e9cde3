//! The report's charts, drawn with plotters as SVG text to inline in the HTML: the latency percentile
//! spectrum (HdrHistogram style, percentiles on a log scale up to 99.999%), latency and throughput
//! over time (with fault windows shaded), and grouped bars (per-step latency, rollbacks by step).
//! Each returns `None` when there is nothing to draw, so the report leaves the chart out. plotters
//! escapes the text it writes, so labels may come from scenarios and targets.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::metrics::Hist;
use crate::metrics::TimelineRow;

const SIZE: (u32, u32) = (760, 300);
const FONT: &str = "sans-serif";

pub const BLUE_: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE_: RGBColor = RGBColor(255, 127, 14);
pub const GREEN_: RGBColor = RGBColor(44, 160, 44);
pub const RED_: RGBColor = RGBColor(214, 39, 40);
pub const PURPLE_: RGBColor = RGBColor(148, 103, 189);
pub const GREY_: RGBColor = RGBColor(127, 127, 127);

/// A line to draw: its name, colour and points.
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// Draws `f` on a fresh SVG canvas and returns the markup.
fn svg(
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), DrawError>,
) -> Option<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        f(&root).ok()?;
        root.present().ok()?;
    }
    Some(out)
}

/// Plotters could not draw a chart; the chart is then left out of the report.
#[derive(Debug)]
struct DrawError;

fn err<E>(_: E) -> DrawError {
    DrawError
}

fn upper(points: impl Iterator<Item = f64>) -> f64 {
    let max = points.fold(0.0f64, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// Percentile label for x = log10(1 / (1 - q)).
fn percentile_label(x: f64) -> String {
    match x.round() as i64 {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        3 => "99.9%".into(),
        4 => "99.99%".into(),
        5 => "99.999%".into(),
        _ => String::new(),
    }
}

/// The points of a histogram's percentile spectrum: x = log10(1/(1-q)), y = latency in ms.
/// The percentile curve of `h`, only as far as its samples support (at least 10 beyond each point):
/// 100 samples reach p90, 10,000 reach p99.9.
pub fn spectrum_points(h: &Hist) -> Vec<(f64, f64)> {
    let n = h.len();
    (0..=250)
        .map(|i| {
            let x = f64::from(i) / 50.0;
            (x, 1.0 - 10f64.powf(-x))
        })
        .take_while(|(_, q)| crate::metrics::histogram::supports(n, *q))
        .map(|(x, q)| (x, h.value_at_quantile(q) as f64 / 1000.0))
        .collect()
}

/// Latency by percentile, one line per histogram.
pub fn spectrum(title: &str, lines: &[Line]) -> Option<String> {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.points.is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let ymax = upper(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    svg(|root| {
        let mut chart = axes(root, title, 0f64..5f64, ymax, 32)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_labels(6)
            .x_label_formatter(&|x| percentile_label(*x))
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, &lines)?;
        legend(&mut chart)
    })
}

/// A chart on an SVG canvas with two linear axes.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A captioned chart over `x` and `0..ymax`, leaving `x_labels` pixels under the axis for labels.
fn axes<'a, 'b: 'a>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    ymax: f64,
    x_labels: u32,
) -> Result<Chart<'a, 'b>, DrawError> {
    ChartBuilder::on(root)
        .caption(title, (FONT, 15))
        .margin(10)
        .x_label_area_size(x_labels)
        .y_label_area_size(60)
        .build_cartesian_2d(x, 0f64..ymax)
        .map_err(err)
}

fn draw_lines<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, lines: &[&Line]) -> Result<(), DrawError> {
    for line in lines {
        let style = ShapeStyle::from(&line.color).stroke_width(2);
        let color = line.color;
        let series = if line.dashed {
            chart.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                6,
                4,
                style,
            ))
        } else {
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style))
        };
        series
            .map_err(err)?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    Ok(())
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), DrawError> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 12))
        .draw()
        .map_err(err)
}

/// Lines over the run's seconds, with `shaded` windows `(from_s, until_s)` marked.
pub fn over_time(
    title: &str,
    y_desc: &str,
    lines: &[Line],
    shaded: &[(f64, f64)],
) -> Option<String> {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.points.is_empty()).collect();
    // A line needs two points to be seen: a run of under two seconds has no time series to draw.
    if lines.iter().all(|l| l.points.len() < 2) {
        return None;
    }
    let xmax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .chain(shaded.iter().map(|w| w.1))
        .fold(1.0f64, f64::max);
    let ymax = upper(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    svg(|root| {
        let mut chart = axes(root, title, 0f64..xmax, ymax, 32)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_desc("time (s)")
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                shaded
                    .iter()
                    .map(|(a, b)| Rectangle::new([(*a, 0.0), (*b, ymax)], RED_.mix(0.12).filled())),
            )
            .map_err(err)?;
        draw_lines(&mut chart, &lines)?;
        legend(&mut chart)
    })
}

/// One line per percentile column of the timeline.
pub fn timeline_lines(rows: &[TimelineRow], prefix: &str, dashed: bool) -> Vec<Line> {
    // Succeeded iterations' percentiles: refusals during an outage would draw the service fastest
    // while it is down. A result written before they were kept apart has only all iterations'.
    let ok = rows.iter().any(|r| r.ok_p50_ms.is_some());
    let col = |all: fn(&TimelineRow) -> Option<f64>, succeeded: fn(&TimelineRow) -> Option<f64>| {
        let f = if ok { succeeded } else { all };
        rows.iter()
            .filter_map(|r| f(r).map(|v| (r.t_s as f64 + 0.5, v)))
            .collect::<Vec<(f64, f64)>>()
    };
    vec![
        Line {
            label: format!("{prefix}p50"),
            color: BLUE_,
            points: col(|r| r.p50_ms, |r| r.ok_p50_ms),
            dashed,
        },
        Line {
            label: format!("{prefix}p95"),
            color: ORANGE_,
            points: col(|r| r.p95_ms, |r| r.ok_p95_ms),
            dashed,
        },
        Line {
            label: format!("{prefix}p99"),
            color: RED_,
            points: col(|r| r.p99_ms, |r| r.ok_p99_ms),
            dashed,
        },
    ]
}

/// Completed and failed iterations per second.
pub fn throughput_lines(rows: &[TimelineRow]) -> Vec<Line> {
    vec![
        Line {
            label: "succeeded/s".into(),
            color: GREEN_,
            points: rows
                .iter()
                .map(|r| (r.t_s as f64 + 0.5, r.succeeded as f64))
                .collect(),
            dashed: false,
        },
        Line {
            label: "failed/s".into(),
            color: RED_,
            points: rows
                .iter()
                .map(|r| (r.t_s as f64 + 0.5, r.failed as f64))
                .collect(),
            dashed: false,
        },
    ]
}

/// A group of bars: one value per category.
pub struct Bars {
    pub label: String,
    pub color: RGBColor,
    pub values: Vec<f64>,
}

/// Grouped bars, one group per category.
pub fn bars(title: &str, y_desc: &str, categories: &[String], groups: &[Bars]) -> Option<String> {
    if categories.is_empty() || groups.is_empty() {
        return None;
    }
    let n = categories.len();
    let ymax = upper(groups.iter().flat_map(|g| g.values.iter().copied()));
    let names: Vec<String> = categories
        .iter()
        .map(|c| {
            if c.chars().count() > 20 {
                format!("{}…", c.chars().take(19).collect::<String>())
            } else {
                c.clone()
            }
        })
        .collect();
    svg(|root| {
        let mut chart = axes(root, title, -0.5f64..(n as f64 - 0.5), ymax, 40)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        let width = 0.8 / groups.len() as f64;
        for (g, group) in groups.iter().enumerate() {
            let color = group.color;
            chart
                .draw_series(group.values.iter().enumerate().map(|(i, v)| {
                    let x0 = i as f64 - 0.4 + g as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, *v)], color.filled())
                }))
                .map_err(err)?
                .label(group.label.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        legend(&mut chart)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record};
    use std::time::Duration;

    #[test]
    fn the_spectrum_climbs_as_far_as_the_samples_reach() {
        let mut h = new_histogram();
        for ms in 1..=1000 {
            record(&mut h, Duration::from_millis(ms));
        }
        let points = spectrum_points(&h);
        assert!((points[0].1 - 1.0).abs() < 0.01);
        // 1000 samples leave 10 beyond p99 and 1 beyond p99.9: the curve stops at p99.
        let (x, v) = *points.last().unwrap();
        assert!((x - 2.0).abs() < 1e-9, "stops at p99, x = {x}");
        assert!((v - 990.0).abs() < 1.0, "{v}");
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1));
        let svg = spectrum(
            "latency <by> percentile",
            &[Line {
                label: "latency".into(),
                color: BLUE_,
                points,
                dashed: false,
            }],
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("99.9%"));
        assert!(
            svg.contains("latency &lt;by&gt; percentile"),
            "text is escaped"
        );
    }

    #[test]
    fn nothing_to_draw_draws_nothing() {
        assert!(spectrum("x", &[]).is_none());
        assert!(over_time("x", "y", &[], &[]).is_none());
        assert!(bars("x", "y", &[], &[]).is_none());
    }
}
