//! The report's charts, drawn with plotters as SVG text to inline in the HTML: the latency percentile
//! spectrum (HdrHistogram style, percentiles on a log scale as far as the samples support), latency
//! and throughput over time (fault windows shaded, stage boundaries marked), a stress run's stages
//! against their offered rate, and grouped bars (per-step latency, rollbacks by step). Latency axes
//! go logarithmic when the values span more than [`LOG_SPAN`]; thresholds are drawn across the
//! charts they judge; the legend sits above the plot, never on the data. Each returns `None` when
//! there is nothing to draw, so the report leaves the chart out. plotters escapes the text it
//! writes, so labels may come from scenarios and targets.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

pub use plotters::style::RGBColor;

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

/// A horizontal line at `value` (in the chart's y unit): a threshold the chart's figures are judged
/// by, e.g. `latency.p95 < 2s` at 2000 ms.
#[derive(Debug, Clone)]
pub struct Limit {
    pub label: String,
    pub value: f64,
}

/// What a time chart shows beside its lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Marks<'a> {
    /// Windows `(from_s, until_s)` to shade: the run's fault windows.
    pub shaded: &'a [(f64, f64)],
    /// Thresholds to draw across.
    pub limits: &'a [Limit],
    /// Seconds where a stage begins (stepped loads), drawn as thin verticals.
    pub boundaries: &'a [f64],
    /// A latency axis: logarithmic when the values span more than [`LOG_SPAN`].
    pub latency: bool,
}

/// A latency axis goes logarithmic when its largest value is this many times its smallest: a 3 ms
/// median under a 3 s tail is then still read.
pub const LOG_SPAN: f64 = 30.0;

/// How values map to the y axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// `0..max`.
    Linear { max: f64 },
    /// log10 of the value, over whole decades `lo..hi`.
    Log { lo: f64, hi: f64 },
}

impl Scale {
    /// The scale for `values` (and the limits, which must be seen too).
    fn of(values: impl Iterator<Item = f64> + Clone, latency: bool) -> Self {
        let max = values.clone().fold(0.0f64, f64::max);
        let min = values.filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        if latency && min.is_finite() && max / min > LOG_SPAN {
            Scale::Log {
                lo: min.log10().floor(),
                hi: (max * 1.1).log10().ceil(),
            }
        } else {
            Scale::Linear {
                max: if max > 0.0 { max * 1.1 } else { 1.0 },
            }
        }
    }

    fn y(self, v: f64) -> f64 {
        match self {
            Scale::Linear { .. } => v,
            // Zero and below sit on the axis.
            Scale::Log { lo, .. } => {
                if v > 0.0 {
                    v.log10().max(lo)
                } else {
                    lo
                }
            }
        }
    }

    fn range(self) -> std::ops::Range<f64> {
        match self {
            Scale::Linear { max } => 0.0..max,
            Scale::Log { lo, hi } => lo..hi,
        }
    }

    /// The label at axis position `y`: the value itself, or nothing between decades.
    fn label(self, y: f64) -> String {
        match self {
            Scale::Linear { .. } => trim_number(y),
            Scale::Log { .. } if (y - y.round()).abs() < 1e-6 => trim_number(10f64.powf(y.round())),
            Scale::Log { .. } => String::new(),
        }
    }

    fn desc(self, desc: &str) -> String {
        match self {
            Scale::Linear { .. } => desc.to_string(),
            Scale::Log { .. } => format!("{desc}, log scale"),
        }
    }
}

fn trim_number(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// How a key shows its series.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    Line(RGBColor),
    Dashed(RGBColor),
    Block(RGBColor),
    Band(RGBColor),
}

/// One entry of the legend row above the plot: a series, a threshold, a shaded window.
struct Key {
    label: String,
    swatch: Swatch,
}

/// Height of the caption and of each legend row above the plot.
const CAPTION_H: u32 = 24;
const KEY_ROW_H: u32 = 18;

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

/// A rough width of `text` in the legend's font, for laying keys out in rows.
fn text_width(text: &str) -> i32 {
    i32::try_from(text.chars().count()).unwrap_or(i32::MAX / 8) * 7
}

