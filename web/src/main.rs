//! ddfr's browser app: the live view (camera, in-browser detection, labelled boxes), people
//! management, recurring unknown visitors and login. Plain web-sys with a small DOM layer
//! ([`dom`]); hash routes (`#/live`, `#/people`, `#/people/new`, `#/people/{id}`,
//! `#/visitors`, `#/visitors/{id}`, `#/keys`, `#/events`, `#/privacy`, `#/login`).
//!
//! At start the app asks `GET /api/session` what the browser's session cookie allows, and
//! offers only the pages that role may use ([`Access`]): a recognizer key gets the live view, an
//! operator key reads people and visitors, the admin does everything. The server enforces the
//! same rules; this only keeps controls that would be refused off the screen.
//!
//! With `?offline`, or when the server does not answer, only the live view runs and it boxes
//! faces with the in-browser detector (the offline demo).

mod api;
mod dom;
mod events;
mod keys;
mod live;
mod people;
mod privacy;
mod visitors;

use std::cell::Cell;

use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, HtmlInputElement};

use crate::api::ApiError;
use crate::dom::{El, by_id, clear, document, listen, set_hidden, window};

thread_local! {
    /// True when the app runs without a server (the offline demo).
    static OFFLINE: Cell<bool> = const { Cell::new(false) };
    /// True when the server keeps recurring visitors (`unknown_visitors` in /api/health).
    static VISITORS_ON: Cell<bool> = const { Cell::new(false) };
    /// What the current session may do.
    static ACCESS: Cell<Access> = const { Cell::new(Access::Admin) };
    /// Why the login page is shown (a revoked key, an expired session), shown above the form.
    static LOGIN_REASON: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// What the browser's credential allows, from `GET /api/session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No valid credential on a server that wants one.
    None,
    /// Live view only (`/ws`, recognize, verify).
    Recognizer,
    /// Live view and read-only people and visitors.
    Operator,
    /// Everything (also: a server without a token).
    Admin,
}

impl Access {
    /// The access a session reply grants.
    pub fn of(session: &api::Session) -> Self {
        if !session.auth_required {
            return Access::Admin;
        }
        if !session.authenticated {
            return Access::None;
        }
        match session.role.as_deref() {
            Some("admin") => Access::Admin,
            Some("operator") => Access::Operator,
            Some("recognizer") => Access::Recognizer,
            _ => Access::None,
        }
    }

    /// Whether people and visitors may be read.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Operator | Access::Admin)
    }

    /// Whether persons, faces, consent, keys and visitors may be changed.
    pub fn can_write(self) -> bool {
        self == Access::Admin
    }
}

/// The current session's access.
pub fn access() -> Access {
    ACCESS.with(Cell::get)
}

/// Sends the user to the login page with a reason shown above the form.
pub fn login_with_reason(reason: &str) {
    LOGIN_REASON.with(|cell| *cell.borrow_mut() = Some(reason.to_owned()));
    navigate("#/login");
}

/// Asks the server what this browser's session allows and updates the header to match: the
/// nav links the role may use, and "Log out" when a session cookie is in use. Returns `None`
/// when the server could not be asked.
pub async fn refresh_session() -> Option<api::Session> {
    let session = api::session().await.ok()?;
    apply_session(&session);
    Some(session)
}

