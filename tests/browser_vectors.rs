//! The page's own `seal.js`, as the node serves it, passes the shared envelope
//! vectors inside headless Chromium (WebCrypto), like the Rust crate does.

mod common;

use std::time::Duration;

use common::Node;
use common::browser::{Chromium, eval, wait_true};

const VECTORS: &str = include_str!("../signaling/tests/vectors/vectors.json");
const CHECKS: &str = include_str!("../web/tests/vectors-core.js");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_seal_js_passes_the_shared_vectors_in_chromium() {
    let node = Node::start().await;
    let chromium = Chromium::launch().await;
    let page = chromium.page().await;
    // Any page of the node's origin; the link is incomplete, which is fine.
    page.goto(format!("{}/c/x", node.base).as_str())
        .await
        .expect("opens");
    assert!(
        wait_true(
            &page,
            "document.readyState === 'complete'",
            Duration::from_secs(10)
        )
        .await
    );

    let checks = CHECKS.replace("export async function", "async function");
    let js = format!(
        "(async () => {{ {checks}\n const seal = await import('/static/seal.js');\n \
         const lines = [];\n const r = await runVectors(seal, {VECTORS}, l => lines.push(l));\n \
         return {{passed: r.passed, failed: r.failed, lines}}; }})()"
    );
    let result = eval(&page, &js).await;
    eprintln!("{result}");
    let passed = result["passed"].as_u64().unwrap_or(0);
    assert_eq!(result["failed"], 0, "failures in Chromium: {result}");
    assert!(passed >= 30, "the vectors really ran: {result}");
    chromium.close().await;
    node.stop().await;
}
