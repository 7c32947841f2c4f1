//! "Chrome on Linux" from a user agent: a small hand-written classifier for
//! the sessions table. Whatever the client claims; a label, not a fact.

/// A short label for a user agent: `"Firefox on Windows"`, `"Safari on
/// iPhone"`, `"curl"`; the agent's first word when nothing matches.
pub fn describe(user_agent: &str) -> String {
    let ua = user_agent.trim();
    for tool in [
        "curl",
        "Wget",
        "HTTPie",
        "python-requests",
        "Go-http-client",
    ] {
        if ua.starts_with(tool) {
            return tool.to_owned();
        }
    }
    match (browser(ua), os(ua)) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("a browser on {o}"),
        (None, None) => {
            let first = ua.split(['/', ' ']).next().unwrap_or("");
            if first.is_empty() {
                "unknown".to_owned()
            } else {
                first.chars().take(40).collect()
            }
        }
    }
}

/// Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
fn browser(ua: &str) -> Option<&'static str> {
    const BROWSERS: [(&str, &str); 8] = [
        ("Edg/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ];
    BROWSERS
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map(|(_, name)| *name)
}

/// Order matters: Android says Linux, iOS says "like Mac OS X".
fn os(ua: &str) -> Option<&'static str> {
    const SYSTEMS: [(&str, &str); 8] = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    SYSTEMS
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn real_user_agents_read_as_browser_on_system() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "Chrome on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", "Firefox on Windows"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari on iPhone"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Safari on macOS"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", "Edge on Windows"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", "Chrome on Android"),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", "Chrome on iPad"),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0", "Opera on Linux"),
            ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "Chrome on ChromeOS"),
            ("curl/8.5.0", "curl"),
            ("Wget/1.21.3", "Wget"),
            ("python-requests/2.31.0", "python-requests"),
            ("api-client", "api-client"),
            ("", "unknown"),
        ];
        for (ua, expected) in cases {
            assert_eq!(describe(ua), expected, "{ua}");
        }
    }
}