/// The rows the keys take, laid out left to right within the canvas width.
fn key_rows(keys: &[Key]) -> Vec<Vec<(i32, &Key)>> {
    let width = i32::try_from(SIZE.0).unwrap_or(760) - 20;
    let mut rows: Vec<Vec<(i32, &Key)>> = vec![Vec::new()];
    let mut x = 60;
    for k in keys {
        let w = 26 + text_width(&k.label) + 18;
        if x + w > width && x > 60 {
            rows.push(Vec::new());
            x = 60;
        }
        if let Some(row) = rows.last_mut() {
            row.push((x, k));
        }
        x += w;
    }
    rows
}

/// The caption and the legend above the plot (so that no key covers a line), and the area left
/// for the plot.
fn frame<'a>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    title: &str,
    keys: &[Key],
) -> Result<DrawingArea<SVGBackend<'a>, plotters::coord::Shift>, DrawError> {
    let rows = key_rows(keys);
    let rows_h = if keys.is_empty() {
        0
    } else {
        KEY_ROW_H * rows.len() as u32
    };
    let (top, body) = root.split_vertically(CAPTION_H + rows_h + 4);
    top.draw(&Text::new(
        title.to_string(),
        (10, 4),
        (FONT, 15).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    for (r, row) in rows.iter().enumerate() {
        let y = CAPTION_H as i32 + r as i32 * KEY_ROW_H as i32 + 8;
        for (x, key) in row {
            let x = *x;
            match key.swatch {
                Swatch::Line(c) => top
                    .draw(&PathElement::new(
                        vec![(x, y), (x + 20, y)],
                        c.stroke_width(2),
                    ))
                    .map_err(err)?,
                Swatch::Dashed(c) => {
                    for (a, b) in [(0, 6), (9, 14), (17, 20)] {
                        top.draw(&PathElement::new(
                            vec![(x + a, y), (x + b, y)],
                            c.stroke_width(2),
                        ))
                        .map_err(err)?;
                    }
                }
                Swatch::Block(c) => top
                    .draw(&Rectangle::new(
                        [(x + 4, y - 5), (x + 16, y + 5)],
                        c.filled(),
                    ))
                    .map_err(err)?,
                Swatch::Band(c) => top
                    .draw(&Rectangle::new(
                        [(x, y - 6), (x + 20, y + 6)],
                        c.mix(0.25).filled(),
                    ))
                    .map_err(err)?,
            }
            top.draw(&Text::new(
                key.label.clone(),
                (x + 26, y - 7),
                (FONT, 12).into_font().color(&BLACK),
            ))
            .map_err(err)?;
        }
    }
    Ok(body)
}

fn line_keys(lines: &[&Line]) -> Vec<Key> {
    lines
        .iter()
        .map(|l| Key {
            label: l.label.clone(),
            swatch: if l.dashed {
                Swatch::Dashed(l.color)
            } else {
                Swatch::Line(l.color)
            },
        })
        .collect()
}

/// A threshold further above the data than this many times its largest value is not drawn (it
/// would squash the data to the floor); the legend says it is above the chart.
const LIMIT_REACH: f64 = 3.0;

/// The scale of `lines` with the thresholds near enough to them to be drawn, those thresholds, and
/// the legend's keys for every threshold.
fn place_limits(lines: &[&Line], limits: &[Limit], latency: bool) -> (Scale, Vec<Limit>, Vec<Key>) {
    let data_max = all_values(lines, &[]).fold(0.0f64, f64::max);
    let (near, far): (Vec<&Limit>, Vec<&Limit>) = limits
        .iter()
        .partition(|l| data_max <= 0.0 || l.value <= data_max * LIMIT_REACH);
    let near: Vec<Limit> = near.into_iter().cloned().collect();
    let scale = Scale::of(all_values(lines, &near), latency);
    let mut keys: Vec<Key> = near
        .iter()
        .map(|l| Key {
            label: l.label.clone(),
            swatch: Swatch::Dashed(BLACK_),
        })
        .collect();
    keys.extend(far.iter().map(|l| Key {
        label: format!("{} (far above the chart)", l.label),
        swatch: Swatch::Dashed(BLACK_),
    }));
    (scale, near, keys)
}

/// The colour threshold lines are drawn in.
const BLACK_: RGBColor = RGBColor(60, 60, 60);
/// Stage boundaries: there, but quieter than the data.
const LIGHT_GREY_: RGBColor = RGBColor(185, 185, 185);

/// Percentile label for x = log10(1 / (1 - q)).
fn percentile_label(x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 {
        return String::new();
    }
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

fn all_values<'l>(
    lines: &'l [&Line],
    limits: &'l [Limit],
) -> impl Iterator<Item = f64> + Clone + 'l {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(limits.iter().map(|l| l.value))
}

