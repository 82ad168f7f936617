//! Drawing: the labelled boxes on the overlay canvas, and the same labels as a text list (for
//! screen readers and tests).

use wasm_bindgen::prelude::*;

use super::labels::LabelKind;
use super::{Live, context_2d};
use crate::dom::{El, by_id, clear};

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
    ctx.clear_rect(0.0, 0.0, f64::from(width), f64::from(height));
    let line = (f64::from(width) / 320.0).max(2.0);
    let font_px = (f64::from(width) / 40.0).max(12.0);
    ctx.set_line_width(line);
    ctx.set_font(&format!("600 {font_px:.0}px system-ui, sans-serif"));
    for label in &s.labels {
        let (color, dashed) = match label.kind {
            LabelKind::Known => ("#1db954", false),
            LabelKind::Unknown => ("#ff8c1a", true),
            LabelKind::Local => ("#3ea6ff", false),
        };
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
        let text_w = ctx.measure_text(&label.text).map(|m| m.width()).unwrap_or(0.0);
        let pad = font_px * 0.3;
        let box_h = font_px + 2.0 * pad;
        let text_y = if y - box_h >= 0.0 { y - box_h } else { y + h };
        ctx.set_fill_style_str(color);
        ctx.fill_rect(x - line / 2.0, text_y, text_w + 2.0 * pad, box_h);
        ctx.set_fill_style_str("#000");
        let _ = ctx.fill_text(&label.text, x - line / 2.0 + pad, text_y + pad + font_px * 0.85);
    }
}

/// Lists the labels as text, for screen readers and tests.
pub(super) fn render_faces(s: &Live) {
    let Some(list) = by_id::<web_sys::Element>("face-list") else { return };
    let text: Vec<String> = s.labels.iter().map(|l| l.text.clone()).collect();
    let current = list.get_attribute("data-labels").unwrap_or_default();
    let joined = text.join("\n");
    if current == joined {
        return;
    }
    clear(&list);
    let _ = list.set_attribute("data-labels", &joined);
    for label in &s.labels {
        let kind = match label.kind {
            LabelKind::Known => "known",
            LabelKind::Unknown => "unknown",
            LabelKind::Local => "local",
        };
        let _ = list
            .append_child(El::new("li").class(kind).attr("data-kind", kind).text(&label.text).el());
    }
}
