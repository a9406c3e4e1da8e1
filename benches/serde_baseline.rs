//! The portable yardstick of `benches/chain.sh`: a bare serde_json loop that parses
//! every line of a JSONL file into a `Value` and serializes it again, with nothing
//! else. The chain's CPU-seconds are reported as multiples of this loop's, so the
//! figures carry over to another machine.
//!
//!   cargo bench --bench serde_baseline -- FILE

use std::io::{BufRead, BufReader};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .ok_or_else(|| anyhow::anyhow!("usage: serde_baseline FILE"))?;
    let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
    let (mut events, mut bytes_out) = (0u64, 0usize);
    let mut out = Vec::with_capacity(4096);
    for line in reader.split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&line)?;
        out.clear();
        serde_json::to_writer(&mut out, &value)?;
        bytes_out += out.len();
        events += 1;
    }
    println!("serde_json parse+serialize: {events} events, {bytes_out} bytes out");
    Ok(())
}
