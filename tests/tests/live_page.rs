//! The live page in a real browser: headless Chromium loads `/metrics/live` from the running
//! examples under traffic, and the charts must have been drawn, with data, for the routes
//! that got traffic. The screenshot it takes is the one the README shows.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vitals_tests::browser::{chromium, Image};
use vitals_tests::http::get;

#[path = "support/actix_app.rs"]
mod actix_app_server;
use actix_app_server::ActixApp;

/// The first route's line colour on the page (its palette starts with it).
const FIRST_LINE: [u8; 3] = [0x25, 0x63, 0xeb];

/// Sends a mix of requests until told to stop (or 4,000 requests): most to `/users/{id}`,
/// some 500s, some slow ones, a few that no route matches.
fn traffic(app: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sent = 0;
        for i in 0..4_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let path = match i % 20 {
                0 => "/slow".to_owned(),
                1 | 2 => "/error".to_owned(),
                3 => "/no/such/page".to_owned(),
                _ => format!("/users/{}", i % 50),
            };
            if get(app, &path, &[]).is_ok() {
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(4));
        }
        sent
    })
}

/// Polls `live.json` until the route has traffic in at least `points` slots.
fn wait_for_points(app: SocketAddr, route: &str, points: usize) -> String {
    let started = Instant::now();
    let needle = format!("\"route\":\"{route}\"");
    loop {
        let json = get(app, "/metrics/live.json", &[])
            .expect("live.json")
            .text();
        let seen = json.find(&needle).map_or(0, |at| {
            let rate = &json[at..];
            let rate = &rate[rate.find("\"rate\":[").unwrap_or(0)..];
            let end = rate.find(']').unwrap_or(0);
            rate[..end]
                .split(',')
                .filter(|v| v.parse::<f64>().is_ok_and(|v| v > 0.0))
                .count()
        });
        if seen >= points {
            return json;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{route} has {seen} slots of traffic after 30 s: {json}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The attributes of each element `tag` in `html`, as `(name, value)` pairs.
fn attributes<'a>(html: &'a str, tag: &str) -> Vec<Vec<(&'a str, &'a str)>> {
    let open = format!("<{tag} ");
    html.match_indices(&open)
        .map(|(at, _)| {
            let element = &html[at..at + html[at..].find('>').unwrap_or(0)];
            let mut pairs = Vec::new();
            for part in element.split("\" ") {
                if let Some((k, v)) = part.rsplit_once("=\"") {
                    let k = k.rsplit(' ').next().unwrap_or(k);
                    pairs.push((k, v.trim_end_matches('"')));
                }
            }
            pairs
        })
        .collect()
}

fn attribute<'a>(element: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    element.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_draws_the_golden_signals_of_the_axum_app() {
    let app = axum_app::app().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(move || check_page(address))
        .await
        .unwrap();
    server.abort();
}

fn check_page(app: SocketAddr) {
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(app, Arc::clone(&stop));
    wait_for_points(app, "/users/{id}", 4);
    let url = format!("http://{app}/metrics/live");

    // The DOM after the page's scripts ran: every chart drew lines with points, and the
    // routes and the function that got traffic are listed.
    let dom = chromium(&url, (1280, 1000), Duration::from_secs(5), None);
    let body = attributes(&dom, "body");
    let updates = body
        .first()
        .and_then(|b| attribute(b, "data-updates"))
        .and_then(|v| v.parse::<u32>().ok());
    assert!(updates >= Some(1), "the page never read live.json: {dom}");
    let canvases = attributes(&dom, "canvas");
    assert_eq!(
        canvases.len(),
        8,
        "four charts for routes, four for functions: {dom}"
    );
    for canvas in &canvases {
        let lines: usize = attribute(canvas, "data-lines")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let points: usize = attribute(canvas, "data-points")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(
            lines >= 1 && points >= 3,
            "a chart without data: {canvas:?}"
        );
    }
    let routes_rate = canvases
        .iter()
        .find(|c| {
            attribute(c, "data-signal") == Some("rate")
                && attribute(c, "data-section") == Some("routes")
        })
        .unwrap();
    let lines: usize = attribute(routes_rate, "data-lines")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        lines >= 3,
        "/users/{{id}}, /error and /slow: {routes_rate:?}"
    );
    for row in [
        "data-name=\"GET /users/{id}\"",
        "data-name=\"GET /error\"",
        "data-name=\"GET /slow\"",
        "data-name=\"find_user (axum_app)\"",
    ] {
        assert!(dom.contains(row), "{row} is not on the page: {dom}");
    }
    assert!(
        !dom.contains("/users/7\""),
        "raw paths never reach the page"
    );
    assert!(dom.contains(">100%<"), "/error fails every time: {dom}");

    // The pixels: the busiest route's line is drawn.
    let path = match std::env::var_os("VITALS_UPDATE_SCREENSHOT") {
        Some(_) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/live.png"),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live.png"),
    };
    let _ = chromium(&url, (1280, 900), Duration::from_secs(5), Some(&path));
    let image = Image::from_png(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((image.width, image.height), (1280, 900));
    let line_pixels = image.count_near(FIRST_LINE, 40);
    assert!(line_pixels > 300, "{line_pixels} pixels of the first line");

    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert!(sent > 0);
}

#[test]
fn the_actix_app_serves_the_same_live_data() {
    let app = ActixApp::start();
    let address = app.address;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(address, Arc::clone(&stop));
    let json = wait_for_points(address, "/users/{id}", 2);
    assert!(json.contains("\"route\":\"/error\""), "{json}");
    assert!(json.contains("\"function\":\"find_user\""), "{json}");
    let page = get(address, "/metrics/live", &[]).unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.header("content-security-policy").is_some());
    assert!(page.text().contains("live.json"));
    // Not a route of the app: the live page's requests are not recorded.
    let metrics = get(address, "/metrics", &[]).unwrap().text();
    assert!(!metrics.contains("/metrics/live"), "{metrics}");
    // The actix middleware reads `traceparent` too: the trace id is the exemplar of the
    // request's series in the OpenMetrics answer.
    let traced = "00-5cf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    get(address, "/users/77/orders/9", &[("traceparent", traced)]).unwrap();
    let openmetrics = get(
        address,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .unwrap()
    .text();
    let exemplar = "# {trace_id=\"5cf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"}";
    let lines: Vec<&str> = openmetrics
        .lines()
        .filter(|l| l.contains(exemplar))
        .collect();
    assert_eq!(lines.len(), 2, "{openmetrics}");
    assert!(lines
        .iter()
        .all(|l| l.contains("route=\"/users/{id}/orders/{order_id}\"")));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    app.stop();
}
