//! A small DOM layer over web-sys: element builders, lookups and event wiring.
//!
//! Event closures are handed to the browser with `Closure::forget`: the app builds each view's
//! elements once per render and the leaked closures are a few bytes each, which keeps the code
//! free of lifetime bookkeeping that a framework would otherwise do.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element, Event, HtmlElement, HtmlInputElement, HtmlSelectElement, Window};

/// Two-press confirmation of a destructive button (a dialog would block keyboards and tests):
/// the first press only arms it and shows `confirm` on the button, and returns false; a press
/// once armed returns true.
pub fn second_press(armed: &std::cell::Cell<bool>, event: &Event, confirm: &str) -> bool {
    if armed.get() {
        return true;
    }
    armed.set(true);
    if let Some(button) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) {
        button.set_text_content(Some(confirm));
    }
    false
}

/// The browser window. Every page this app runs in has one.
pub fn window() -> Window {
    web_sys::window().expect_throw("ddfr's web app runs in a browser window")
}

/// The page's document.
pub fn document() -> Document {
    window().document().expect_throw("the window has a document")
}

/// Milliseconds since page load, sub-millisecond where the browser allows.
pub fn now_ms() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// An element builder: `El::new("button").class("primary").text("Save").on("click", ...)`.
#[derive(Debug, Clone)]
pub struct El(pub Element);

impl El {
    /// A new element of `tag`.
    pub fn new(tag: &str) -> Self {
        Self(document().create_element(tag).expect_throw("tag names used by the app are valid"))
    }

    /// Sets an attribute.
    pub fn attr(self, name: &str, value: &str) -> Self {
        // Attribute names used by the app are constants and valid.
        let _ = self.0.set_attribute(name, value);
        self
    }

    /// Adds classes (space-separated).
    pub fn class(self, classes: &str) -> Self {
        for class in classes.split_whitespace() {
            let _ = self.0.class_list().add_1(class);
        }
        self
    }

    /// Sets the text content.
    pub fn text(self, text: &str) -> Self {
        self.0.set_text_content(Some(text));
        self
    }

    /// Appends a child.
    pub fn child(self, child: impl Into<Element>) -> Self {
        let _ = self.0.append_child(&child.into());
        self
    }

    /// Appends children.
    pub fn children(self, children: impl IntoIterator<Item = El>) -> Self {
        for child in children {
            let _ = self.0.append_child(&child.0);
        }
        self
    }

    /// Calls `handler` on `event`.
    pub fn on(self, event: &str, handler: impl FnMut(Event) + 'static) -> Self {
        listen(&self.0, event, handler);
        self
    }

    /// The element.
    pub fn el(&self) -> &Element {
        &self.0
    }
}

impl From<El> for Element {
    fn from(el: El) -> Element {
        el.0
    }
}

/// Calls `handler` whenever `target` fires `event`.
pub fn listen(target: &web_sys::EventTarget, event: &str, handler: impl FnMut(Event) + 'static) {
    let closure = Closure::<dyn FnMut(Event)>::new(handler);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    closure.forget();
}

/// The element with `id`, cast to `T`.
pub fn by_id<T: JsCast>(id: &str) -> Option<T> {
    document().get_element_by_id(id).and_then(|e| e.dyn_into::<T>().ok())
}

/// Removes every child of `parent`.
pub fn clear(parent: &Element) {
    parent.set_inner_html("");
}

/// Shows or hides an element (the `hidden` attribute).
pub fn set_hidden(element: &Element, hidden: bool) {
    if let Some(html) = element.dyn_ref::<HtmlElement>() {
        html.set_hidden(hidden);
    }
}

/// The current value of an `<input>` or `<select>` with `id`, or an empty string.
pub fn value_of(id: &str) -> String {
    if let Some(input) = by_id::<HtmlInputElement>(id) {
        return input.value();
    }
    by_id::<HtmlSelectElement>(id).map(|s| s.value()).unwrap_or_default()
}

/// Calls `f` after `delay_ms` milliseconds.
pub fn set_timeout(delay_ms: i32, f: impl FnOnce() + 'static) {
    let closure = Closure::once_into_js(f);
    let _ = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(closure.unchecked_ref(), delay_ms);
}

/// Calls `f` before the next repaint.
pub fn request_animation_frame(f: impl FnOnce() + 'static) {
    let closure = Closure::once_into_js(f);
    let _ = window().request_animation_frame(closure.unchecked_ref());
}

/// Logs a line to the browser console (never anything secret).
pub fn log(message: &str) {
    web_sys::console::log_1(&JsValue::from_str(message));
}
