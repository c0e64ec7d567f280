//! The operator's legal pages (imprint, privacy notice, terms of use), shown
//! to patients without login at `/legal/{imprint,privacy,terms}`.
//!
//! The operator writes each as an HTML fragment in `legal_dir`
//! (`imprint.html`, `privacy.html`, `terms.html`); the node wraps it in a
//! page under the same strict CSP (so scripts and inline styles in a fragment
//! do not run). Without a file, the privacy notice falls back to a built-in
//! German/English description of exactly what the node processes, and the
//! imprint and terms say plainly that the operator has not provided them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

/// The pages, rendered once at start-up.
#[derive(Debug)]
pub struct LegalPages {
    pages: HashMap<&'static str, String>,
}

/// Page names and their German / English titles.
const PAGES: [(&str, &str); 3] = [
    ("imprint", "Impressum / Imprint"),
    ("privacy", "Datenschutzhinweise / Privacy notice"),
    ("terms", "Nutzungsbedingungen / Terms of use"),
];

const DEFAULT_PRIVACY: &str = r#"<h1>Datenschutzhinweise</h1>
<p>Diese Videosprechstunde verbindet Sie direkt mit Ihrer Ärztin oder Ihrem Arzt.
Bild, Ton und Chat werden Ende-zu-Ende verschlüsselt direkt zwischen den beiden
Geräten übertragen (DTLS-SRTP); der Server sieht und speichert sie nie. Es gibt
keine Aufzeichnung.</p>
<p>Der Server verarbeitet nur, was für die Vermittlung nötig ist: die Kennung der
Sprechstunde, ihren Zustand und ihre Zeiten, den Hashwert Ihres Einladungslinks und
vorübergehend Ihre IP-Adresse für die Verbindung. Ihren Namen (falls Sie einen
eingeben) erhält nur die Ärztin oder der Arzt, verschlüsselt. Es werden keine
Cookies, keine Analyse- oder Werbedienste und keine Inhalte Dritter verwendet.</p>
<p>Verantwortlich ist der Betreiber dieses Dienstes (siehe Impressum). Er hat
diese Hinweise noch nicht um seine Kontaktdaten und die Angaben zu Ihren Rechten
ergänzt.</p>
<h1 lang="en">Privacy notice</h1>
<p lang="en">Audio, video and chat travel end-to-end encrypted directly between the two
devices; the server never sees or stores them, and nothing is recorded. The server
processes only what pairing needs: the consultation's identifier, state and times,
a hash of your invitation link and, transiently, your IP address. Your name, if
you type one, reaches only the doctor, encrypted. No cookies, no analytics, no
advertising, no third-party content. The operator of this service (see the
imprint) is the controller and has not yet added their contact details.</p>"#;

const DEFAULT_MISSING: &str = r#"<p>Der Betreiber dieses Dienstes hat diese Angaben noch nicht hinterlegt.</p>
<p lang="en">The operator of this service has not provided this page yet.</p>"#;

impl LegalPages {
    /// Reads the operator's fragments from `dir` (if given) and renders the
    /// pages; `app_css_sri` is the integrity value of the shared stylesheet.
    pub fn load(dir: Option<&Path>, app_css_sri: &str) -> anyhow::Result<LegalPages> {
        let mut pages = HashMap::new();
        for (name, title) in PAGES {
            let fragment = match dir {
                Some(dir) => {
                    let path = dir.join(format!("{name}.html"));
                    match std::fs::read_to_string(&path) {
                        Ok(text) => Some(text),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("legal_dir: reading {}", path.display()));
                        }
                    }
                }
                None => None,
            };
            let body = fragment.unwrap_or_else(|| {
                if name == "privacy" {
                    DEFAULT_PRIVACY.to_owned()
                } else {
                    format!("<h1>{title}</h1>\n{DEFAULT_MISSING}")
                }
            });
            pages.insert(name, render(title, &body, app_css_sri));
        }
        Ok(LegalPages { pages })
    }

    /// The rendered page, if `name` is one of the legal pages.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pages.get(name).map(String::as_str)
    }
}

fn render(title: &str, body: &str, css_sri: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"de\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/static/app.css\" integrity=\"{css_sri}\">\n\
         </head>\n<body>\n<main class=\"legal-page\">\n{body}\n</main>\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_exist_and_privacy_describes_the_node() {
        let pages = LegalPages::load(None, "sha384-x").expect("defaults");
        let privacy = pages.get("privacy").expect("privacy");
        assert!(privacy.contains("Ende-zu-Ende"));
        assert!(privacy.contains("integrity=\"sha384-x\""));
        assert!(
            pages
                .get("imprint")
                .expect("imprint")
                .contains("nicht hinterlegt")
        );
        assert!(pages.get("other").is_none());
    }

    #[test]
    fn operator_fragments_replace_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("imprint.html"),
            "<p>Praxis Dr. Beispiel</p>",
        )
        .expect("write");
        let pages = LegalPages::load(Some(dir.path()), "sha384-x").expect("loads");
        assert!(
            pages
                .get("imprint")
                .expect("imprint")
                .contains("Praxis Dr. Beispiel")
        );
        assert!(
            pages
                .get("terms")
                .expect("terms")
                .contains("nicht hinterlegt")
        );
    }
}
