//! Line plots for people: the legend outside the data, markers only on short curves.

use biotasks::plot::{write_line_plot, LinePlot, Series, MAX_MARKED_POINTS};

fn curve(label: &str, n: usize) -> Series {
    Series {
        label: label.into(),
        points: (1..=n).map(|e| (e as f64, 1.0 / e as f64)).collect(),
        ..Default::default()
    }
}

fn render(series: Vec<Series>, n: usize) -> (u32, String) {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("plot");
    let plot = LinePlot {
        title: "t",
        x_label: "epoch",
        y_label: "loss",
        x_range: (1.0, n as f64),
        y_range: (0.0, 1.0),
        series,
    };
    write_line_plot(&stem, &plot).unwrap();
    let png = image::open(stem.with_extension("png")).unwrap();
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    (png.width(), svg)
}

#[test]
fn the_legend_is_a_strip_beside_the_data() {
    let (unlabelled, _) = render(vec![curve("", 10)], 10);
    assert_eq!(unlabelled, 720);
    let (labelled, svg) = render(
        vec![curve("alpha, a long legend label", 10), curve("beta label", 10)],
        10,
    );
    assert!(labelled > 720 + 100 && labelled <= 720 + 360, "width {labelled}");
    // Every label is drawn right of the 720-pixel plot.
    for label in ["alpha, a long legend label", "beta label"] {
        let at = svg.find(label).unwrap();
        let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
        let x: f64 = tag
            .split("x=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(x > 720.0, "{label} at x = {x}");
    }
}

#[test]
fn markers_only_on_short_curves() {
    let circles = |svg: &str| svg.matches("<circle").count();
    let (_, short) = render(vec![curve("s", MAX_MARKED_POINTS)], MAX_MARKED_POINTS);
    assert_eq!(circles(&short), MAX_MARKED_POINTS);
    let (_, long) = render(vec![curve("l", 300)], 300);
    assert_eq!(circles(&long), 0);
}
