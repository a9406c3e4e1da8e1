//! URL query strings: percent-encoding a value, and reading `a=b&c=d` pairs.
//! One place for both directions, so what a client sends (InfluxDB queries,
//! `tap`) and what the server reads (`/api/tap`) agree.

/// Percent-encodes a query value: everything but ASCII letters, digits, `-`,
/// `_` and `.`.
pub fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// `a=b&c=d` with `%XX` and `+` decoded; pairs whose text is not UTF-8 are left out.
pub fn params(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                // A `%` without two digits after it makes the pair invalid.
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b'%' => return None,
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_values_read_back_and_bad_escapes_drop_their_pair() {
        let value = "event_type=security.* & 100% ünïcode+";
        let query = format!("step={}&x=%zz&limit=5&bare", escape(value));
        assert_eq!(
            params(&query),
            [
                ("step".to_string(), value.to_string()),
                ("limit".to_string(), "5".to_string()),
                ("bare".to_string(), String::new()),
            ]
        );
        assert_eq!(params("a=b+c%2"), []);
    }
}
