//! Sliding windows over event time: a ring of buckets, each holding the count,
//! the matching count, the sum and the max of its events, plus a bounded sample
//! of values for quantiles. Adding is O(1); reading walks the ring.
//!
//! A window of width W is split into `BUCKETS` buckets, so its edge is exact to
//! W / BUCKETS (15 s for a 5-minute window). Quantiles come from at most
//! `SAMPLES_PER_BUCKET` values per bucket, chosen by reservoir sampling and
//! weighted by the bucket's count, so a busy bucket is not under-represented.

use super::rule::Func;

/// Buckets per window.
pub(crate) const BUCKETS: usize = 20;
/// Values kept per bucket for quantiles.
pub(crate) const SAMPLES_PER_BUCKET: usize = 64;

#[derive(Debug, Clone, Default)]
struct Bucket {
    /// The bucket's number (event time / width); a slot whose number is old is empty.
    epoch: i64,
    count: f64,
    matching: f64,
    sum: f64,
    /// Events that carried the value (avg is sum / valued).
    valued: f64,
    max: f64,
    seen: u64,
    samples: Vec<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Window {
    width_ms: i64,
    buckets: Vec<Bucket>,
    keep_samples: bool,
}

/// What a window holds, summed over its live buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) count: f64,
    pub(crate) matching: f64,
    pub(crate) sum: f64,
    pub(crate) valued: f64,
    pub(crate) max: Option<f64>,
}

impl Window {
    pub(crate) fn new(span_ms: i64, keep_samples: bool) -> Self {
        let width_ms = (span_ms / BUCKETS as i64).max(1);
        Window {
            width_ms,
            buckets: vec![Bucket { epoch: i64::MIN, ..Bucket::default() }; BUCKETS],
            keep_samples,
        }
    }

    /// Adds an event at `ts_ms` (already clamped to at most now) with its weight
    /// (1 / sample_rate), whether it matches a ratio's `where`, and its value.
    /// Events older than the window's oldest bucket are ignored.
    pub(crate) fn add(&mut self, ts_ms: i64, now_ms: i64, weight: f64, matching: bool, value: Option<f64>) {
        let epoch = ts_ms.div_euclid(self.width_ms);
        if epoch <= now_ms.div_euclid(self.width_ms) - BUCKETS as i64 {
            return;
        }
        let slot = epoch.rem_euclid(BUCKETS as i64) as usize;
        let bucket = &mut self.buckets[slot];
        if bucket.epoch != epoch {
            if bucket.epoch > epoch {
                // The slot already holds a newer bucket: this event is too late.
                return;
            }
            let mut samples = std::mem::take(&mut bucket.samples);
            samples.clear();
            *bucket = Bucket { epoch, max: f64::NEG_INFINITY, samples, ..Bucket::default() };
        }
        bucket.count += weight;
        if matching {
            bucket.matching += weight;
        }
        if let Some(v) = value {
            bucket.sum += v * weight;
            bucket.valued += weight;
            bucket.max = bucket.max.max(v);
            bucket.seen += 1;
            if self.keep_samples {
                if bucket.samples.len() < SAMPLES_PER_BUCKET {
                    bucket.samples.push(v);
                } else {
                    // Reservoir sampling with a cheap deterministic mix of the count.
                    let pick = mix(bucket.seen) % bucket.seen;
                    if (pick as usize) < SAMPLES_PER_BUCKET {
                        bucket.samples[pick as usize] = v;
                    }
                }
            }
        }
    }

    /// The bucket numbers in view: after `lo`, up to and including `hi`. With
    /// `exclude_ms`, the newest part of the window is left out (whole buckets).
    fn range(&self, now_ms: i64, exclude_ms: i64) -> (i64, i64) {
        let newest = now_ms.div_euclid(self.width_ms);
        let hi = match exclude_ms {
            0 => newest,
            _ => (now_ms - exclude_ms).div_euclid(self.width_ms) - 1,
        };
        (newest - BUCKETS as i64, hi)
    }

    fn live(&self, now_ms: i64, exclude_ms: i64) -> impl Iterator<Item = &Bucket> {
        let (lo, hi) = self.range(now_ms, exclude_ms);
        self.buckets.iter().filter(move |b| b.epoch > lo && b.epoch <= hi)
    }

    pub(crate) fn totals(&self, now_ms: i64, exclude_ms: i64) -> Totals {
        let mut t = Totals::default();
        for b in self.live(now_ms, exclude_ms) {
            t.count += b.count;
            t.matching += b.matching;
            t.sum += b.sum;
            t.valued += b.valued;
            if b.valued > 0.0 {
                t.max = Some(t.max.map_or(b.max, |m: f64| m.max(b.max)));
            }
        }
        t
    }

    /// Whether any bucket still holds events (a group without any can be forgotten).
    pub(crate) fn is_empty(&self, now_ms: i64) -> bool {
        self.live(now_ms, 0).next().is_none()
    }

    /// The aggregate's value now; `None` (except for count and rate) when the
    /// window has fewer than `min_events` events, or none with a value.
    pub(crate) fn value(&self, func: Func, now_ms: i64, min_events: f64) -> Option<f64> {
        self.value_before(func, now_ms, 0, min_events)
    }

