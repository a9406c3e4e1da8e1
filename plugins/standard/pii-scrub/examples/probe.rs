//! Prints what the detectors find in each argument (or, with `@path`, in each
//! line of a file) and how long the search took.
use pii_scrub::Detectors;
fn main() {
    let t = std::time::Instant::now();
    let d = Detectors::new(|_| true).expect("patterns");
    eprintln!("build {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut found = Vec::new();
    d.find("warm up: jane@example.com 4111 1111 1111 1111 +1 415 555 0134 password=x1234567", &mut found);
    eprintln!("first search {:?}", t.elapsed());
    let mut texts = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.strip_prefix('@') {
            Some(path) => {
                texts.extend(std::fs::read_to_string(path).expect("file").lines().map(String::from))
            }
            None => texts.push(arg),
        }
    }
    for text in texts {
        for _ in 0..2 {
            let mut found = Vec::new();
            let t = std::time::Instant::now();
            let stopped = d.find(&text, &mut found);
            let spans: Vec<_> = found.iter().take(5).map(|f| (f.kind, &text[f.span.clone()])).collect();
            let shown: String = text.chars().take(60).collect();
            println!("{shown:?} -> {} found {spans:?} stopped={stopped:?} ({:?})", found.len(), t.elapsed());
        }
    }
}
