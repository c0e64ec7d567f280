//! The legal pages are reachable without login, under the page's CSP, and
//! linked from the patient page.

mod common;

use common::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_pages_are_public_linked_and_under_the_csp() {
    let node = Node::start().await;
    for page in ["imprint", "privacy", "terms"] {
        let res = reqwest::get(format!("{}/legal/{page}", node.base))
            .await
            .expect("get");
        assert_eq!(res.status(), 200, "{page}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        let body = res.text().await.expect("body");
        assert!(body.contains("<html lang=\"de\">"), "German by default");
        assert!(body.contains("integrity=\"sha384-"), "stylesheet with SRI");
        assert!(!body.contains("<script"), "no scripts on legal pages");
    }
    let privacy = reqwest::get(format!("{}/legal/privacy", node.base))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(privacy.contains("Ende-zu-Ende"), "built-in privacy notice");
    assert_eq!(
        reqwest::get(format!("{}/legal/secrets", node.base))
            .await
            .expect("get")
            .status(),
        404
    );
    let page = reqwest::get(format!("{}/c/anything", node.base))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    for link in ["/legal/imprint", "/legal/privacy", "/legal/terms"] {
        assert!(
            page.contains(&format!("href=\"{link}\"")),
            "patient page links {link}"
        );
    }
    node.stop().await;
}