/// Latency by percentile, one line per histogram, with the latency thresholds across.
pub fn spectrum(title: &str, lines: &[Line], limits: &[Limit]) -> Option<String> {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.points.is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let xmax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        .ceil();
    let (scale, limits, limit_keys) = place_limits(&lines, limits, true);
    let mut keys = line_keys(&lines);
    keys.extend(limit_keys);
    svg(|root| {
        let body = frame(root, title, &keys)?;
        let mut chart = axes(&body, 0f64..xmax, scale, 32)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_labels(6)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| scale.label(*y))
            .x_desc("percentile")
            .y_desc(scale.desc("latency (ms)"))
            .draw()
            .map_err(err)?;
        draw_limits(&mut chart, &limits, 0.0..xmax, scale)?;
        draw_lines(&mut chart, &lines, scale)
    })
}

/// A chart on an SVG canvas with two linear axes (a log axis is drawn as the log of its values).
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart over `x` and the scale's range, leaving `x_labels` pixels under the axis for labels.
fn axes<'a, 'b: 'a>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    x: std::ops::Range<f64>,
    scale: Scale,
    x_labels: u32,
) -> Result<Chart<'a, 'b>, DrawError> {
    ChartBuilder::on(area)
        .margin(10)
        .margin_top(4)
        .x_label_area_size(x_labels)
        .y_label_area_size(60)
        .build_cartesian_2d(x, scale.range())
        .map_err(err)
}

fn draw_lines<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    lines: &[&Line],
    scale: Scale,
) -> Result<(), DrawError> {
    for line in lines {
        let style = ShapeStyle::from(&line.color).stroke_width(2);
        let points = line.points.iter().map(|(x, y)| (*x, scale.y(*y)));
        if line.dashed {
            chart
                .draw_series(DashedLineSeries::new(points, 6, 4, style))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(err)?;
        }
    }
    Ok(())
}