    /// The aggregate over the window without its newest `exclude_ms`: a
    /// baseline leaves out the recent period it is compared with.
    pub(crate) fn value_before(
        &self,
        func: Func,
        now_ms: i64,
        exclude_ms: i64,
        min_events: f64,
    ) -> Option<f64> {
        let t = self.totals(now_ms, exclude_ms);
        // Counts and rates are values even at zero; the others need events.
        if t.count < min_events.max(f64::MIN_POSITIVE) && !matches!(func, Func::Count | Func::Rate) {
            return None;
        }
        match func {
            Func::Count => Some(t.count),
            Func::Rate => {
                let (lo, hi) = self.range(now_ms, exclude_ms);
                let seconds = ((hi - lo).max(1) * self.width_ms) as f64 / 1000.0;
                Some(t.count / seconds)
            }
            Func::Ratio => (t.count > 0.0).then(|| t.matching / t.count),
            Func::Avg => (t.valued > 0.0).then(|| t.sum / t.valued),
            Func::Max => t.max,
            Func::Quantile(q) => self.quantile(q, now_ms, exclude_ms),
        }
    }

    /// The weighted quantile of the sampled values: each sample stands for
    /// `valued / samples` events of its bucket.
    fn quantile(&self, q: f64, now_ms: i64, exclude_ms: i64) -> Option<f64> {
        let mut weighted: Vec<(f64, f64)> = Vec::new();
        for b in self.live(now_ms, exclude_ms) {
            if b.samples.is_empty() {
                continue;
            }
            let w = b.valued / b.samples.len() as f64;
            weighted.extend(b.samples.iter().map(|v| (*v, w)));
        }
        if weighted.is_empty() {
            return None;
        }
        weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = weighted.iter().map(|(_, w)| w).sum();
        let target = q * total;
        let mut acc = 0.0;
        for (v, w) in &weighted {
            acc += w;
            if acc >= target {
                return Some(*v);
            }
        }
        weighted.last().map(|(v, _)| *v)
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let mut w = Window::new(60_000, false);
        for s in 0..60 {
            w.add(s * 1000, s * 1000, 1.0, s % 4 == 0, Some(s as f64));
        }
        assert_eq!(w.value(Func::Count, 59_000, 1.0), Some(60.0));
        assert_eq!(w.value(Func::Ratio, 59_000, 1.0), Some(0.25));
        assert_eq!(w.value(Func::Max, 59_000, 1.0), Some(59.0));
        assert_eq!(w.value(Func::Avg, 59_000, 1.0), Some(29.5));
        // 30 s later the first half (3 s buckets) has left.
        assert_eq!(w.value(Func::Count, 89_000, 1.0), Some(30.0));
        assert_eq!(w.value(Func::Rate, 89_000, 1.0), Some(0.5));
        assert_eq!(w.value(Func::Count, 200_000, 1.0), Some(0.0));
        assert_eq!(w.value(Func::Avg, 200_000, 1.0), None, "no events, no average");
        assert!(w.is_empty(200_000));
    }

    #[test]
    fn late_events_are_ignored_and_weights_scale() {
        let mut w = Window::new(10_000, false);
        w.add(100_000, 100_000, 10.0, false, None);
        w.add(50_000, 100_000, 1.0, false, None);
        assert_eq!(w.value(Func::Count, 100_000, 1.0), Some(10.0));
    }

    #[test]
    fn quantiles_are_close_on_many_values() {
        let mut w = Window::new(60_000, true);
        // 60,000 values 0..60000 spread over the minute, shuffled order within buckets.
        for i in 0..60_000i64 {
            let v = (i * 7919) % 60_000;
            w.add(i, 59_999, 1.0, false, Some(v as f64));
        }
        let p95 = w.value(Func::Quantile(0.95), 59_999, 1.0).expect("p95");
        let p50 = w.value(Func::Quantile(0.5), 59_999, 1.0).expect("p50");
        assert!((p95 - 57_000.0).abs() < 3_000.0, "p95 {p95}");
        assert!((p50 - 30_000.0).abs() < 5_000.0, "p50 {p50}");
    }

    #[test]
    fn a_baseline_leaves_out_the_recent_part() {
        let mut w = Window::new(3_600_000, true);
        for s in 0..3600i64 {
            let v = if s >= 3300 { 500.0 } else { 100.0 };
            w.add(s * 1000, 3_599_000, 1.0, false, Some(v));
        }
        let now = 3_599_000;
        assert_eq!(w.value_before(Func::Max, now, 300_000, 1.0), Some(100.0));
        assert_eq!(w.value(Func::Max, now, 1.0), Some(500.0));
        let rate = w.value_before(Func::Rate, now, 300_000, 1.0).expect("rate");
        assert!((rate - 1.0).abs() < 0.01, "one event a second before the last 5 minutes: {rate}");
    }

    #[test]
    fn min_events_guards_ratios() {
        let mut w = Window::new(60_000, false);
        w.add(0, 0, 1.0, true, None);
        assert_eq!(w.value(Func::Ratio, 0, 20.0), None);
        assert_eq!(w.value(Func::Ratio, 0, 1.0), Some(1.0));
    }
}