fn apply_session(session: &api::Session) {
    let access = Access::of(session);
    ACCESS.with(|cell| cell.set(access));
    let show = |id: &str, on: bool| {
        if let Some(el) = by_id::<Element>(id) {
            set_hidden(&el, !on);
        }
    };
    show("nav-people", access.can_read());
    show("nav-visitors", access.can_read() && VISITORS_ON.with(Cell::get));
    show("nav-keys", access.can_write() && session.auth_required);
    show("nav-events", access.can_write());
    show("logout", session.auth_required && session.authenticated && session.via == "cookie");
    if let Some(role) = by_id::<Element>("session-role") {
        let text = match (session.auth_required, access) {
            (false, _) | (_, Access::None) => String::new(),
            (true, Access::Admin) => "admin".to_owned(),
            (true, Access::Operator) => "operator (read-only)".to_owned(),
            (true, Access::Recognizer) => "recognizer (live only)".to_owned(),
        };
        role.set_text_content(Some(&text));
    }
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
        )
        .child(
            El::new("a")
                .attr("href", "#/keys")
                .attr("id", "nav-keys")
                .attr("hidden", "")
                .text("Keys"),
        )
        .child(
            El::new("a")
                .attr("href", "#/events")
                .attr("id", "nav-events")
                .attr("hidden", "")
                .text("Events"),
        )
        .child(
            El::new("a")
                .attr("href", "#/privacy")
                .attr("id", "nav-privacy")
                .attr("hidden", "")
                .text("Privacy"),
        );
    let header = El::new("header")
        .child(El::new("span").class("brand").text("ddfr"))
        .child(nav)
        .child(El::new("span").attr("id", "server-state").class("server-state"))
        .child(El::new("span").attr("id", "session-role").class("session-role"))
        .child(
            El::new("button")
                .attr("type", "button")
                .attr("id", "logout")
                .attr("hidden", "")
                .class("small")
                .text("Log out")
                .on("click", |_| {
                    spawn_local(async {
                        live::halt();
                        let _ = api::logout().await;
                        if refresh_session().await.is_none() {
                            ACCESS.with(|cell| cell.set(Access::None));
                        }
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
    if let Some(state) = by_id::<Element>("server-state") {
        state.set_text_content(Some(if offline { "offline demo" } else { "server connected" }));
    }
    if offline {
        if let Some(link) = by_id::<Element>("nav-people") {
            set_hidden(&link, true);
        }
    } else {
        if let Some(link) = by_id::<Element>("nav-privacy") {
            set_hidden(&link, false);
        }
        // A token-protected server without a valid session cookie: log in before the live view
        // connects. A returning browser whose cookie still works goes straight on, with
        // "Log out" shown.
        VISITORS_ON.with(|cell| cell.set(visitors_on));
        let session = refresh_session().await;
        if session.is_none() && visitors_on {
            // A server without /api/session: offer the page, as before.
            if let Some(link) = by_id::<Element>("nav-visitors") {
                set_hidden(&link, false);
            }
        }
        // The privacy notice is open to everyone: no login in front of it.
        let on_privacy = window().location().hash().unwrap_or_default() == "#/privacy";
        if session.is_some_and(|s| s.auth_required && !s.authenticated) && !on_privacy {
            navigate("#/login");
        }
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
        ("nav-keys", path.starts_with("/keys")),
        ("nav-events", path.starts_with("/events")),
        ("nav-privacy", path.starts_with("/privacy")),
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
    let access = access();
    let needs = |page_path: &str| -> Option<&'static str> {
        match page_path {
            "/people/new" if access == Access::Operator => Some("write"),
            p if p.starts_with("/people") || p.starts_with("/visitors") => {
                (!access.can_read()).then_some("people")
            }
            p if p.starts_with("/keys") => (!access.can_write()).then_some("keys"),
            p if p.starts_with("/events") => (!access.can_write()).then_some("events"),
            _ => None,
        }
    };
    if access != Access::None
        && let Some(what) = needs(path)
    {
        not_allowed(&page, access, what);
        return;
    }
    if path == "/privacy" {
        privacy::mount_policy(&page);
        return;
    }
    if path == "/keys" {
        keys::mount(&page);
        return;
    }
    if path == "/events" {
        events::mount(&page);
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

/// A page this session's role may not use: says so plainly instead of showing raw 403s.
fn not_allowed(page: &Element, access: Access, what: &str) {
    clear(page);
    let text = match (access, what) {
        (Access::Recognizer, _) => {
            "Your key may only recognize: it opens the live view, not the people, visitors or keys pages. Log in with an operator or admin key to see them."
        }
        (_, "keys") => {
            "Only an admin may manage API keys. Your key is an operator key: it may read people and visitors."
        }
        (_, "write") => {
            "Only an admin may add people. Your key is an operator key: it may read people and visitors."
        }
        _ => "Your key may not open this page.",
    };
    let _ = page.append_child(El::new("h1").text("Not available with this key").el());
    let _ = page
        .append_child(El::new("p").attr("id", "not-allowed").attr("role", "alert").text(text).el());
    let _ =
        page.append_child(El::new("a").attr("href", "#/live").text("Back to the live view").el());
}

/// The login page: the token goes in a POST body and comes back as an HttpOnly cookie.
fn mount_login(page: &Element) {
    clear(page);
    let form = El::new("form")
        .attr("id", "login-form")
        .child(El::new("h1").text("Log in"))
        .child(El::new("p").attr("id", "login-reason").attr("role", "status").class("notice").attr("hidden", ""))
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
    if let Some(reason) = LOGIN_REASON.with(|cell| cell.borrow_mut().take())
        && let Some(target) = by_id::<Element>("login-reason")
    {
        target.set_text_content(Some(&reason));
        set_hidden(&target, false);
    }
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
                    // The role comes with the key: re-read what this session may do.
                    let _ = refresh_session().await;
                    live::resume();
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