fn draw_limits<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    limits: &[Limit],
    x: std::ops::Range<f64>,
    scale: Scale,
) -> Result<(), DrawError> {
    for l in limits {
        let y = scale.y(l.value);
        chart
            .draw_series(DashedLineSeries::new(
                [(x.start, y), (x.end, y)],
                8,
                5,
                BLACK_.stroke_width(1),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// Lines over the run's seconds, with fault windows shaded, thresholds across and stage
/// boundaries marked.
pub fn over_time(title: &str, y_desc: &str, lines: &[Line], marks: Marks<'_>) -> Option<String> {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.points.is_empty()).collect();
    // A line needs two points to be seen: a run of under two seconds has no time series to draw.
    if lines.iter().all(|l| l.points.len() < 2) {
        return None;
    }
    let xmax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .chain(marks.shaded.iter().map(|w| w.1))
        .fold(1.0f64, f64::max);
    let (scale, limits, limit_keys) = place_limits(&lines, marks.limits, marks.latency);
    let mut keys = line_keys(&lines);
    keys.extend(limit_keys);
    if !marks.shaded.is_empty() {
        keys.push(Key {
            label: "fault window".into(),
            swatch: Swatch::Band(RED_),
        });
    }
    if !marks.boundaries.is_empty() {
        keys.push(Key {
            label: "stage begins".into(),
            swatch: Swatch::Line(LIGHT_GREY_),
        });
    }
    svg(|root| {
        let body = frame(root, title, &keys)?;
        let mut chart = axes(&body, 0f64..xmax, scale, 32)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .y_label_formatter(&|y| scale.label(*y))
            .x_desc("time (s)")
            .y_desc(scale.desc(y_desc))
            .draw()
            .map_err(err)?;
        let y = scale.range();
        chart
            .draw_series(marks.shaded.iter().map(|(a, b)| {
                Rectangle::new([(*a, y.start), (*b, y.end)], RED_.mix(0.12).filled())
            }))
            .map_err(err)?;
        for b in marks.boundaries {
            chart
                .draw_series(LineSeries::new(
                    [(*b, y.start), (*b, y.end)],
                    LIGHT_GREY_.stroke_width(1),
                ))
                .map_err(err)?;
        }
        draw_limits(&mut chart, &limits, 0.0..xmax, scale)?;
        draw_lines(&mut chart, &lines, scale)
    })
}

/// One stage of a stress run, as its charts show it.
#[derive(Debug, Clone)]
pub struct StagePoint {
    /// The rate the stage offered (per second).
    pub rate: f64,
    /// Succeeded iterations' p50, p95, p99 (ms).
    pub ok: [Option<f64>; 3],
    /// The p95 of every iteration, failed ones included (ms): apart from the succeeded p95 when
    /// failures are slow (timeouts) or fast (refusals).
    pub all_p95: Option<f64>,
    /// Share of the stage's iterations that failed (0–1); none when it ran none.
    pub failed: Option<f64>,
    /// Share that started late (0–1); none when it ran none.
    pub late: Option<f64>,
    pub generator_limited: bool,
}

/// Where the stress run's stages stand against their offered rate: one chart of latency, one of
/// failures, with the breaking point (the last stage that met the thresholds) and the stages the
/// generator could not keep to marked.
pub fn versus_rate(
    stages: &[StagePoint],
    breaking: Option<(usize, &str)>,
    limits: &[Limit],
) -> (Option<String>, Option<String>) {
    if stages.len() < 2 {
        return (None, None);
    }
    let n = stages.len();
    let at = |f: &dyn Fn(&StagePoint) -> Option<f64>| -> Vec<(f64, f64)> {
        stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| f(s).map(|v| (i as f64, v)))
            .collect()
    };
    let mut latency = Vec::from(
        [("p50", BLUE_, 0), ("p95", ORANGE_, 1), ("p99", RED_, 2)].map(|(label, color, i)| Line {
            label: format!("succeeded {label}"),
            color,
            points: at(&|s: &StagePoint| s.ok[i]),
            dashed: false,
        }),
    );
    // Failed iterations' latency shows only where it moves every iteration's p95 off the succeeded.
    if stages
        .iter()
        .any(|s| s.failed.unwrap_or(0.0) > 0.0 && s.all_p95 != s.ok[1])
    {
        latency.push(Line {
            label: "p95 of every iteration, failed included".into(),
            color: PURPLE_,
            points: at(&|s: &StagePoint| s.all_p95),
            dashed: true,
        });
    }
    let failures = vec![
        Line {
            label: "failed %".into(),
            color: RED_,
            points: at(&|s: &StagePoint| s.failed.map(|f| f * 100.0)),
            dashed: false,
        },
        Line {
            label: "started late %".into(),
            color: GREY_,
            points: at(&|s: &StagePoint| s.late.map(|l| l * 100.0)),
            dashed: true,
        },
    ];
    let limited: Vec<usize> = (0..n).filter(|i| stages[*i].generator_limited).collect();
    let labels: Vec<String> = stages
        .iter()
        .map(|s| crate::result::format_value("rate", s.rate))
        .collect();
    let chart = |title: &str, y_desc: &str, lines: &[Line], limits: &[Limit], latency: bool| {
        let lines: Vec<&Line> = lines.iter().filter(|l| !l.points.is_empty()).collect();
        if lines.is_empty() {
            return None;
        }
        let (scale, limits, limit_keys) = place_limits(&lines, limits, latency);
        let mut keys = line_keys(&lines);
        keys.extend(limit_keys);
        if let Some((_, label)) = breaking {
            keys.push(Key {
                label: label.to_string(),
                swatch: Swatch::Line(GREEN_),
            });
        }
        if !limited.is_empty() {
            keys.push(Key {
                label: "generator-limited stage".into(),
                swatch: Swatch::Band(GREY_),
            });
        }
        let x = -0.5..(n as f64 - 0.5);
        svg(|root| {
            let body = frame(root, title, &keys)?;
            let mut c = axes(&body, x.clone(), scale, 40)?;
            c.configure_mesh()
                .max_light_lines(0)
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| category(&labels, *x))
                .y_label_formatter(&|y| scale.label(*y))
                .x_desc("offered rate (stage)")
                .y_desc(scale.desc(y_desc))
                .draw()
                .map_err(err)?;
            let y = scale.range();
            c.draw_series(limited.iter().map(|i| {
                let i = *i as f64;
                Rectangle::new(
                    [(i - 0.5, y.start), (i + 0.5, y.end)],
                    GREY_.mix(0.2).filled(),
                )
            }))
            .map_err(err)?;
            if let Some((b, _)) = breaking {
                let b = b as f64;
                c.draw_series(LineSeries::new(
                    [(b, y.start), (b, y.end)],
                    GREEN_.stroke_width(2),
                ))
                .map_err(err)?;
            }
            draw_limits(&mut c, &limits, x.clone(), scale)?;
            draw_lines(&mut c, &lines, scale)?;
            for line in &lines {
                let color = line.color;
                c.draw_series(
                    line.points
                        .iter()
                        .map(|(x, v)| Circle::new((*x, scale.y(*v)), 3, color.filled())),
                )
                .map_err(err)?;
            }
            Ok(())
        })
    };
    (
        chart(
            "Latency against offered rate (stress stages)",
            "latency (ms)",
            &latency,
            limits,
            true,
        ),
        chart(
            "Failures against offered rate (stress stages)",
            "% of the stage's iterations",
            &failures,
            &[],
            false,
        ),
    )
}

/// One line per percentile column of the timeline.
pub fn timeline_lines(rows: &[TimelineRow], prefix: &str, dashed: bool) -> Vec<Line> {
    // Succeeded iterations' percentiles: refusals during an outage would draw the service fastest
    // while it is down. A result written before they were kept apart has only all iterations'.
    let ok = rows.iter().any(|r| r.ok_p50_ms.is_some());
    let col = |all: fn(&TimelineRow) -> Option<f64>, succeeded: fn(&TimelineRow) -> Option<f64>| {
        let f = if ok { succeeded } else { all };
        rows.iter()
            .filter_map(|r| f(r).map(|v| (middle(r), v)))
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

/// The middle of the time a row covers (of the part of its second, for the last one).
fn middle(r: &TimelineRow) -> f64 {
    r.t_s as f64 + r.span() / 2.0
}

/// Completed and failed iterations per second; the last, partial second as the rate it ran at, not
/// as a drop.
pub fn throughput_lines(rows: &[TimelineRow]) -> Vec<Line> {
    let per_second = |f: fn(&TimelineRow) -> u64| {
        rows.iter()
            .map(|r| (middle(r), f(r) as f64 / r.span()))
            .collect()
    };
    vec![
        Line {
            label: "succeeded/s".into(),
            color: GREEN_,
            points: per_second(|r| r.succeeded),
            dashed: false,
        },
        Line {
            label: "failed/s".into(),
            color: RED_,
            points: per_second(|r| r.failed),
            dashed: false,
        },
    ]
}

/// One judged change for the comparison chart: its interval against its noise band.
#[derive(Debug, Clone)]
pub struct Change {
    pub label: String,
    /// Change, interval and band in percent (or percentage points).
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub band: f64,
    /// `regressed`, `improved` or `within noise`: the colour.
    pub verdict: &'static str,
}

/// Each metric's change with its 95% interval, drawn against its noise band: a change regressed
/// only where its whole interval lies outside the band on the bad side.
pub fn changes(title: &str, rows: &[Change]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let n = rows.len();
    let reach = rows
        .iter()
        .flat_map(|r| [r.low.abs(), r.high.abs(), r.band.abs(), r.estimate.abs()])
        .fold(1.0f64, f64::max)
        * 1.15;
    let names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let colour = |v: &str| match v {
        "regressed" => RED_,
        "improved" => GREEN_,
        _ => GREY_,
    };
    let keys = vec![
        Key {
            label: "noise band".into(),
            swatch: Swatch::Band(BLUE_),
        },
        Key {
            label: "regressed".into(),
            swatch: Swatch::Line(RED_),
        },
        Key {
            label: "improved".into(),
            swatch: Swatch::Line(GREEN_),
        },
        Key {
            label: "within noise".into(),
            swatch: Swatch::Line(GREY_),
        },
    ];
    svg(|root| {
        let body = frame(root, title, &keys)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .margin_top(4)
            .x_label_area_size(32)
            .y_label_area_size(150)
            .build_cartesian_2d(-reach..reach, -0.5f64..(n as f64 - 0.5))
            .map_err(err)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| category(&names, *y))
            .x_label_formatter(&|x| format!("{x:+.0}"))
            .x_desc("change (% of the base; pp for rates), with its 95% interval")
            .draw()
            .map_err(err)?;
        for (i, r) in rows.iter().enumerate() {
            let y = i as f64;
            let c = colour(r.verdict);
            chart
                .draw_series([Rectangle::new(
                    [(-r.band, y - 0.35), (r.band, y + 0.35)],
                    BLUE_.mix(0.15).filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series([PathElement::new(
                    vec![(r.low, y), (r.high, y)],
                    c.stroke_width(3),
                )])
                .map_err(err)?;
            chart
                .draw_series([Circle::new((r.estimate, y), 4, c.filled())])
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(
                [(0.0, -0.5), (0.0, n as f64 - 0.5)],
                BLACK_.stroke_width(1),
            ))
            .map_err(err)?;
        Ok(())
    })
}

/// The label of the category at `x` (categories sit at 0, 1, 2, …; nothing between them).
fn category(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 {
        names.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
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
    let scale = Scale::of(groups.iter().flat_map(|g| g.values.iter().copied()), false);
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
    let keys: Vec<Key> = groups
        .iter()
        .map(|g| Key {
            label: g.label.clone(),
            swatch: Swatch::Block(g.color),
        })
        .collect();
    svg(|root| {
        let body = frame(root, title, &keys)?;
        let mut chart = axes(&body, -0.5f64..(n as f64 - 0.5), scale, 40)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| category(&names, *x))
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
                .map_err(err)?;
        }
        Ok(())
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
            &[],
        )
        .unwrap();
        // The axis ends where the curve does: at p99, with no empty 99.9% to 99.999% beyond.
        assert!(svg.starts_with("<svg") && svg.contains("99%"), "{svg}");
        assert!(!svg.contains("99.9%"));
        assert!(
            svg.contains("latency &lt;by&gt; percentile"),
            "text is escaped"
        );
    }

    fn line(label: &str, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.into(),
            color: BLUE_,
            points,
            dashed: false,
        }
    }

    #[test]
    fn a_wide_latency_range_goes_logarithmic_and_a_narrow_one_stays_linear() {
        let wide = [3.0, 40.0, 3000.0];
        assert_eq!(
            Scale::of(wide.iter().copied(), true),
            Scale::Log { lo: 0.0, hi: 4.0 }
        );
        // Counts are never drawn on a log axis, however wide.
        assert!(matches!(
            Scale::of(wide.iter().copied(), false),
            Scale::Linear { .. }
        ));
        assert!(matches!(
            Scale::of([10.0, 20.0].into_iter(), true),
            Scale::Linear { .. }
        ));
        let log = Scale::Log { lo: 0.0, hi: 4.0 };
        assert_eq!(
            (log.label(2.0), log.label(2.5)),
            ("100".into(), String::new())
        );
        assert_eq!(log.y(0.0), 0.0, "zero sits on the axis");
        let rows: Vec<(f64, f64)> = (0..10)
            .map(|t| (t as f64, 3.0 + t as f64 * 400.0))
            .collect();
        let svg = over_time(
            "x",
            "latency (ms)",
            &[line("p99", rows)],
            Marks {
                latency: true,
                ..Marks::default()
            },
        )
        .unwrap();
        assert!(svg.contains("log scale"));
    }

    #[test]
    fn thresholds_are_drawn_across_and_one_far_above_is_said_not_drawn() {
        let rows: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 10.0 + t as f64)).collect();
        let near = [Limit {
            label: "latency.p95 < 25ms".into(),
            value: 25.0,
        }];
        let draw = |limits: &[Limit]| {
            over_time(
                "x",
                "latency (ms)",
                &[line("p95", rows.clone())],
                Marks {
                    limits,
                    latency: true,
                    boundaries: &[4.0],
                    ..Marks::default()
                },
            )
            .unwrap()
        };
        let with = draw(&near);
        assert!(with.contains("latency.p95 &lt; 25ms"));
        assert!(with.contains("stage begins"));
        let without = draw(&[]);
        let paths = |s: &str| s.matches("<polyline").count() + s.matches("<path").count();
        assert!(paths(&with) > paths(&without), "the threshold is a line");
        let far = [Limit {
            label: "latency.p95 < 2s".into(),
            value: 2000.0,
        }];
        let svg = draw(&far);
        assert!(svg.contains("latency.p95 &lt; 2s (far above the chart)"));
        assert!(
            !svg.contains("log scale"),
            "a far threshold does not squash the data"
        );
    }

    #[test]
    fn stages_are_drawn_against_their_rate_and_a_stage_that_ran_nothing_is_not_a_point() {
        let stage = |rate: f64, p95: Option<f64>, failed: Option<f64>| StagePoint {
            rate,
            ok: [p95.map(|v| v / 2.0), p95, p95.map(|v| v * 1.5)],
            all_p95: p95.map(|v| v * 3.0),
            failed,
            late: failed.map(|_| 0.0),
            generator_limited: rate > 30.0,
        };
        let stages = [
            stage(10.0, Some(5.0), Some(0.0)),
            stage(20.0, Some(6.0), Some(0.0)),
            stage(40.0, Some(900.0), Some(0.3)),
            stage(80.0, None, None),
        ];
        let (latency, failures) = versus_rate(&stages, Some((1, "breaking point")), &[]);
        let (latency, failures) = (latency.unwrap(), failures.unwrap());
        for label in [
            "10.0/s",
            "80.0/s",
            "breaking point",
            "generator-limited stage",
            "p95 of every iteration, failed included",
        ] {
            assert!(latency.contains(label), "{label}");
        }
        // Three stages ran: three markers per line; the fourth has none.
        assert_eq!(failures.matches("<circle").count(), 3 * 2);
        assert!(versus_rate(&stages[..1], None, &[]).0.is_none());
    }

    #[test]
    fn the_last_partial_second_is_drawn_at_the_rate_it_ran_not_as_a_drop() {
        let row = |t_s, succeeded, span_s| TimelineRow {
            t_s,
            succeeded,
            span_s,
            ok_p50_ms: Some(5.0),
            ..TimelineRow::default()
        };
        let rows = [row(0, 10, None), row(1, 10, None), row(2, 4, Some(0.4))];
        let ok = &throughput_lines(&rows)[0].points;
        assert_eq!(ok[1], (1.5, 10.0));
        let (x, y) = ok[2];
        assert!((x - 2.2).abs() < 1e-9 && (y - 10.0).abs() < 1e-9, "{x} {y}");
        let p50 = &timeline_lines(&rows, "", false)[0].points;
        assert!((p50[2].0 - 2.2).abs() < 1e-9);
    }

    #[test]
    fn nothing_to_draw_draws_nothing() {
        assert!(spectrum("x", &[], &[]).is_none());
        assert!(over_time("x", "y", &[], Marks::default()).is_none());
        assert!(bars("x", "y", &[], &[]).is_none());
    }
}
