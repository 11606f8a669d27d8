//! The operator dashboard at `GET /`: one hand-written HTML page, a script and a
//! stylesheet, compiled into the binary with `include_str!`.
//!
//! No CDN and no build step, so the page works offline and matches the binary
//! that serves it. The page holds no data; it reads the REST API from the browser
//! (with the key it asked for once and kept in `localStorage` when the daemon is
//! keyed), so the assets themselves need no auth.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const SCHEDULE_JS: &str = include_str!("schedule.js");
const BADGES_JS: &str = include_str!("badges.js");
const CHANNELS_JS: &str = include_str!("channels.js");
const SEGMENTS_JS: &str = include_str!("segments.js");
const HEARTBEAT_DETAIL_JS: &str = include_str!("heartbeat_detail.js");
const JOB_STREAM_JS: &str = include_str!("job_stream.js");
const DETECTION_JS: &str = include_str!("detection.js");
const TAGS_JS: &str = include_str!("tags.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Everything the page loads comes from this origin; nothing inline runs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/schedule.js", get(schedule_js))
        .route("/assets/badges.js", get(badges_js))
        .route("/assets/channels.js", get(channels_js))
        .route("/assets/segments.js", get(segments_js))
        .route("/assets/heartbeat_detail.js", get(heartbeat_detail_js))
        .route("/assets/job_stream.js", get(job_stream_js))
        .route("/assets/detection.js", get(detection_js))
        .route("/assets/tags.js", get(tags_js))
        .route("/assets/style.css", get(style_css))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Embedded assets change with the binary; revalidating is cheap.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        asset("text/html; charset=utf-8", INDEX_HTML),
    )
}

async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn schedule_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCHEDULE_JS)
}

async fn badges_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", BADGES_JS)
}

async fn channels_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", CHANNELS_JS)
}

async fn segments_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SEGMENTS_JS)
}

async fn heartbeat_detail_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", HEARTBEAT_DETAIL_JS)
}

async fn job_stream_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JOB_STREAM_JS)
}

async fn detection_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", DETECTION_JS)
}

async fn tags_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", TAGS_JS)
}

async fn style_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
