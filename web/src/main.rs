//! ddfr's browser app: the live view (camera, in-browser detection, labelled boxes), people
//! management, recurring unknown visitors and login. Plain web-sys with a small DOM layer
//! ([`dom`]); hash routes (`#/live`, `#/people`, `#/people/new`, `#/people/{id}`,
//! `#/visitors`, `#/visitors/{id}`, `#/login`).
//!
//! With `?offline`, or when the server does not answer, only the live view runs and it boxes
//! faces with the in-browser detector (the offline demo).

mod api;
mod dom;
mod live;
mod people;
mod visitors;

use std::cell::Cell;

use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement};

use crate::api::ApiError;
use crate::dom::{El, by_id, clear, document, listen, set_hidden, window};

thread_local! {
    /// True when the app runs without a server (the offline demo).
    static OFFLINE: Cell<bool> = const { Cell::new(false) };
}

fn main() {
    spawn_local(start());
}

/// Goes to a hash route.
pub fn navigate(hash: &str) {
    let _ = window().location().set_hash(hash);
}

async fn start() {
    let body = document().body();
    let Some(body) = body else { return };
    let forced_offline = window()
        .location()
        .search()
        .ok()
        .and_then(|search| web_sys::UrlSearchParams::new_with_str(&search).ok())
        .is_some_and(|params| params.has("offline"));
    let nav = El::new("nav")
        .attr("aria-label", "Main")
        .child(El::new("a").attr("href", "#/live").attr("id", "nav-live").text("Live"))
        .child(El::new("a").attr("href", "#/people").attr("id", "nav-people").text("People"))
        .child(
            El::new("a")
                .attr("href", "#/visitors")
                .attr("id", "nav-visitors")
                .attr("hidden", "")
                .text("Visitors"),
        );
    let header = El::new("header")
        .child(El::new("span").class("brand").text("ddfr"))
        .child(nav)
        .child(El::new("span").attr("id", "server-state").class("server-state"))
        .child(
            El::new("button")
                .attr("type", "button")
                .attr("id", "logout")
                .attr("hidden", "")
                .class("small")
                .text("Log out")
                .on("click", |_| {
                    spawn_local(async {
                        let _ = api::logout().await;
                        navigate("#/login");
                    });
                }),
        );
    let main = El::new("main")
        .child(El::new("section").attr("id", "live").attr("aria-label", "Live view"))
        .child(El::new("section").attr("id", "page").attr("aria-live", "polite"));
    clear(&body);
    let _ = body.append_child(header.el());
    let _ = body.append_child(main.el());

    let health = if forced_offline { None } else { Some(api::health().await) };
    let offline = match &health {
        None | Some(Err(ApiError::Network(_) | ApiError::Http { .. })) => true,
        Some(_) => false,
    };
    OFFLINE.with(|cell| cell.set(offline));
    // The Visitors page is offered when the server keeps recurring visitors
    // (`unknown_visitors` in /api/health); `#/visitors` still works, and says when it is off.
    let visitors_on = matches!(&health, Some(Ok(h)) if h.unknown_visitors);
    if visitors_on && let Some(link) = by_id::<Element>("nav-visitors") {
        set_hidden(&link, false);
    }
    if let Some(state) = by_id::<Element>("server-state") {
        state.set_text_content(Some(if offline { "offline demo" } else { "server connected" }));
    }
    if offline && let Some(link) = by_id::<Element>("nav-people") {
        set_hidden(&link, true);
    }
    // A token-protected server answers 401 here: log in before the live view connects.
    let needs_login =
        !offline && matches!(api::list_persons(1, 0).await, Err(ApiError::Unauthorized));
    if needs_login {
        // "Log out" appears once a login succeeded (see the login page).
        navigate("#/login");
    }
    listen(&window(), "hashchange", |_| route());
    route();
}

/// Shows the page for the current hash.
fn route() {
    let hash = window().location().hash().unwrap_or_default();
    let path = hash.trim_start_matches('#');
    let (Some(live_root), Some(page)) = (by_id::<Element>("live"), by_id::<Element>("page")) else {
        return;
    };
    let offline = OFFLINE.with(Cell::get);
    let is_live = matches!(path, "" | "/" | "/live") || offline;
    set_hidden(&live_root, !is_live);
    set_hidden(&page, is_live);
    let nav = [
        ("nav-live", is_live),
        ("nav-people", path.starts_with("/people")),
        ("nav-visitors", path.starts_with("/visitors")),
    ];
    for (id, active) in nav {
        if let Some(link) = by_id::<Element>(id) {
            if active {
                let _ = link.set_attribute("aria-current", "page");
            } else {
                let _ = link.remove_attribute("aria-current");
            }
        }
    }
    if is_live {
        if live_root.child_element_count() == 0 && path != "/login" {
            live::mount(&live_root, offline);
        }
        return;
    }
    match path.strip_prefix("/people") {
        Some("" | "/") => people::mount_list(&page),
        Some("/new") => people::mount_new(&page),
        Some(rest) => match rest.trim_start_matches('/').parse::<i64>() {
            Ok(id) => people::mount_person(&page, id),
            Err(_) => not_found(&page),
        },
        None if path == "/login" => mount_login(&page),
        None => match path.strip_prefix("/visitors") {
            Some("" | "/") => visitors::mount(&page, None),
            Some(rest) => match rest.trim_start_matches('/').parse::<i64>() {
                Ok(id) => visitors::mount(&page, Some(id)),
                Err(_) => not_found(&page),
            },
            None => not_found(&page),
        },
    }
}

fn not_found(page: &Element) {
    clear(page);
    let _ = page.append_child(El::new("h1").text("Not found").el());
    let _ =
        page.append_child(El::new("a").attr("href", "#/live").text("Back to the live view").el());
}

/// The login page: the token goes in a POST body and comes back as an HttpOnly cookie.
fn mount_login(page: &Element) {
    clear(page);
    let form = El::new("form")
        .attr("id", "login-form")
        .child(El::new("h1").text("Log in"))
        .child(El::new("p").text("This server needs its API token. It is sent once and kept as an HttpOnly cookie; it never appears in a URL."))
        .child(
            El::new("div")
                .class("field")
                .child(El::new("label").attr("for", "token").text("API token"))
                .child(El::new("input").attr("id", "token").attr("type", "password").attr("autocomplete", "current-password").attr("required", "")),
        )
        .child(El::new("p").attr("id", "login-error").attr("role", "alert").class("error"))
        .child(El::new("button").attr("type", "submit").class("primary").text("Log in"));
    let _ = page.append_child(form.el());
    if let Some(input) = by_id::<web_sys::HtmlElement>("token") {
        let _ = input.focus();
    }
    listen(form.el(), "submit", |event| {
        event.prevent_default();
        let Some(input) = by_id::<HtmlInputElement>("token") else { return };
        let token = input.value();
        input.set_value("");
        spawn_local(async move {
            match api::login(&token).await {
                Ok(()) => {
                    if let Some(button) = by_id::<Element>("logout") {
                        set_hidden(&button, false);
                    }
                    navigate("#/live");
                }
                Err(error) => {
                    if let Some(target) = by_id::<Element>("login-error") {
                        let text = if error == ApiError::Unauthorized {
                            "Wrong token.".to_owned()
                        } else {
                            error.summary()
                        };
                        target.set_text_content(Some(&text));
                    }
                }
            }
        });
    });
}
