//! Instructions per call of the scrubber's prefilter on one text, for
//! `valgrind --tool=callgrind`: `N=100000 prefilter "some text"`.
use pii_scrub::Detectors;
fn main() {
    let text = std::env::args().nth(1).unwrap_or_default();
    let d = Detectors::new(|_| true).expect("patterns");
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut hits = 0;
    for _ in 0..n {
        hits += usize::from(d.worth_scanning(std::hint::black_box(&text)));
    }
    println!("{hits}");
}
