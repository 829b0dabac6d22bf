//! A readable name for the device a session signed in from ("Chrome on
//! Linux"), derived from its user agent. Only the common browsers and
//! systems are told apart; anything else is named by the agent itself.

/// Browsers, in the order they are looked for: Edge and Opera also say
/// "Chrome", Chrome also says "Safari".
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-requests/", "Python"),
    ("okhttp/", "OkHttp"),
];

/// Systems, in the order they are looked for: Android also says "Linux",
/// iOS also says "Mac OS X".
const SYSTEMS: &[(&str, &str)] = &[
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
];

/// The longest agent shown as it is when no browser is recognised.
const MAX_RAW_CHARS: usize = 40;

/// "Firefox on Windows", "Safari on iOS", "curl"; "Unknown device" without
/// a user agent.
pub(crate) fn device_name(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return "Unknown device".to_string();
    };
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(marker, _)| agent.contains(marker))
            .map(|(_, name)| *name)
    };
    match (find(BROWSERS), find(SYSTEMS)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_string(),
        (None, Some(system)) => format!("Browser on {system}"),
        (None, None) if agent.chars().count() > MAX_RAW_CHARS => {
            let cut: String = agent.chars().take(MAX_RAW_CHARS).collect();
            format!("{cut}…")
        }
        (None, None) => agent.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::device_name;

    #[test]
    fn common_agents_get_browser_and_system() {
        for (agent, name) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/156.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/120.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:120.0) Gecko/20100101 Firefox/120.0",
                "Firefox on macOS",
            ),
            ("curl/8.5.0", "curl"),
        ] {
            assert_eq!(device_name(Some(agent)), name, "{agent}");
        }
    }

    #[test]
    fn unknown_agents_are_shown_short() {
        assert_eq!(device_name(None), "Unknown device");
        assert_eq!(device_name(Some("  ")), "Unknown device");
        assert_eq!(device_name(Some("my-script/1.0")), "my-script/1.0");
        let long = "x".repeat(100);
        assert_eq!(device_name(Some(&long)).chars().count(), 41);
    }
}
