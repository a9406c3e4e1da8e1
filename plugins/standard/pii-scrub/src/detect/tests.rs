use super::*;

fn kinds(text: &str) -> Vec<(Kind, String)> {
    let detectors = Detectors::new(|_| true).expect("patterns compile");
    let mut found = Vec::new();
    detectors.find(text, &mut found);
    found.into_iter().map(|f| (f.kind, text[f.span].to_string())).collect()
}

#[test]
fn finds_each_kind_and_narrows_to_the_secret() {
    let cases = [
        ("mail jane.doe@example.com now", Kind::Email, "jane.doe@example.com"),
        ("from 203.0.113.42 retried", Kind::Ipv4, "203.0.113.42"),
        ("peer 2001:db8::8a2e:370:7334 up", Kind::Ipv6, "2001:db8::8a2e:370:7334"),
        ("call +1 415 555 0134.", Kind::Phone, "+1 415 555 0134"),
        ("call (415) 555-0134", Kind::Phone, "(415) 555-0134"),
        ("card 4111 1111 1111 1111 declined", Kind::Card, "4111 1111 1111 1111"),
        ("ssn 078-05-1120 in", Kind::Ssn, "078-05-1120"),
        ("IBAN GB82 WEST 1234 5698 7654 32 on", Kind::Iban, "GB82 WEST 1234 5698 7654 32"),
        ("IBAN DE89370400440532013000 FOR X", Kind::Iban, "DE89370400440532013000"),
        ("key AKIAIOSFODNN7EXAMPLE used", Kind::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
        ("https://admin:hunter2@internal.example.com/x", Kind::UrlCredentials, "admin:hunter2"),
        ("Authorization: Basic dXNlcjpwYXNz", Kind::Authorization, "dXNlcjpwYXNz"),
        ("token Bearer abc.def-123456 leaked", Kind::BearerToken, "abc.def-123456"),
        ("password=hunter22 set", Kind::ApiKey, "hunter22"),
    ];
    for (text, kind, secret) in cases {
        assert_eq!(kinds(text), vec![(kind, secret.to_string())], "{text}");
    }
}

#[test]
fn finds_encoded_obfuscated_and_national_forms() {
    let cases = [
        ("q=jane%40example.com&x", Kind::Email, "jane%40example.com"),
        ("to jane&#64;example&#46;com ok", Kind::Email, "jane&#64;example&#46;com"),
        ("to ja\u{200b}ne@example.com", Kind::Email, "ja\u{200b}ne@example.com"),
        ("to jane\\u0040example.com", Kind::Email, "jane\\u0040example.com"),
        ("to jane [at] example [dot] com!", Kind::Email, "jane [at] example [dot] com"),
        ("to \"john doe\"@example.com", Kind::Email, "\"john doe\"@example.com"),
        ("to jos\u{e9}@b\u{fc}cher.de", Kind::Email, "jos\u{e9}@b\u{fc}cher.de"),
        ("card 4111.1111.1111.1111 x", Kind::Card, "4111.1111.1111.1111"),
        ("card 4111-1111 1111.1111 x", Kind::Card, "4111-1111 1111.1111"),
        ("card 4111\u{a0}1111\u{202f}1111 1111 x", Kind::Card, "4111\u{a0}1111\u{202f}1111 1111"),
        (
            "%B4111111111111111^DOE/JOHN^2512101000000000?",
            Kind::Card,
            "%B4111111111111111^DOE/JOHN^2512101000000000?",
        ),
        ("tel 01 23 45 67 89 fr", Kind::Phone, "01 23 45 67 89"),
        ("tel 01.23.45.67.89 fr", Kind::Phone, "01.23.45.67.89"),
        ("ruf (030) 12345678 an", Kind::Phone, "(030) 12345678"),
        ("call 020 7946 0958 uk", Kind::Phone, "020 7946 0958"),
        ("tel 03-1234-5678 jp", Kind::Phone, "03-1234-5678"),
        ("ligue (11) 91234-5678 br", Kind::Phone, "(11) 91234-5678"),
        ("call 98765 43210 in", Kind::Phone, "98765 43210"),
        ("dial 0033 1 23 45 67 89", Kind::Phone, "0033 1 23 45 67 89"),
        ("link tel:+1-201-555-0123;ext=12 ok", Kind::Phone, "+1-201-555-0123;ext=12"),
        ("phone: 4155550134 ok", Kind::Phone, "4155550134"),
        ("call 415-555-0134 ext. 204 now", Kind::Phone, "415-555-0134 ext. 204"),
        ("SSN#169736526 on file", Kind::Ssn, "169736526"),
        ("social security number 604548678", Kind::Ssn, "604548678"),
        ("itin 912-70-1234", Kind::Ssn, "912-70-1234"),
        ("iban gb82west12345698765432 x", Kind::Iban, "gb82west12345698765432"),
        ("iban gb82 west 1234 5698 7654 32 x", Kind::Iban, "gb82 west 1234 5698 7654 32"),
        ("host pool-121-163-43-58.example.net", Kind::Ipv4, "121-163-43-58"),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Kind::ApiKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY used",
            Kind::AwsSecretKey,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "t eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0. ok",
            Kind::Jwt,
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
        ),
        (
            "t eyAiYWxnIjogIkhTMjU2IiB9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl ok",
            Kind::Jwt,
            "eyAiYWxnIjogIkhTMjU2IiB9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        ),
        (
            "jwe eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXZpdml2aXY.Y2lwaGVydGV4dA.dGFndGFn x",
            Kind::Jwt,
            "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXZpdml2aXY.Y2lwaGVydGV4dA.dGFndGFn",
        ),
        (
            "slack xoxe.xoxp-1-Mi0yLTE0NjY4NjM5NjEwMzAtMTQ2Njg2MzkwNjM1OC0xNDY ok",
            Kind::SlackToken,
            "xoxe.xoxp-1-Mi0yLTE0NjY4NjM5NjEwMzAtMTQ2Njg2MzkwNjM1OC0xNDY",
        ),
        (
            "app xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef ok",
            Kind::SlackToken,
            "xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef",
        ),
        (
            "sg 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 ok",
            Kind::ApiKey,
            "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",
        ),
        (
            "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
            Kind::SessionCookie,
            "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
        ),
        (
            "set JSESSIONID=8F14E45FCEEA167A5A36DEDD4BEA2543 ok",
            Kind::SessionCookie,
            "8F14E45FCEEA167A5A36DEDD4BEA2543",
        ),
        ("dsn app:s3cr3t!@tcp(db:3306)/orders", Kind::UrlCredentials, "app:s3cr3t!"),
        ("redis://:pw0rd99@cache:6379", Kind::UrlCredentials, ":pw0rd99"),
        ("DB_PASSWORD=Tr0ub4dor&3", Kind::ApiKey, "Tr0ub4dor"),
        ("OAUTH_CLIENT_SECRET=a1b2c3d4e5f6 next", Kind::ApiKey, "a1b2c3d4e5f6"),
        ("GITHUB_TOKEN=abcdef123456 next", Kind::ApiKey, "abcdef123456"),
        ("{\"clientSecret\": \"s3cr3t value\"}", Kind::ApiKey, "s3cr3t value"),
    ];
    for (text, kind, secret) in cases {
        assert_eq!(kinds(text), vec![(kind, secret.to_string())], "{text}");
    }
}

#[test]
fn leaves_lookalikes_alone() {
    for text in [
        "550e8400-e29b-41d4-a716-446655440000",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "at 2026-11-26T04:33:14.123Z and 1767225600000",
        "version 1.4.2, v2.0.1-rc.1, 10.0.22621.2428",
        "4111 1111 1111 1112",
        "agent-code_worker-3 and agent_researcher_7",
        "std::vector::new and 04:33:14 and 00:1A:2B:3C:4D:5E",
        "secret: deployment pending",
        "token_type=Bearer expires_in=3600",
        "durations 142 252 520 1026 ms",
        ".NET Version=12.5.3.0",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "isin US0378331005 bic DEUTDEFF vat DE123456789",
        "order 2026-11-30-000123 and 10-20-30-40",
        "next_token=eyJvZmZzZXQiOjEwMH0 page_token=abc123def",
        "password_expires_in=3600",
    ] {
        assert_eq!(kinds(text), vec![], "{text}");
    }
}

#[test]
fn a_wide_character_before_a_label_is_stepped_over_whole() {
    // Found by the fuzzer: the version-label check cut `ver\u{fffd}ion` inside
    // its replacement character.
    assert_eq!(kinds("\"ver\u{fffd}ion\":\"1.0.0.1\""), vec![(Kind::Ipv4, "1.0.0.1".to_string())]);
    assert_eq!(
        kinds("é1.2.3.4 and версия 10.0.0.1"),
        vec![(Kind::Ipv4, "1.2.3.4".to_string()), (Kind::Ipv4, "10.0.0.1".to_string())]
    );
}

#[test]
fn collateral_damage_stays_small() {
    // A key without its END line: its body goes, the sentence after it stays.
    let text = "key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\nthen the job failed";
    let found = kinds(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(!found[0].1.contains("job failed"), "{found:?}");
    assert!(found[0].1.contains("BKcwggSjAgEAAoIBAQC7"), "{found:?}");
    // The host of a URL whose user is empty is not an address's domain.
    assert_eq!(
        kinds("redis://:pw0rd99@cache.internal:6379"),
        vec![(Kind::UrlCredentials, ":pw0rd99".to_string())]
    );
}

#[test]
fn formats_shorter_than_their_minimum_are_not_secrets() {
    for text in
        ["Authorization: abc", "eyJab.eyJabcd.sig1", "xoxb-12345", "https://hooks.slack.com/services/T00/B00"]
    {
        assert_eq!(kinds(text), vec![], "{text}");
    }
    assert_eq!(kinds("Authorization: abcdef").len(), 1);
    assert_eq!(kinds("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXX").len(), 1);
}

#[test]
fn checks_are_the_real_algorithms() {
    assert!(luhn("79927398713"));
    assert!(!luhn("79927398710"));
    assert!(valid_iban("GB82WEST12345698765432"));
    assert!(valid_iban("gb82 west 1234 5698 7654 32"));
    assert!(!valid_iban("GB82WEST12345698765433"));
    assert!(
        !valid_ssn_digits("666-12-3456")
            && !valid_ssn_digits("123-00-4567")
            && valid_ssn_digits("123-45-6789")
    );
    assert!(valid_ssn_digits("912-70-1234") && !valid_ssn_digits("912-40-1234"));
}

/// `worth_scanning` written the plain way — one pass for the counts, then every
/// word start looked up against every keyword — as the reference its one-pass
/// form must agree with.
fn worth_scanning_plainly(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut colons, mut all_digits, mut digits, mut dots, mut base64_run) = (0, 0, 0, 0, 0);
    for (i, &b) in bytes.iter().enumerate() {
        base64_run = if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' { base64_run + 1 } else { 0 };
        if base64_run >= 40 || b == b'@' {
            return true;
        }
        match b {
            b'0'..=b'9' => {
                digits += 1;
                all_digits += 1;
                if digits >= 8 || (dots >= 3 && digits >= 4) {
                    return true;
                }
            }
            b'.' | b'-' => dots += 1,
            b' ' | b'(' | b')' | b'/' | b'+' => {}
            _ => {
                colons += usize::from(b == b':');
                let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
                let iban = bytes.len() >= i + 4
                    && bytes[i].is_ascii_alphabetic()
                    && bytes[i + 1].is_ascii_alphabetic()
                    && bytes[i + 2].is_ascii_digit()
                    && bytes[i + 3].is_ascii_digit()
                    && iban_country(&[bytes[i].to_ascii_uppercase(), bytes[i + 1].to_ascii_uppercase()]);
                if word_start && iban {
                    return true;
                }
                (digits, dots) = (0, 0);
            }
        }
    }
    if colons >= 2 {
        return true;
    }
    (0..bytes.len().saturating_sub(1)).any(|i| {
        let b = bytes[i];
        let starts = match (b.is_ascii_alphanumeric(), i.checked_sub(1).map(|p| bytes[p])) {
            (true, None) => true,
            (true, Some(p)) => {
                !p.is_ascii_alphanumeric() || (p.is_ascii_lowercase() && b.is_ascii_uppercase())
            }
            (false, _) => matches!(b, b'-' | b':' | b'@'),
        };
        let keyword = |words: &[&str]| {
            words
                .iter()
                .any(|w| bytes.get(i..i + w.len()).is_some_and(|s| s.eq_ignore_ascii_case(w.as_bytes())))
        };
        starts && (keyword(KEYWORDS) || (all_digits >= 7 && keyword(NUMBER_KEYWORDS)))
    })
}

#[test]
fn the_one_pass_prefilter_agrees_with_the_plain_one() {
    let detectors = Detectors::new(|_| true).expect("patterns compile");
    let mut checked = 0usize;
    let mut agree = |text: &str| {
        assert_eq!(detectors.worth_scanning(text), worth_scanning_plainly(text), "{text:?}");
        checked += 1;
    };
    // Every string of the checked-in corpora, and every line whole.
    let corpus = concat!(
        include_str!("../../tests/corpus/pii-corpus.jsonl"),
        include_str!("../../tests/corpus/pii-forms.jsonl")
    );
    for line in corpus.lines() {
        agree(line);
        for part in line.split('"') {
            agree(part);
        }
    }
    // Random texts built from what the prefilter reacts to: keywords of both
    // kinds (in any case, at and inside words), digits, number punctuation,
    // colons, IBAN-like words, base64 runs, non-ASCII letters.
    let pieces: Vec<String> = KEYWORDS
        .iter()
        .chain(NUMBER_KEYWORDS)
        .map(|k| k.to_string())
        .chain(KEYWORDS.iter().map(|k| k.to_ascii_uppercase()))
        .chain(
            [
                "0", "12", "345", "6789", ".", "-", " ", "(", ")", "/", "+", ":", "a", "Zb", "xY", "DE89",
                "gb12", "é", "\u{200b}", "_", "=", "\"", "q",
            ]
            .iter()
            .map(|s| s.to_string()),
        )
        .chain(["A".repeat(39), "b".repeat(40), "9".repeat(7)])
        .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut differ_in_outcome = [0usize; 2];
    for _ in 0..200_000 {
        let mut text = String::new();
        for _ in 0..next(12) {
            text.push_str(&pieces[next(pieces.len())]);
        }
        differ_in_outcome[usize::from(worth_scanning_plainly(&text))] += 1;
        agree(&text);
    }
    // Both outcomes were exercised, or the comparison proves little.
    assert!(differ_in_outcome.iter().all(|n| *n > 10_000), "{differ_in_outcome:?}");
    assert!(checked > 200_000);
}
