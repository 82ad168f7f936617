//! Drawing: the labelled boxes on the overlay canvas, and the same labels as a text list (for
//! screen readers and tests).

use wasm_bindgen::prelude::*;
use web_sys::CanvasRenderingContext2d;

use super::labels::{Label, LabelKind};
use super::{Live, context_2d};
use crate::dom::{El, by_id, clear};

/// Smallest label text on screen, in CSS pixels, however small the video is shown (a phone).
const MIN_TITLE_CSS_PX: f64 = 15.0;
/// Smallest second line on screen, in CSS pixels.
const MIN_FACTS_CSS_PX: f64 = 12.0;

/// Box colour and whether its outline is dashed.
fn style(kind: LabelKind) -> (&'static str, bool) {
    match kind {
        LabelKind::Known => ("#1db954", false),
        LabelKind::Unknown => ("#ff8c1a", true),
        LabelKind::Local => ("#3ea6ff", false),
    }
}

/// Draws the labels over the video, in frame coordinates (CSS scales the canvas with it).
pub(super) fn draw(s: &Live) {
    let (width, height) = (s.video.video_width(), s.video.video_height());
    if width == 0 {
        return;
    }
    if s.overlay.width() != width || s.overlay.height() != height {
        s.overlay.set_width(width);
        s.overlay.set_height(height);
    }
    let Some(ctx) = context_2d(&s.overlay) else { return };
    let (width, height) = (f64::from(width), f64::from(height));
    ctx.clear_rect(0.0, 0.0, width, height);
    // Frame pixels per CSS pixel: the text is sized for the screen, not for the frame.
    let shown = f64::from(s.overlay.client_width());
    let frame_px_per_css = if shown > 0.0 { width / shown } else { 1.0 };
    let sizes = Sizes {
        line: (width / 320.0).max(2.0),
        title: (width / 40.0).max(MIN_TITLE_CSS_PX * frame_px_per_css),
        facts: (width / 50.0).max(MIN_FACTS_CSS_PX * frame_px_per_css),
        frame_width: width,
        frame_height: height,
    };
    for label in &s.labels {
        draw_label(&ctx, label, &sizes);
    }
}

/// Line width and font sizes in frame pixels.
struct Sizes {
    line: f64,
    title: f64,
    facts: f64,
    frame_width: f64,
    frame_height: f64,
}

fn draw_label(ctx: &CanvasRenderingContext2d, label: &Label, sizes: &Sizes) {
    let (color, dashed) = style(label.kind);
    let line = sizes.line;
    ctx.set_line_width(line);
    let dash = js_sys::Array::new();
    if dashed {
        dash.push(&JsValue::from_f64(line * 4.0));
        dash.push(&JsValue::from_f64(line * 3.0));
    }
    let _ = ctx.set_line_dash(&dash);
    ctx.set_stroke_style_str(color);
    let (x, y) = (f64::from(label.left), f64::from(label.top));
    let (w, h) = (f64::from(label.right - label.left), f64::from(label.bottom - label.top));
    ctx.stroke_rect(x, y, w, h);

    // A tag of one or two lines: the title in bold, the facts and hint smaller below it.
    let title_font = format!("700 {:.0}px system-ui, sans-serif", sizes.title);
    let facts_font = format!("500 {:.0}px system-ui, sans-serif", sizes.facts);
    let facts = label.facts_parts().join(" · ");
    ctx.set_font(&title_font);
    let title_w = ctx.measure_text(&label.title).map(|m| m.width()).unwrap_or(0.0);
    ctx.set_font(&facts_font);
    let facts_w = if facts.is_empty() {
        0.0
    } else {
        ctx.measure_text(&facts).map(|m| m.width()).unwrap_or(0.0)
    };
    let pad = sizes.title * 0.3;
    let tag_w = (title_w.max(facts_w) + 2.0 * pad).min(sizes.frame_width);
    let tag_h = sizes.title + 2.0 * pad + if facts.is_empty() { 0.0 } else { sizes.facts * 1.25 };
    // Above the box when it fits, else below it, else inside its top; never off the frame.
    let tag_y = if y - tag_h >= 0.0 {
        y - tag_h
    } else if y + h + tag_h <= sizes.frame_height {
        y + h
    } else {
        y.max(0.0)
    };
    let tag_x = (x - line / 2.0).clamp(0.0, (sizes.frame_width - tag_w).max(0.0));
    ctx.set_fill_style_str(color);
    ctx.fill_rect(tag_x, tag_y, tag_w, tag_h);
    ctx.set_fill_style_str("#000");
    ctx.set_font(&title_font);
    let baseline = tag_y + pad + sizes.title * 0.85;
    let _ = ctx.fill_text_with_max_width(&label.title, tag_x + pad, baseline, tag_w - 2.0 * pad);
    if !facts.is_empty() {
        ctx.set_font(&facts_font);
        let _ = ctx.fill_text_with_max_width(
            &facts,
            tag_x + pad,
            baseline + sizes.facts * 1.2,
            tag_w - 2.0 * pad,
        );
    }
}

/// Lists the labels as text, for screen readers and tests: the name, the facts, the hint
/// (its tooltip and a details line explain the false-accept estimate) and data attributes
/// with the raw values.
pub(super) fn render_faces(s: &Live) {
    let Some(list) = by_id::<web_sys::Element>("face-list") else { return };
    let key: Vec<String> = s
        .labels
        .iter()
        .map(|l| {
            format!("{}|{}|{:?}", l.one_line(), l.details.as_deref().unwrap_or(""), l.track_id)
        })
        .collect();
    let key = key.join("\n");
    if list.get_attribute("data-labels").unwrap_or_default() == key {
        return;
    }
    clear(&list);
    let _ = list.set_attribute("data-labels", &key);
    for label in &s.labels {
        let _ = list.append_child(list_item(label).el());
    }
}

fn list_item(label: &Label) -> El {
    let kind = label.kind.as_str();
    let mut item = El::new("li")
        .class(kind)
        .attr("data-kind", kind)
        .child(El::new("strong").class("who").text(&label.title));
    if !label.facts.is_empty() {
        item = item.child(El::new("span").class("facts").text(&format!(" · {}", label.facts)));
    }
    if let Some(hint) = &label.hint {
        item = item.child(El::new("span").class("sep").text(" · "));
        let mut hint_el = El::new("span").class("hint").text(hint);
        if let Some(confidence) = label.confidence {
            hint_el = hint_el.class(confidence.as_str());
        }
        if let Some(details) = &label.details {
            hint_el = hint_el.attr("title", details);
        }
        item = item.child(hint_el);
    }
    if let Some(details) = &label.details {
        item = item.child(El::new("small").class("details").text(details));
    }
    let numbers = [
        ("data-track-id", label.track_id.map(|v| v.to_string())),
        ("data-unknown-id", label.unknown_id.map(|v| v.to_string())),
        ("data-similarity", label.similarity.map(|v| v.to_string())),
        ("data-far", label.false_accept_rate.map(|v| v.to_string())),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            item = item.attr(name, &value);
        }
    }
    // The Visitors page is for keys that may read it (not a recognizer key).
    if let Some(id) = label.unknown_id.filter(|_| crate::access().can_read()) {
        item = item.child(
            El::new("a")
                .class("visitor-link")
                .attr("href", &format!("#/visitors/{id}"))
                .text("Who is this?"),
        );
    }
    item
}
